"""`kb` on POST /v1/content/{template}, POST /v1/chat/completions and the studio's writing: a knowledge folder's
passages go into the prompt and each answer carries `citations` (compose/grounded.py does the work; this maps
it onto HTTP). An unknown folder is a 404 naming `kb`; a content request whose template has an `unknown_reply`
and finds nothing relevant is answered with that reply, without the model (finish_reason `escalated`)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inkwell.compose.grounded import (
    Grounding,
    citations,
    escalated_record,
    fit,
    ground_messages,
    retrieve,
    search,
)
from inkwell.errors import InkwellError
from inkwell.knowledge import KnowledgeBase
from inkwell.serve.errors import APIError, bad_request, from_inkwell


def kb_error(exc: InkwellError) -> APIError:
    """A knowledge-folder problem as the client sees it: 404 for a folder that does not exist, else a 400."""
    message = str(exc).replace("\n  fix: ", "; fix: ")
    if exc.field == "kb" and message.startswith("no knowledge folder"):
        return APIError(404, message, param="kb", code="kb_not_found")
    return from_inkwell(exc)


async def grounding_for(req, template, fields: dict) -> Grounding | None:
    """A content request's grounding: None without `kb`."""
    if req.kb is None:
        return None
    if req.data is not None:
        raise bad_request("kb and data cannot be used together: ground on one of them", param="kb")
    return await for_fields(req.kb, template, fields)


async def fitted(engine, template, fields: dict, grounding: Grounding, overrides: dict) -> tuple[Any, dict]:
    """The grounded template and fields with the passages that fit the engine's context."""
    try:
        return await run_in_threadpool(fit, engine, template, fields, grounding, None, overrides)
    except InkwellError as exc:
        raise kb_error(exc) from None


async def for_fields(kb: str, template, fields: dict) -> Grounding:
    """The passages for a template request (fields as given; checked here as the template would)."""

    def work() -> Grounding:
        knowledge = KnowledgeBase.open(kb)
        return retrieve(knowledge, template, template.resolve_fields(fields))

    try:
        return await run_in_threadpool(work)
    except InkwellError as exc:
        raise kb_error(exc) from None


async def for_chat(kb: str, messages: list[dict], engine, max_new_tokens: int) -> tuple[list[dict], Grounding | None]:
    """The conversation with the passages before its last user message (as many as leave `max_new_tokens`
    of the context for the reply). No user text to search for: the conversation as it was."""
    query = next((m["content"] for m in reversed(messages) if m["role"] == "user" and m["content"].strip()), "")

    def work() -> tuple[list[dict], Grounding | None]:
        knowledge = KnowledgeBase.open(kb)
        if not query:
            return messages, None
        grounding = search(knowledge, query)
        context = engine.loaded.context_length
        fits = lambda prompt: engine.count_tokens(prompt) + max_new_tokens <= context  # noqa: E731
        return ground_messages(messages, grounding, fits), grounding

    try:
        return await run_in_threadpool(work)
    except InkwellError as exc:
        raise kb_error(exc) from None


async def grounded_chat(req, prompts: list, engine, state) -> tuple[list, Grounding | None]:
    """A chat request with `kb`: its one conversation grounded, leaving room for the reply it asks for."""
    asked = req.max_tokens or req.max_completion_tokens or state.config.default_max_tokens
    messages, grounding = await for_chat(req.kb, prompts[0], engine, min(asked, state.max_tokens_limit))
    return [messages], grounding


def citations_of(grounding: Grounding | None, text: str) -> dict:
    """The `citations` key of one answer (nothing without `kb`)."""
    if grounding is None:
        return {}
    return {"citations": citations(text, grounding.passages if grounding.known else [])[0]}


def record_extra(grounding: Grounding | None, text: str) -> dict:
    """What the history store keeps of an answer's grounding (GenerationRecord.extra)."""
    if grounding is None:
        return {}
    return {**citations_of(grounding, text), "grounding": grounding.to_json()}


async def escalated_content(
    serving, tpl, fields: dict, grounding: Grounding, key_id: str | None, model: str
) -> JSONResponse:
    """The content answer when nothing in the folder is relevant and the template has an unknown_reply."""
    record = escalated_record(tpl, fields, grounding, model=model, source="serve", api_key_id=key_id)
    await run_in_threadpool(serving.state.log_record, record)
    serving.count("content", 200)
    choice: dict[str, Any] = {
        "index": 0,
        "text": record.text,
        "finish_reason": "escalated",
        "attempts": 0,
        "citations": [],
    }
    return JSONResponse(
        {
            "id": "content-" + uuid.uuid4().hex[:24],
            "object": "content",
            "created": int(time.time()),
            "model": model,
            "template": tpl.name,
            "structured": tpl.output_schema is not None,
            "choices": [choice],
            "warnings": [],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "grounding": grounding.to_json(),
        }
    )
