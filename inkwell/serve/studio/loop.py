"""The studio's feedback loop over inkwell/feedback: export rows, training jobs (a background process each),
a blind round of the new adapter against the base on held-back pieces, and promotion."""

from __future__ import annotations

import json
import random
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from inkwell.errors import InkwellError
from inkwell.feedback.jobs import system_name
from inkwell.serve.errors import APIError, bad_request
from inkwell.serve.studio import schemas
from inkwell.serve.studio.service import BASE, Studio, parse_date
from inkwell.store.studio import PieceFilter, StudioData

MAX_EXPORT_ROWS = 50_000  # one download; beyond it, the CLI (`inkwell feedback export`) streams to files


async def export(studio: Studio, request: Request) -> Response:
    owner = await studio.owner(request)
    from inkwell.feedback.export import export_rows

    q = request.query_params
    kind = q.get("kind") or "sft"
    if kind not in ("sft", "dpo"):
        raise bad_request("kind must be sft or dpo", param="kind")
    since = parse_date(q.get("since"), "since")
    template = q.get("template") or None
    rows = await studio.data(lambda d: getattr(export_rows(d, owner, since=since, template=template), kind))
    if len(rows) > MAX_EXPORT_ROWS:
        raise bad_request(
            f"{len(rows)} rows is more than one download holds ({MAX_EXPORT_ROWS}); narrow it with since or "
            "template, or use `inkwell feedback export`",
            param="since",
        )
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    name = f"inkwell-feedback-{kind}.jsonl"
    return Response(
        body,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Inkwell-Rows": str(len(rows))},
    )


async def summary(studio: Studio, request: Request) -> dict:
    owner = await studio.owner(request)
    from inkwell.feedback.export import export_rows

    def count(d: StudioData) -> dict:
        rows = export_rows(d, owner)
        _, pieces = d.search(owner, PieceFilter(limit=1))
        return {
            "sft": len(rows.sft),
            "dpo": len(rows.dpo),
            "pieces": pieces,
            "comparisons": len(d.comparisons(owner, pending=False)),
        }

    return await studio.data(count)


def _runs_dir(studio: Studio) -> Path:
    from inkwell.home import inkwell_home

    return studio.runs_dir or inkwell_home() / "studio" / "runs"


async def train(studio: Studio, request: Request) -> Response:
    owner = await studio.owner(request, model=True)
    from inkwell.feedback.jobs import start_job

    req = await studio.body(request, schemas.TrainingRequest)
    state = studio.state
    if not state.config.training:
        raise APIError(
            403,
            "training from feedback is turned off on this server (it was started with --no-training)",
            param="stage",
            code="training_disabled",
        )
    if not state.engine.capabilities.adapters:
        raise bad_request(
            "this server's engine cannot serve adapters, so a trained one could not be compared or used; "
            "start the studio with --engine torch",
            param="stage",
        )
    base_model = state.config.model or state.engine.loaded.name
    job = await studio.data(
        lambda d: start_job(
            d,
            owner,
            stage=req.stage,
            base_model=base_model,
            # graded and compared blind against the creator's current system (their default), unless named
            base_system=req.base or d.default_system(owner) or BASE,
            runs_dir=_runs_dir(studio),
            max_steps=req.max_steps,
            template=req.template,
        )
    )
    return JSONResponse(await _job(studio, owner, job["id"]), status_code=202)


async def _job(studio: Studio, owner: str, job_id: int) -> dict:
    from inkwell.feedback.jobs import poll_job

    def look(d: StudioData) -> dict:
        d.job(owner, job_id)  # 404 for another owner's job
        job = poll_job(d, job_id)
        job["system"] = system_name(job_id)
        rounds = d.comparisons(owner, round=job_round(job_id))
        job["round"] = {"comparisons": len(rounds), "judged": sum(r["winner"] is not None for r in rounds)}
        return job

    return await studio.data(look)


async def jobs(studio: Studio, request: Request) -> dict:
    owner = await studio.owner(request)
    ids = await studio.data(lambda d: [job["id"] for job in d.jobs(owner)])
    return {"data": [await _job(studio, owner, job_id) for job_id in ids]}


async def job(studio: Studio, request: Request, job_id: int) -> dict:
    owner = await studio.owner(request)
    return await _job(studio, owner, job_id)


async def round(studio: Studio, request: Request, job_id: int) -> dict:
    """A blind round: for each held-back prompt, the current system's text and the new adapter's text (written
    by the job on the held-back prompts), in random order, as comparisons for the creator to judge."""
    owner = await studio.owner(request)
    req = await studio.body(request, schemas.RoundRequest)
    job = await _job(studio, owner, job_id)
    if job["status"] != "finished" or not job.get("report"):
        raise bad_request(f"training job {job_id} is {job['status']}; wait until it has finished", param="job_id")
    heldout = job["report"].get("heldout") or []
    if req.count is not None:
        heldout = heldout[: req.count]
    name = system_name(job_id)
    current = job["report"].get("compared_with") or BASE  # the system the job was graded against
    chooser = random.SystemRandom()

    def make(d: StudioData) -> list[int]:
        if d.comparisons(owner, round=job_round(job_id)):
            raise InkwellError(f"training job {job_id} already has its blind round", field="job_id")
        ids = []
        for item in heldout:
            pairs = [(current, item["base_text"]), (name, item["new_text"])]
            chooser.shuffle(pairs)
            ids.append(
                d.new_comparison(
                    owner,
                    template=item["template"],
                    fields=item["fields"],
                    request=item["request"],
                    prompt=item["prompt"],
                    left_system=pairs[0][0],
                    right_system=pairs[1][0],
                    left_text=pairs[0][1],
                    right_text=pairs[1][1],
                    round=job_round(job_id),
                )
            )
        return ids

    ids = await studio.data(make)
    return {"round": job_round(job_id), "comparisons": ids}


async def decide(studio: Studio, request: Request, job_id: int) -> dict:
    owner = await studio.owner(request)
    req = await studio.body(request, schemas.DecideRequest)
    job = await _job(studio, owner, job_id)
    name = system_name(job_id)

    def record(d: StudioData) -> dict:
        if req.action == "promote":
            if not job.get("adapter"):
                raise InkwellError(f"training job {job_id} left no adapter", field="job_id")
            d.register_adapter(owner, name, str(job["adapter"]), job_id)
        return d.decide(owner, job_id, req.action, name)

    return await studio.data(record)


def job_round(job_id: int) -> str:
    return f"job-{job_id}"
