"""`inkwell feedback ...` in-process (tests/cli_helpers.py): export, jobs, promote, leaderboard, train, and the
one-line errors of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run
from feedback_helpers import EMAIL, finished_job, new_piece

from inkwell.feedback.jobs import system_name


def test_export_writes_both_files_and_counts(session, tmp_path, capsys):
    sft, dpo = tmp_path / "out" / "sft.jsonl", tmp_path / "out" / "dpo.jsonl"
    out, _ = run(capsys, ["feedback", "export", "--sft", str(sft), "--dpo", str(dpo), "--user", "alice"])
    assert f"sft: 4 rows -> {sft}" in out and f"dpo: 6 rows -> {dpo}" in out
    assert "dpo 3 edit + 1 variant + 2 comparison" in out
    assert EMAIL not in sft.read_text() + dpo.read_text()
    run(capsys, ["feedback", "export", "--sft", str(sft), "--user", "alice", "--no-redact"])
    assert EMAIL in sft.read_text()
    out, _ = run(capsys, ["feedback", "export", "--dpo", str(dpo), "--user", "alice", "--template", "nope", "--json"])
    assert json.loads(out)["written"]["dpo"]["rows"] == 0


def test_export_since_filters_and_bad_dates_are_one_line_errors(session, tmp_path, capsys):
    sft = tmp_path / "sft.jsonl"
    run(capsys, ["feedback", "export", "--sft", str(sft), "--user", "alice", "--since", "2999-01-01"])
    assert sft.read_text() == ""
    _, err = run(capsys, ["feedback", "export", "--sft", str(sft), "--since", "2024-13-45"], exit_code=2)
    assert err.strip().count("\n") == 0 and "--since '2024-13-45' is not a date" in err and "YYYY-MM-DD" in err
    _, err = run(capsys, ["feedback", "export"], exit_code=2)
    assert "give --sft PATH, --dpo PATH or both" in err


def test_jobs_and_promote(studio, tmp_path, capsys):
    job_id = finished_job(studio, "local", tmp_path)
    out, _ = run(capsys, ["feedback", "jobs"])
    assert "finished" in out and "9.0→6.0" in out and "100%" in out
    (listed,) = json.loads(run(capsys, ["feedback", "jobs", "--json"])[0])
    assert listed["metrics"][-1] == {"step": 2, "loss": 2.0}

    run(capsys, ["feedback", "promote", str(job_id), "--user", "bob"], exit_code=2)  # not bob's job
    out, _ = run(capsys, ["feedback", "promote", str(job_id)])
    name = system_name(job_id)
    assert f"{name} is now local's default system (was base)" in out
    assert studio.default_system("local") == name
    assert studio.adapters("local")[name]["path"] == listed["run"]
    assert studio.job("local", job_id)["status"] == "promoted"
    _, err = run(capsys, ["feedback", "promote", str(job_id)], exit_code=2)  # decided already
    assert "is promoted; only a finished job" in err


def test_discard(studio, tmp_path, capsys):
    job_id = finished_job(studio, "local", tmp_path, win_rate=0.0)
    out, _ = run(capsys, ["feedback", "promote", str(job_id), "--discard"])
    assert f"discarded job {job_id}" in out
    assert studio.job("local", job_id)["status"] == "discarded" and studio.default_system("local") is None
    assert studio.adapters("local") == {}


def test_leaderboard(session, capsys):
    out, _ = run(capsys, ["feedback", "leaderboard", "--user", "alice"])
    assert "base" in out and "fb-1" in out and "95% interval" in out
    rows = json.loads(run(capsys, ["feedback", "leaderboard", "--user", "alice", "--json"])[0])
    assert {r["system"] for r in rows} == {"base", "fb-1"} and all(r["n"] == 3 for r in rows)
    out, _ = run(capsys, ["feedback", "leaderboard", "--user", "nobody"])
    assert "no judged comparisons" in out


def test_train_without_feedback_is_an_error(studio, capsys):
    _, err = run(capsys, ["feedback", "train", "--user", "nobody"], exit_code=2)
    assert "no accepted or edited pieces" in err and "edit or compare a few pieces first" in err
    _, err = run(capsys, ["feedback", "train", "--stage", "ppo"], exit_code=2)
    assert "unknown stage 'ppo'" in err


@pytest.mark.slow
def test_train_follows_the_job_and_says_how_to_promote(studio, chat_engine, tiny_chat_model, capsys):
    for i, topic in enumerate(["autumn rain", "the sea", "snow", "bikes"]):
        piece = new_piece(studio, chat_engine, "local", "poem", {"topic": topic}, seed=i)
        studio.add_version("local", piece, f"A short poem about {topic}, edited by hand.")
        studio.set_verdict("local", piece, status="accepted")
    out, err = run(capsys, ["feedback", "train", "--model", str(tiny_chat_model), "--max-steps", "2"])
    assert "step    1  loss" in err and "step    2  loss" in err
    (job,) = studio.jobs("local")
    assert f"job {job['id']} finished: adapter {job['run_path']}" in out
    assert "perplexity of the creator's texts:" in out and "win rate of the new adapter" in out
    assert f"promote: inkwell feedback promote {job['id']} --user local" in out
    out, _ = run(capsys, ["feedback", "promote", str(job["id"])])
    assert studio.default_system("local") == system_name(job["id"])
    assert Path(studio.adapters("local")[system_name(job["id"])]["path"], "adapter_model.safetensors").exists()
