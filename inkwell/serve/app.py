"""The FastAPI app: OpenAI-compatible endpoints translated into scheduler jobs, nothing more.

    GET  /v1/models                 base model and adapters (each adapter with its parent)
    POST /v1/completions            text completion (stream: true -> Server-Sent Events)
    POST /v1/chat/completions       chat completion (stream: true -> Server-Sent Events)
    POST /v1/content/{template}     template fields + settings -> content (JSON `data` for structured templates)
    GET  /v1/templates              the template library
    GET  /health                    503 while the model loads, 200 after (no key needed)
    GET  /metrics                   Prometheus text (no key needed)
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from inkwell.errors import InkwellError
from inkwell.generate.engine import GenerationResult
from inkwell.generate.scheduler import GenerationJob, JobCancelled, QueueFull
from inkwell.generate.settings import GenerationSettings
from inkwell.safety import ModerationBlocked
from inkwell.serve.errors import APIError, bad_request, from_inkwell, internal, moderation_blocked, too_many
from inkwell.serve.moderation import StreamScreen, choice_note, headers_for, screen_fields, screen_prompts
from inkwell.serve.schemas import ChatCompletionRequest, CompletionRequest, ContentRequest
from inkwell.serve.state import ServerState

log = logging.getLogger("inkwell.serve")


def create_app(state: ServerState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        state.start_loading()
        yield
        await run_in_threadpool(state.close)  # after uvicorn drained in-flight requests

    app = FastAPI(title="Inkwell", description="OpenAI-compatible API over Inkwell's generation engine.",
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.inkwell = state
    metrics = state.metrics

    # ------------------------------------------------------------ errors in OpenAI's shape

    def error_response(exc: APIError) -> JSONResponse:
        metrics.errors.labels(exc.code or exc.type).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError):
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        return error_response(APIError(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        log.exception("request failed", exc_info=exc)
        return error_response(internal())

    # ------------------------------------------------------------ shared steps of every API request

    async def admit(request: Request) -> str | None:
        """Auth (401), readiness (503) and the per-key rate limit (429). Returns the key's id."""
        key_id = state.keys.check(request.headers.get("authorization"))
        state.require_ready()
        state.rate.check(key_id or f"addr:{request.client.host if request.client else '-'}")
        return key_id

    async def parse(request: Request, model: type):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise bad_request(f"Invalid value for '{param}': {first['msg']}", param=param, code="invalid_value") from None

    async def prepare(req, prompts: list, adapter: str | None, param: str) -> GenerationSettings:
        """Count prompt tokens (on the front tokenizer) and check prompt + max_tokens against the context."""
        engine = state.engine_for(adapter)
        try:
            counts = await run_in_threadpool(lambda: [engine.count_tokens(p) for p in prompts])
        except InkwellError as exc:  # e.g. chat messages for a model without a chat template
            raise from_inkwell(exc) from None
        context, longest = state.context_length, max(counts)
        default = max(1, min(state.config.default_max_tokens, context - longest))
        settings = req.to_settings(max_tokens_limit=state.max_tokens_limit, default_max_tokens=default)
        if longest + settings.max_new_tokens > context:
            raise bad_request(
                f"This model's maximum context length is {context} tokens. However, you requested "
                f"{longest + settings.max_new_tokens} tokens ({longest} in the {param}, {settings.max_new_tokens} for "
                f"the completion). Please reduce the {param} or max_tokens.", param=param, code="context_length_exceeded")
        return settings

    def usage(results: list[GenerationResult]) -> dict:
        prompt = sum({r.prompt_index: r.prompt_tokens for r in results}.values())  # each prompt once, whatever n
        completion = sum(r.completion_tokens for r in results)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def finished(call: "_Call", endpoint: str, key_id: str | None, prompts: list,
                       texts: list[str] | None = None) -> None:
        """Metrics and the history log for an answered request (`texts`: the outputs as moderated)."""
        results = call.job.results or []
        metrics.requests.labels(endpoint, "200").inc()
        metrics.e2e.observe(time.perf_counter() - call.t0)
        if call.first is None:
            metrics.ttft.observe(time.perf_counter() - call.t0)
        tokens = usage(results)
        metrics.prompt_tokens.inc(tokens["prompt_tokens"])
        metrics.completion_tokens.inc(tokens["completion_tokens"])
        engine = state.engine_for(call.job.adapter)

        def write_log() -> None:
            rendered = {}
            for i, result in enumerate(results):
                if result.prompt_index not in rendered:
                    rendered[result.prompt_index] = engine.render(prompts[result.prompt_index])
                state.log_generation(
                    key_id, model=state.engine.loaded.name, adapter=engine.loaded.adapter,
                    settings=call.job.settings.to_dict(), prompt=rendered[result.prompt_index],
                    output=texts[i] if texts is not None else result.text, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                    latency_s=result.latency_s, finish_reason=result.finish_reason)

        if state.config.log_generations:
            await run_in_threadpool(write_log)

    # ------------------------------------------------------------ completions and chat

    async def run_generation(request: Request, kind: str) -> Response:
        endpoint = "chat" if kind == "chat" else "completions"
        key_id = await admit(request)
        req = await parse(request, ChatCompletionRequest if kind == "chat" else CompletionRequest)
        adapter = state.resolve_model(req.model)
        prompts = [req.chat()] if kind == "chat" else req.prompts()
        guard, decisions = state.guard, []
        if guard is not None:  # before generating: redacted inputs, or 422 naming the field and category
            try:
                prompts, decisions = await run_in_threadpool(
                    screen_prompts, guard, prompts, kind == "chat", kind != "chat" and isinstance(req.prompt, str))
            except ModerationBlocked as exc:
                metrics.requests.labels(endpoint, "422").inc()
                raise moderation_blocked(exc) from None
        settings = await prepare(req, prompts, adapter, "messages" if kind == "chat" else "prompt")
        model_id = req.model if req.model is not None else state.base_id
        slot = state.slots.acquire()
        call = _Call(state, prompts, settings, adapter)
        try:
            call.start()
            first = await call.next_event(request)
        except BaseException:
            call.cancel()
            slot.release()
            raise
        if first is _DISCONNECTED:
            slot.release()
            metrics.requests.labels(endpoint, "499").inc()
            return Response(status_code=499)
        if first is None and call.job.error is not None:  # failed before any text: a plain HTTP error
            slot.release()
            status, exc = _error_for(call.job.error)
            metrics.requests.labels(endpoint, str(status)).inc()
            raise exc
        ident = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        if not req.stream:
            try:
                while first is not None:
                    first = await call.next_event(request)
                    if first is _DISCONNECTED:
                        metrics.requests.labels(endpoint, "499").inc()
                        return Response(status_code=499)
            finally:
                slot.release()
            if call.job.error is not None:
                status, exc = _error_for(call.job.error)
                metrics.requests.labels(endpoint, str(status)).inc()
                raise exc
            results = call.job.results or []
            texts, outputs = [r.text for r in results], [None] * len(results)
            if guard is not None:  # after generating: redacted text, or 422 naming the category
                try:
                    screened = await run_in_threadpool(lambda: [guard.screen_output(r.text) for r in results])
                except ModerationBlocked as exc:
                    metrics.requests.labels(endpoint, "422").inc()
                    raise moderation_blocked(exc) from None
                texts, outputs = [t for t, _ in screened], [d for _, d in screened]
            await finished(call, endpoint, key_id, prompts, texts)
            if kind == "chat":
                choices = [{"index": i, "message": {"role": "assistant", "content": texts[i]},
                            "logprobs": None, "finish_reason": r.finish_reason, **choice_note(outputs[i])}
                           for i, r in enumerate(results)]
                obj = "chat.completion"
            else:
                choices = [{"index": i, "text": texts[i], "logprobs": None, "finish_reason": r.finish_reason,
                            **choice_note(outputs[i])} for i, r in enumerate(results)]
                obj = "text_completion"
            return JSONResponse({"id": ident, "object": obj, "created": created, "model": model_id,
                                 "system_fingerprint": None, "choices": choices, "usage": usage(results)},
                                headers=headers_for(decisions + [d for d in outputs if d is not None]))

        include_usage = req.include_usage
        rows = len(prompts) * settings.num_return_sequences
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

        def chunk(choices: list[dict], usage_value: dict | None = None) -> str:
            data: dict[str, Any] = {"id": ident, "object": obj, "created": created, "model": model_id,
                                    "system_fingerprint": None, "choices": choices}
            if include_usage:
                data["usage"] = usage_value
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        def piece(index: int, text: str | None, finish: str | None = None, role: bool = False) -> dict:
            if kind == "chat":
                delta: dict = {}
                if role:
                    delta = {"role": "assistant", "content": ""}
                elif text is not None:
                    delta = {"content": text}
                return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}

        # With moderation on, text is released only after a check of the row so far passed (StreamScreen).
        screen = StreamScreen(guard, rows) if guard is not None else None

        def stop_blocked(exc: ModerationBlocked) -> list[str]:
            """A block mid-stream: stop generating; an SSE error event naming the category, then [DONE]."""
            call.blocked = True
            call.cancel()
            error = moderation_blocked(exc)
            metrics.errors.labels(error.code).inc()
            metrics.requests.labels(endpoint, "422").inc()
            return [f"data: {json.dumps(error.body(), ensure_ascii=False)}\n\n", "data: [DONE]\n\n"]

        async def held_back(count: int) -> tuple[list[str], bool]:
            """Judge the whole of each row: the SSE lines still to send, and whether the stream was blocked."""
            try:
                rest = await run_in_threadpool(lambda: [screen.finish(i) for i in range(count)])
            except ModerationBlocked as exc:
                return list(stop_blocked(exc)), True
            return [chunk([piece(index, tail)]) for index, tail in enumerate(rest) if tail], False

        async def events() -> AsyncIterator[str]:
            event = first
            if kind == "chat":
                for index in range(rows):
                    yield chunk([piece(index, None, role=True)])
            while event is not None:
                if event is _DISCONNECTED:
                    return
                index, text = event
                if screen is not None:
                    screen.add(index, text)
                    text = ""
                    if screen.due(index):
                        try:
                            text = await run_in_threadpool(screen.release, index)
                        except ModerationBlocked as exc:
                            for line in stop_blocked(exc):
                                yield line
                            return
                if text:
                    yield chunk([piece(index, text)])
                event = await call.next_event(None)
            if call.job.error is not None and screen is not None:
                # The rows will not grow any more: judge what they hold and send what passes before the error.
                lines, blocked = await held_back(rows)
                for line in lines:
                    yield line
                if blocked:
                    return
            if call.job.error is not None:  # the stream already started: an SSE error event, then [DONE]
                status, exc = _error_for(call.job.error)
                metrics.errors.labels(exc.code or exc.type).inc()
                metrics.requests.labels(endpoint, str(status)).inc()
                yield f"data: {json.dumps(exc.body())}\n\n"
                yield "data: [DONE]\n\n"
                return
            results = call.job.results or []
            texts = None
            if screen is not None:  # the whole of each row, audited; then what was still held back
                lines, blocked = await held_back(len(results))
                for line in lines:
                    yield line
                if blocked:
                    return
                texts = [screen.result(i).text for i in range(len(results))]
            for index, result in enumerate(results):
                yield chunk([{**piece(index, None if kind == "chat" else "", finish=result.finish_reason),
                              **choice_note(screen.result(index) if screen is not None else None)}])
            if include_usage:
                yield chunk([], usage(results))
            await finished(call, endpoint, key_id, prompts, texts)  # before [DONE]: a client that leaves after it is logged too
            yield "data: [DONE]\n\n"

        def on_close() -> None:
            if not call.job.done and not call.blocked:  # the client went away mid-stream: stop its rows, free its slot
                call.cancel()
                metrics.cancelled.inc()
                metrics.requests.labels(endpoint, "499").inc()
            slot.release()

        return _SSEResponse(events(), on_close, headers_for(decisions))

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await run_generation(request, "completion")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await run_generation(request, "chat")

    # ------------------------------------------------------------ content from templates

    @app.post("/v1/content/{template}")
    async def content(template: str, request: Request):
        from inkwell.generate.content import StructuredOutputError, prepare as prepare_content, write_many
        from inkwell.prompts.library import get_template

        key_id = await admit(request)
        req = await parse(request, ContentRequest)
        if req.stream:
            raise bad_request("stream is not supported for content; use /v1/chat/completions to stream", param="stream")
        try:
            tpl = await run_in_threadpool(get_template, template)
        except InkwellError as exc:
            raise APIError(404, str(exc).replace("\n  fix: ", "; fix: "), param="template", code="template_not_found") from None
        fields, decisions = dict(req.fields), []
        if state.guard is not None:  # template fields: redacted copy, or 422 naming `fields.NAME` and the category
            try:
                fields, decisions = await run_in_threadpool(screen_fields, state.guard, fields)
            except ModerationBlocked as exc:
                metrics.requests.labels("content", "422").inc()
                raise moderation_blocked(exc) from None
        adapter = state.resolve_model(req.model)
        overrides = {**(req.settings_ or {}), **req.overrides(max_tokens_limit=state.max_tokens_limit)}
        cancel = threading.Event()
        engine = state.engine_for(adapter, cancel=cancel)

        def work():
            rendered, settings = prepare_content(engine, tpl, dict(fields), overrides=overrides)
            if settings.max_new_tokens > state.max_tokens_limit:
                raise bad_request(f"max_tokens is {settings.max_new_tokens}, above this server's limit of "
                                  f"{state.max_tokens_limit}", param="max_tokens", code="invalid_value")
            (outcome,) = write_many(engine, tpl, [rendered], settings, json_retries=req.json_retries)
            return rendered, settings, outcome

        slot = state.slots.acquire()
        started = time.perf_counter()
        try:
            task = asyncio.ensure_future(run_in_threadpool(work))
            gone = asyncio.ensure_future(_wait_disconnect(request))
            done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
            if task not in done:
                cancel.set()
                metrics.cancelled.inc()
                metrics.requests.labels("content", "499").inc()
                return Response(status_code=499)
            gone.cancel()
            try:
                rendered, settings, outcome = task.result()
            except APIError:
                raise
            except JobCancelled:
                return Response(status_code=499)
            except QueueFull as exc:
                raise queue_full(exc) from None
            except InkwellError as exc:
                raise from_inkwell(exc) from None
        finally:
            slot.release()
        if isinstance(outcome, StructuredOutputError):
            metrics.requests.labels("content", "422").inc()
            raise APIError(422, str(outcome).replace("\n  fix: ", "; fix: "), type="invalid_output",
                           code="structured_output_invalid")
        if isinstance(outcome, InkwellError):
            raise from_inkwell(outcome)
        texts = [item.text for item in outcome]
        datas = [getattr(item, "data", None) for item in outcome]
        outputs: list = [None] * len(outcome)
        if state.guard is not None:
            from inkwell.safety.guard import redact_value

            guard = state.guard

            def screen_outputs() -> list:
                out = []
                for item in outcome:
                    text, decision = guard.screen_output(item.text)
                    data = getattr(item, "data", None)
                    if decision.action == "redact" and data is not None:
                        data = redact_value(data, guard.policy)
                    out.append((text, data, decision))
                return out

            try:
                screened = await run_in_threadpool(screen_outputs)
            except ModerationBlocked as exc:
                metrics.requests.labels("content", "422").inc()
                raise moderation_blocked(exc) from None
            texts, datas, outputs = ([row[i] for row in screened] for i in range(3))
        results = [item.generation for item in outcome]
        metrics.requests.labels("content", "200").inc()
        metrics.e2e.observe(time.perf_counter() - started)
        tokens = usage(results)
        metrics.prompt_tokens.inc(tokens["prompt_tokens"])
        metrics.completion_tokens.inc(tokens["completion_tokens"])

        def write_log() -> None:
            prompt = engine.render(rendered.prompt)
            for item, text in zip(outcome, texts):
                state.log_generation(
                    key_id, model=state.engine.loaded.name, adapter=engine.loaded.adapter, template=tpl.name,
                    fields=rendered.fields, settings=settings.to_dict(), prompt=prompt, output=text,
                    prompt_tokens=item.generation.prompt_tokens, completion_tokens=item.generation.completion_tokens,
                    latency_s=item.generation.latency_s, finish_reason=item.generation.finish_reason)

        if state.config.log_generations:
            await run_in_threadpool(write_log)
        choices = []
        for index, item in enumerate(outcome):
            choice = {"index": index, "text": texts[index], "finish_reason": item.generation.finish_reason,
                      "attempts": item.attempts}
            if tpl.output_schema is not None:
                choice["data"] = datas[index]
            choice.update(choice_note(outputs[index]))
            choices.append(choice)
        return JSONResponse(
            {"id": "content-" + uuid.uuid4().hex[:24], "object": "content", "created": int(time.time()),
             "model": req.model or state.base_id, "template": tpl.name, "structured": tpl.output_schema is not None,
             "choices": choices, "warnings": list(rendered.warnings), "usage": tokens},
            headers=headers_for(decisions + [d for d in outputs if d is not None]))

    # ------------------------------------------------------------ listings, health, metrics

    @app.get("/v1/models")
    async def models(request: Request):
        await admit(request)
        created = int(time.time())
        info = {"context_length": state.context_length, "chat": state.engine.loaded.chat}
        data = [{"id": state.base_id, "object": "model", "created": created, "owned_by": "inkwell",
                 "root": state.base_id, "parent": None, **info}]
        for name, path in state.adapters.items():
            data.append({"id": name, "object": "model", "created": created, "owned_by": "inkwell",
                         "root": state.base_id, "parent": state.base_id, "adapter_path": path, **info})
        return {"object": "list", "data": data}

    @app.get("/v1/templates")
    async def templates(request: Request):
        from inkwell.prompts.library import all_templates

        state.keys.check(request.headers.get("authorization"))
        items = await run_in_threadpool(all_templates)
        data = [{"name": t.name, "description": t.description, "languages": t.languages, "fields": list(t.fields),
                 "required": [k for k, v in t.fields.items() if v.required], "structured": t.output_schema is not None}
                for t in items.values()]
        return {"object": "list", "data": data}

    @app.get("/health")
    async def health():
        if state.status == "ready":
            return {"status": "ok", "model": state.base_id, "adapters": list(state.adapters)}
        body = {"status": state.status}
        if state.status == "failed":
            body["message"] = "the model failed to load; see the server log"
        return JSONResponse(body, status_code=503)

    @app.get("/metrics")
    async def prometheus():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


# ---------------------------------------------------------------- bridging scheduler jobs to asyncio

_DISCONNECTED = object()


class _Call:
    """One job, with its deltas delivered to an asyncio queue (from the scheduler thread) and its timings."""

    def __init__(self, state: ServerState, prompts: list, settings: GenerationSettings, adapter: str | None):
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.t0 = time.perf_counter()
        self.first: float | None = None
        self.blocked = False  # stopped by a moderation block mid-stream (not a client disconnect)
        self._last: dict[int, float] = {}
        self.job = GenerationJob(prompts, settings, adapter=adapter, on_delta=self._delta, on_done=self._done)

    def start(self) -> None:
        try:
            self.state.scheduler.submit(self.job)
        except QueueFull as exc:
            raise queue_full(exc) from None

    def cancel(self) -> None:
        self.job.cancel()

    def _delta(self, index: int, text: str) -> None:  # scheduler thread
        now = time.perf_counter()
        metrics = self.state.metrics
        if self.first is None:
            self.first = now
            metrics.ttft.observe(now - self.t0)
        if index in self._last:
            metrics.itl.observe(now - self._last[index])
        self._last[index] = now
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (index, text))

    def _done(self, _job: GenerationJob) -> None:  # scheduler thread
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)

    async def next_event(self, request: Request | None):
        """(index, text), None when the job is done, or _DISCONNECTED when the client left first."""
        if request is None or not self.queue.empty():
            return await self.queue.get()
        getter = asyncio.ensure_future(self.queue.get())
        gone = asyncio.ensure_future(_wait_disconnect(request))
        done, _ = await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            gone.cancel()
            return getter.result()
        getter.cancel()
        self.cancel()
        self.state.metrics.cancelled.inc()
        return _DISCONNECTED


async def _wait_disconnect(request: Request) -> None:
    """Returns when the client disconnects (the body was already read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def queue_full(exc: QueueFull) -> APIError:
    """The scheduler's queue is at its bound: 429 with Retry-After (back-pressure, not a failure)."""
    detail = str(exc).split("\n")[0]  # without the CLI-style "fix:" line
    return too_many(f"The server is busy: {detail}; retry after the Retry-After seconds.", exc.retry_after_s,
                    "queue_full")


def _error_for(exc: BaseException) -> tuple[int, APIError]:
    if isinstance(exc, APIError):
        return exc.status, exc
    if isinstance(exc, InkwellError):
        error = from_inkwell(exc)
        return error.status, error
    log.error("generation failed", exc_info=exc)
    return 500, internal()


class _SSEResponse(StreamingResponse):
    """Server-Sent Events whose `on_close` always runs: after the last event, or when the client leaves."""

    def __init__(self, content: AsyncIterator[str], on_close, headers: dict[str, str] | None = None):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})})
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()
