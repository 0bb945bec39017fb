"""POST /v1/content/{template} with `data` (a facts table as row objects) for report and data-brief: the facts
and the check come back with the content; bad tables are 400s naming `data`; the OpenAPI document publishes
the limits the server enforces. The shared tiny-model server (tests/serve/conftest.py)."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import API_KEY

from inkwell.compose.facts import MAX_ROWS
from inkwell.serve.schemas import openapi_schemas

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
ROWS = [{"team": "Reds", "goals": 3}, {"team": "Blues", "goals": 1}]


def post(server, template: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/content/{template}", headers=HEADERS, timeout=120, json=body)


def test_content_from_a_table_carries_facts_and_checks(live_server):
    r = post(live_server, "report", {"data": ROWS, "fields": {"title": "Cup"}, "max_tokens": 8, "seed": 1, "n": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["facts"]["rows"] == 2 and body["facts"]["source"] == "data"
    assert {"id": "goals.max", "text": "highest goals: Reds (3)"} in body["facts"]["facts"]
    assert len(body["choices"]) == 2
    for choice in body["choices"]:
        check = choice["fact_check"]
        assert 1 <= check["attempts"] == len(check["unsupported_per_attempt"]) <= 3
        for span in check["spans"]:
            assert choice["text"][span["start"] : span["end"]] == span["text"]


@pytest.mark.parametrize(
    "template, body, param, words",
    [
        ("report", {"data": []}, "data", "empty"),
        ("report", {"data": [{"name": "Ada", "city": "London"}]}, "data", "no numeric column"),
        ("report", {"data": [{"team": "Reds", "goals": [1, 2]}]}, "data", "row 1, column 'goals'"),
        ("report", {"data": [{"n": i} for i in range(MAX_ROWS + 1)]}, "data", "too large"),
        ("report", {"data": ["not a row"]}, "data.0", ""),
        ("report", {"data": ROWS, "fields": {"facts": "- 1"}}, "facts", "not both"),
        ("headline", {"data": ROWS, "fields": {"text": "x"}}, "data", "takes no facts table"),
        ("report", {"data": ROWS, "fact_retries": 9}, "fact_retries", ""),
    ],
)
def test_bad_tables_are_400s_naming_the_field(live_server, template, body, param, words):
    r = post(live_server, template, {"max_tokens": 4, **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_the_published_schema_is_what_is_enforced():
    properties = openapi_schemas()["ContentRequest"]["properties"]
    table = next(branch for branch in properties["data"]["anyOf"] if branch.get("type") == "array")
    assert (table["minItems"], table["maxItems"]) == (1, MAX_ROWS) and table["items"]["type"] == "object"
    assert (properties["fact_retries"]["minimum"], properties["fact_retries"]["maximum"]) == (0, 5)
