"""The studio's long-form writing (docs/longform.md): the interactive `write long` as JSON steps over the
store's tree of versions. A run gets a plan, then the creator asks for candidates for the next section,
takes one (or edits it), asks for more, goes back to any section written (a new branch; nothing is lost),
and assembles the piece. Every candidate and choice is stored for the feedback loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from inkwell.errors import InkwellError
from inkwell.serve.errors import APIError, bad_request, from_inkwell
from inkwell.serve.serving import api_error
from inkwell.serve.studio import schemas
from inkwell.serve.studio.service import Studio
from inkwell.store.longform import LongformData

_similar: dict[str, Any] = {}
_similar_lock = threading.Lock()


def similar_for(lang: str):
    """The embedding similarity (loaded once per server) for English; None (lexical) for Chinese."""
    from inkwell.compose.longform.run import default_similar

    with _similar_lock:
        if lang not in _similar:
            _similar[lang] = default_similar(lang)
        return _similar[lang]


async def data(studio: Studio, action: Callable[[LongformData], Any]) -> Any:
    return await studio.data(action, LongformData)


def _outline(run: dict):
    from inkwell.compose.longform.plan import outline_from

    return outline_from(run["plan"], "plan")


def _slim(node: dict) -> dict:
    keep = ("id", "parent_id", "section", "kind", "text", "chosen", "source_id")
    meta = node["meta"]
    return {k: node[k] for k in keep} | {k: meta.get(k) for k in ("score", "checks", "words")}


def view(run: dict) -> dict:
    """A run as the page shows it: the chain's texts, where the writer stands, what waits next."""
    total = len(run["plan"]["sections"]) if run.get("plan") else 0
    return {k: run[k] for k in ("id", "created_at", "updated_at", "kind", "topic", "request", "plan", "head")} | {
        "chain": [_slim(n) for n in run["chain"]],
        "next": [_slim(n) for n in run["next"] if n["kind"] == "candidate"],
        "next_section": len(run["chain"]),
        "complete": total > 0 and len(run["chain"]) >= total,
    }


async def _engine(studio: Studio, owner: str, run: dict):
    system, adapter = await studio.resolve_system(owner, run["request"].get("system"))
    return await studio.engine_for(adapter, threading.Event())


def _options(run: dict, candidates: int | None = None, round_: int = 0):
    from inkwell.compose.longform.draft import DraftOptions

    settings = dict(run["request"].get("settings") or {})
    count = candidates or settings.pop("candidates", 3)
    settings.pop("candidates", None)
    # a new seed per request for more of the same section (the run's seed keeps the first round reproducible)
    return DraftOptions.from_decoding({k: v for k, v in settings.items() if v is not None}, candidates=count)


async def _generate(studio: Studio, work: Callable[[], Any]) -> Any:
    slot = studio.state.slots.acquire()
    try:
        return await run_in_threadpool(work)
    except APIError:
        raise
    except InkwellError as exc:  # e.g. a plan whose section cannot fit the model's window: 400 naming the field
        raise from_inkwell(exc) from None
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc) from None
    finally:
        slot.release()


# ---------------------------------------------------------------- endpoints


async def create(studio: Studio, request: Request) -> dict:
    from inkwell.compose.longform.plan import make_outline, model_asker

    owner = await studio.owner(request, model=True)
    req = await studio.body(request, schemas.LongformRequest)
    system, _ = await studio.resolve_system(owner, req.system)
    body = req.model_dump() | {"system": system}
    engine = await _engine(studio, owner, {"request": body})

    def plan() -> dict:
        ask = model_asker(engine, req.settings.seed if req.settings.seed is not None else 0)
        outline, _ = make_outline(req.kind, req.topic, req.words, req.lang, ask, title=req.title, sections=req.sections)
        return outline.model_dump()

    planned = await _generate(studio, plan)
    run_id = await data(
        studio,
        lambda d: d.new_run(owner, kind=req.kind, topic=req.topic, folder=None, request=body, plan=planned),
    )
    return view(await data(studio, lambda d: d.run(owner, run_id)))


async def runs(studio: Studio, request: Request) -> dict:
    owner = await studio.owner(request)
    return {"data": await data(studio, lambda d: d.runs(owner))}


async def get(studio: Studio, request: Request, run_id: int) -> dict:
    owner = await studio.owner(request)
    return view(await data(studio, lambda d: d.run(owner, run_id)))


async def tree(studio: Studio, request: Request, run_id: int) -> dict:
    """Every node of the run: all candidates, choices and edits on every branch (for the feedback loop)."""
    owner = await studio.owner(request)
    return {"data": [_slim(n) for n in await data(studio, lambda d: d.tree(owner, run_id))]}


async def set_plan(studio: Studio, request: Request, run_id: int) -> dict:
    """Replace the plan (validated field by field: 400 naming e.g. `plan.sections[1].words`); writing starts
    again from section 1, the drafts written so far stay in the tree."""
    from inkwell.compose.longform.plan import outline_from

    owner = await studio.owner(request)
    req = await studio.body(request, schemas.PlanRequest)
    try:
        outline = outline_from(req.plan, "plan")
    except InkwellError as exc:
        raise bad_request(str(exc).splitlines()[0], param=f"plan.{exc.field}") from None

    def update(d: LongformData) -> dict:
        d.set_plan(owner, run_id, outline.model_dump())
        d.back(owner, run_id, None)
        return d.run(owner, run_id)

    return view(await data(studio, update))


async def candidates(studio: Studio, request: Request, run_id: int) -> dict:
    """Candidates for the next section after the head (each call a new round: more to choose from)."""
    from inkwell.compose.longform.session import next_section, node_items

    owner = await studio.owner(request, model=True)
    req = await studio.body(request, schemas.CandidatesRequest)
    run = await data(studio, lambda d: d.run(owner, run_id))
    outline = _outline(run)
    written = [n["text"] for n in run["chain"]]
    if len(written) >= len(outline.sections):
        raise APIError(
            409,
            "every section is written: assemble the piece, or go back to write one again",
            code="complete",
            param="run_id",
        )
    engine = await _engine(studio, owner, run)
    options = _options(run, req.candidates)
    similar = similar_for(outline.lang)
    more = len(run["next"])  # candidates already offered here: a new round samples new ones
    record = await _generate(studio, lambda: next_section(engine, outline, written, options, similar, round_=more))
    if studio.state.guard is not None:
        for c in record["candidates"]:
            c["text"] = (await run_in_threadpool(studio.state.guard.screen_output, c["text"]))[0]
    parent = run["head"]
    await data(
        studio,
        lambda d: d.add_candidates(owner, run_id, parent_id=parent, section=len(written), items=node_items(record)),
    )
    return view(await data(studio, lambda d: d.run(owner, run_id)))


async def _step(studio: Studio, request: Request, run_id: int, body: type, act: Callable) -> dict:
    """One move in the tree (`act(data, owner, body)`), answered with the run as it is after it."""
    owner = await studio.owner(request)
    req = await studio.body(request, body)

    def move(d: LongformData) -> dict:
        act(d, owner, req)
        return d.run(owner, run_id)

    return view(await data(studio, move))


async def choose(studio: Studio, request: Request, run_id: int) -> dict:
    return await _step(studio, request, run_id, schemas.NodeRequest, lambda d, o, r: d.choose(o, run_id, r.node_id))


async def edit(studio: Studio, request: Request, run_id: int) -> dict:
    return await _step(
        studio, request, run_id, schemas.NodeEditRequest, lambda d, o, r: d.edit(o, run_id, r.node_id, r.text)
    )


async def back(studio: Studio, request: Request, run_id: int) -> dict:
    return await _step(studio, request, run_id, schemas.BackRequest, lambda d, o, r: d.back(o, run_id, r.node_id))


async def piece(studio: Studio, request: Request, run_id: int) -> dict:
    from inkwell.compose.longform.session import assemble_texts

    owner = await studio.owner(request)
    run = await data(studio, lambda d: d.run(owner, run_id))
    outline = _outline(run)
    written = [n["text"] for n in run["chain"]]
    similar = similar_for(outline.lang)
    return await run_in_threadpool(assemble_texts, outline, written, similar)
