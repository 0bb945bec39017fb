"""The FastAPI app: the routers of serve/api/ over one serving layer, errors in OpenAI's shape, nothing more.

    GET  /v1/models                 base model and adapters (each adapter with its parent)
    POST /v1/completions            text completion (stream: true -> Server-Sent Events)
    POST /v1/chat/completions       chat completion (stream: true -> Server-Sent Events)
    POST /v1/content/{template}     template fields + settings -> content (JSON `data` for structured templates)
    GET  /v1/templates              the template library
    GET  /health                    503 while the model loads, 200 after (no key needed)
    GET  /metrics                   Prometheus text (no key needed)
    GET  /, /studio                 Inkwell Studio, the creator's web app; its JSON API under /studio/api
                                    (serve/studio/, docs/studio.md)

Which module serves which endpoint: serve/api/__init__.py.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from inkwell.serve.api import ROUTERS
from inkwell.serve.errors import APIError, internal
from inkwell.serve.schemas import openapi_schemas
from inkwell.serve.serving import Serving
from inkwell.serve.state import ServerState
from inkwell.serve.studio.api import page_router
from inkwell.serve.studio.api import router as studio_router
from inkwell.serve.studio.service import Studio

log = logging.getLogger("inkwell.serve")


def create_app(state: ServerState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        state.start_loading()
        yield
        await run_in_threadpool(state.close)  # after uvicorn drained in-flight requests

    app = FastAPI(
        title="Inkwell",
        description="OpenAI-compatible API over Inkwell's generation engine.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.inkwell = state
    app.state.serving = Serving(state)
    app.state.studio = Studio(app.state.serving)
    for router in [*ROUTERS, studio_router, page_router]:
        app.include_router(router)
    _install_error_handlers(app, state)
    _publish_request_bodies(app)
    return app


def _install_error_handlers(app: FastAPI, state: ServerState) -> None:
    """Every error leaves in OpenAI's shape (`{"error": {...}}`) and is counted by type."""

    def error_response(exc: APIError) -> JSONResponse:
        state.metrics.errors.labels(exc.code or exc.type).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError):
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        code = "not_found" if exc.status_code == 404 else None
        return error_response(APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"][1:]) or None  # loc: ("path" | "query", name, ...)
        return error_response(
            APIError(400, f"Invalid value for '{param}': {first['msg']}", param=param, code="invalid_value")
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        log.exception("request failed", exc_info=exc)
        return error_response(internal())


def _publish_request_bodies(app: FastAPI) -> None:
    """The routers read their own bodies (so that invalid ones get OpenAI-shaped 400s, not FastAPI's 422s)
    and name the body schemas by reference (`schemas.openapi_body`); the schemas join the document here."""
    build = app.openapi

    def openapi() -> dict:
        schema = app.openapi_schema
        if schema is None:
            schema = build()  # FastAPI's builder keeps it as app.openapi_schema
            schema.setdefault("components", {}).setdefault("schemas", {}).update(openapi_schemas())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
