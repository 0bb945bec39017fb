"""`inkwell write --best-of N` and `inkwell batch --best-of N` on the tiny chat model: the kept version's scores in
--json, in the history store and in batch output rows; bad values exit 2 naming the flag."""

from __future__ import annotations

import json

from cli_helpers import run

FAST = ["--dtype", "fp32", "--device", "cpu", "--max-new-tokens", "6", "--seed", "4"]
TEXT = "text=The Riverside library will stay open until 9 pm on weekdays from 1 March."


def test_write_best_of_prints_and_logs_the_scores(capsys, tiny_chat_model):
    argv = ["write", "headline", "--model", str(tiny_chat_model), "--set", TEXT, "--best-of", "3", "--json"]
    record = json.loads(run(capsys, [*argv, *FAST])[0])
    scores = record["best_of"]
    assert scores["n"] == 3 and scores["rank"] == 1 and len(scores["candidates"]) == 3
    assert scores["score"] == max(c["score"] for c in scores["candidates"])
    assert scores["checks"]["json"] is None and isinstance(scores["checks"]["facts"], bool)
    assert record["settings"]["num_return_sequences"] == 3  # the candidates, decoded in one call
    (row,) = json.loads(run(capsys, ["history", "--json"])[0])
    assert row["output"] == record["text"] and row["metadata"]["best_of"] == scores


def test_write_best_of_with_several_versions(capsys, tiny_chat_model):
    argv = ["write", "headline", "--model", str(tiny_chat_model), "--set", TEXT, "--best-of", "2", "--n", "2"]
    records = json.loads(run(capsys, [*argv, "--json", *FAST])[0])
    assert [r["best_of"]["rank"] for r in records] == [1, 2]
    assert records[0]["best_of"]["score"] >= records[1]["best_of"]["score"]


def test_bad_best_of_exits_2_naming_it(capsys, tiny_chat_model, tmp_path):
    base = ["write", "headline", "--model", str(tiny_chat_model), "--set", TEXT, *FAST]
    _, err = run(capsys, [*base, "--best-of", "17"], exit_code=2)
    assert "best-of must be a whole number between 1 and 16" in err and "Traceback" not in err
    _, err = run(capsys, [*base, "--best-of", "0"], exit_code=2)
    assert "--best-of" in err
    _, err = run(capsys, [*base, "--best-of", "4", "--temperature", "0"], exit_code=2)
    assert "temperature 0" in err
    table = tmp_path / "t.csv"
    table.write_text("team,goals\nReds,3\n")
    report = ["write", "report", "--data", str(table), "--model", str(tiny_chat_model), *FAST]
    _, err = run(capsys, [*report, "--best-of", "2"], exit_code=2)
    assert "--best-of cannot be used with --data" in err


def test_batch_best_of_writes_the_scores_in_each_row(capsys, tiny_chat_model, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"id": "a", "text": "The bakery reopened on Monday."})
        + "\n"
        + json.dumps({"id": "b", "text": "The ferry adds a 6 am crossing."})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    argv = ["batch", "headline", "-i", str(rows), "-o", str(out), "--model", str(tiny_chat_model), "--best-of", "2"]
    run(capsys, [*argv, "--no-progress", "--batch-size", "4", *FAST])
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in written] == ["a", "b"]
    assert all(r["best_of"]["n"] == 2 and len(r["best_of"]["candidates"]) == 2 for r in written)
    history = json.loads(run(capsys, ["history", "--json"])[0])
    assert sorted(h["metadata"]["best_of"]["n"] for h in history) == [2, 2]
