"""`inkwell kb ...` and `--kb` on write and batch, run in-process (tiny random models; the real small embedder)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import run

sys.path.insert(0, str(Path(__file__).parent / "knowledge"))
from kb_helpers import shop_folder, tiny_chat_model  # noqa: E402

FAST = ["--dtype", "fp32", "--device", "cpu", "--max-new-tokens", "4", "--seed", "1"]
ON_TOPIC = "My mug arrived broken. What can you do?"
OFF_TOPIC = "What is the capital of Peru?"


def error_of(capsys, argv) -> str:
    out, err = run(capsys, argv, exit_code=2)
    assert err.startswith("error: ") and "Traceback" not in err + out
    return err


@pytest.fixture(scope="module")
def tiny_4k(tmp_path_factory) -> Path:
    """A tiny chat model whose context holds the five passages."""
    return tiny_chat_model(tmp_path_factory.mktemp("models") / "tiny-4k", 4096)


@pytest.fixture
def shop(capsys, tmp_path) -> Path:
    folder = shop_folder(tmp_path)
    run(capsys, ["kb", "add", "shop", str(folder)])
    return folder


def test_kb_add_list_search_rm(capsys, tmp_path):
    folder = shop_folder(tmp_path)
    out, _ = run(capsys, ["kb", "add", "shop", str(folder), "--json"])
    report = json.loads(out)
    assert (report["added"], report["chunks"]) == (3, 6)
    out, _ = run(capsys, ["kb", "add", "shop", str(folder)])
    assert "0 added, 0 updated, 3 unchanged" in out
    out, _ = run(capsys, ["kb", "list", "--json"])
    assert [(row["name"], row["files"]) for row in json.loads(out)] == [("shop", 3)]
    out, _ = run(capsys, ["kb", "list", "shop"])
    assert "returns.md" in out and "markdown" in out
    out, _ = run(capsys, ["kb", "search", "shop", "Can I change where my order goes?", "--k", "2", "--json"])
    hits = json.loads(out)
    assert len(hits) == 2 and hits[0]["heading"] == "Shipping > Changing the address"
    assert hits[0]["source"] == str(folder / "shipping.md")
    out, _ = run(capsys, ["kb", "search", "shop", "broken", "--mode", "bm25"])
    assert out.startswith("[1] ") and "Broken items" in out
    out, _ = run(capsys, ["kb", "rm", "shop", str(folder / "zh.md")])
    assert "dropped 1 file" in out
    out, _ = run(capsys, ["kb", "rm", "shop"])
    assert "deleted knowledge folder 'shop'" in out
    assert str(folder / "returns.md") and (folder / "returns.md").exists()  # documents are never touched


def test_bad_inputs_are_one_line_errors_with_status_2(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"folder {empty} holds no files Inkwell can read" in error_of(capsys, ["kb", "add", "docs", str(empty)])
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage")
    err = error_of(capsys, ["kb", "add", "docs", str(broken)])
    assert f"{broken} is not a readable PDF" in err.splitlines()[0]
    assert f"{tmp_path / 'missing'} not found" in error_of(capsys, ["kb", "add", "docs", str(tmp_path / "missing")])
    err = error_of(capsys, ["kb", "search", "nope", "refunds"])
    assert err.splitlines()[0] == "error: no knowledge folder 'nope' (there are none yet)"
    assert "no knowledge folder 'nope'" in error_of(capsys, ["kb", "rm", "nope"])
    assert "not a knowledge folder name" in error_of(capsys, ["kb", "add", "bad/name", str(tmp_path)])
    err = error_of(capsys, ["write", "customer-service-reply", "--kb", "nope", "--set", "message=hi"])
    assert "no knowledge folder 'nope'" in err  # before any model loads


def test_symlink_loop_is_skipped_with_a_warning(capsys, tmp_path):
    folder = shop_folder(tmp_path)
    os.symlink(folder, folder / "again")
    _, err = run(capsys, ["kb", "add", "shop", str(folder)])
    assert "warning: skipped" in err and "symbolic link loop" in err


def test_write_kb_escalates_without_a_model(capsys, shop, tmp_path):
    # the model does not exist: the reply can only come without loading (or calling) one
    argv = ["write", "customer-service-reply", "--kb", "shop", "--set", f"message={OFF_TOPIC}", "--set", "agent=Sam"]
    out, err = run(capsys, [*argv, "--model", str(tmp_path / "no-model"), "--json"])
    record = json.loads(out)
    assert record["text"].startswith("Thank you for getting in touch.") and record["text"].endswith("Sam")
    assert record["finish_reason"] == "escalated" and record["usage"]["completion_tokens"] == 0
    assert record["grounding"]["escalated"] and not record["grounding"]["known"]
    assert record["grounding"]["best_relevance"] < record["grounding"]["threshold"]
    assert "unknown_reply" in err
    out, _ = run(capsys, ["history", "--json"])
    (row,) = json.loads(out)
    assert row["finish_reason"] == "escalated" and row["metadata"]["grounding"]["escalated"]


def test_write_kb_records_grounding_and_citations(capsys, shop, tiny_4k):
    argv = ["write", "customer-service-reply", "--kb", "shop", "--set", f"message={ON_TOPIC}", "--no-stream"]
    out, err = run(capsys, [*argv, "--model", str(tiny_4k), "--json", *FAST])
    record = json.loads(out)
    assert "knowledge: 5 passages from 'shop'" in err
    assert record["grounding"]["known"] and record["grounding"]["retrieved"] == 5
    assert len(record["grounding"]["passages"]) == 2  # the best two in the prompt (docs/grounding.md)
    assert "support" in record and all(c["how"] in ("model", "attributed", "quoted") for c in record["citations"])
    assert record["grounding"]["passages"][0]["heading"] == "Returns and refunds > Broken items"
    assert isinstance(record["citations"], list)
    assert "kb_passages" not in record["fields"] and record["fields"]["message"] == ON_TOPIC
    out, _ = run(capsys, ["history", "--json"])
    (row,) = json.loads(out)
    assert "We ship a replacement at no cost" in row["prompt"]  # the model saw the passages
    assert row["metadata"]["grounding"]["passages"][0]["chunk_id"] == record["grounding"]["passages"][0]["chunk_id"]
    error_of(capsys, [*argv, "--data", str(shop / "returns.md")])  # --kb and --data: one or the other


def test_sources_are_printed_under_the_text(capsys):
    from inkwell.cli.write import _sources
    from inkwell.generate.record import GenerationRecord

    record = GenerationRecord("t [1]", "m", None, None, None, {}, "", 0, 0, 0.0, "stop", "write")
    record.extra["citations"] = [{"number": 1, "source": "/d/a.md", "start": 3, "end": 40, "heading": "A > B"}]
    _sources([record], as_json=False)
    assert capsys.readouterr().out == "Sources:\n[1] /d/a.md:3-40  (B)\n"


def test_batch_kb_grounds_each_row_and_escalates_off_topic_rows(capsys, shop, tiny_4k, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"id": "a", "message": ON_TOPIC}) + "\n" + json.dumps({"id": "b", "message": OFF_TOPIC}) + "\n",
        encoding="utf-8",
    )
    out_path = tmp_path / "out.jsonl"
    argv = ["batch", "customer-service-reply", "-i", str(rows), "-o", str(out_path), "--kb", "shop", "--no-progress"]
    run(capsys, [*argv, "--model", str(tiny_4k), *FAST])
    lines = {r["id"]: r for r in map(json.loads, out_path.read_text(encoding="utf-8").splitlines())}
    assert lines["a"]["grounding"]["known"] and lines["a"]["usage"]["completion_tokens"] > 0
    assert "kb_passages" not in lines["a"]["fields"] and isinstance(lines["a"]["citations"], list)
    assert lines["b"]["finish_reason"] == "fixed" and lines["b"]["usage"]["completion_tokens"] == 0
    assert lines["b"]["text"].startswith("Thank you for getting in touch.") and lines["b"]["grounding"]["escalated"]
    out, _ = run(capsys, ["history", "--json"])
    history = {row["row_id"]: row for row in json.loads(out)}
    assert history["a"]["metadata"]["grounding"]["known"] and "Broken items" in history["a"]["prompt"]
    assert history["b"]["metadata"]["grounding"]["escalated"]


def test_write_kb_quote_answers_with_the_best_passage(capsys, shop, tiny_4k):
    argv = ["write", "customer-service-reply", "--kb", "shop", "--set", f"message={ON_TOPIC}", "--no-stream"]
    out, err = run(capsys, [*argv, "--model", str(tiny_4k), "--json", *FAST])
    record = json.loads(out)
    # four random tokens state nothing a passage supports: the best passage's key sentences answer instead
    assert record["text"] == record["quote"]["text"] and record["text"].endswith(" [1]")
    assert "We ship a replacement at no cost" in record["text"] and "model_text" in record
    assert [(c["number"], c["how"]) for c in record["citations"]] == [(1, "quoted")]
    assert record["quote"]["source"] == str(shop / "returns.md")
    out, err = run(capsys, [*argv, "--model", str(tiny_4k), "--json", "--no-quote", *FAST])
    kept = json.loads(out)
    assert kept["text"] != kept["quote"]["text"] and "model_text" not in kept  # the model's reply, quote offered
    assert "no passage supports the reply" in err
