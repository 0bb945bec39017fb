"""POST /v1/content/{template}: template fields and settings in, content out (a structured template's
validated JSON in `choices[i].data`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from inkwell.serve.schemas import ContentRequest, openapi_body
from inkwell.serve.serving import serving_of

router = APIRouter()


@router.post("/v1/content/{template}", openapi_extra=openapi_body(ContentRequest))
async def content(template: str, request: Request):
    return await serving_of(request).content(request, template)
