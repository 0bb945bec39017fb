"""`inkwell score`: scores outputs from any tool without a model; --json prints metric -> value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from cli_helpers import run
from rouge_score import rouge_scorer

PREDS = ["The cat sat on the mat.", "A quick brown fox jumped over a lazy dog!", "Inkwell writes ads and emails."]
REFS = [
    "The cat is sitting on the mat.",
    "The quick brown fox jumps over the lazy dog.",
    "Inkwell writes ads, emails and reviews.",
]


def texts(path: Path, values: list[str], **extra) -> Path:
    rows = [{"text": v, **{k: vs[i] for k, vs in extra.items()}} for i, v in enumerate(values)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_score_json_matches_the_libraries(tmp_path, capsys):
    pred, ref = texts(tmp_path / "p.jsonl", PREDS), texts(tmp_path / "r.jsonl", REFS)
    out = json.loads(
        run(
            capsys, ["score", "--pred", str(pred), "--ref", str(ref), "--metrics", "bleu,chrf,rouge,distinct", "--json"]
        ).out
    )
    assert set(out) == {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "distinct1", "distinct2"}
    assert out["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDS, [REFS]).score)
    assert out["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDS, [REFS]).score)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for key in ("rouge1", "rouge2", "rougeL"):
        assert out[key] == pytest.approx(np.mean([scorer.score(r, p)[key].fmeasure for p, r in zip(PREDS, REFS)]))
        assert 0 <= out[key] <= 1
    assert 1 < out["bleu"] <= 100


def test_score_chinese_and_default_metrics(tmp_path, capsys):
    preds, refs = (
        ["床前明月光，疑是地上霜。", "今天天气很好。"],
        ["床前明月光，疑是地上霜。举头望明月。", "今天的天气非常好。"],
    )
    pred, ref = texts(tmp_path / "p.jsonl", preds), texts(tmp_path / "r.jsonl", refs)
    out = json.loads(run(capsys, ["score", "--pred", str(pred), "--ref", str(ref), "--lang", "zh", "--json"]).out)
    assert out["bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs], tokenize="zh").score)
    assert out["rouge1"] > 0.5 and "self_bleu" in out and "length_mean" in out
    # the table form shows intervals
    table = run(
        capsys, ["score", "--pred", str(pred), "--ref", str(ref), "--metrics", "rouge", "--bootstrap", "50"]
    ).out
    assert re.search(r"rouge1\s+\d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\]", table)


def test_score_structured_classification_and_keywords(tmp_path, capsys):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["title"]}))
    pred = texts(tmp_path / "p.jsonl", ['{"title": "x"}', "positive", "no json"])
    ref = texts(tmp_path / "r.jsonl", ["positive", "positive", "negative"], keywords=[["title"], ["pos"], "json, yes"])
    out = json.loads(
        run(
            capsys,
            [
                "score",
                "--pred",
                str(pred),
                "--ref",
                str(ref),
                "--schema",
                str(schema),
                "--metrics",
                "json,keywords,classification",
                "--json",
            ],
        ).out
    )
    assert out["json_valid"] == pytest.approx(1 / 3) and out["schema_valid"] == pytest.approx(1 / 3)
    assert out["keyword_coverage"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert out["accuracy"] == pytest.approx(1 / 3)
    assert out["confusion_matrix"]["labels"] == ["negative", "positive"]
    # reference-free metrics need no --ref
    alone = json.loads(run(capsys, ["score", "--pred", str(pred), "--metrics", "distinct,repetition", "--json"]).out)
    assert set(alone) == {"distinct1", "distinct2", "repeated_ngram_rate"}


def test_score_errors_are_clear(tmp_path, capsys):
    pred, ref = texts(tmp_path / "p.jsonl", PREDS), texts(tmp_path / "r.jsonl", REFS[:2])
    err = run(capsys, ["score", "--pred", str(pred), "--ref", str(ref), "--json"], exit_code=2).err
    assert "3 lines" in err and "2" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"output": "no text"}\n{"text": "x"}\n')
    err = run(capsys, ["score", "--pred", str(bad), "--ref", str(texts(tmp_path / "r3.jsonl", REFS))], exit_code=2).err
    assert "bad.jsonl:2" in err and "'text'" in err
    err = run(capsys, ["score", "--pred", str(pred), "--metrics", "rouge"], exit_code=2).err
    assert "references" in err and "--ref" in err
    err = run(capsys, ["score", "--pred", str(pred), "--ref", str(pred), "--metrics", "bleu,nope"], exit_code=2).err
    assert "unknown metric 'nope'" in err
    err = run(capsys, ["score", "--pred", str(pred), "--ref", str(pred), "--metrics", "perplexity"], exit_code=2).err
    assert "needs a model" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    err = run(capsys, ["score", "--pred", str(empty), "--ref", str(pred)], exit_code=2).err
    assert "empty" in err
