"""The studio's blind comparisons: two systems write the same fields, shown in random order; the creator's
judgement reveals them and feeds a Bradley-Terry leaderboard (inkwell/feedback/leaderboard.py)."""

from __future__ import annotations

import asyncio
import random

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from inkwell.serve.errors import APIError, bad_request
from inkwell.serve.serving import api_error
from inkwell.serve.studio import schemas
from inkwell.serve.studio.service import Studio


async def compare(studio: Studio, request: Request) -> dict:
    from inkwell.generate.content import write_many

    owner = await studio.owner(request, model=True)
    req = await studio.body(request, schemas.ComparisonRequest)
    if req.systems[0] == req.systems[1]:
        raise bad_request("compare two different systems", param="systems")
    tpl = await studio.template(req.template)
    fields, system_a, _, rendered, decoding, engine_a, cancel, prompt = await studio.prepare(
        owner, tpl, req.fields, req.settings, req.systems[0], 1
    )
    system_b, adapter_b = await studio.resolve_system(owner, req.systems[1], param="systems")
    engine_b = await studio.engine_for(adapter_b, cancel)

    def one(engine) -> str:
        outcome = write_many(engine, tpl, [rendered], decoding)[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome[0].text

    slot = studio.state.slots.acquire()
    try:
        texts = list(await asyncio.gather(run_in_threadpool(one, engine_a), run_in_threadpool(one, engine_b)))
    except APIError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc) from None
    finally:
        slot.release()
    if studio.state.guard is not None:
        texts = [(await run_in_threadpool(studio.state.guard.screen_output, t))[0] for t in texts]
    pairs = [(system_a, texts[0]), (system_b, texts[1])]
    random.SystemRandom().shuffle(pairs)  # blind: the creator must not learn the order
    (left_system, left_text), (right_system, right_text) = pairs
    comparison_id = await studio.data(
        lambda d: d.new_comparison(
            owner,
            template=tpl.name,
            fields=rendered.fields,
            request=rendered.prompt,
            prompt=prompt,
            left_system=left_system,
            right_system=right_system,
            left_text=left_text,
            right_text=right_text,
        )
    )
    return {"id": comparison_id, "left": {"text": left_text}, "right": {"text": right_text}}


async def comparisons(studio: Studio, request: Request) -> dict:
    owner = await studio.owner(request)
    pending_arg = request.query_params.get("pending")
    pending = None if pending_arg in (None, "") else pending_arg.lower() in ("1", "true", "yes")
    rows = await studio.data(lambda d: d.comparisons(owner, pending=pending))
    return {"data": [blind(row) for row in rows]}


async def judge(studio: Studio, request: Request, comparison_id: int) -> dict:
    owner = await studio.owner(request)
    req = await studio.body(request, schemas.JudgeRequest)
    return blind(await studio.data(lambda d: d.judge(owner, comparison_id, req.winner)))


async def leaderboard(studio: Studio, request: Request) -> dict:
    owner = await studio.owner(request)
    from inkwell.feedback.leaderboard import leaderboard

    rows = await studio.data(lambda d: d.comparisons(owner, pending=False))
    return {"method": "bradley-terry", "data": await run_in_threadpool(leaderboard, rows)}


# ------------------------------------------------------------ the loop: export, train, round, promote


def blind(row: dict) -> dict:
    """A comparison as the creator sees it: which system wrote which side stays hidden until judged."""
    out = {k: v for k, v in row.items() if k not in ("request", "prompt")}
    if row["winner"] is None:
        out.pop("left_system")
        out.pop("right_system")
    return out
