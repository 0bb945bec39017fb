"""The studio's JSON API (/studio/api, docs/studio.md) on a real server with a tiny model: writing with
streaming, variants, edits, verdicts, history search, branches, blind comparisons, per-creator isolation and
bad input answered 4xx naming the field."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from serve_helpers import start_server

ALICE, BOB = "sk-studio-alice", "sk-studio-bob"
FIELDS = {"product": "bamboo water bottle", "audience": "hikers"}
FAST = {"max_tokens": 12, "temperature": 0.8, "seed": 3}


@pytest.fixture(scope="module")
def studio(tiny_chat_model, lora_adapters, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("studio")
    server = start_server(tiny_chat_model, tmp, adapters={"alpha": lora_adapters["alpha"]}, api_keys=[ALICE, BOB])
    server.db = tmp / "serve.db"
    yield server
    server.stop()


def client(server, key: str | None = ALICE) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url + "/studio/api", headers=headers, timeout=120)


def events(response: httpx.Response) -> list[dict]:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def write(server, key=ALICE, **body) -> dict:
    """A piece written without streaming: the whole piece."""
    body = {"template": "product-description", "fields": FIELDS, "settings": FAST, "stream": False, **body}
    response = client(server, key).post("/pieces", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


# ---------------------------------------------------------------- the page and auth


def test_the_page_is_served_at_root_and_studio_without_a_key(studio):
    for path in ("/", "/studio"):
        page = httpx.get(studio.url + path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert httpx.get(studio.url + "/studio/static/../../app.py").status_code == 404


def test_no_key_gets_401_and_no_data(studio):
    for path in ("/me", "/pieces", "/templates", "/leaderboard", "/feedback/export"):
        error = error_of(client(studio, None).get(path), 401)
        assert error["code"] == "invalid_api_key"
    assert error_of(client(studio, "sk-wrong").get("/me"), 401)["code"] == "invalid_api_key"


def test_me_templates_and_systems(studio):
    me = client(studio).get("/me").json()
    assert me["auth"] is True and me["user"].startswith("key-") and me["default_system"] == "base"
    templates = {t["name"]: t for t in client(studio).get("/templates").json()["data"]}
    fields = {f["name"]: f for f in templates["product-description"]["fields"]}
    assert fields["product"]["required"] and fields["words"]["type"] == "int"
    assert fields["tone"]["choices"][0] == "friendly"
    assert templates["lesson-quiz"]["structured"] is True
    systems = client(studio).get("/systems").json()["data"]
    assert [s["id"] for s in systems] == ["base", "alpha"] and systems[0]["default"] is True


# ---------------------------------------------------------------- writing


def test_streamed_piece_with_two_variants(studio):
    body = {"template": "product-description", "fields": FIELDS, "settings": FAST, "n": 2}
    with client(studio).stream("POST", "/pieces", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    kinds = [e["type"] for e in got]
    assert kinds[0] == "piece" and kinds[-1] == "done" and "delta" in kinds
    assert kinds.index("delta") < kinds.index("variant")  # text arrives before the variant is finished
    piece = got[-1]["piece"]
    assert len(piece["variants"]) == 2 and piece["chosen_variant"] == piece["variants"][0]["id"]
    streamed = "".join(e["text"] for e in got if e["type"] == "delta" and e["index"] == 0)
    assert streamed and piece["variants"][0]["text"].startswith(streamed[:3])
    assert piece["prompt"].startswith("<|im_start|>system")  # the exact text the engine saw
    assert piece["request"][-1]["role"] == "user" and "bamboo water bottle" in piece["request"][-1]["content"]
    with sqlite3.connect(studio.db) as db:  # each variant is in the generation history too
        rows = db.execute("SELECT source, output FROM generations WHERE source = 'studio'").fetchall()
    assert {v["text"] for v in piece["variants"]} <= {r[1] for r in rows}


def test_another_variant_choose_edit_and_verdict(studio):
    piece = write(studio)
    first = piece["variants"][0]
    with client(studio).stream("POST", f"/pieces/{piece['id']}/variants", json={}) as response:
        got = events(response)
    piece = got[-1]["piece"]
    assert len(piece["variants"]) == 2
    second = piece["variants"][1]
    piece = client(studio).post(f"/pieces/{piece['id']}/choose", json={"variant_id": second["id"]}).json()
    assert piece["chosen_variant"] == second["id"] and piece["text"] == second["text"]
    edit = "A bottle for long trails, edited by hand."
    piece = client(studio).post(f"/pieces/{piece['id']}/versions", json={"text": edit}).json()
    assert piece["text"] == edit and piece["original"] == second["text"]  # both kept
    assert piece["versions"][-1]["variant_id"] == second["id"]
    piece = (
        client(studio)
        .post(
            f"/pieces/{piece['id']}/feedback",
            json={"status": "accepted", "rating": 4, "tags": ["too long", "on-brand"]},
        )
        .json()
    )
    assert (piece["status"], piece["rating"], piece["tags"]) == ("accepted", 4, ["on-brand", "too long"])
    assert first["text"] in [v["text"] for v in piece["variants"]]


def test_search_finds_edits_and_filters(studio):
    piece = write(studio)
    client(studio).post(f"/pieces/{piece['id']}/versions", json={"text": "Zanzibar marmalade in every sip."})
    client(studio).post(f"/pieces/{piece['id']}/feedback", json={"rating": 5, "status": "accepted"})
    found = client(studio).get("/pieces", params={"q": "marmalade"}).json()
    assert [p["id"] for p in found["data"]] == [piece["id"]] and found["total"] == 1
    assert found["data"][0]["text"] == "Zanzibar marmalade in every sip."
    assert client(studio).get("/pieces", params={"q": "marmalade", "min_rating": 5}).json()["total"] == 1
    assert client(studio).get("/pieces", params={"q": "marmalade", "status": "rejected"}).json()["total"] == 0
    assert client(studio).get("/pieces", params={"q": "marmalade", "template": "poem"}).json()["total"] == 0
    assert client(studio).get("/pieces", params={"q": "marmalade", "since": "2999-01-01"}).json()["total"] == 0
    assert client(studio).get("/pieces", params={"q": "marmalade", "until": "2999-01-01"}).json()["total"] == 1


def test_branch_from_an_earlier_version(studio):
    piece = write(studio)
    one = client(studio).post(f"/pieces/{piece['id']}/versions", json={"text": "first edit"}).json()
    client(studio).post(f"/pieces/{piece['id']}/versions", json={"text": "second edit"})
    version = one["versions"][-1]["id"]
    child = client(studio).post(f"/pieces/{piece['id']}/branch", json={"version_id": version}).json()
    assert child["id"] != piece["id"] and child["parent_piece"] == piece["id"] and child["parent_version"] == version
    assert child["text"] == "first edit" and child["fields"] == piece["fields"] and child["prompt"] == piece["prompt"]


def test_a_trained_adapter_is_attached_on_first_use(studio, lora_adapters):
    """A creator's adapter (registered as feedback training does) is attached to the running engine between
    batches and writes differently from the base model; other creators cannot use it."""
    from inkwell.store import Store
    from inkwell.store.studio import StudioData

    me = client(studio).get("/me").json()["user"]
    store = Store(studio.db)
    StudioData(store).register_adapter(me, "fb-mine", lora_adapters["alpha"], None)
    store.close()
    greedy = {"max_tokens": 10, "temperature": 0}
    base = write(studio, settings=greedy)
    mine = write(studio, settings=greedy, system="fb-mine")
    assert mine["system"] == "fb-mine" and mine["variants"][0]["text"] != base["variants"][0]["text"]
    assert "fb-mine" in [s["id"] for s in client(studio).get("/systems").json()["data"]]
    assert "fb-mine" not in [s["id"] for s in client(studio, BOB).get("/systems").json()["data"]]
    error = error_of(
        client(studio, BOB).post(
            "/pieces", json={"template": "poem", "fields": {"topic": "rain"}, "system": "fb-mine"}
        ),
        400,
    )
    assert error["param"] == "system"


# ---------------------------------------------------------------- comparisons


def test_blind_comparison_hides_systems_until_judged(studio):
    body = {"template": "product-description", "fields": FIELDS, "systems": ["base", "alpha"], "settings": FAST}
    made = client(studio).post("/comparisons", json=body)
    assert made.status_code == 200, made.text
    comparison = made.json()
    assert set(comparison) == {"id", "left", "right"}
    pending = client(studio).get("/comparisons", params={"pending": "true"}).json()["data"]
    mine = next(c for c in pending if c["id"] == comparison["id"])
    assert "left_system" not in mine and "right_system" not in mine
    judged = client(studio).post(f"/comparisons/{comparison['id']}/judge", json={"winner": "left"}).json()
    assert {judged["left_system"], judged["right_system"]} == {"base", "alpha"}
    again = client(studio).post(f"/comparisons/{comparison['id']}/judge", json={"winner": "right"})
    assert error_of(again, 400)["param"] == "comparison_id"


# ---------------------------------------------------------------- isolation


def test_one_creator_never_sees_anothers_pieces(studio):
    piece = write(studio)
    pid = piece["id"]
    bob = client(studio, BOB)
    for response in (
        bob.get(f"/pieces/{pid}"),
        bob.post(f"/pieces/{pid}/variants", json={"stream": False}),
        bob.post(f"/pieces/{pid}/choose", json={"variant_id": piece["variants"][0]["id"]}),
        bob.post(f"/pieces/{pid}/versions", json={"text": "mine now"}),
        bob.post(f"/pieces/{pid}/feedback", json={"rating": 1}),
        bob.post(f"/pieces/{pid}/branch", json={}),
    ):
        assert error_of(response, 404)["code"] == "not_found"
    assert bob.get("/pieces").json()["total"] == 0
    assert bob.get("/comparisons").json()["data"] == []
    assert client(studio).get(f"/pieces/{pid}").json()["text"] == piece["text"]  # untouched


def test_one_creator_never_reads_exports_or_trains_on_anothers_data(studio):
    """Every studio endpoint that reads stored data, with Bob's key on Alice's rows."""
    from inkwell.store import Store
    from inkwell.store.studio import StudioData

    alice, bob = client(studio), client(studio, BOB)
    piece = write(studio)
    alice.post(f"/pieces/{piece['id']}/versions", json={"text": "Alice's own words, edited."})
    alice.post(f"/pieces/{piece['id']}/feedback", json={"status": "accepted"})
    body = {"template": "product-description", "fields": FIELDS, "systems": ["base", "alpha"], "settings": FAST}
    comparison = alice.post("/comparisons", json=body).json()
    me = alice.get("/me").json()["user"]
    store = Store(studio.db)
    job = StudioData(store).new_job(me, stage="sft", base="base", run_path=str(studio.db.parent), data={})
    store.close()
    assert "Alice's own words" in alice.get("/feedback/export", params={"kind": "sft"}).text
    for kind in ("sft", "dpo"):
        exported = bob.get("/feedback/export", params={"kind": kind})
        assert exported.status_code == 200 and exported.text == "" and exported.headers["x-inkwell-rows"] == "0"
    assert bob.get("/feedback/summary").json() == {"sft": 0, "dpo": 0, "pieces": 0, "comparisons": 0}
    assert error_of(bob.post(f"/comparisons/{comparison['id']}/judge", json={"winner": "left"}), 404)
    assert bob.get("/leaderboard").json()["data"] == []
    assert bob.get("/training").json()["data"] == []
    for response in (
        bob.get(f"/training/{job}"),
        bob.post(f"/training/{job}/round", json={}),
        bob.post(f"/training/{job}/decide", json={"action": "promote"}),
    ):
        assert error_of(response, 404)["param"] == "job_id"
    assert alice.get(f"/training/{job}").status_code == 200


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"template": "no-such-template"}, 404, "template"),
        ({"template": "product-description", "fields": {}}, 400, "fields.product"),
        ({"template": "product-description", "fields": {"prodct": "x"}}, 400, "fields.prodct"),
        ({"template": "product-description", "fields": {**FIELDS, "tone": "angry"}}, 400, "fields.tone"),
        ({"template": "product-description", "fields": {**FIELDS, "words": "many"}}, 400, "fields.words"),
        (
            {"template": "product-description", "fields": FIELDS, "settings": {"temperature": -1}},
            400,
            "settings.temperature",
        ),
        (
            {"template": "product-description", "fields": FIELDS, "settings": {"max_tokens": 0}},
            400,
            "settings.max_tokens",
        ),
        (
            {"template": "product-description", "fields": FIELDS, "settings": {"max_tokens": 9999}},
            400,
            "settings.max_tokens",
        ),
        ({"template": "product-description", "fields": FIELDS, "settings": {"colour": 1}}, 400, "settings.colour"),
        ({"template": "product-description", "fields": FIELDS, "n": 9}, 400, "n"),
        ({"template": "product-description", "fields": FIELDS, "system": "gpt-9"}, 400, "system"),
        ({"fields": FIELDS}, 400, "template"),
    ],
)
def test_bad_piece_requests_name_the_field(studio, body, status, param):
    assert error_of(client(studio).post("/pieces", json=body), status)["param"] == param


def test_bad_bodies_ids_and_queries(studio):
    c = client(studio)
    assert error_of(c.post("/pieces", content=b"{not json"), 400)["message"].startswith("The request body")
    assert error_of(c.get("/pieces/abc"), 400)["param"] == "piece_id"
    assert error_of(c.get(f"/pieces/{2**70}"), 400)["param"] == "piece_id"
    assert error_of(c.get("/pieces/999999"), 404)["param"] == "piece_id"
    piece = write(studio)
    assert error_of(c.post(f"/pieces/{piece['id']}/feedback", json={"rating": 7}), 400)["param"] == "rating"
    assert error_of(c.post(f"/pieces/{piece['id']}/feedback", json={"status": "great"}), 400)["param"] == "status"
    assert error_of(c.post(f"/pieces/{piece['id']}/choose", json={"variant_id": 999999}), 404)["param"] == "variant_id"
    assert error_of(c.post(f"/pieces/{piece['id']}/versions", json={"text": "x" * 100_001}), 400)["param"] == "text"
    assert error_of(c.get("/pieces", params={"since": "last tuesday"}), 400)["param"] == "since"
    assert error_of(c.get("/pieces", params={"limit": 0}), 400)["param"] == "limit"
    same = {"template": "poem", "fields": {"topic": "rain"}, "systems": ["base", "base"]}
    assert error_of(c.post("/comparisons", json=same), 400)["param"] == "systems"
    assert error_of(c.post("/comparisons/999999/judge", json={"winner": "left"}), 404)["param"] == "comparison_id"
    assert error_of(c.post("/comparisons/1/judge", json={"winner": "both"}), 400)["param"] == "winner"


def test_a_remote_system_writes_through_another_openai_compatible_server(studio):
    """`--remote NAME=MODEL@URL`: here the studio's own /v1 stands in for a GPU box."""
    studio.state.config.remotes["mirror"] = f"tiny-chat@{studio.url}/v1"
    studio.state.config.remote_api_key = ALICE
    try:
        systems = {s["id"]: s for s in client(studio).get("/systems").json()["data"]}
        assert systems["mirror"]["kind"] == "remote"
        greedy = {"max_tokens": 8, "temperature": 0}
        remote = write(studio, system="mirror", settings=greedy)
        local = write(studio, settings=greedy)
        assert remote["system"] == "mirror" and remote["variants"][0]["text"] == local["variants"][0]["text"]
        with client(studio).stream("POST", "/pieces", json={**_body(), "system": "mirror"}) as response:
            assert [e["type"] for e in events(response)][-1] == "done"
    finally:
        studio.state.config.remotes.pop("mirror")


def _body() -> dict:
    return {"template": "product-description", "fields": FIELDS, "settings": FAST}


def test_a_blind_round_compares_the_new_adapter_with_the_system_it_was_graded_against(studio, tmp_path):
    """A finished job (written here as the job process leaves it) graded against the creator's promoted fb-7:
    its round pairs fb-7 with the new fb-N on each held-back piece, in random order, hidden until judged."""
    from inkwell.store import Store
    from inkwell.store.studio import StudioData

    me = client(studio).get("/me").json()["user"]
    item = {
        "template": "poem",
        "fields": {"topic": "rain"},
        "request": [{"role": "user", "content": "x"}],
        "prompt": "x",
    }
    report = {
        "compared_with": "fb-7",
        "heldout": [{**item, "piece_id": i, "base_text": f"old {i}", "new_text": f"new {i}"} for i in (1, 2)],
        "systems": {},
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "job-status.json").write_text('{"status": "finished"}')
    store = Store(studio.db)
    job = StudioData(store).new_job(me, stage="sft", base="fb-7", run_path=str(tmp_path), data={})
    store.close()
    made = client(studio).post(f"/training/{job}/round", json={})
    assert made.status_code == 200, made.text
    ids = made.json()["comparisons"]
    pending = {c["id"]: c for c in client(studio).get("/comparisons", params={"pending": "true"}).json()["data"]}
    assert set(ids) <= set(pending) and all("left_system" not in pending[i] for i in ids)
    judged = client(studio).post(f"/comparisons/{ids[0]}/judge", json={"winner": "tie"}).json()
    assert {judged["left_system"], judged["right_system"]} == {"fb-7", f"fb-{job}"}
    assert error_of(client(studio).post(f"/training/{job}/round", json={}), 400)["param"] == "job_id"  # once
