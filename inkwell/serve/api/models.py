"""GET /v1/models (the base model and its adapters) and GET /v1/templates (the template library)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from inkwell.serve.serving import serving_of

router = APIRouter()


@router.get("/v1/models")
async def models(request: Request):
    return await serving_of(request).models(request)


@router.get("/v1/templates")
async def templates(request: Request):
    return await serving_of(request).templates(request)
