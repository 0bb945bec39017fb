"""Reader matching (compose/rank.py): ranking order with keywords, liked texts and a classifier, the reasons,
NDCG, reader profile files, and bad input. The embedder is the real MiniLM; the classifier is a stub."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from cli_helpers import run  # noqa: E402

from inkwell.compose.rank import Candidate, Reader, load_reader, ndcg_at, rank_candidates, read_candidates  # noqa: E402
from inkwell.errors import InkwellError  # noqa: E402

CANDIDATES = [
    Candidate("law", "The court ruled that the contract was void and the lawyer lost the appeal."),
    Candidate("cake", "Bake the chocolate cake for forty minutes, then cover it with cream and cherries."),
    Candidate("stars", "The telescope found a new planet orbiting a distant star."),
    Candidate("soup", "A bowl of hot tomato soup with fresh bread is the best dinner in winter."),
]


def test_keywords_rank_the_matching_topic_first():
    ranked = rank_candidates(Reader(keywords=["food", "cooking"]), CANDIDATES)
    assert {r.id for r in ranked[:2]} == {"cake", "soup"}
    assert ranked[0].score >= ranked[1].score >= ranked[-1].score
    assert any("topic 'food'" in reason or "topic 'cooking'" in reason for reason in ranked[0].reasons)
    assert "keywords" in ranked[0].parts and "liked" not in ranked[0].parts


def test_liked_texts_rank_and_explain():
    reader = Reader(liked=["Astronomers observed the planet Jupiter through a telescope at night."])
    ranked = rank_candidates(reader, CANDIDATES)
    assert ranked[0].id == "stars"
    reasons = " | ".join(ranked[0].reasons)
    assert "close to liked #1" in reasons and "shared words: planet, telescope" in reasons


def test_a_classifier_moves_its_labels_up():
    def classify(texts):
        return [
            {
                "label": "law" if "court" in t or t == "law" else "x",
                "probabilities": {"law": 1.0 if "court" in t or t == "law" else 0.0},
            }
            for t in texts
        ]

    ranked = rank_candidates(Reader(keywords=["law"], labels=["law"]), CANDIDATES, classify=classify)
    assert ranked[0].id == "law" and ranked[0].parts["classifier"] == 1.0
    assert any(reason.startswith("classifier: law") for reason in ranked[0].reasons)
    # labels inferred from the reader's own keywords when the profile names none
    ranked = rank_candidates(Reader(keywords=["law"]), CANDIDATES, classify=classify)
    assert ranked[0].id == "law"


def test_chinese_readers_use_character_ngrams():
    candidates = [Candidate("moon", "明月几时有，把酒问青天。"), Candidate("rain", "好雨知时节，当春乃发生。")]
    ranked = rank_candidates(Reader(liked=["床前明月光，举头望明月。"]), candidates)
    assert ranked[0].id == "moon"


def test_ndcg():
    assert ndcg_at([1, 1, 0, 0, 0]) == 1.0
    assert ndcg_at([0, 0, 0, 0, 0, 1, 1]) == 0.0
    assert 0 < ndcg_at([0, 1, 0, 1, 0]) < 1
    assert ndcg_at([]) == 0.0


def test_reader_files(tmp_path):
    text = tmp_path / "reader.txt"
    text.write_text("# my interests\nfood\ncooking at home\nA long liked text about baking bread on Sundays.\n")
    reader = load_reader(text)
    assert reader.keywords == ["food", "cooking at home"] and len(reader.liked) == 1
    profile = tmp_path / "reader.json"
    profile.write_text(json.dumps({"keywords": "law", "liked": ["x y z"], "classifier": "runs/c", "labels": ["law"]}))
    reader = load_reader(profile)
    assert reader.keywords == ["law"] and reader.classifier.endswith("runs/c") and reader.labels == ["law"]
    rows = tmp_path / "reader.jsonl"
    rows.write_text(json.dumps({"text": "liked one"}) + "\n" + json.dumps({"keyword": "space"}) + "\n")
    reader = load_reader(rows)
    assert reader.liked == ["liked one"] and reader.keywords == ["space"]


def test_empty_reader_and_bad_candidates_are_refused(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"keywords": [], "liked": ["  "]}))
    with pytest.raises(InkwellError, match=r"reader profile .*empty.json is empty"):
        load_reader(empty)
    with pytest.raises(InkwellError, match="'keywords' must be a list of strings"):
        empty.write_text(json.dumps({"keywords": [1]}))
        load_reader(empty)
    none = tmp_path / "none.jsonl"
    none.write_text("\n")
    with pytest.raises(InkwellError, match="holds no candidates"):
        read_candidates(none)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 1}) + "\n")
    with pytest.raises(InkwellError, match=r"bad.jsonl:1: each candidate needs"):
        read_candidates(bad)


def _candidates_file(tmp_path) -> Path:
    path = tmp_path / "candidates.jsonl"
    path.write_text("\n".join(json.dumps({"id": c.id, "text": c.text}) for c in CANDIDATES), encoding="utf-8")
    return path


def test_cli_rank(capsys, tmp_path):
    reader = tmp_path / "reader.json"
    reader.write_text(json.dumps({"keywords": ["astronomy"]}))
    out, _ = run(capsys, ["rank", "--reader", str(reader), str(_candidates_file(tmp_path)), "--json", "--top", "2"])
    ranked = json.loads(out)
    assert len(ranked) == 2 and ranked[0]["id"] == "stars" and ranked[0]["reasons"]
    out, _ = run(capsys, ["rank", "--reader", str(reader), str(_candidates_file(tmp_path))])
    assert out.splitlines()[0].startswith("  1. ") and "[stars]" in out.splitlines()[0]


def test_cli_rank_bad_input_exits_2(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    _, err = run(capsys, ["rank", "--reader", str(empty), str(_candidates_file(tmp_path))], exit_code=2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(empty) in lines[0]
    _, err = run(capsys, ["rank", "--reader", str(tmp_path / "missing.json"), str(_candidates_file(tmp_path))], 2)
    assert "missing.json" in err
