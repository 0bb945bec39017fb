"""A generation backend for any OpenAI-compatible server (`inkwell serve`, vLLM, TGI, llama.cpp server), or several,
for when one machine is not enough: `write`, `batch` and `eval` send their prompts there instead of a local model.

    inkwell batch product-description -i rows.csv -o out.jsonl --backend openai --base-url http://gpu-box:8000/v1 --model smollm2-135m-instruct
    inkwell batch product-description -i rows.csv -o out.jsonl --backend openai --base-url http://gpu-1:8000/v1,http://gpu-2:8000/v1

`RemoteEngine` has the Engine's shape (`loaded`, `batch_size`, `render`, `encode`, `count_tokens`,
`generate(prompts, settings, on_delta)`), so the template / batch / JSON-retry code runs unchanged.
- Chat prompts go to /v1/chat/completions, text prompts to /v1/completions. Each return sequence is its own
  request, with seed `seed + sample index`, as the local engine does. `generate` may be called from many
  threads at once (a batch job keeps rows in flight that way); each server takes up to `batch_size` requests
  at once (the server batches them), so the engine's own `batch_size` is that times the number of servers.
- Several servers (`--base-url URL1,URL2`): requests are spread over them, a failing server is backed off,
  marked down and checked again later, and its requests go to the others (generate/fleet.py says how).
  A lone request goes to the first healthy server.
- Settings: max_new_tokens -> max_tokens, temperature, top_p, stop, seed; top_k, repetition_penalty,
  min_tokens, no_repeat_ngram_size are sent (vLLM's names) only when not neutral (0 / 1.0 / 0 / 0),
  so strict servers see only standard fields when those are neutral. Beam search is not available.
- Token counts (for fitting few-shot examples into the context) are exact when the model's tokenizer is
  available here (the remote model name is a prepared registry model or a local folder); otherwise they
  are approximated from the text length (about 3 characters a token, on the safe side) and
  `approximate_counts` is True. Usage numbers in results come from the server.
- 429, 5xx and connection errors are retried (honouring Retry-After, on another server when there is one):
  MAX_ATTEMPTS attempts, one more per extra server. A reply cut off after text was streamed is not retried.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from inkwell.errors import InkwellError
from inkwell.generate.contract import Capabilities
from inkwell.generate.engine import GenerationResult, Prompt
from inkwell.generate.fleet import UP, Failure, Fleet, Server, backoff
from inkwell.generate.grammar import openai_fields
from inkwell.generate.settings import GenerationSettings

DEFAULT_CONTEXT = 2048  # when the server does not say (vLLM says max_model_len; inkwell serve context_length)
NOT_RETRIED_5XX = (501, 505)  # "not implemented" and "version not supported" say the same on every attempt
MAX_ATTEMPTS = 5  # per request with one server; each further server adds one (a row may meet each once)
CHECK_TIMEOUT = 10.0  # seconds a health check (GET /models) may take
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


BASE_URL_HINT = "give http://HOST:PORT/v1, or several separated by commas: http://gpu-1:8000/v1,http://gpu-2:8000/v1"


def normalize_base_url(url: str) -> str:
    """One server's base URL, checked and ending in /v1 (`http://host:8000` -> `http://host:8000/v1`)."""
    url = url.strip().rstrip("/")
    problem = None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:  # urllib's words ("Port out of range 0-65535", "Invalid IPv6 URL")
        problem = "the port must be a number from 1 to 65535" if "port" in str(exc).lower() else str(exc)
    else:
        if parts.scheme not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not parts.hostname:
            problem = "it names no host"
        elif parts.port == 0:
            problem = "the port must be a number from 1 to 65535"
        elif parts.query or parts.fragment or any(c.isspace() for c in url):
            problem = "a server URL has no spaces, ? or #"
    if problem:
        raise InkwellError(f"invalid --base-url '{url}': {problem}", field="base-url", hint=BASE_URL_HINT)
    return url if url.endswith("/v1") else url + "/v1"


def parse_base_urls(text: str) -> list[str]:
    """`--base-url`: one server, or several separated by commas; each checked and normalised, none twice."""
    urls = [normalize_base_url(piece) for piece in text.split(",") if piece.strip()]
    if not urls:
        raise InkwellError("--base-url names no server", field="base-url", hint=BASE_URL_HINT)
    twice = sorted({u for u in urls if urls.count(u) > 1})
    if twice:
        raise InkwellError(
            f"--base-url lists {twice[0]} twice", field="base-url", hint="list each server once (one per machine)"
        )
    return urls


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
        notice: Callable[[str], None] | None = None,
    ):
        """`base_url`: one server or several separated by commas; `batch_size`: requests in flight per server;
        `notice`: one-line notes (a server down or back; default: the `inkwell.remote` logger, on stderr)."""
        import httpx

        if batch_size < 1:
            raise InkwellError(f"invalid batch size {batch_size}", field="batch_size", hint="use a whole number >= 1")
        urls = parse_base_urls(base_url)
        self.base_url = ",".join(urls)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        servers = [
            Server(
                url,
                httpx.Client(
                    base_url=url,
                    headers=headers,
                    timeout=timeout,
                    transport=transport,
                    limits=httpx.Limits(max_connections=batch_size + 2),
                ),
                slots=batch_size,
            )
            for url in urls
        ]
        self.fleet = Fleet(servers, notice or logging.getLogger("inkwell.remote").warning)
        self.batch_size = batch_size * len(servers)  # requests in flight over the whole fleet
        self.max_attempts = MAX_ATTEMPTS + len(servers) - 1
        try:
            model, meta = self._first_listing(model)
        except BaseException:
            for server in servers:
                server.client.close()
            raise
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
        # generate() fans a call's requests out on its own threads and may be called from many (batch jobs keep
        # rows in flight so, and every server's slots stay full)
        self.capabilities = Capabilities(local=False, grammar=True, concurrent=True)
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
        body.update(openai_fields(settings.grammar))  # constrained decoding, done by the server
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if isinstance(prompt, str):
            return "/completions", {**body, "prompt": prompt}
        return "/chat/completions", {**body, "messages": list(prompt)}

    def _request(
        self, prompt: Prompt, settings: GenerationSettings, seed: int, emit: Callable[[str], None] | None
    ) -> tuple[str, dict, str | None]:
        """(text, usage, finish reason) of one request, from whichever server takes it; a failed attempt is
        tried again (on another server when one has room) up to `max_attempts` times."""
        path, body = self._body(prompt, settings, seed, stream=emit is not None)
        attempts = 0
        while True:
            server, delay, check = self.fleet.acquire()
            try:
                if delay:
                    time.sleep(delay)  # every server is backed off: wait out the shortest back-off
                if check:
                    self._check(server)
                    self.fleet.checked(server)
                return self._attempt(server, path, body, emit)
            except Failure as failure:
                attempts += 1
                last = failure.final or attempts >= self.max_attempts
                self.fleet.failed(server, failure, last, checking=failure.checking)
                if last:
                    raise (self.fleet.gave_up or failure.error) from None
            except BaseException:  # an answer that no retry changes (400, 401, 404), or the caller stopping
                self.fleet.release(server)
                raise

    def _attempt(
        self, server: Server, path: str, body: dict, emit: Callable[[str], None] | None
    ) -> tuple[str, dict, str | None]:
        """One request to one server. Raises Failure for what another attempt may fix."""
        import httpx

        streamed = False
        try:
            if emit is None:
                response = server.client.post(path, json=body)
                if response.status_code >= 400:
                    raise self._status_error(server, response)
                data = response.json()
                choice = (data.get("choices") or [{}])[0]
                text = choice.get("text") if "text" in choice else (choice.get("message") or {}).get("content")
                self.fleet.succeeded(server)
                return text or "", data.get("usage") or {}, choice.get("finish_reason")
            with server.client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(server, response)
                parts, usage, finish = [], {}, None
                for data in _sse_events(response):
                    if "error" in data:
                        raise InkwellError(
                            f"the server at {server.url} failed mid-stream: {data['error'].get('message')}",
                            field="backend",
                        )
                    if data.get("usage"):
                        usage = data["usage"]
                    for choice in data.get("choices") or []:
                        delta = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
                        if delta:
                            streamed = True
                            parts.append(delta)
                            emit(delta)
                        finish = choice.get("finish_reason") or finish
                self.fleet.succeeded(server)
                return "".join(parts), usage, finish
        except httpx.TransportError as exc:
            failure = _unreachable(server, exc)
            failure.final = streamed  # text already went out: a retry would repeat it
            raise failure from None

    def _status_error(self, server: Server, response) -> Exception:
        """An HTTP error answer as a Failure to retry (429, 5xx) or as the InkwellError to show (4xx)."""
        try:
            message = response.json()["error"]["message"]
        except Exception:  # not OpenAI's error shape
            message = response.text[:300]
        status = response.status_code
        field = "api-key" if status == 401 else "model" if status == 404 else "backend"
        error = InkwellError(f"the server at {server.url} answered {status}: {message}", field=field)
        if status != 429 and (status < 500 or status in NOT_RETRIED_5XX):
            return error
        try:
            wait = float(response.headers.get("retry-after", 0))
        except ValueError:  # an HTTP date: the back-off applies
            wait = 0.0
        return Failure(error, retry_after=wait, busy=status == 429)

    def _list_models(self, server: Server, attempts: int = MAX_ATTEMPTS, timeout: float | None = None) -> list[dict]:
        """The server's /models list; a busy server (429, 5xx) is waited for, up to `attempts` tries. Raises
        Failure when the server cannot be reached or stays busy, InkwellError for an answer that will not change."""
        import httpx

        for attempt in range(1, attempts + 1):
            try:
                response = server.client.get("/models", timeout=timeout or server.client.timeout)
            except httpx.TransportError as exc:
                raise _unreachable(server, exc) from None
            if response.status_code < 400:
                try:
                    data = response.json().get("data")
                except (ValueError, AttributeError):
                    raise InkwellError(
                        f"{server.url}/models is not an OpenAI-compatible answer",
                        field="base-url",
                        hint="point --base-url at the server's API root (vLLM, llama.cpp and inkwell serve: /v1)",
                    ) from None
                return data if isinstance(data, list) else []
            error = self._status_error(server, response)
            if not isinstance(error, Failure) or attempt == attempts:
                raise error
            time.sleep(backoff(attempt, error.retry_after))
        raise AssertionError("unreachable")

    def _first_listing(self, model: str | None) -> tuple[str, dict]:
        """The model's name and listing, from the first server that answers. With several servers, those before
        it are marked down (checked again later) and those after it are checked the first time they are needed."""
        failures: list[Failure] = []
        for server in self.fleet.servers:
            try:
                listed = self._list_models(server)
            except Failure as failure:
                if len(self.fleet.servers) == 1:
                    raise failure.error from None
                failures.append(failure)
                self.fleet.hold(server)
                self.fleet.failed(server, failure, giving_up=False, checking=True)
                continue
            ids: list[str] = [m["id"] for m in listed if isinstance(m.get("id"), str)]
            if model is None:
                if not ids:
                    raise InkwellError(f"{server.url} lists no models", field="model", hint="pass --model NAME")
                model = ids[0]
            elif ids and model not in ids:
                raise InkwellError(
                    f"the server at {server.url} has no model '{model}'; it has: {', '.join(ids)}", field="model"
                )
            server.state = UP
            return model, next((m for m in listed if m.get("id") == model), {})
        raise InkwellError(
            "no server in --base-url answers: " + "; ".join(f.reason for f in failures),
            field="base-url",
            hint="check the servers are running and --base-url is right (e.g. http://host:8000/v1)",
        )

    def _check(self, server: Server) -> None:
        """A health check before a server takes requests (first use, or down and due): it answers /models in
        time and serves the model. Raises Failure (with `checking` set) otherwise."""
        try:
            listed = self._list_models(server, attempts=1, timeout=CHECK_TIMEOUT)
            ids = [m.get("id") for m in listed]
            if ids and self.loaded.name not in ids:
                raise InkwellError(f"{server.url} does not serve '{self.loaded.name}'", field="model")
        except Failure as failure:
            failure.checking = True
            raise
        except InkwellError as error:  # a wrong key or model on this server: it cannot take requests
            unusable = Failure(error)
            unusable.checking = True
            raise unusable from None

    def close(self) -> None:
        servers = self.fleet.servers
        if len(servers) > 1 and any(s.answered for s in servers):
            self.fleet.notice(f"requests answered per server: {self.fleet.summary()}")
        for server in servers:
            server.client.close()


def _unreachable(server: Server, exc: Exception) -> Failure:
    """A connection that failed or dropped, as a Failure (nothing listening there: `refused`)."""
    import httpx

    error = InkwellError(
        f"cannot reach {server.url}: {exc or type(exc).__name__}",
        field="base-url",
        hint="check the server is running and --base-url is right (e.g. http://host:8000/v1)",
    )
    return Failure(error, refused=isinstance(exc, httpx.ConnectError))


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
