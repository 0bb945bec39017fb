"""The studio's long-form endpoints (/studio/api/longform, docs/longform.md) on a real server with a tiny
model: plan, candidates section by section, choose, edit, go back (a branch), assemble; bad input is a 4xx
naming the field; another creator's run is not found."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import start_server

ALICE, BOB = "sk-long-alice", "sk-long-bob"
START = {"kind": "article", "topic": "how tides work", "words": 300, "settings": {"candidates": 2, "seed": 1}}


@pytest.fixture(scope="module")
def studio(tiny_chat_model, tmp_path_factory):
    server = start_server(tiny_chat_model, tmp_path_factory.mktemp("longform"), api_keys=[ALICE, BOB])
    yield server
    server.stop()


def client(server, key: str = ALICE) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/studio/api", headers={"Authorization": f"Bearer {key}"}, timeout=120)


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_a_piece_is_planned_written_section_by_section_branched_and_assembled(studio):
    api = client(studio)
    run = ok(api.post("/longform", json=START))
    assert [s["title"] for s in run["plan"]["sections"]][0] == "Introduction" and run["chain"] == []
    rid = run["id"]

    run = ok(api.post(f"/longform/{rid}/candidates", json={}))
    first = run["next"]
    assert len(first) == 2 and all(n["section"] == 0 and n["score"] is not None for n in first)
    run = ok(api.post(f"/longform/{rid}/candidates", json={"candidates": 1}))  # more to choose from
    assert len(run["next"]) == 3 and run["next"][2]["text"] not in {n["text"] for n in first}

    run = ok(api.post(f"/longform/{rid}/choose", json={"node_id": first[1]["id"]}))
    assert [n["id"] for n in run["chain"]] == [first[1]["id"]] and run["next_section"] == 1
    run = ok(api.post(f"/longform/{rid}/candidates", json={}))
    second = run["next"]
    run = ok(api.post(f"/longform/{rid}/edit", json={"node_id": second[0]["id"], "text": "Tides follow the moon."}))
    assert run["chain"][-1]["kind"] == "edit" and run["chain"][-1]["text"] == "Tides follow the moon."

    run = ok(api.post(f"/longform/{rid}/back", json={"node_id": None}))  # back to the start: a new branch
    assert run["chain"] == [] and {n["id"] for n in run["next"]} >= {n["id"] for n in first}
    run = ok(api.post(f"/longform/{rid}/choose", json={"node_id": first[0]["id"]}))
    assert [n["id"] for n in run["chain"]] == [first[0]["id"]]

    for _ in range(2):  # write the rest
        run = ok(api.post(f"/longform/{rid}/candidates", json={}))
        run = ok(api.post(f"/longform/{rid}/choose", json={"node_id": run["next"][0]["id"]}))
    assert run["complete"] and len(run["chain"]) == 3
    assert error_of(api.post(f"/longform/{rid}/candidates", json={}), 409)["code"] == "complete"

    piece = ok(api.get(f"/longform/{rid}/piece"))
    assert piece["complete"] and piece["markdown"].startswith("# How tides work\n\n## Introduction\n")
    assert len(piece["sections"]) == 3 and "length_score" in piece["measures"]
    assert [r["id"] for r in ok(api.get("/longform"))["data"]][0] == rid
    tree = ok(api.get(f"/longform/{rid}/tree"))["data"]
    assert len(tree) == 3 + 2 + 1 + 2 + 2 and sum(n["kind"] == "edit" for n in tree) == 1


def test_a_plan_that_does_not_validate_is_a_400_naming_the_field(studio):
    api = client(studio)
    run = ok(api.post("/longform", json=START))
    plan = run["plan"] | {"sections": [{"title": "Only", "words": 3}]}
    error = error_of(api.put(f"/longform/{run['id']}/plan", json={"plan": plan}), 400)
    assert error["param"] == "plan.sections[0].words"
    plan = run["plan"] | {"sections": [{"title": "Spring tides", "points": ["full moon"], "words": 120}]}
    assert ok(api.put(f"/longform/{run['id']}/plan", json={"plan": plan}))["plan"]["sections"][0]["title"] == (
        "Spring tides"
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"kind": "poem", "topic": "x"}, "kind"),
        ({"kind": "article", "topic": ""}, "topic"),
        ({"kind": "article", "topic": "x", "words": 20}, "words"),
        ({"kind": "article", "topic": "x", "system": "nope"}, "system"),
    ],
)
def test_bad_requests_name_the_field(studio, body, param):
    error = error_of(client(studio).post("/longform", json=body), 400)
    assert error["param"] == param


def test_another_creators_run_is_not_found_and_foreign_nodes_are_refused(studio):
    mine = ok(client(studio).post("/longform", json=START))
    error_of(client(studio, BOB).get(f"/longform/{mine['id']}"), 404)
    error_of(client(studio, BOB).post(f"/longform/{mine['id']}/candidates", json={}), 404)
    other = ok(client(studio).post("/longform", json=START))
    other = ok(client(studio).post(f"/longform/{other['id']}/candidates", json={}))
    error = error_of(
        client(studio).post(f"/longform/{mine['id']}/choose", json={"node_id": other["next"][0]["id"]}), 404
    )
    assert error["param"] == "node_id"


def test_a_section_too_long_for_the_models_window_is_a_400_not_a_500(studio):
    api = client(studio)
    run = ok(api.post("/longform", json=START | {"words": 3000, "sections": 3}))  # 1,000-word sections, 512 tokens
    error = error_of(api.post(f"/longform/{run['id']}/candidates", json={}), 400)
    assert error["param"] in ("words", "window") and "context" in error["message"] + error["param"]
