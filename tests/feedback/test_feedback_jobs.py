"""Training jobs from feedback: the run folder a job writes, the background process (a real 2-step training run
on the tiny chat model, marked slow), its report, and the ways a job ends badly."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from feedback_helpers import finished_job, new_piece

from inkwell.errors import InkwellError
from inkwell.feedback.jobs import STAGES, cancel_job, fill_recipe, poll_job, recipe_text, start_job

TIMEOUT = 240  # seconds a 2-step job may take on a busy 2-core machine


def wait(data, job_id: int, timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = poll_job(data, job_id)
        if job["status"] != "running":
            return job
        if time.monotonic() > deadline:
            log = Path(job["run"], "job.log")
            raise AssertionError(f"job {job_id} still running after {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture
def pieces(studio, chat_engine) -> list[int]:
    """Five accepted, edited poems of `local` (one or two of them held out)."""
    ids = []
    for i, topic in enumerate(["autumn rain", "the sea", "snow", "bikes", "letters"]):
        piece = new_piece(studio, chat_engine, "local", "poem", {"topic": topic}, seed=i)
        studio.add_version("local", piece, f"A short poem about {topic}, edited by hand.")
        studio.set_verdict("local", piece, status="accepted")
        ids.append(piece)
    return ids


@pytest.mark.parametrize("stage", STAGES)
def test_shipped_recipes_start_with_their_command_and_validate(stage, tmp_path):
    from inkwell.train.config import validate_config

    assert recipe_text(stage).startswith(f"# inkwell feedback train --stage {stage}\n")
    config = validate_config(fill_recipe(stage, model="smollm2-135m-instruct", output=tmp_path, max_steps=3))
    assert (config.stage, config.method, config.lora.r, config.training.max_steps) == (stage, "lora", 16, 3)
    if stage == "dpo":
        assert config.dpo.beta == 0.1 and config.training.lr == 1e-4 and config.training.resume == "auto"


def test_start_job_writes_a_self_describing_run(studio, pieces, tiny_chat_model, tmp_path, monkeypatch):
    import inkwell.feedback.jobs as jobs

    monkeypatch.setattr(jobs, "_spawn", lambda run: 4242)  # the files only: no process
    job = start_job(studio, "local", stage="dpo", base_model=str(tiny_chat_model), runs_dir=tmp_path, max_steps=2)
    run = Path(job["run_path"])
    assert run.parent == tmp_path / "local" and run.name.endswith("-dpo")
    assert (job["status"], job["pid"], job["stage"], job["base"]) == ("running", 4242, "dpo", "base")
    held = json.loads((run / "heldout.json").read_text())
    assert [p["id"] for p in held] == job["data"]["heldout_ids"] and len(held) == 1
    assert sorted(job["data"]["train_pieces"] + job["data"]["heldout_ids"]) == pieces
    assert held[0]["text"].endswith("edited by hand.") and held[0]["prompt"].startswith("<|im_start|>system")
    rows = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert len(rows) == job["data"]["rows"]["train"] == 4
    assert {r["piece_id"] for r in rows} == set(job["data"]["train_pieces"])  # nothing of the held-out piece
    recipe_text = (run / "recipe.yaml").read_text()
    assert recipe_text.startswith(f"# inkwell train {run / 'recipe.yaml'}\n")
    recipe = yaml.safe_load(recipe_text)
    assert recipe["model"] == str(tiny_chat_model) and recipe["output"] == str(run)
    assert recipe["training"]["max_steps"] == 2 and recipe["dpo"]["beta"] == 0.1
    assert job["data"]["adapter"] == str(run)


def test_no_rows_is_an_error_naming_the_stage(studio, chat_engine, tiny_chat_model, tmp_path):
    with pytest.raises(InkwellError) as info:
        start_job(studio, "local", stage="sft", base_model=str(tiny_chat_model), runs_dir=tmp_path)
    assert info.value.field == "stage" and "edit or compare a few pieces first" in str(info.value)
    # accepted but never edited, one variant each: SFT rows, but nothing to prefer over
    for topic in ("rain", "sea"):
        piece = new_piece(studio, chat_engine, "local", "poem", {"topic": topic})
        studio.set_verdict("local", piece, status="accepted")
    with pytest.raises(InkwellError) as info:
        start_job(studio, "local", stage="dpo", base_model=str(tiny_chat_model), runs_dir=tmp_path)
    assert info.value.field == "stage" and "preference pairs" in str(info.value)
    with pytest.raises(InkwellError) as info:
        start_job(studio, "local", stage="ppo", base_model="x", runs_dir=tmp_path)
    assert info.value.field == "stage"
    with pytest.raises(InkwellError) as info:
        start_job(studio, "local", stage="sft", base_model="x", base_system="fb-9", runs_dir=tmp_path)
    assert info.value.field == "base" and "use one of: base" in str(info.value)
    assert not list(tmp_path.rglob("*.jsonl"))  # a job that never started leaves no run folder


def test_poll_reads_status_report_and_a_torn_metrics_line(studio, tmp_path):
    job_id = finished_job(studio, "local", tmp_path)
    job = poll_job(studio, job_id)
    assert job["status"] == "finished" and job["report"]["win_rate"] == 1.0
    assert job["metrics"] == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]  # the half line is left out
    assert job["adapter"] == job["run"] and Path(job["run"]).is_dir()
    assert studio.job("local", job_id)["status"] == "finished"  # recorded in the store


def test_a_job_whose_process_dies_fails_with_a_clear_error(studio, pieces, tiny_chat_model, tmp_path):
    job = start_job(studio, "local", stage="sft", base_model=str(tiny_chat_model), runs_dir=tmp_path, max_steps=2)
    os.killpg(job["pid"], signal.SIGKILL)  # before it could train or write a status
    ended = wait(studio, job["id"], timeout=30)
    assert ended["status"] == "failed" and ended["adapter"] is None
    assert ended["error"] == f"the training process ended without a result; see {job['run_path']}/job.log"


def test_a_failing_job_reports_one_line_and_logs_the_traceback(studio, pieces, tmp_path):
    missing = str(tmp_path / "no-such-model")
    job = start_job(studio, "local", stage="sft", base_model=missing, runs_dir=tmp_path, max_steps=2)
    ended = wait(studio, job["id"], timeout=120)
    assert ended["status"] == "failed"
    assert "no-such-model" in ended["error"] and "\n" not in ended["error"] and "Traceback" not in ended["error"]
    assert "Traceback (most recent call last)" in Path(job["run_path"], "job.log").read_text()


def test_cancel(studio, pieces, tiny_chat_model, tmp_path):
    job = start_job(studio, "local", stage="sft", base_model=str(tiny_chat_model), runs_dir=tmp_path)
    ended = cancel_job(studio, job["id"])
    assert ended["status"] == "failed" and ended["error"] == "cancelled"
    with pytest.raises(InkwellError):
        cancel_job(studio, job["id"])


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_a_two_step_job_trains_and_grades_the_adapter(studio, pieces, tiny_chat_model, tmp_path, stage):
    job = start_job(studio, "local", stage=stage, base_model=str(tiny_chat_model), runs_dir=tmp_path, max_steps=2)
    ended = wait(studio, job["id"])
    run = Path(job["run_path"])
    assert ended["status"] == "finished", (ended["error"], (run / "job.log").read_text()[-3000:])
    assert [m["step"] for m in ended["metrics"]] == [1, 2]
    assert ended["adapter"] == str(run) and (run / "adapter_config.json").exists()
    report = json.loads((run / "report.json").read_text())
    assert ended["report"] == report
    assert report["stage"] == stage and report["train"]["steps"] == 2 and report["heldout_count"] == 1
    for system in ("base", "new"):
        assert report["systems"][system]["perplexity"] > 1
        assert 0 <= report["systems"][system]["rouge_l"] <= 1
    (item,) = report["heldout"]
    assert item["piece_id"] == job["data"]["heldout_ids"][0]
    held = studio.piece("local", item["piece_id"])
    assert (item["request"], item["prompt"], item["reference"]) == (held["request"], held["prompt"], held["text"])
    assert isinstance(item["base_text"], str) and isinstance(item["new_text"], str)
    assert report["win_rate"] in (0.0, 0.5, 1.0)
    assert json.loads((run / "job-status.json").read_text()) == {"status": "finished"}
