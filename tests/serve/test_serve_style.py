"""`style` on POST /v1/content/{template}: the style's exemplars reach the prompt as few-shot examples, each choice
carries its style-match score, an unknown style is a 404 naming `style`, and the OpenAPI document declares the
field. The shared tiny-model server; the profile is learned in the test's INKWELL_HOME, which the server reads."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from serve_helpers import API_KEY

FORMAL = [
    "The administration of justice remains the foundation of every civilised institution.",
    "Prosperity, unaccompanied by prudence, is transitory; the examples are numerous.",
    "Education constitutes the cultivation of judgement; information is insufficient without it.",
    "Governments accumulate responsibilities gradually; relinquishing them requires determination.",
    "Institutions endure when their purposes are comprehensible to citizens.",
]


@pytest.fixture
def essayist():
    from inkwell.compose.style import Sample, learn_profile, save_profile

    save_profile(learn_profile("essayist", samples=[Sample(t) for t in FORMAL]))


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)


def test_content_with_style_uses_exemplars_and_scores(live_server, essayist):
    body = {"fields": {"topic": "justice"}, "style": "essayist", "max_tokens": 6, "seed": 1}
    response = post(live_server, "/v1/content/poem", body)
    assert response.status_code == 200, response.text
    match = response.json()["choices"][0]["style"]
    assert match["name"] == "essayist" and 0.0 <= match["score"] <= 1.0 and "ngram" in match
    with sqlite3.connect(live_server.state.config.db_path) as conn:
        prompt = conn.execute("SELECT prompt FROM generations ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert any(text in prompt for text in FORMAL)


def test_unknown_or_invalid_style_is_a_4xx_naming_style(live_server, essayist):
    response = post(live_server, "/v1/content/poem", {"fields": {"topic": "x"}, "style": "nobody"})
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["param"] == "style" and error["code"] == "style_not_found" and "nobody" in error["message"]
    response = post(live_server, "/v1/content/poem", {"fields": {"topic": "x"}, "style": "../etc"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "style"


def test_openapi_declares_style(live_server):
    document = httpx.get(live_server.url + "/openapi.json", timeout=30).json()
    field = document["components"]["schemas"]["ContentRequest"]["properties"]["style"]
    assert {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"} in field["anyOf"]
