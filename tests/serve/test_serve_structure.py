"""The server's shape: small routers over one serving layer, the same routes as ever, and an OpenAPI document
whose published limits are exactly the ones the server enforces."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

import inkwell.serve
from inkwell.serve.api import ROUTERS
from inkwell.serve.app import create_app
from inkwell.serve.errors import APIError
from inkwell.serve.schemas import ChatCompletionRequest, CompletionRequest, openapi_schemas
from inkwell.serve.state import ServeConfig, ServerState

SERVE = Path(inkwell.serve.__file__).parent
CHAT = [{"role": "user", "content": "Write a poem"}]
ROUTES = {  # (method, path) -> operationId: what clients and generated SDKs rely on
    ("POST", "/v1/completions"): "completions_v1_completions_post",
    ("POST", "/v1/chat/completions"): "chat_completions_v1_chat_completions_post",
    ("POST", "/v1/content/{template}"): "content_v1_content__template__post",
    ("GET", "/v1/models"): "models_v1_models_get",
    ("GET", "/v1/templates"): "templates_v1_templates_get",
    ("GET", "/health"): "health_health_get",
    ("GET", "/metrics"): "prometheus_metrics_get",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    state = ServerState(ServeConfig(moderation=False, db_path=str(tmp_path_factory.mktemp("s") / "s.db")))
    return create_app(state)


def test_every_api_module_is_a_small_router():
    modules = sorted((SERVE / "api").glob("*.py"))
    assert {p.stem for p in modules} >= {"completions", "chat", "content", "models", "health"}
    for path in modules:
        assert len(path.read_text().splitlines()) <= 150, f"{path.name} is over 150 lines: move logic to serving.py"


def test_app_py_holds_no_endpoint_logic(app):
    tree = ast.parse((SERVE / "app.py").read_text())
    decorators = [
        ast.unparse(d)
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
        for d in node.decorator_list
    ]
    assert not [d for d in decorators if ".get(" in d or ".post(" in d or ".api_route(" in d]
    served = {
        (method, route.path): route.endpoint.__module__
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert set(served) == set(ROUTES)  # the app serves what the routers declare (see the OpenAPI test below)...
    assert all(module.startswith("inkwell.serve.api.") for module in served.values())  # ...and only that


def test_chat_and_completions_share_one_code_path():
    tree = ast.parse((SERVE / "serving.py").read_text())
    compared = {
        ast.unparse(side)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        for side in [node.left, *node.comparators]
    }
    assert not compared & {"'chat'", "'completion'", "'completions'"}  # the kind object says what differs


def test_routes_and_operation_ids_are_unchanged(app):
    paths = {p: ops for p, ops in app.openapi()["paths"].items() if not p.startswith("/studio/")}
    found = {(method.upper(), path): op["operationId"] for path, ops in paths.items() for method, op in ops.items()}
    assert found == ROUTES
    assert list(paths) == list(dict.fromkeys(path for _, path in ROUTES))  # in the same order


def test_the_studio_api_is_its_own_router_under_studio_api(app):
    from inkwell.serve.studio.api import router

    studio = {p for p in app.openapi()["paths"] if p.startswith("/studio/")}
    assert studio and all(p.startswith("/studio/api/") for p in studio)
    assert {route.path for route in router.routes if isinstance(route, APIRoute)} == studio
    assert all(route.endpoint.__module__ == "inkwell.serve.studio.api" for route in router.routes)


def test_request_bodies_are_published_and_every_reference_resolves(app):
    document = app.openapi()
    schemas = document["components"]["schemas"]
    for path, name in (
        ("/v1/completions", "CompletionRequest"),
        ("/v1/chat/completions", "ChatCompletionRequest"),
        ("/v1/content/{template}", "ContentRequest"),
    ):
        body = document["paths"][path]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{name}"}

    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs(document))


# ---------------------------------------------------------------- published limits == enforced limits


def _numeric_limits(model: str):
    """(field, value, accepted) on both sides of every numeric limit the document publishes for `model`."""
    for name, prop in openapi_schemas()[model]["properties"].items():
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") not in ("integer", "number"):
                continue
            step = 1 if branch["type"] == "integer" else 0.5
            if "minimum" in branch:
                yield name, branch["minimum"], True
                yield name, branch["minimum"] - step, False
            if "exclusiveMinimum" in branch:
                yield name, branch["exclusiveMinimum"], False
                yield name, branch["exclusiveMinimum"] + step, True
            if "maximum" in branch:
                yield name, branch["maximum"], True
                yield name, branch["maximum"] + step, False


@pytest.mark.parametrize("name, value, accepted", list(_numeric_limits("ChatCompletionRequest")))
def test_published_numeric_limits_are_the_enforced_ones(name, value, accepted):
    req = ChatCompletionRequest.model_validate({"messages": CHAT, name: value})  # parsing never checks limits...
    settings = lambda: req.to_settings(max_tokens_limit=100, default_max_tokens=5)  # noqa: E731
    if accepted:
        settings()
        return
    with pytest.raises(APIError) as info:  # ...the server's own check does, with a 400 naming the field
        settings()
    assert info.value.status == 400
    assert info.value.param == {"max_completion_tokens": "max_tokens"}.get(name, name)


def test_published_lengths_and_enums_are_the_enforced_ones():
    schemas = openapi_schemas()
    stop = schemas["ChatCompletionRequest"]["properties"]["stop"]["anyOf"]
    assert stop[0]["minLength"] == 1 and stop[1]["maxItems"] == 16 and stop[1]["items"]["minLength"] == 1
    settings = dict(max_tokens_limit=100, default_max_tokens=5)
    ChatCompletionRequest(messages=CHAT, stop=["x"] * 16).to_settings(**settings)
    for bad in ("", [""], ["x"] * 17):
        with pytest.raises(APIError):
            ChatCompletionRequest(messages=CHAT, stop=bad).to_settings(**settings)

    prompt = schemas["CompletionRequest"]["properties"]["prompt"]["anyOf"]
    assert prompt[0]["minLength"] == 1 and (prompt[1]["minItems"], prompt[1]["maxItems"]) == (1, 64)
    assert len(CompletionRequest(prompt=["x"] * 64).prompts()) == 64
    for bad in ("", [], [""], ["x"] * 65):
        with pytest.raises(APIError):
            CompletionRequest(prompt=bad).prompts()

    assert schemas["ChatCompletionRequest"]["properties"]["messages"]["minItems"] == 1
    with pytest.raises(APIError):
        ChatCompletionRequest(messages=[]).chat()
    assert schemas["ContentPart"]["properties"]["type"]["enum"] == ["text"]
    with pytest.raises(APIError):
        ChatCompletionRequest(messages=[{"role": "user", "content": [{"type": "image_url"}]}]).chat()
    assert schemas["ChatMessage"]["properties"]["role"]["enum"] == ["system", "user", "assistant", "developer"]
    assert schemas["ContentRequest"]["properties"]["stream"]["enum"] == [False]
    retries = schemas["ContentRequest"]["properties"]["json_retries"]
    assert (retries["minimum"], retries["maximum"]) == (0, 5)


def test_content_stream_is_refused_as_published(live_server):
    import httpx
    from serve_helpers import API_KEY

    r = httpx.post(
        f"{live_server.url}/v1/content/headline",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"fields": {"text": "x"}, "stream": True},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"


# ---------------------------------------------------------------- the history log


def test_a_store_failure_never_fails_a_request(tmp_path, caplog):
    from inkwell.generate.record import GenerationRecord

    state = ServerState(ServeConfig(moderation=False, db_path=str(tmp_path / "s.db")))
    record = GenerationRecord(
        text="t",
        model="m",
        adapter=None,
        template=None,
        fields=None,
        settings={},
        prompt="p",
        prompt_tokens=1,
        completion_tokens=1,
        latency_s=0.1,
        finish_reason="stop",
        source="serve",
        api_key_id="alice",
    )
    state.log_record(record)
    rows = state.with_store(lambda store: store.conn.execute("SELECT source, api_key_id FROM generations").fetchall())
    assert [tuple(row) for row in rows] == [("serve", "alice")]

    def broken(_action):
        raise OSError("disk full")

    state.with_store = broken
    with caplog.at_level(logging.ERROR, logger="inkwell.serve"):
        state.log_record(record)  # logged, not raised
    assert "could not log a generation" in caplog.text
    state.close()
