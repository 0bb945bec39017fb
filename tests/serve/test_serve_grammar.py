"""Constrained decoding through the server: OpenAI's `response_format` (json_schema, json_object) and vLLM's
`structured_outputs` (regex, choice) on /v1/chat/completions and /v1/completions, 400s naming the field for bad
ones, and the OpenAI Python client's own `response_format` call. The shared tiny-model server."""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
from serve_helpers import API_KEY

SCHEMA = {
    "type": "object",
    "required": ["title", "mood"],
    "properties": {"title": {"type": "string", "maxLength": 20}, "mood": {"enum": ["calm", "wild"]}},
    "additionalProperties": False,
}
CHAT = [{"role": "user", "content": "A title and a mood, as JSON."}]


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)


def test_chat_with_a_json_schema_response_format_returns_valid_json(live_server):
    body = {
        "messages": CHAT,
        "max_tokens": 80,
        "n": 3,
        "seed": 4,
        "temperature": 1.0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "card", "schema": SCHEMA}},
    }
    response = post(live_server, "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    for choice in response.json()["choices"]:
        assert choice["finish_reason"] == "stop"
        jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)


def test_completions_take_vllm_structured_outputs(live_server):
    body = {
        "prompt": "Sentiment:",
        "max_tokens": 10,
        "n": 4,
        "seed": 1,
        "structured_outputs": {"choice": ["up", "down"]},
    }
    response = post(live_server, "/v1/completions", body)
    assert response.status_code == 200, response.text
    assert {c["text"] for c in response.json()["choices"]} <= {"up", "down"}
    body = {"prompt": "Code:", "max_tokens": 10, "seed": 1, "structured_outputs": {"regex": "[A-Z]{3}-[0-9]{2}"}}
    (choice,) = post(live_server, "/v1/completions", body).json()["choices"]
    assert re.fullmatch("[A-Z]{3}-[0-9]{2}", choice["text"])
    body = {"prompt": "Data:", "max_tokens": 40, "seed": 2, "response_format": {"type": "json_object"}}
    (choice,) = post(live_server, "/v1/completions", body).json()["choices"]
    if choice["finish_reason"] == "stop":
        assert isinstance(json.loads(choice["text"]), dict)
    else:
        assert choice["text"].startswith("{")  # cut at max_tokens: still the start of an object


def test_bad_grammar_requests_are_400s_naming_the_field(live_server):
    cases = [
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"structured_outputs": {"regex": "(unclosed"}}, "grammar.regex"),
        ({"structured_outputs": {"choice": []}}, "grammar.choices"),
        ({"structured_outputs": {"xml": "<a/>"}}, "structured_outputs"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "strin"}}}},
            "grammar.json_schema",
        ),
    ]
    for extra, param in cases:
        response = post(live_server, "/v1/chat/completions", {"messages": CHAT, "max_tokens": 5, **extra})
        assert response.status_code == 400, (extra, response.text)
        assert response.json()["error"]["param"] == param, (extra, response.json())


def test_the_openai_client_gets_json_for_its_response_format(live_server):
    reply = live_server.client().chat.completions.create(
        model="tiny-chat",
        messages=CHAT,
        max_tokens=80,
        seed=7,
        response_format={"type": "json_schema", "json_schema": {"name": "card", "schema": SCHEMA}},
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)
