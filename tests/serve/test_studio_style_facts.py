"""The Write screen's extras in the studio API (docs/studio.md): GET /studio/api/styles, a piece written in a style
(a score per variant, kept with it; a style's LoRA writes as `style-NAME`), a facts table for report and
data-brief (each variant's numbers checked; a bad table is a 400 naming the field) and best-of-n (the kept
variant's check score and checks). A real server with the tiny model; profiles are learned in the test's
INKWELL_HOME, which the server reads."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from serve_helpers import start_server

KEY = "sk-studio-extras"
FAST = {"max_tokens": 10, "temperature": 0.8, "seed": 5}
FORMAL = [
    "The administration of justice remains the foundation of every civilised institution.",
    "Prosperity, unaccompanied by prudence, is transitory; the examples are numerous.",
    "Education constitutes the cultivation of judgement; information is insufficient without it.",
    "Governments accumulate responsibilities gradually; relinquishing them requires determination.",
    "Institutions endure when their purposes are comprehensible to citizens.",
]
CUP = "team,goals\nReds,3\nBlues,1\n"


@pytest.fixture(scope="module")
def studio(tiny_chat_model, lora_adapters, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("studio-extras")
    server = start_server(tiny_chat_model, tmp, api_keys=[KEY], adapters={"alpha": lora_adapters["alpha"]})
    server.db = tmp / "serve.db"
    server.lora = lora_adapters["beta"]
    yield server
    server.stop()


@pytest.fixture
def essayist():
    from inkwell.compose.style import Sample, learn_profile, save_profile

    save_profile(learn_profile("essayist", samples=[Sample(t) for t in FORMAL]))


def client(server, key: str | None = KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url + "/studio/api", headers=headers, timeout=120)


def write(server, **body) -> httpx.Response:
    body = {"template": "poem", "fields": {"topic": "justice"}, "settings": FAST, "stream": False, **body}
    return client(server).post("/pieces", json=body)


def piece_of(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def metadata(server, variant: dict) -> dict:
    with sqlite3.connect(server.db) as conn:
        row = conn.execute("SELECT metadata FROM generations WHERE id = ?", (variant["generation_id"],)).fetchone()
    return json.loads(row[0])


def events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]


# ---------------------------------------------------------------- styles


def test_styles_lists_the_profiles(studio, essayist):
    from inkwell.compose.style import load_profile, save_profile

    poet = load_profile("essayist")
    poet.name, poet.adapter, poet.adapter_model = "poet", studio.lora, studio.state.base_id
    save_profile(poet)
    assert error_of(client(studio, None).get("/styles"), 401)["code"] == "invalid_api_key"
    listed = {s["name"]: s for s in client(studio).get("/styles").json()["data"]}
    assert set(listed) == {"essayist", "poet"}
    assert listed["essayist"]["language"] == "en" and listed["essayist"]["samples"] == len(FORMAL)
    assert (listed["essayist"]["lora"], listed["poet"]["lora"]) == (False, True)


def test_a_piece_in_a_style_has_a_score_per_variant_kept_with_it(studio, essayist):
    piece = piece_of(write(studio, style="essayist", n=2))
    assert piece["style"] == "essayist" and any(text in piece["prompt"] for text in FORMAL)  # exemplars as shots
    assert [v["system"] for v in piece["variants"]] == ["base", "base"]
    for variant in piece["variants"]:
        assert variant["style"]["name"] == "essayist" and 0.0 <= variant["style"]["score"] <= 1.0
        assert metadata(studio, variant)["style"] == variant["style"]  # stored with the variant's generation
    again = client(studio).get(f"/pieces/{piece['id']}").json()
    assert [v["style"] for v in again["variants"]] == [v["style"] for v in piece["variants"]]
    more = piece_of(client(studio).post(f"/pieces/{piece['id']}/variants", json={"stream": False}))
    assert len(more["variants"]) == 3 and more["variants"][-1]["style"]["name"] == "essayist"


def test_a_style_with_a_lora_writes_with_it(studio, essayist):
    from inkwell.compose.style import load_profile, save_profile

    poet = load_profile("essayist")
    poet.name, poet.adapter, poet.adapter_model = "poet", studio.lora, studio.state.base_id
    save_profile(poet)
    piece = piece_of(write(studio, style="poet"))
    assert piece["system"] == "style-poet" and piece["variants"][0]["system"] == "style-poet"
    more = piece_of(client(studio).post(f"/pieces/{piece['id']}/variants", json={"stream": False}))
    assert more["variants"][-1]["system"] == "style-poet" and more["variants"][-1]["style"]["name"] == "poet"
    # another system the creator picked is kept (the exemplars alone), as `inkwell write --adapter` is
    assert piece_of(write(studio, style="poet", system="alpha"))["variants"][0]["system"] == "alpha"


def test_unknown_or_invalid_style_is_a_4xx_naming_style(studio):
    error = error_of(write(studio, style="nobody"), 404)
    assert error["param"] == "style" and "nobody" in error["message"]
    assert error_of(write(studio, style="../etc"), 400)["param"] == "style"


# ---------------------------------------------------------------- facts tables


def test_a_report_from_a_table_has_its_numbers_checked(studio):
    body = {"template": "report", "fields": {"title": "Cup"}, "table": {"name": "cup.csv", "text": CUP}}
    piece = piece_of(write(studio, **body))
    assert piece["facts"]["rows"] == 2 and piece["facts"]["source"] == "cup.csv"
    assert "highest goals: Reds (3)" in piece["fields"]["facts"]
    variant = piece["variants"][0]
    check = variant["fact_check"]
    assert check["numbers_supported"] <= check["numbers"] and 1 <= check["attempts"] <= 3
    assert check["marked_text"].replace("⟦", "").replace("⟧", "") == variant["text"]
    for span in check["spans"]:
        assert variant["text"][span["start"] : span["end"]] == span["text"]
    assert metadata(studio, variant)["table"] == {"name": "cup.csv", "text": CUP}  # for "another"
    more = piece_of(client(studio).post(f"/pieces/{piece['id']}/variants", json={"stream": False}))
    assert "fact_check" in more["variants"][-1]


def test_a_pasted_chinese_table_reads_its_years_as_time(studio):
    rows = [{"年份": 2020, "销量": 100}, {"年份": 2021, "销量": 120}]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)  # pasted: no name, read as JSON lines
    piece = piece_of(write(studio, template="data-brief", fields={"language": "zh"}, table={"text": text}))
    assert piece["facts"]["order"] == "年份" and piece["facts"]["measures"] == ["销量"]
    assert "fact_check" in piece["variants"][0]


@pytest.mark.parametrize(
    "body, param, words",
    [
        ({"table": {"name": "cup.csv", "text": "team,goals\n"}}, "table", "cup.csv: the table is empty"),
        ({"table": {"name": "cup.csv", "text": "team,goals\nReds,3\nBlues,1,7\n"}}, "table", "cup.csv:3"),
        ({"table": {"text": "name,city\nAda,London\n"}}, "table", "no numeric column"),
        ({"table": {"name": "cup.xlsx", "text": CUP}}, "table.name", ".csv, .tsv, .jsonl or .json"),
        ({"table": {"text": ""}}, "table.text", ""),
        ({"table": {"text": CUP}, "fields": {"facts": "- 1"}}, "fields.facts", "not both"),
        ({"table": {"text": CUP}, "template": "poem", "fields": {"topic": "x"}}, "table", "takes no facts table"),
        ({"table": {"text": CUP}, "best_of": 2}, "best_of", "facts table"),
    ],
)
def test_bad_tables_are_400s_naming_the_field(studio, body, param, words):
    error = error_of(write(studio, **{"template": "report", "fields": {}, **body}), 400)
    assert error["param"] == param and words in error["message"]


# ---------------------------------------------------------------- best of n


def test_best_of_keeps_the_best_candidate_with_its_scores(studio):
    from inkwell.compose.checks import CHECKS

    with client(studio).stream(
        "POST",
        "/pieces",
        json={"template": "poem", "fields": {"topic": "rain"}, "settings": FAST, "best_of": 2, "n": 1},
    ) as response:
        assert response.status_code == 200
        seen = events(response)
    assert not [e for e in seen if e["type"] == "delta"]  # candidates are ranked at the end: no partial text
    variant = next(e for e in seen if e["type"] == "variant")["variant"]
    best = variant["best_of"]
    assert best["n"] == 2 and len(best["candidates"]) == 2 and 0.0 <= best["score"] <= 1.0
    assert set(best["checks"]) <= set(CHECKS) and set(best["failed"]) <= set(best["checks"])
    applicable = [ok for ok in best["checks"].values() if ok is not None]
    assert best["score"] == (round(sum(applicable) / len(applicable), 4) if applicable else 1.0)
    piece = seen[-1]["piece"]
    assert piece["best_of"] == 2 and metadata(studio, piece["variants"][0])["best_of"] == best
    more = piece_of(client(studio).post(f"/pieces/{piece['id']}/variants", json={"stream": False}))
    assert more["variants"][-1]["best_of"]["n"] == 2


def test_best_of_that_cannot_be_is_a_400_naming_it(studio):
    greedy = {**FAST, "temperature": 0}
    assert error_of(write(studio, best_of=2, settings=greedy), 400)["param"] == "best_of"
    assert error_of(write(studio, best_of=17), 400)["param"] == "best_of"
