"""The serving layer under the HTTP routers (serve/api/): a validated request becomes a scheduler job or a
template run, answered whole or as Server-Sent Events; auth, moderation, disconnects, errors, metrics and the
history log are handled here once for every endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from inkwell.errors import InkwellError
from inkwell.generate.engine import GenerationResult
from inkwell.generate.record import GenerationRecord
from inkwell.generate.scheduler import GenerationJob, JobCancelled, QueueFull
from inkwell.generate.settings import GenerationSettings
from inkwell.safety import ModerationBlocked
from inkwell.serve.errors import APIError, bad_request, from_inkwell, internal, moderation_blocked, too_many
from inkwell.serve.grounding import citations_of, escalated_content, fitted, grounded_chat, grounding_for, record_extra
from inkwell.serve.moderation import StreamScreen, choice_note, headers_for, screen_fields
from inkwell.serve.state import ServerState
from inkwell.serve.styles import scores_for, shots_for, style_for

log = logging.getLogger("inkwell.serve")


@dataclass(frozen=True)
class GenerationKind:
    """What tells chat from completions apart: the body, how it becomes prompts, and the response's shape."""

    endpoint: str  # the `endpoint` label of inkwell_requests_total
    request: type[BaseModel]
    param: str  # the request field holding the prompt (named by context-length errors)
    id_prefix: str
    object: str  # a whole response's `object`
    chunk_object: str  # a streamed chunk's `object`
    prompts_of: Callable[[Any], list]  # request -> the engine's prompts
    screen: Callable[[Any, Any, list], tuple[list, list]]  # (guard, request, prompts) -> redacted prompts, decisions
    choice_of: Callable[[int, str, str | None], dict]  # (index, text, finish_reason) -> a whole answer's choice
    chunk_of: Callable[[int, str | None, str | None], dict]  # the same for a streamed piece; text None on the last
    opening: Callable[[int], dict] | None = None  # each streamed row's first choice (chat: the assistant role)
    grounded: bool = False  # takes `kb`: a knowledge folder's passages in the prompt, citations in the answer


def serving_of(request: Request) -> Serving:
    return request.app.state.serving


def usage(results: list[GenerationResult]) -> dict:
    prompt = sum({r.prompt_index: r.prompt_tokens for r in results}.values())  # each prompt once, whatever n
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def sse(data: dict, *, ensure_ascii: bool = False) -> str:
    return f"data: {json.dumps(data, ensure_ascii=ensure_ascii)}\n\n"


DONE = "data: [DONE]\n\n"


@dataclass
class _Answer:
    """One admitted generation request on its way out: its job, its ids and how to shape what is sent."""

    kind: GenerationKind
    call: _Call
    prompts: list
    key_id: str | None
    model: str
    include_usage: bool
    grounding: Any = None  # compose.grounded.Grounding of a request with `kb`
    ident: str = field(init=False)
    created: int = field(init=False, default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.ident = self.kind.id_prefix + uuid.uuid4().hex[:24]

    def body(self, choices: list[dict], tokens: dict) -> dict:
        return {
            "id": self.ident,
            "object": self.kind.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
            "usage": tokens,
            **({"grounding": self.grounding.to_json()} if self.grounding is not None else {}),
        }

    def chunk(self, choices: list[dict], tokens: dict | None = None) -> str:
        data: dict[str, Any] = {
            "id": self.ident,
            "object": self.kind.chunk_object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            data["usage"] = tokens
        return sse(data)


class Serving:
    """The endpoints' shared steps over one ServerState (kept on `app.state.serving`)."""

    def __init__(self, state: ServerState):
        self.state = state
        self.metrics = state.metrics

    # ------------------------------------------------------------ shared steps of every API request

    def count(self, endpoint: str, status: int | str) -> None:
        self.metrics.requests.labels(endpoint, str(status)).inc()

    async def admit(self, request: Request) -> str | None:
        """Auth (401), readiness (503) and the per-key rate limit (429). Returns the key's id."""
        state = self.state
        key_id = state.keys.check(request.headers.get("authorization"))
        state.require_ready()
        state.rate.check(key_id or f"addr:{request.client.host if request.client else '-'}")
        return key_id

    async def parse(self, request: Request, model: type[BaseModel]) -> Any:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_request("The request body is not valid JSON.") from None
        except RecursionError:  # thousands of nested brackets: Python's parser recurses once per level
            raise bad_request("The request body is nested too deeply.") from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise bad_request(
                f"Invalid value for '{param}': {first['msg']}", param=param, code="invalid_value"
            ) from None

    async def moderated(self, endpoint: str, screen: Callable, *args: Any) -> Any:
        """`screen(*args)` off the event loop; a block is a 422 naming the category (and the field, for inputs)."""
        try:
            return await run_in_threadpool(screen, *args)
        except ModerationBlocked as exc:
            self.count(endpoint, 422)
            raise moderation_blocked(exc) from None

    def failed(self, endpoint: str, exc: BaseException) -> APIError:
        """The error a failed job is answered with, counted under its status."""
        error = api_error(exc)
        self.count(endpoint, error.status)
        return error

    async def prepare(self, req: Any, prompts: list, adapter: str | None, param: str) -> GenerationSettings:
        """Count prompt tokens (on the front tokenizer) and check prompt + max_tokens against the context."""
        state = self.state
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
                f"the completion). Please reduce the {param} or max_tokens.",
                param=param,
                code="context_length_exceeded",
            )
        return settings

    async def answered(
        self,
        endpoint: str,
        results: list[GenerationResult],
        started: float,
        records: Callable[[], list[GenerationRecord]],
    ) -> dict:
        """Metrics and the history log of an answered request; returns its usage."""
        self.count(endpoint, 200)
        self.metrics.e2e.observe(time.perf_counter() - started)
        tokens = usage(results)
        self.metrics.prompt_tokens.inc(tokens["prompt_tokens"])
        self.metrics.completion_tokens.inc(tokens["completion_tokens"])
        if self.state.config.log_generations:

            def log_all() -> None:
                for record in records():
                    self.state.log_record(record)

            await run_in_threadpool(log_all)
        return tokens

    # ------------------------------------------------------------ completions and chat

    async def generate(self, request: Request, kind: GenerationKind) -> Response:
        state = self.state
        key_id = await self.admit(request)
        req = await self.parse(request, kind.request)
        adapter = state.resolve_model(req.model)
        prompts, decisions = kind.prompts_of(req), []
        if state.guard is not None:  # before generating: redacted inputs, or 422 naming the field and category
            prompts, decisions = await self.moderated(kind.endpoint, kind.screen, state.guard, req, prompts)
        grounding = None
        if kind.grounded and req.kb is not None:  # passages before the last user message (404 naming `kb`)
            prompts, grounding = await grounded_chat(req, prompts, state.engine_for(adapter), state)
        settings = await self.prepare(req, prompts, adapter, kind.param)
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
            self.count(kind.endpoint, 499)
            return Response(status_code=499)
        if first is None and call.job.error is not None:  # failed before any text: a plain HTTP error
            slot.release()
            raise self.failed(kind.endpoint, call.job.error)
        answer = _Answer(
            kind, call, prompts, key_id, req.model if req.model is not None else state.base_id, req.include_usage
        )
        answer.grounding = grounding
        if req.stream:
            return self._stream(answer, first, slot, decisions)
        try:
            while first is not None:
                first = await call.next_event(request)
                if first is _DISCONNECTED:
                    self.count(kind.endpoint, 499)
                    return Response(status_code=499)
        finally:
            slot.release()
        return await self._whole(answer, decisions)

    async def _whole(self, answer: _Answer, decisions: list) -> Response:
        kind, job, guard = answer.kind, answer.call.job, self.state.guard
        if job.error is not None:
            raise self.failed(kind.endpoint, job.error)
        results = job.results or []
        texts, outputs = [r.text for r in results], [None] * len(results)
        if guard is not None:  # after generating: redacted text, or 422 naming the category
            screened = await self.moderated(kind.endpoint, lambda: [guard.screen_output(r.text) for r in results])
            texts, outputs = [t for t, _ in screened], [d for _, d in screened]
        tokens = await self._finished(answer, texts)
        choices = [
            {
                **kind.choice_of(i, texts[i], r.finish_reason),
                **citations_of(answer.grounding, texts[i]),
                **choice_note(outputs[i]),
            }
            for i, r in enumerate(results)
        ]
        return JSONResponse(
            answer.body(choices, tokens), headers=headers_for(decisions + [d for d in outputs if d is not None])
        )

    async def _finished(self, answer: _Answer, texts: list[str] | None) -> dict:
        """Metrics and the history log for an answered request (`texts`: the outputs as moderated)."""
        call = answer.call
        results = call.job.results or []
        if call.first is None:
            self.metrics.ttft.observe(time.perf_counter() - call.t0)
        engine = self.state.engine_for(call.job.adapter)

        def records() -> list[GenerationRecord]:
            return [
                GenerationRecord.of(
                    engine,
                    r,
                    source="serve",
                    prompt=answer.prompts[r.prompt_index],
                    settings=call.job.settings,
                    text=None if texts is None else texts[i],
                    api_key_id=answer.key_id,
                    extra=record_extra(answer.grounding, r.text if texts is None else texts[i]),
                )
                for i, r in enumerate(results)
            ]

        return await self.answered(answer.kind.endpoint, results, call.t0, records)

    def _stream(self, answer: _Answer, first: Any, slot, decisions: list) -> Response:
        kind, call, guard = answer.kind, answer.call, self.state.guard
        rows = len(answer.prompts) * call.job.settings.num_return_sequences
        # With moderation on, text is released only after a check of the row so far passed (StreamScreen).
        screen = StreamScreen(guard, rows) if guard is not None else None

        def stop_blocked(exc: ModerationBlocked) -> list[str]:
            """A block mid-stream: stop generating; an SSE error event naming the category, then [DONE]."""
            call.blocked = True
            call.cancel()
            error = moderation_blocked(exc)
            self.metrics.errors.labels(error.code).inc()
            self.count(kind.endpoint, 422)
            return [sse(error.body()), DONE]

        async def held_back(screen: StreamScreen, count: int) -> tuple[list[str], bool]:
            """Judge the whole of each row: the SSE lines still to send, and whether the stream was blocked."""
            try:
                rest = await run_in_threadpool(lambda: [screen.finish(i) for i in range(count)])
            except ModerationBlocked as exc:
                return stop_blocked(exc), True
            return [answer.chunk([kind.chunk_of(index, tail, None)]) for index, tail in enumerate(rest) if tail], False

        async def events() -> AsyncIterator[str]:
            event = first
            if kind.opening is not None:
                for index in range(rows):
                    yield answer.chunk([kind.opening(index)])
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
                    yield answer.chunk([kind.chunk_of(index, text, None)])
                event = await call.next_event(None)
            if call.job.error is not None and screen is not None:
                # The rows will not grow any more: judge what they hold and send what passes before the error.
                lines, blocked = await held_back(screen, rows)
                for line in lines:
                    yield line
                if blocked:
                    return
            if call.job.error is not None:  # the stream already started: an SSE error event, then [DONE]
                error = self.failed(kind.endpoint, call.job.error)
                self.metrics.errors.labels(error.code or error.type).inc()
                yield sse(error.body(), ensure_ascii=True)
                yield DONE
                return
            results = call.job.results or []
            texts = None
            if screen is not None:  # the whole of each row, audited; then what was still held back
                lines, blocked = await held_back(screen, len(results))
                for line in lines:
                    yield line
                if blocked:
                    return
                texts = []
                for i in range(len(results)):
                    final = screen.result(i)
                    assert final is not None  # held_back judged every row
                    texts.append(final.text)
            for index, result in enumerate(results):
                note = choice_note(screen.result(index) if screen is not None else None)
                note.update(citations_of(answer.grounding, texts[index] if texts is not None else result.text))
                yield answer.chunk([{**kind.chunk_of(index, None, result.finish_reason), **note}])
            if answer.include_usage:
                yield answer.chunk([], usage(results))
            await self._finished(answer, texts)  # before [DONE]: a client that leaves after it is logged too
            yield DONE

        def on_close() -> None:
            if not call.job.done and not call.blocked:  # the client went away mid-stream: stop its rows, free its slot
                call.cancel()
                self.metrics.cancelled.inc()
                self.count(kind.endpoint, 499)
            slot.release()

        return SSEResponse(events(), on_close, headers_for(decisions))

    # ------------------------------------------------------------ content from templates

    async def content(self, request: Request, template: str) -> Response:
        from inkwell.compose.factcheck import check_text
        from inkwell.compose.report import check_json, fit_facts, table_fields, write_checked
        from inkwell.generate.content import StructuredOutputError, write_many
        from inkwell.generate.content import prepare as prepare_content
        from inkwell.generate.jobs import TemplateJob
        from inkwell.prompts.library import get_template
        from inkwell.serve.schemas import ContentRequest

        state = self.state
        key_id = await self.admit(request)
        req = await self.parse(request, ContentRequest)
        if req.stream:
            raise bad_request("stream is not supported for content; use /v1/chat/completions to stream", param="stream")
        try:
            tpl = await run_in_threadpool(get_template, template)
        except InkwellError as exc:
            raise APIError(
                404, str(exc).replace("\n  fix: ", "; fix: "), param="template", code="template_not_found"
            ) from None
        fields, decisions = dict(req.fields), []
        sheet, checked = None, []  # `data`: a facts table (report, data-brief), its facts in `facts`, the text checked
        if req.data is not None:
            try:
                fields, sheet = await run_in_threadpool(table_fields, tpl, fields, req.data)
            except InkwellError as exc:
                raise from_inkwell(exc) from None
        if state.guard is not None:  # template fields: redacted copy, or 422 naming `fields.NAME` and the category
            fields, decisions = await self.moderated("content", screen_fields, state.guard, fields)
        grounding = await grounding_for(req, tpl, fields)  # `kb`: the folder's passages (404 naming `kb`)
        profile = await style_for(req.style)  # `style`: its exemplars as shots, a score per choice (404 naming `style`)
        if grounding is not None and grounding.escalates(tpl):  # nothing relevant: the template's own reply, no model
            return await escalated_content(self, tpl, fields, grounding, key_id, req.model or state.base_id)
        adapter = state.resolve_model(req.model)
        overrides = {**(req.settings_ or {}), **req.overrides(max_tokens_limit=state.max_tokens_limit)}
        overrides, choose = req.best_of_overrides(overrides)  # best_of: N candidates per choice, the best kept
        cancel = threading.Event()
        engine = state.engine_for(adapter, cancel=cancel)
        if grounding is not None and grounding.known:  # the passages that fit the context, through the template
            tpl, fields = await fitted(engine, tpl, fields, grounding, overrides)
            if choose is not None:  # best_of with kb: the candidate whose sentences the passages support most
                choose = grounding.best_of(choose.n)

        def work():
            if sheet is not None:  # the least important facts dropped until the prompt fits the model's context
                fit_facts(engine, tpl, fields, sheet, overrides)
            shots = shots_for(profile, tpl, fields)
            rendered, settings = prepare_content(engine, tpl, dict(fields), shots=shots, overrides=overrides)
            if settings.max_new_tokens > state.max_tokens_limit:
                raise bad_request(
                    f"max_tokens is {settings.max_new_tokens}, above this server's limit of {state.max_tokens_limit}",
                    param="max_tokens",
                    code="invalid_value",
                )
            if sheet is not None:  # each version checked, and rewritten while a number is unsupported
                job = TemplateJob(tpl, overrides, shots, dict(fields))
                checked.extend(write_checked(engine, job, sheet.evidence(fields), req.fact_retries))
                return rendered, settings, [version.item for version in checked]
            (outcome,) = write_many(engine, tpl, [rendered], settings, json_retries=req.json_retries, choose=choose)
            return rendered, settings, outcome

        slot = state.slots.acquire()
        started = time.perf_counter()
        try:
            task = asyncio.ensure_future(run_in_threadpool(work))
            gone = asyncio.ensure_future(_wait_disconnect(request))
            done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
            if task not in done:
                cancel.set()
                self.metrics.cancelled.inc()
                self.count("content", 499)
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
            self.count("content", 422)
            raise APIError(
                422,
                str(outcome).replace("\n  fix: ", "; fix: "),
                type="invalid_output",
                code="structured_output_invalid",
            )
        if isinstance(outcome, InkwellError):
            raise from_inkwell(outcome)
        if grounding is not None:  # citations -> item.extra (the answer, the store); passages out of the fields
            for item in outcome:
                grounding.annotate(item)
        texts = [item.text for item in outcome]
        datas = [item.data for item in outcome]
        outputs: list = [None] * len(outcome)
        if state.guard is not None:
            screened = await self.moderated("content", _screen_content, state.guard, outcome)
            texts, datas, outputs = ([row[i] for row in screened] for i in range(3))

        styles = await scores_for(profile, texts)  # after moderation: the texts as answered

        def records() -> list[GenerationRecord]:
            return [
                GenerationRecord.of(
                    engine,
                    item.generation,
                    source="serve",
                    prompt=rendered.prompt,
                    settings=settings,
                    template=tpl.name,
                    fields=item.rendered.fields,
                    text=text,
                    api_key_id=key_id,
                    extra=item.extra,
                )
                for item, text in zip(outcome, texts)
            ]

        tokens = await self.answered("content", [item.generation for item in outcome], started, records)
        choices = []
        for index, item in enumerate(outcome):
            choice = {
                "index": index,
                "text": texts[index],
                "finish_reason": item.generation.finish_reason,
                "attempts": item.attempts,
            }
            if tpl.output_schema is not None:
                choice["data"] = datas[index]
            if sheet is not None:  # checked again: moderation may have redacted the text
                check = check_text(texts[index], sheet.evidence(fields))
                choice["fact_check"] = check_json(check, checked[index].unsupported_per_attempt)
            if grounding is not None:  # and what supports each sentence, the quote of a reply none supports
                choice["citations"] = item.extra["citations"]
                choice.update({k: item.extra[k] for k in ("support", "quote", "model_text") if k in item.extra})
            if styles is not None:
                choice["style"] = styles[index]
            if "best_of" in item.extra:  # the checks and likelihood it was chosen by, and every candidate's score
                choice["best_of"] = item.extra["best_of"]
            choice.update(choice_note(outputs[index]))
            choices.append(choice)
        return JSONResponse(
            {
                "id": "content-" + uuid.uuid4().hex[:24],
                "object": "content",
                "created": int(time.time()),
                "model": req.model or state.base_id,
                "template": tpl.name,
                "structured": tpl.output_schema is not None,
                "choices": choices,
                "warnings": list(rendered.warnings),
                "usage": tokens,
                **({"facts": sheet.to_json()} if sheet is not None else {}),
                **({"grounding": grounding.to_json()} if grounding is not None else {}),
            },
            headers=headers_for(decisions + [d for d in outputs if d is not None]),
        )

    # ------------------------------------------------------------ listings, health, metrics

    async def models(self, request: Request) -> dict:
        state = self.state
        await self.admit(request)
        created = int(time.time())
        info = {"context_length": state.context_length, "chat": state.engine.loaded.chat}
        data = [
            {
                "id": state.base_id,
                "object": "model",
                "created": created,
                "owned_by": "inkwell",
                "root": state.base_id,
                "parent": None,
                **info,
            }
        ]
        for name, path in state.adapters.items():
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "inkwell",
                    "root": state.base_id,
                    "parent": state.base_id,
                    "adapter_path": path,
                    **info,
                }
            )
        return {"object": "list", "data": data}

    async def templates(self, request: Request) -> dict:
        from inkwell.prompts.library import all_templates

        self.state.keys.check(request.headers.get("authorization"))  # a key, but no model: listed while loading
        items = await run_in_threadpool(all_templates)
        data = [
            {
                "name": t.name,
                "description": t.description,
                "languages": t.languages,
                "fields": list(t.fields),
                "required": [k for k, v in t.fields.items() if v.required],
                "structured": t.output_schema is not None,
            }
            for t in items.values()
        ]
        return {"object": "list", "data": data}

    def health(self) -> Response | dict:
        state = self.state
        if state.status == "ready":
            return {"status": "ok", "model": state.base_id, "adapters": list(state.adapters)}
        body = {"status": state.status}
        if state.status == "failed":
            body["message"] = "the model failed to load; see the server log"
        return JSONResponse(body, status_code=503)

    def prometheus(self) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)


def _screen_content(guard, outcome: list) -> list[tuple]:
    """A template's results as moderated: (text, data, decision) each; redacted text redacts the data too."""
    from inkwell.safety.guard import redact_value

    out = []
    for item in outcome:
        text, decision = guard.screen_output(item.text)
        data = item.data
        if decision.action == "redact" and data is not None:
            data = redact_value(data, guard.policy)
        out.append((text, data, decision))
    return out


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
            self.state.ready_scheduler.submit(self.job)
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
    return too_many(
        f"The server is busy: {detail}; retry after the Retry-After seconds.", exc.retry_after_s, "queue_full"
    )


def api_error(exc: BaseException) -> APIError:
    """A job's failure as the client sees it: its own APIError, a 400 for user errors, else a logged 500."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, InkwellError):
        return from_inkwell(exc)
    log.error("generation failed", exc_info=exc)
    return internal()


class SSEResponse(StreamingResponse):
    """Server-Sent Events whose `on_close` always runs: after the last event, or when the client leaves."""

    def __init__(self, content: AsyncIterator[str], on_close, headers: dict[str, str] | None = None):
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
        )
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()
