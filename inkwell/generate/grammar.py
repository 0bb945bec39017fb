"""Grammar-constrained decoding: the next token is chosen only among those a JSON schema, a regular expression or
a list of choices still allows, so a structured template's output always parses (no retries).

    settings = GenerationSettings(grammar={"json_schema": schema})   # or {"regex": "..."}, {"choices": [...]},
    engine.generate(prompts, settings)                                 #    {"lark": "..."}, {"json": True}

Each row gets its own matcher (`RowGrammar`), so rows with different grammars, or none, share a continuous
batch. Every engine applies it the same way: the row's allowed-token mask sets every other logit to -inf before
temperature / top-k / top-p, the chosen token is fed back in `TextRows.advance`, and a row whose grammar is
complete ends there ("stop").

The grammar engine is llguidance (the Rust library behind OpenAI's structured outputs and llama.cpp's
`--grammar`), chosen by measurement on a 2-core CPU (docs/quality.md): it has no dependencies (XGrammar pulls
torch and triton), compiles the lesson-quiz schema in 5 ms for SmolLM2 (XGrammar 14 ms) and computes a mask in
13 us a token (SmolLM2) / 38 us (Gemma-3's 262k vocabulary), where lm-format-enforcer took 0.1-10 ms and does not
import with transformers 5. Wrapping a model's tokenizer for it takes 0.5 s (SmolLM2) / 5 s (Gemma-3): done once
per model, on first use.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from typing import Any

from inkwell.errors import InkwellError

KINDS = ("json_schema", "json", "regex", "choices", "lark")
# Compact, fixed separators and no free whitespace: a 135M model given "any whitespace" can spend its whole
# budget on newlines inside a JSON object (the grammar allows it forever).
JSON_OPTIONS = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}
MAX_CHOICES = 1000

_tokenizers: dict[tuple, Any] = {}
_tokenizers_lock = threading.Lock()
_compiled: dict[str, str] = {}  # grammar key -> llguidance grammar text (validated)


def check_grammar(spec: Any) -> dict | None:
    """The `grammar` setting, validated without a model: None, or a dict with exactly one of KINDS. Errors name
    the field (`grammar.json_schema`, `grammar.regex`, ...) and, for a schema, the path inside it."""
    if spec is None or spec == {}:  # {}: explicitly none (a structured template's grammar turned off)
        return None
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise InkwellError(
            f"invalid setting grammar={_short(spec)}: one of {', '.join(KINDS)}",
            field="grammar",
            hint='e.g. {"json_schema": {...}}, {"regex": "[A-Z][a-z]+"} or {"choices": ["yes", "no"]}',
        )
    kind, value = next(iter(spec.items()))
    field = f"grammar.{kind}"
    if kind == "json_schema":
        _check_schema(value, field)
    elif kind == "json":
        if value is not True:
            raise InkwellError(f"invalid setting {field}={_short(value)}", field=field, hint="set it to true")
    elif kind in ("regex", "lark"):
        if not isinstance(value, str) or not value:
            raise InkwellError(f"invalid setting {field}: a non-empty string", field=field, hint=f"give a {kind}")
    elif kind == "choices":
        if (
            not isinstance(value, list)
            or not 0 < len(value) <= MAX_CHOICES
            or not all(isinstance(c, str) and c for c in value)
        ):
            raise InkwellError(
                f"invalid setting {field}: a list of 1-{MAX_CHOICES} non-empty strings",
                field=field,
                hint="e.g. --choices positive,negative,neutral",
            )
    grammar_text(spec)  # compiles (cached): a regex or schema llguidance cannot take fails here, not mid-batch
    return spec


def strict_schema(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that does not say otherwise (OpenAI's
    strict mode): a template's JSON holds its own keys only, and a small model gets no room to invent others."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_schema(value) for key, value in schema.items()}
    if (out.get("type") == "object" or "properties" in out) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _check_schema(schema: Any, field: str) -> None:
    if not isinstance(schema, (dict, bool)):
        raise InkwellError(f"invalid setting {field}: a JSON schema object", field=field, hint="give a JSON object")
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top level)"
        raise InkwellError(
            f"invalid JSON schema at {where}: {exc.message}", field=field, hint="fix the schema at that path"
        ) from None


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def grammar_text(spec: dict) -> str:
    """llguidance's grammar for a checked spec, validated once and cached."""
    key = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    if key in _compiled:
        return _compiled[key]
    from llguidance import LLMatcher

    kind, value = next(iter(spec.items()))
    if kind == "json_schema":
        text = LLMatcher.grammar_from_json_schema(value, overrides=JSON_OPTIONS)  # type: ignore[arg-type]
    elif kind == "json":
        text = LLMatcher.grammar_from_json_schema({"type": "object"}, overrides=JSON_OPTIONS)  # type: ignore[arg-type]
    elif kind == "regex":
        text = LLMatcher.grammar_from_regex(value)
    elif kind == "choices":
        text = LLMatcher.grammar_from_lark("start: " + " | ".join(_lark_string(c) for c in value))
    else:
        text = LLMatcher.grammar_from_lark(value)
    error = LLMatcher.validate_grammar(text)
    if error and not error.startswith("WARNING"):
        raise InkwellError(
            f"grammar.{kind} cannot be used: {' '.join(error.split())[:300]}",
            field=f"grammar.{kind}",
            hint=f"fix the {kind.replace('_', ' ')} (docs/quality.md lists what constrained decoding supports)",
        )
    if len(_compiled) > 256:
        _compiled.clear()
    _compiled[key] = text
    return text


def _lark_string(choice: str) -> str:
    return json.dumps(choice, ensure_ascii=False)  # a Lark string literal: quotes and backslashes escaped


def grammar_tokenizer(loaded, vocab: int, eos_ids: Collection[int]):
    """llguidance's view of the model's tokenizer, made once per model (0.5 s for SmolLM2, 5 s for Gemma-3)."""
    key = (str(getattr(loaded, "path", "")), str(getattr(loaded, "name", "")), vocab, tuple(sorted(eos_ids)))
    with _tokenizers_lock:
        if key not in _tokenizers:
            import llguidance.hf

            tokenizer = loaded.tokenizer
            try:
                _tokenizers[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab, eos_token=sorted(eos_ids))
            except ValueError as exc:  # a slow (Python) tokenizer
                raise InkwellError(
                    f"constrained decoding needs a fast tokenizer; model '{loaded.name}' has none ({exc})",
                    field="grammar",
                    hint="use a model folder with tokenizer.json",
                ) from None
        return _tokenizers[key]


class RowGrammar:
    """One row's matcher: `allowed()` (a bool mask over the vocabulary), `apply(x)` (numpy logits in place),
    `accept(token)`, and whether the text so far is complete (`accepting`) or can only end (`finished`)."""

    def __init__(self, tokenizer, grammar: str, vocab: int, label: str = "grammar"):
        import llguidance
        import numpy as np

        self.matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if self.matcher.is_error():
            raise InkwellError(
                f"{label} cannot be used: {self.matcher.get_error()[:300]}", field=label, hint="simplify it"
            )
        self.vocab = vocab
        self._bits = np.full((1, (vocab + 31) // 32), -1, dtype=np.int32)

    def allowed(self):
        """Bool mask [vocab]: True where the token keeps the text inside the grammar."""
        import llguidance.numpy as lln
        import numpy as np

        lln.fill_next_token_bitmask(self.matcher, self._bits)
        return np.unpackbits(self._bits.view(np.uint8), bitorder="little")[: self.vocab].astype(bool)

    def apply(self, x) -> None:
        """Set the logits of every token the grammar forbids to -inf (`x`: numpy [n >= vocab], in place)."""
        import numpy as np

        allowed = self.allowed()
        n = min(len(x), self.vocab)  # a model's head may be wider than its tokenizer (padding rows): never allowed
        x[:n][~allowed[:n]] = -np.inf
        x[n:] = -np.inf

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise InkwellError(
                f"the decoder chose token {token}, which the grammar does not allow: {self.matcher.get_error()[:200]}",
                field="grammar",
            )

    @property
    def accepting(self) -> bool:
        """The text so far is a complete match (end of text is allowed)."""
        return bool(self.matcher.is_accepting())

    @property
    def finished(self) -> bool:
        """Nothing but end of text can follow."""
        return bool(self.matcher.is_stopped())


def row_grammar(loaded, spec: dict | None, vocab: int, eos_ids: Collection[int]) -> RowGrammar | None:
    """A fresh matcher for one row, or None without a grammar."""
    if not spec:
        return None
    kind = next(iter(spec))
    return RowGrammar(grammar_tokenizer(loaded, vocab, eos_ids), grammar_text(spec), vocab, label=f"grammar.{kind}")


# ---------------------------------------------------------------- the wire: OpenAI's and vLLM's request fields


def openai_fields(spec: dict | None) -> dict:
    """The request fields that ask an OpenAI-compatible server for the same grammar: `response_format` for JSON
    (OpenAI's names), vLLM's `structured_outputs` for regex, choices and Lark (Inkwell's server reads both)."""
    if not spec:
        return {}
    kind, value = next(iter(spec.items()))
    if kind == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": value}}}
    if kind == "json":
        return {"response_format": {"type": "json_object"}}
    return {"structured_outputs": {{"regex": "regex", "choices": "choice", "lark": "grammar"}[kind]: value}}


def from_openai(response_format: Any, structured_outputs: Any) -> dict | None:
    """A request's `response_format` / `structured_outputs` as a `grammar` setting (None: unconstrained).
    Errors name the request field."""
    if response_format not in (None, {}) and structured_outputs not in (None, {}):
        raise InkwellError(
            "give response_format or structured_outputs, not both", field="structured_outputs", hint="drop one"
        )
    if structured_outputs not in (None, {}):
        names = {"regex": "regex", "choice": "choices", "grammar": "lark", "json": "json_schema"}
        if not isinstance(structured_outputs, dict) or len(structured_outputs) != 1:
            raise InkwellError(
                "structured_outputs takes exactly one of: " + ", ".join(names),
                field="structured_outputs",
                hint='e.g. {"choice": ["positive", "negative"]}',
            )
        key, value = next(iter(structured_outputs.items()))
        if key not in names:
            raise InkwellError(
                f"structured_outputs.{key} is not supported", field="structured_outputs", hint="use " + ", ".join(names)
            )
        return {names[key]: value}
    if response_format in (None, {}):
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"json": True}
    if kind == "json_schema":
        wrapper = response_format.get("json_schema")
        schema = wrapper.get("schema") if isinstance(wrapper, dict) else None
        if not isinstance(schema, (dict, bool)):
            raise InkwellError(
                "response_format.json_schema.schema is missing", field="response_format", hint="give the JSON schema"
            )
        return {"json_schema": schema}
    raise InkwellError(
        f"response_format type {kind!r} is not supported",
        field="response_format",
        hint="use text, json_object or json_schema",
    )
