"""`kb` on the server: /v1/content/{template} and /v1/chat/completions ground on a knowledge folder and answer
with citations; the studio lists folders and writes pieces on one; an unknown folder is a 404 naming `kb`; a
template with an unknown_reply escalates without the model. A tiny model with a 4096-token context."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
from serve_helpers import API_KEY, start_server

sys.path.insert(0, str(Path(__file__).parents[1] / "knowledge"))
from kb_helpers import shop_folder, tiny_chat_model  # noqa: E402

ON_TOPIC = "My mug arrived broken. What can you do?"
OFF_TOPIC = "What is the capital of Peru?"
FAST = {"max_tokens": 6, "seed": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = tiny_chat_model(tmp_path_factory.mktemp("models") / "tiny-4k", 4096)
    tmp = tmp_path_factory.mktemp("serve-kb")
    live = start_server(model, tmp, api_keys=[API_KEY])
    live.db = tmp / "serve.db"
    yield live
    live.stop()


@pytest.fixture
def shop(tmp_path):
    from inkwell.knowledge import KnowledgeBase

    KnowledgeBase.create("shop").add([shop_folder(tmp_path)])  # this test's INKWELL_HOME, which the server reads


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)


def stored(server) -> list[dict]:
    with sqlite3.connect(server.db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM generations ORDER BY id")]


def test_content_with_kb_cites_and_logs(server, shop):
    body = {"fields": {"message": ON_TOPIC}, "kb": "shop", **FAST}
    response = post(server, "/v1/content/customer-service-reply", body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["grounding"]["known"] and data["grounding"]["passages"][0]["heading"].endswith("Broken items")
    assert isinstance(data["choices"][0]["citations"], list)
    assert "support" in data["choices"][0]  # what supports each sentence (and a quote where nothing does)
    row = stored(server)[-1]
    assert "We ship a replacement at no cost" in row["prompt"]
    assert "kb_passages" not in json.loads(row["fields"])
    assert json.loads(row["metadata"])["grounding"]["kb"] == "shop"


def test_content_escalates_without_the_model(server, shop):
    before = len(stored(server))
    body = {"fields": {"message": OFF_TOPIC, "agent": "Sam"}, "kb": "shop"}
    data = post(server, "/v1/content/customer-service-reply", body).json()
    (choice,) = data["choices"]
    assert choice["finish_reason"] == "escalated" and choice["citations"] == []
    assert choice["text"].startswith("Thank you for getting in touch.") and choice["text"].endswith("Sam")
    assert data["usage"]["completion_tokens"] == 0 and data["grounding"]["escalated"]
    rows = stored(server)
    assert len(rows) == before + 1 and rows[-1]["finish_reason"] == "escalated"


def test_unknown_or_invalid_kb_is_a_4xx_naming_kb(server, shop):
    for path, body in [
        ("/v1/content/customer-service-reply", {"fields": {"message": "hi"}, "kb": "nope"}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "kb": "nope"}),
    ]:
        response = post(server, path, body)
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["param"] == "kb" and error["code"] == "kb_not_found" and "nope" in error["message"]
    response = post(server, "/v1/content/customer-service-reply", {"fields": {"message": "hi"}, "kb": "../etc"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "kb"


def test_chat_with_kb_whole_and_streamed(server, shop):
    messages = [{"role": "user", "content": ON_TOPIC}]
    data = post(server, "/v1/chat/completions", {"messages": messages, "kb": "shop", **FAST}).json()
    assert isinstance(data["choices"][0]["citations"], list) and data["grounding"]["known"]
    assert "We ship a replacement at no cost" in stored(server)[-1]["prompt"]
    body = {"messages": messages, "kb": "shop", "stream": True, **FAST}
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    last = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]][-1]
    assert "citations" in last["choices"][0]
    plain = post(server, "/v1/chat/completions", {"messages": messages, **FAST}).json()
    assert "citations" not in plain["choices"][0] and "grounding" not in plain  # without kb: OpenAI's shape


def test_studio_lists_folders_and_writes_a_cited_piece(server, shop):
    studio = httpx.Client(
        base_url=server.url + "/studio/api", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120
    )
    assert studio.get("/knowledge").json()["data"][0]["name"] == "shop"
    body = {"template": "customer-service-reply", "fields": {"message": ON_TOPIC}, "kb": "shop", "stream": False}
    piece = studio.post("/pieces", json={**body, "settings": {"max_tokens": 6, "seed": 1}}).json()
    assert "kb_passages" not in piece["fields"]
    assert piece["grounding"]["kb"] == "shop" and isinstance(piece["variants"][0]["citations"], list)
    again = studio.post(f"/pieces/{piece['id']}/variants", json={"stream": False}).json()
    assert all("citations" in v for v in again["variants"])  # "another" keeps the piece's passages
    assert studio.get(f"/pieces/{piece['id']}").json()["grounding"]["known"]
    escalated = studio.post("/pieces", json={**body, "fields": {"message": OFF_TOPIC}}).json()
    assert escalated["variants"][0]["finish_reason"] == "escalated"
    assert escalated["variants"][0]["text"].startswith("Thank you for getting in touch.")
    error = studio.post("/pieces", json={**body, "kb": "nope"})
    assert error.status_code == 404 and error.json()["error"]["param"] == "kb"
