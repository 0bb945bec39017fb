"""A generation backend for any OpenAI-compatible server (`inkwell serve`, vLLM, TGI, llama.cpp server), for
when one machine is not enough: `write` and `batch` send their prompts to a fleet instead of a local model.

    inkwell batch product-description -i rows.csv -o out.jsonl --backend openai --base-url http://gpu-box:8000/v1 --model smollm2-135m-instruct

`RemoteEngine` has the Engine's shape (`loaded`, `batch_size`, `render`, `encode`, `count_tokens`,
`generate(prompts, settings, on_delta)`), so the template / batch / JSON-retry code runs unchanged.
- Chat prompts go to /v1/chat/completions, text prompts to /v1/completions; up to `batch_size` requests
  are in flight at once (the server batches them). Each return sequence is its own request, with seed
  `seed + sample index`, as the local engine does.
- Settings: max_new_tokens -> max_tokens, temperature, top_p, stop, seed; top_k, repetition_penalty,
  min_tokens, no_repeat_ngram_size are sent (vLLM's names) only when not neutral (0 / 1.0 / 0 / 0),
  so strict servers see only standard fields when those are neutral. Beam search is not available.
- Token counts (for fitting few-shot examples into the context) are exact when the model's tokenizer is
  available here (the remote model name is a prepared registry model or a local folder); otherwise they
  are approximated from the text length (about 3 characters a token, on the safe side) and
  `approximate_counts` is True. Usage numbers in results come from the server.
- 429 / 502 / 503 / 504 and connection errors are retried (honouring Retry-After) a few times.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.generate.contract import Capabilities
from inkwell.generate.engine import GenerationResult, Prompt
from inkwell.generate.settings import GenerationSettings

DEFAULT_CONTEXT = 2048  # when the server does not say (vLLM says max_model_len; inkwell serve context_length)
RETRY_STATUSES = (429, 502, 503, 504)
MAX_ATTEMPTS = 5
CHARS_PER_TOKEN = 3.0  # approximate counting errs towards more tokens, so prompts are not cut too late


@dataclass
class RemoteModel:
    """What `Engine.loaded` offers, for a model that lives on another server."""

    name: str
    chat: bool
    context_length: int
    base_url: str
    adapter: str | None = None
    device: str = "remote"
    dtype: str = "remote"
    fast_path: bool = True
    tokenizer: Any = None
    info: dict = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.base_url


def normalize_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InkwellError(f"invalid --base-url '{url}'", field="base-url", hint="e.g. http://127.0.0.1:8000/v1")
    return url if url.endswith("/v1") else url + "/v1"


class RemoteEngine:
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        *,
        batch_size: int = 16,
        chat: bool | None = None,
        context_length: int | None = None,
        tokenizer: Any = None,
        timeout: float = 600.0,
        transport: Any = None,
    ):
        import httpx

        if batch_size < 1:
            raise InkwellError(f"invalid batch size {batch_size}", field="batch_size", hint="use a whole number >= 1")
        self.base_url = normalize_base_url(base_url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=batch_size + 2),
        )
        self.batch_size = batch_size
        listed = self._list_models()
        ids: list[str] = [m["id"] for m in listed if isinstance(m.get("id"), str)]
        if model is None:
            if not ids:
                raise InkwellError(f"{self.base_url} lists no models", field="model", hint="pass --model NAME")
            model = ids[0]
        elif ids and model not in ids:
            raise InkwellError(
                f"the server at {self.base_url} has no model '{model}'; it has: {', '.join(ids)}", field="model"
            )
        meta = next((m for m in listed if m.get("id") == model), {})
        context = context_length or meta.get("context_length") or meta.get("max_model_len") or DEFAULT_CONTEXT
        self.tokenizer = tokenizer if tokenizer is not None else local_tokenizer(model)
        if chat is None:
            listed_chat = meta.get("chat")
            chat = listed_chat if isinstance(listed_chat, bool) else True  # OpenAI-style servers are chat-first
        self.loaded = RemoteModel(
            name=model,
            chat=chat,
            context_length=int(context),
            base_url=self.base_url,
            tokenizer=self.tokenizer,
            info=meta,
        )
        self.approximate_counts = self.tokenizer is None
        # generate() fans a call's requests out on its own threads; batch jobs feed it in chunks
        self.capabilities = Capabilities(local=False)
        self._emit_lock = threading.Lock()

    # ------------------------------------------------------------ prompts

    def render(self, prompt: Prompt) -> str:
        """The text the server is likely to see (exact with a local chat template; for logs and counting)."""
        if isinstance(prompt, str):
            return prompt
        if self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in prompt) + "<|assistant|>\n"

    def encode(self, prompt: Prompt) -> list[int]:
        if self.tokenizer is None:
            raise InkwellError(
                "token ids are not available for a remote model without a local tokenizer",
                field="backend",
                hint="use a local model for metrics that need token ids (perplexity)",
            )
        if isinstance(prompt, str):
            return self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"]

    def count_tokens(self, prompt: Prompt) -> int:
        if self.tokenizer is not None:
            return len(self.encode(prompt))
        return math.ceil(len(self.render(prompt)) / CHARS_PER_TOKEN)

    # ------------------------------------------------------------ the API

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings | None = None,
        on_delta: Callable[[int, str], None] | None = None,
    ) -> list[GenerationResult]:
        settings = settings or GenerationSettings()
        settings.validate()
        if settings.num_beams > 1:
            raise InkwellError(
                "beam search is not available with --backend openai",
                field="num_beams",
                hint="use --num-beams 1, or a local model",
            )
        base_seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**31)
        samples = settings.num_return_sequences
        started = time.perf_counter()
        tasks = [
            (p_index * samples + s, p_index, s, prompt)
            for p_index, prompt in enumerate(prompts)
            for s in range(samples)
        ]

        def one(task) -> GenerationResult:
            index, p_index, s_index, prompt = task
            seed = base_seed + s_index
            emit = None
            if on_delta is not None:

                def emit(text: str, index=index) -> None:
                    with self._emit_lock:  # callers expect one delta at a time, as from the local engine
                        on_delta(index, text)

            text, usage, finish = self._request(prompt, settings, seed, emit)
            return GenerationResult(
                text=text,
                prompt_tokens=int(usage.get("prompt_tokens") or self.count_tokens(prompt)),
                completion_tokens=int(usage.get("completion_tokens") or math.ceil(len(text) / CHARS_PER_TOKEN)),
                finish_reason=finish or "stop",
                latency_s=round(time.perf_counter() - started, 4),
                prompt_index=p_index,
                sample_index=s_index,
                seed=None if settings.greedy else seed,
            )

        if len(tasks) == 1:
            return [one(tasks[0])]
        with ThreadPoolExecutor(
            max_workers=min(self.batch_size, len(tasks)), thread_name_prefix="inkwell-remote"
        ) as pool:
            return list(pool.map(one, tasks))

    # ------------------------------------------------------------ HTTP

    def _body(self, prompt: Prompt, settings: GenerationSettings, seed: int, stream: bool) -> tuple[str, dict]:
        body: dict[str, Any] = {
            "model": self.loaded.name,
            "max_tokens": settings.max_new_tokens,
            "temperature": float(settings.temperature),
            "seed": seed,
        }
        if float(settings.top_p) < 1:
            body["top_p"] = float(settings.top_p)
        if settings.stop:
            body["stop"] = list(settings.stop)
        if settings.top_k:
            body["top_k"] = settings.top_k
        if float(settings.repetition_penalty) != 1.0:
            body["repetition_penalty"] = float(settings.repetition_penalty)
        if settings.min_new_tokens:
            body["min_tokens"] = settings.min_new_tokens
        if settings.no_repeat_ngram_size:
            body["no_repeat_ngram_size"] = settings.no_repeat_ngram_size
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if isinstance(prompt, str):
            return "/completions", {**body, "prompt": prompt}
        return "/chat/completions", {**body, "messages": list(prompt)}

    def _request(
        self, prompt: Prompt, settings: GenerationSettings, seed: int, emit: Callable[[str], None] | None
    ) -> tuple[str, dict, str | None]:
        import httpx

        path, body = self._body(prompt, settings, seed, stream=emit is not None)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            streamed = False
            try:
                if emit is None:
                    response = self.client.post(path, json=body)
                    if response.status_code >= 400:
                        self._raise_or_wait(response, attempt)
                        continue
                    data = response.json()
                    choice = (data.get("choices") or [{}])[0]
                    text = choice.get("text") if "text" in choice else (choice.get("message") or {}).get("content")
                    return text or "", data.get("usage") or {}, choice.get("finish_reason")
                with self.client.stream("POST", path, json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._raise_or_wait(response, attempt)
                        continue
                    parts, usage, finish = [], {}, None
                    for data in _sse_events(response):
                        if "error" in data:
                            raise InkwellError(
                                f"the server at {self.base_url} failed mid-stream: {data['error'].get('message')}",
                                field="backend",
                            )
                        if data.get("usage"):
                            usage = data["usage"]
                        for choice in data.get("choices") or []:
                            delta = (
                                choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
                            )
                            if delta:
                                streamed = True
                                parts.append(delta)
                                emit(delta)
                            finish = choice.get("finish_reason") or finish
                    return "".join(parts), usage, finish
            except httpx.TransportError as exc:
                if streamed or attempt == MAX_ATTEMPTS:  # text already went out: a retry would repeat it
                    raise InkwellError(
                        f"cannot reach {self.base_url}: {exc}",
                        field="base-url",
                        hint="check the server is running and --base-url is right",
                    ) from None
                time.sleep(min(2**attempt, 30))
        raise AssertionError("unreachable")

    def _raise_or_wait(self, response, attempt: int) -> None:
        if response.status_code in RETRY_STATUSES and attempt < MAX_ATTEMPTS:
            try:
                wait = float(response.headers.get("retry-after", 0))
            except ValueError:
                wait = 0
            time.sleep(min(max(wait, 0.5 * 2**attempt), 30))
            return
        try:
            message = response.json()["error"]["message"]
        except Exception:  # not OpenAI's error shape
            message = response.text[:300]
        field = "api-key" if response.status_code == 401 else "model" if response.status_code == 404 else "backend"
        raise InkwellError(f"the server at {self.base_url} answered {response.status_code}: {message}", field=field)

    def _list_models(self) -> list[dict]:
        import httpx

        for attempt in range(1, MAX_ATTEMPTS + 1):  # a busy server (429/503) is waited for, as for generations
            try:
                response = self.client.get("/models")
            except httpx.TransportError as exc:
                raise InkwellError(
                    f"cannot reach {self.base_url}: {exc}",
                    field="base-url",
                    hint="check the server is running and --base-url is right (e.g. http://host:8000/v1)",
                ) from None
            if response.status_code < 400:
                break
            self._raise_or_wait(response, attempt)
        data = response.json().get("data")
        return data if isinstance(data, list) else []

    def close(self) -> None:
        self.client.close()


def _sse_events(response) -> Any:
    """The JSON payloads of a Server-Sent Events stream, up to `data: [DONE]`."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            yield json.loads(payload)
        except json.JSONDecodeError:
            continue


def local_tokenizer(model: str) -> Any:
    """The tokenizer for a remote model name, when it is available here without loading weights."""
    try:
        from inkwell.models.load import embedded_cache_dir, is_prepared
        from inkwell.models.registry import EMBEDDED_MODELS

        folder = None
        if model in EMBEDDED_MODELS and is_prepared(embedded_cache_dir(model)):
            folder = embedded_cache_dir(model)
        elif Path(model).expanduser().is_dir() and (Path(model).expanduser() / "config.json").exists():
            folder = Path(model).expanduser()
        if folder is None:
            return None
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder)
    except Exception:  # counting falls back to the approximation
        return None
