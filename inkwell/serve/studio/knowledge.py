"""The studio's knowledge folders: the list the Write screen offers (GET /studio/api/knowledge), a piece written
on one (`kb` in POST /pieces), and each variant's citations, kept with its generation in the history store
(`metadata`, migration 8) so they come back with the piece. compose/grounded.py does the grounding."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from inkwell.compose.grounded import KNOWLEDGE_FIELD, Grounding, escalated_record
from inkwell.errors import InkwellError
from inkwell.knowledge import KnowledgeBase, Passage
from inkwell.serve.grounding import for_fields
from inkwell.serve.serving import DONE, SSEResponse, sse
from inkwell.serve.studio.service import LOCAL, Studio, _field_error
from inkwell.store.studio import StudioData


async def listing(studio: Studio, request: Request) -> dict:
    """GET /studio/api/knowledge: the knowledge folders (name, files, chunks), for the Write screen's select."""
    await studio.owner(request)
    folders = await run_in_threadpool(KnowledgeBase.list)
    keys = ("name", "files", "chunks", "updated_at")
    return {"data": [{k: folder.get(k) for k in keys} for folder in folders]}


async def ground(studio: Studio, kb: str | None, tpl, given: dict) -> Grounding | None:
    """A new piece's passages (None without `kb`); fields are checked first, as `prepare` names them."""
    if kb is None:
        return None
    try:
        tpl.resolve_fields(given)
    except InkwellError as exc:
        raise _field_error(exc, "fields") from None
    return await for_fields(kb, tpl, given)


def without_passages(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if k != KNOWLEDGE_FIELD}


def stored_grounding(d: StudioData, piece: dict) -> Grounding | None:
    """The grounding a piece was written with (from its first logged variant), for "another" variant."""
    for variant in piece["variants"]:
        meta = _metadata(d, variant.get("generation_id"))
        grounding = meta.get("grounding")
        if grounding and grounding.get("known"):
            passages = [Passage(**p) for p in grounding["passages"]]
            best, threshold = grounding["best_relevance"], grounding["threshold"]
            return Grounding(grounding["kb"], grounding["query"], passages, threshold, best, grounding["dropped"])
    return None


def cited(d: StudioData, piece: dict) -> dict:
    """The piece with each variant's `citations` and the piece's `grounding`, where it was written on a folder."""
    for variant in piece["variants"]:
        meta = _metadata(d, variant.get("generation_id"))
        if "citations" in meta:
            variant["citations"] = meta["citations"]
            piece["grounding"] = meta.get("grounding")
    return piece


def _metadata(d: StudioData, generation_id: int | None) -> dict[str, Any]:
    if generation_id is None:
        return {}
    row = d.store.conn.execute("SELECT metadata FROM generations WHERE id = ?", (generation_id,)).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


async def escalated_piece(
    studio: Studio, owner: str, tpl, given: dict, system: str | None, grounding: Grounding, stream: bool
) -> Response:
    """Nothing in the folder is relevant and the template has an unknown_reply: a piece whose one variant is
    that reply, written without the model (finish_reason `escalated`)."""
    system_name, _ = await studio.resolve_system(owner, system)
    model = studio.state.base_id or "base"
    record = escalated_record(
        tpl, given, grounding, model=model, source="studio", api_key_id=None if owner == LOCAL else owner
    )
    log_it = studio.state.config.log_generations

    def write(d: StudioData) -> dict:
        piece_id = d.new_piece(
            owner, template=tpl.name, fields=record.fields or {}, system=system_name, settings={}, request="", prompt=""
        )
        generation_id = d.store.log_record(record) if log_it else None
        d.add_variant(
            owner,
            piece_id,
            system=system_name,
            text=record.text,
            generation_id=generation_id,
            finish_reason="escalated",
        )
        piece = d.piece(owner, piece_id)
        piece["grounding"] = grounding.to_json()
        piece["variants"][0]["citations"] = []
        return piece

    piece = await studio.data(write)
    studio.serving.count("studio", 200)
    if not stream:
        return JSONResponse(piece)

    async def events():
        yield sse({"type": "piece", "piece": piece})
        yield sse({"type": "variant", "index": 0, "variant": piece["variants"][0]})
        yield sse({"type": "done", "piece": piece})
        yield DONE

    return SSEResponse(events(), lambda: None)
