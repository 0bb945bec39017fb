"""The studio's routes: the page at `/` and `/studio`, its files under `/studio/static/`, and the JSON API
under `/studio/api/` (docs/studio.md). Each route only maps HTTP onto `Studio` (service.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from inkwell.serve.errors import APIError
from inkwell.serve.schemas import openapi_body
from inkwell.serve.studio import compare as compare_
from inkwell.serve.studio import extras, knowledge, longform, loop, pieces, schemas
from inkwell.serve.studio.service import Studio

PAGE = Path(__file__).parent / "page"
Id = Annotated[int, PathParam(ge=1, le=2**62)]  # a row id (SQLite integers are 64-bit)

router = APIRouter(prefix="/studio/api", tags=["studio"])
page_router = APIRouter(include_in_schema=False)


def studio_of(request: Request) -> Studio:
    return request.app.state.studio


# ---------------------------------------------------------------- the page


@page_router.get("/")
@page_router.get("/studio")
async def page() -> Response:
    return FileResponse(PAGE / "index.html", headers={"Cache-Control": "no-cache"})


@page_router.get("/studio/static/{name:path}")
async def static(name: str) -> Response:
    path = (PAGE / name).resolve()
    if PAGE.resolve() not in path.parents or not path.is_file():  # nothing outside the page's folder
        raise APIError(404, f"no studio file '{name}'", code="not_found")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


# ---------------------------------------------------------------- who, templates, systems


@router.get("/me")
async def me(request: Request):
    return await studio_of(request).me(request)


@router.get("/templates")
async def templates(request: Request):
    return await studio_of(request).templates(request)


@router.get("/systems")
async def systems(request: Request):
    return await studio_of(request).systems(request)


@router.get("/knowledge")
async def knowledge_folders(request: Request):
    return await knowledge.listing(studio_of(request), request)


@router.get("/styles")
async def styles(request: Request):
    return await extras.styles(studio_of(request), request)


# ---------------------------------------------------------------- pieces


@router.post("/pieces", openapi_extra=openapi_body(schemas.PieceRequest))
async def create_piece(request: Request):
    return await pieces.create_piece(studio_of(request), request)


@router.get("/pieces")
async def search(
    request: Request,
    # declared for the OpenAPI document (clients, fuzzers); pieces.search reads and checks them itself
    q: Annotated[str | None, Query(max_length=500)] = None,
    template: str | None = None,
    system: str | None = None,
    status: Annotated[Literal["draft", "accepted", "rejected"] | None, Query()] = None,
    min_rating: Annotated[int | None, Query(ge=1, le=5)] = None,
    since: Annotated[str | None, Query(description="YYYY-MM-DD or unix seconds")] = None,
    until: Annotated[str | None, Query(description="YYYY-MM-DD or unix seconds (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
):
    return await pieces.search(studio_of(request), request)


@router.get("/pieces/{piece_id}")
async def piece(piece_id: Id, request: Request):
    return await pieces.piece(studio_of(request), request, piece_id)


@router.post("/pieces/{piece_id}/variants", openapi_extra=openapi_body(schemas.VariantRequest))
async def add_variant(piece_id: Id, request: Request):
    return await pieces.add_variant(studio_of(request), request, piece_id)


@router.post("/pieces/{piece_id}/choose", openapi_extra=openapi_body(schemas.ChooseRequest))
async def choose(piece_id: Id, request: Request):
    return await pieces.choose(studio_of(request), request, piece_id)


@router.post("/pieces/{piece_id}/versions", openapi_extra=openapi_body(schemas.VersionRequest))
async def add_version(piece_id: Id, request: Request):
    return await pieces.add_version(studio_of(request), request, piece_id)


@router.post("/pieces/{piece_id}/feedback", openapi_extra=openapi_body(schemas.FeedbackRequest))
async def feedback(piece_id: Id, request: Request):
    return await pieces.feedback(studio_of(request), request, piece_id)


@router.post("/pieces/{piece_id}/branch", openapi_extra=openapi_body(schemas.BranchRequest))
async def branch(piece_id: Id, request: Request):
    return await pieces.branch(studio_of(request), request, piece_id)


# ---------------------------------------------------------------- blind comparisons


@router.post("/comparisons", openapi_extra=openapi_body(schemas.ComparisonRequest))
async def compare(request: Request):
    return await compare_.compare(studio_of(request), request)


@router.get("/comparisons")
async def comparisons(request: Request, pending: bool | None = None):
    return await compare_.comparisons(studio_of(request), request)


@router.post("/comparisons/{comparison_id}/judge", openapi_extra=openapi_body(schemas.JudgeRequest))
async def judge(comparison_id: Id, request: Request):
    return await compare_.judge(studio_of(request), request, comparison_id)


@router.get("/leaderboard")
async def leaderboard(request: Request):
    return await compare_.leaderboard(studio_of(request), request)


# ---------------------------------------------------------------- the feedback loop


@router.get("/feedback/export")
async def export(
    request: Request,
    kind: Literal["sft", "dpo"] = "sft",
    since: Annotated[str | None, Query(description="YYYY-MM-DD or unix seconds")] = None,
    template: str | None = None,
):
    return await loop.export(studio_of(request), request)


@router.get("/feedback/summary")
async def summary(request: Request):
    return await loop.summary(studio_of(request), request)


@router.post("/training", openapi_extra=openapi_body(schemas.TrainingRequest))
async def train(request: Request):
    return await loop.train(studio_of(request), request)


@router.get("/training")
async def jobs(request: Request):
    return await loop.jobs(studio_of(request), request)


@router.get("/training/{job_id}")
async def job(job_id: Id, request: Request):
    return await loop.job(studio_of(request), request, job_id)


@router.post("/training/{job_id}/round", openapi_extra=openapi_body(schemas.RoundRequest))
async def round_(job_id: Id, request: Request):
    return await loop.round(studio_of(request), request, job_id)


@router.post("/training/{job_id}/decide", openapi_extra=openapi_body(schemas.DecideRequest))
async def decide(job_id: Id, request: Request):
    return await loop.decide(studio_of(request), request, job_id)


# ---------------------------------------------------------------- long-form writing (longform.py)


@router.post("/longform", openapi_extra=openapi_body(schemas.LongformRequest))
async def create_longform(request: Request):
    return await longform.create(studio_of(request), request)


@router.get("/longform")
async def longform_runs(request: Request):
    return await longform.runs(studio_of(request), request)


@router.get("/longform/{run_id}")
async def get_longform(request: Request, run_id: Id):
    return await longform.get(studio_of(request), request, run_id)


@router.get("/longform/{run_id}/tree")
async def longform_tree(request: Request, run_id: Id):
    return await longform.tree(studio_of(request), request, run_id)


@router.put("/longform/{run_id}/plan", openapi_extra=openapi_body(schemas.PlanRequest))
async def longform_plan(request: Request, run_id: Id):
    return await longform.set_plan(studio_of(request), request, run_id)


@router.post("/longform/{run_id}/candidates", openapi_extra=openapi_body(schemas.CandidatesRequest))
async def longform_candidates(request: Request, run_id: Id):
    return await longform.candidates(studio_of(request), request, run_id)


@router.post("/longform/{run_id}/choose", openapi_extra=openapi_body(schemas.NodeRequest))
async def longform_choose(request: Request, run_id: Id):
    return await longform.choose(studio_of(request), request, run_id)


@router.post("/longform/{run_id}/edit", openapi_extra=openapi_body(schemas.NodeEditRequest))
async def longform_edit(request: Request, run_id: Id):
    return await longform.edit(studio_of(request), request, run_id)


@router.post("/longform/{run_id}/back", openapi_extra=openapi_body(schemas.BackRequest))
async def longform_back(request: Request, run_id: Id):
    return await longform.back(studio_of(request), request, run_id)


@router.get("/longform/{run_id}/piece")
async def longform_piece(request: Request, run_id: Id):
    return await longform.piece(studio_of(request), request, run_id)
