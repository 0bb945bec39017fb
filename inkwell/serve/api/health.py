"""GET /health (503 while the model loads, 200 after) and GET /metrics (Prometheus text); no key needed."""

from __future__ import annotations

from fastapi import APIRouter, Request

from inkwell.serve.serving import serving_of

router = APIRouter()


@router.get("/health")
async def health(request: Request):
    return serving_of(request).health()


@router.get("/metrics")
async def prometheus(request: Request):
    return serving_of(request).prometheus()
