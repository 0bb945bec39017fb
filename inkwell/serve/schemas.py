"""Request bodies, mirroring OpenAI's (plus Inkwell's own decoding knobs), and their mapping onto
GenerationSettings.

OpenAI field -> Inkwell setting: max_tokens (or max_completion_tokens) -> max_new_tokens, temperature,
top_p, n -> num_return_sequences, stop (a string or a list) -> stop, seed. Extensions spelled as vLLM
spells them: top_k, repetition_penalty, min_tokens, no_repeat_ngram_size. Fields left out take Inkwell's
defaults (temperature 0.7, top_p 0.9, top_k 50, repetition_penalty 1.1: small models loop without it).
presence_penalty / frequency_penalty are accepted only as 0 (use repetition_penalty); logprobs, echo,
best_of (completions; content requests take their own best_of), logit_bias, suffix and tools are rejected with a
400 naming the field. response_format (json_object, json_schema) and vLLM's structured_outputs (regex, choice,
grammar) decode under that grammar.

The OpenAPI document publishes each field's limits (`published`); the checks themselves stay in
`overrides`, `prompts`, `chat` and GenerationSettings, whose 400s name the field and say what to do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from inkwell.compose.bestof import MAX_BEST_OF
from inkwell.compose.facts import MAX_ROWS as FACTS_MAX_ROWS
from inkwell.errors import InkwellError
from inkwell.generate.grammar import from_openai
from inkwell.generate.settings import MAX_SEED, GenerationSettings
from inkwell.serve.errors import bad_request, from_inkwell

MAX_N = 16  # choices per request: each one is a row in the batch
MAX_STOP = 16  # stop sequences per request
MAX_ROWS = 64  # completions per request (prompts x n)
MAX_TABLE_ROWS = FACTS_MAX_ROWS  # rows of a facts table (`data` of a content request)


def published(**schema: Any) -> Any:
    """A field's limits in the OpenAPI document only. The server checks them itself, after the checks a
    client should hear about first (unknown model, template), with its own 400 naming the field and the fix;
    a pydantic constraint would answer first, in pydantic's words."""
    return Field(json_schema_extra=schema)


Text = Annotated[str, published(minLength=1)]  # a stop sequence or prompt: never empty
# A knowledge folder's name (`inkwell kb add NAME`; knowledge.index.NAME): its passages ground the answer.
KnowledgeName = Annotated[str, published(pattern="^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]
# A style profile's name (`inkwell style learn NAME`; compose.style.NAME).
StyleName = Annotated[str, published(pattern="^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]


class StreamOptions(BaseModel):
    include_usage: bool = False


class SamplingFields(BaseModel):
    """Fields shared by completions, chat and content requests."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    max_tokens: Annotated[int, published(minimum=1)] | None = None  # at most --max-tokens-limit / the context
    temperature: Annotated[float, published(minimum=0, maximum=5)] | None = None  # 0 is greedy
    top_p: Annotated[float, published(exclusiveMinimum=0, maximum=1)] | None = None
    n: Annotated[int, published(minimum=1, maximum=MAX_N)] = 1
    stop: Text | Annotated[list[Text], published(maxItems=MAX_STOP)] | None = None
    seed: Annotated[int, published(minimum=0, maximum=MAX_SEED)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: Annotated[float, published(minimum=0, maximum=0)] | None = None  # only 0: repetition_penalty
    frequency_penalty: Annotated[float, published(minimum=0, maximum=0)] | None = None
    user: str | None = None
    # Inkwell / vLLM extensions
    top_k: Annotated[int, published(minimum=0)] | None = None  # 0 disables
    repetition_penalty: Annotated[float, published(minimum=0.001, maximum=10)] | None = None  # 1.0 disables
    min_tokens: Annotated[int, published(minimum=0)] | None = None  # at most max_tokens
    no_repeat_ngram_size: Annotated[int, published(minimum=0)] | None = None
    # Not supported: rejected when set (see reject_unsupported)
    logprobs: Any = None
    top_logprobs: Any = None
    logit_bias: Any = None
    tools: Any = None
    # Constrained decoding: OpenAI's response_format (json_object, json_schema) and vLLM's structured_outputs
    # (regex, choice, grammar, json); see inkwell/generate/grammar.py
    response_format: Annotated[dict, published(type="object")] | None = None
    structured_outputs: Annotated[dict, published(type="object")] | None = None

    def reject_unsupported(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if value not in (None, 0, 0.0):
                raise bad_request(
                    f"{name} is not supported by this server (got {value}); use repetition_penalty "
                    "(1.0 disables, default 1.1)",
                    param=name,
                    code="unsupported_parameter",
                )
        for name in ("logprobs", "top_logprobs", "logit_bias", "tools"):
            if getattr(self, name) not in (None, False, {}, []):
                raise bad_request(f"{name} is not supported by this server", param=name, code="unsupported_parameter")

    def overrides(self, *, max_tokens_limit: int) -> dict:
        """Check the OpenAI-level rules (400 naming the field); return the Inkwell settings the client set."""
        self.reject_unsupported()
        max_tokens = self.max_tokens if self.max_tokens is not None else getattr(self, "max_completion_tokens", None)
        if self.temperature is not None and self.temperature < 0:
            raise bad_request(
                f"temperature must be >= 0 (0 is greedy), got {self.temperature}",
                param="temperature",
                code="invalid_value",
            )
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise bad_request(f"top_p must be in (0, 1], got {self.top_p}", param="top_p", code="invalid_value")
        if max_tokens is not None and max_tokens <= 0:
            raise bad_request(
                f"max_tokens must be at least 1, got {max_tokens}", param="max_tokens", code="invalid_value"
            )
        if max_tokens is not None and max_tokens > max_tokens_limit:
            raise bad_request(
                f"max_tokens is {max_tokens}, above this server's limit of {max_tokens_limit}",
                param="max_tokens",
                code="invalid_value",
            )
        if not 1 <= self.n <= MAX_N:
            raise bad_request(f"n must be between 1 and {MAX_N}, got {self.n}", param="n", code="invalid_value")
        if self.seed is not None and self.seed < 0:
            raise bad_request(f"seed must be >= 0, got {self.seed}", param="seed", code="invalid_value")
        if isinstance(self.stop, list) and len(self.stop) > MAX_STOP:
            raise bad_request(f"at most {MAX_STOP} stop sequences", param="stop", code="invalid_value")
        request = {
            "max_new_tokens": max_tokens,
            "min_new_tokens": self.min_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "num_return_sequences": self.n if self.n != 1 else None,
            "stop": self.stop,
            "seed": self.seed,
            "grammar": self.grammar(),
        }
        return {k: v for k, v in request.items() if v is not None}

    def grammar(self) -> dict | None:
        """The request's response_format / structured_outputs as a grammar setting (400 naming the field)."""
        try:
            return from_openai(self.response_format, self.structured_outputs)
        except InkwellError as exc:
            raise from_inkwell(exc) from None

    def to_settings(self, *, max_tokens_limit: int, default_max_tokens: int) -> GenerationSettings:
        """GenerationSettings for a completion/chat request (Inkwell defaults for fields left out)."""
        try:
            return GenerationSettings.build(
                {"max_new_tokens": default_max_tokens}, self.overrides(max_tokens_limit=max_tokens_limit)
            )
        except InkwellError as exc:
            raise from_inkwell(exc) from None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(SamplingFields):
    # Token arrays are parsed, then refused with a 400 that says so; the document shows only what is served.
    prompt: Annotated[
        str | list[str] | list[int] | list[list[int]],
        published(
            anyOf=[
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": MAX_ROWS},
            ]
        ),
    ]
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None

    def prompts(self) -> list[str]:
        if self.echo:
            raise bad_request("echo is not supported by this server", param="echo", code="unsupported_parameter")
        if self.best_of not in (None, 1, self.n):
            raise bad_request("best_of is not supported by this server", param="best_of", code="unsupported_parameter")
        if self.suffix:
            raise bad_request("suffix is not supported by this server", param="suffix", code="unsupported_parameter")
        given = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        prompts = [p for p in given if isinstance(p, str)]
        if not prompts or len(prompts) != len(given):
            raise bad_request(
                "prompt must be a string or a list of strings (token arrays are not supported)",
                param="prompt",
                code="invalid_value",
            )
        if any(not p for p in prompts):
            raise bad_request("prompt is empty", param="prompt", code="invalid_value")
        if len(prompts) * self.n > MAX_ROWS:
            raise bad_request(
                f"at most {MAX_ROWS} completions per request (prompts x n)", param="prompt", code="invalid_value"
            )
        return prompts


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Annotated[str, published(enum=["text"])]
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        if any(part.type != "text" for part in self.content):
            raise bad_request("only text content parts are supported", param="messages", code="invalid_value")
        return "".join(part.text or "" for part in self.content)


class ChatCompletionRequest(SamplingFields):
    messages: Annotated[list[ChatMessage], published(minItems=1)]
    max_completion_tokens: Annotated[int, published(minimum=1)] | None = None
    kb: KnowledgeName | None = None  # Inkwell: passages of this knowledge folder before the last user message

    def chat(self) -> list[dict]:
        if not self.messages:
            raise bad_request("messages must not be empty", param="messages", code="invalid_value")
        # "developer" is OpenAI's new name for the system role; chat templates know only "system".
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


class ContentRequest(SamplingFields):
    """POST /v1/content/{template}: template fields plus settings (OpenAI names, or Inkwell's under `settings`)."""

    stream: Annotated[bool, published(enum=[False])] = False  # content is answered whole
    fields: dict[str, Any] = Field(default_factory=dict)
    settings_: dict[str, Any] | None = Field(default=None, alias="settings")
    json_retries: int = Field(default=2, ge=0, le=5)
    # A facts table for the report and data-brief templates: row objects {column: number or text}. Its derived
    # facts fill the `facts` field and every number of the text is checked (docs/grounding.md).
    data: Annotated[list[dict[str, Any]], published(minItems=1, maxItems=MAX_TABLE_ROWS)] | None = None
    fact_retries: int = Field(default=2, ge=0, le=5)  # rewrites of a version with an unsupported number
    kb: KnowledgeName | None = None  # ground on this knowledge folder: passages in the prompt, `citations` out
    style: StyleName | None = None  # write in this style (inkwell style learn): its exemplars as shots, `style` out
    # Best-of-n (compose/bestof.py): this many candidates per choice, decoded together; the one that passes most of
    # the template's checks is returned, with its scores under `best_of`.
    best_of: Annotated[int, published(minimum=1, maximum=MAX_BEST_OF)] = 1

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def best_of_overrides(self, overrides: dict) -> tuple[dict, Any]:
        """(the overrides asking for `best_of` candidates per choice, the chooser for write_many or None); a 400
        naming best_of when it is out of range, too many with n, greedy, or given with a facts table."""
        from inkwell.compose.bestof import best_of_settings

        if self.best_of != 1 and self.data is not None:
            raise bad_request(
                "best_of cannot be combined with data: a report from a table is already rewritten while a number is "
                "unsupported (fact_retries)",
                param="best_of",
                code="invalid_value",
            )
        try:
            return best_of_settings(overrides, self.best_of)
        except InkwellError as exc:
            raise bad_request(str(exc).replace("\n  fix: ", "; fix: "), param="best_of", code="invalid_value") from None


REQUESTS = (CompletionRequest, ChatCompletionRequest, ContentRequest)


def openapi_body(model: type[BaseModel]) -> dict:
    """`openapi_extra` for a route that reads its own body (so that errors keep OpenAI's shape): the body's
    schema, by reference to `openapi_schemas()`."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openapi_schemas() -> dict[str, dict]:
    """The request bodies' JSON schemas and the models they use, for the OpenAPI document's components."""
    from inkwell.serve.studio.schemas import BODIES

    _, top = models_json_schema(
        [(model, "validation") for model in (*REQUESTS, *BODIES)], ref_template="#/components/schemas/{model}"
    )
    return top["$defs"]
