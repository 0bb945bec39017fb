"""POST /v1/content/{template} with `best_of`: N candidates per choice, the best returned with its scores (and
logged with them); out-of-range values, greedy decoding and facts tables are 400s naming best_of; the OpenAPI
document publishes the limits the server enforces. The shared tiny-model server (tests/serve/conftest.py)."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import API_KEY

from inkwell.compose.bestof import MAX_BEST_OF
from inkwell.serve.errors import APIError
from inkwell.serve.schemas import ContentRequest, openapi_schemas

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
TEXT = "Main Street's bakery reopened on Monday after three weeks of flood repairs, owner Maria Lopez said."


def post(server, template: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/content/{template}", headers=HEADERS, timeout=120, json=body)


def test_best_of_returns_the_best_candidate_with_its_scores(live_server):
    body = {"fields": {"text": TEXT}, "max_tokens": 6, "seed": 2, "best_of": 3, "n": 2}
    r = post(live_server, "headline", body)
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert len(choices) == 2
    for rank, choice in enumerate(choices, start=1):
        scores = choice["best_of"]
        assert scores["n"] == 3 and scores["rank"] == rank and len(scores["candidates"]) == 6
        assert set(scores["checks"]) >= {"facts", "length", "language", "invented", "leaks"}
        assert scores["score"] == max(c["score"] for c in scores["candidates"]) or rank == 2
    assert choices[0]["best_of"]["score"] >= choices[1]["best_of"]["score"]
    plain = post(live_server, "headline", {"fields": {"text": TEXT}, "max_tokens": 6, "seed": 2})
    assert plain.status_code == 200 and "best_of" not in plain.json()["choices"][0]


def test_the_scores_are_logged_with_the_generation(live_server):
    from inkwell.store import Store

    r = post(live_server, "headline", {"fields": {"text": TEXT}, "max_tokens": 5, "seed": 9, "best_of": 2})
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["text"]
    store = Store(live_server.state.config.db_path)
    try:
        rows = [row for row in store.history(limit=50) if row["source"] == "serve" and row["output"] == text]
    finally:
        store.close()
    assert rows and rows[0]["metadata"]["best_of"]["n"] == 2


@pytest.mark.parametrize(
    "body, words",
    [
        ({"best_of": 0}, "between 1 and 16"),
        ({"best_of": MAX_BEST_OF + 1}, "between 1 and 16"),
        ({"best_of": 16, "n": 5}, "at most 64"),
        ({"best_of": 4, "temperature": 0}, "temperature 0"),
        ({"best_of": 2, "data": [{"team": "Reds", "goals": 3}]}, "cannot be combined with data"),
        ({"best_of": "four"}, ""),
    ],
)
def test_bad_best_of_is_a_400_naming_it(live_server, body, words):
    template = "report" if "data" in body else "headline"
    fields = {} if "data" in body else {"text": TEXT}
    r = post(live_server, template, {"fields": fields, "max_tokens": 4, **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "best_of" and words in error["message"]


def test_the_published_best_of_limits_are_the_enforced_ones():
    prop = openapi_schemas()["ContentRequest"]["properties"]["best_of"]
    assert (prop["minimum"], prop["maximum"], prop["default"]) == (1, MAX_BEST_OF, 1)
    for value, accepted in ((1, True), (MAX_BEST_OF, True), (0, False), (MAX_BEST_OF + 1, False)):
        request = ContentRequest.model_validate({"best_of": value})
        if accepted:
            request.best_of_overrides({})
            continue
        with pytest.raises(APIError) as info:
            request.best_of_overrides({})
        assert info.value.status == 400 and info.value.param == "best_of"
