"""Training jobs from feedback: the run folder a job writes, the background process (a real 2-step training run
on the tiny chat model, marked slow), its report (made by `inkwell eval` on the held-out pieces), and the ways a
job ends badly."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from feedback_helpers import finished_job, new_piece
from serve.serve_helpers import build_lora

from inkwell.errors import InkwellError
from inkwell.feedback.job import eval_decoding, report_for, write_eval_data
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


HELD_KEYS = ("id", "template", "fields", "request", "prompt", "text", "original", "settings")


def held_piece(data, owner: str, piece_id: int) -> dict:
    """A piece as start_job writes it to RUN/heldout.json."""
    piece = data.piece(owner, piece_id)
    return {k: piece[k] for k in HELD_KEYS}


def edited_pieces(data, engine, owner: str, topics: list[str], template: str = "poem") -> list[dict]:
    pieces = []
    for i, topic in enumerate(topics):
        piece = new_piece(data, engine, owner, template, {"topic": topic}, seed=i)
        data.add_version(owner, piece, f"A short poem about {topic}, edited by hand.")
        pieces.append(held_piece(data, owner, piece))
    return pieces


def check_eval_report(run: Path, report: dict, pieces: list[dict], adapters: tuple) -> dict:
    """RUN/eval holds `inkwell eval`'s reports on the held-out pieces, and report.json is built from them."""
    out = run / "eval"
    assert (report["eval"], report["eval_report"]) == (str(out), str(out / "report.md"))
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    evaluated = json.loads((out / "report.json").read_text())
    assert evaluated["data"] == str(run / "heldout-eval.jsonl") and evaluated["rows"] == len(pieces)
    assert [(s["name"], s["adapter"], s["failed"]) for s in evaluated["systems"]] == [
        ("base", adapters[0], 0),
        ("new", adapters[1], 0),
    ]
    assert {"rougeL", "perplexity"} <= set(evaluated["scores"]["base"])
    assert evaluated["settings"]["temperature"] == 0
    for system in ("base", "new"):  # the figures are eval's own
        scores = evaluated["scores"][system]
        assert report["systems"][system] == {
            "perplexity": scores["perplexity"]["value"],
            "rouge_l": scores["rougeL"]["value"],
        }
    examples = {e["id"]: e for e in evaluated["examples"]}
    wins = 0.0
    assert [i["piece_id"] for i in report["heldout"]] == [p["id"] for p in pieces]
    for item, piece in zip(report["heldout"], pieces):
        outputs = examples[str(piece["id"])]["outputs"]
        base, new = outputs["base"]["scores"]["rougeL"], outputs["new"]["scores"]["rougeL"]
        wins += 1.0 if new > base else 0.5 if new == base else 0.0
        assert (item["rouge_base"], item["rouge_new"]) == (round(base, 4), round(new, 4))
        assert (item["base_text"], item["new_text"]) == (
            outputs["base"]["text"].strip(),
            outputs["new"]["text"].strip(),
        )
        assert item["perplexity_base"] == outputs["base"]["scores"]["perplexity"]
        assert item["perplexity_new"] == outputs["new"]["scores"]["perplexity"]
        assert (item["request"], item["prompt"], item["reference"]) == (
            piece["request"],
            piece["prompt"],
            piece["text"],
        )
    assert report["win_rate"] == wins / len(pieces)
    return evaluated


def test_heldout_pieces_become_eval_rows_that_replay_the_studio_request(studio, chat_engine, base_engine, tmp_path):
    """Each row renders, through eval's own prepare(), exactly the request the studio stored, so the engine sees
    the same prompt text; the decoding is the pieces' own, greedy."""
    from inkwell.evaluate.data import read_eval_rows
    from inkwell.generate.content import prepare
    from inkwell.prompts.library import get_template

    for engine, owner in ((chat_engine, "chat"), (base_engine, "base")):
        pieces = edited_pieces(studio, engine, owner, ["rain", "the sea"])
        run = tmp_path / owner
        run.mkdir()
        data, template_file = write_eval_data(run, pieces)
        template = get_template(None, template_file)
        rows = read_eval_rows(data, template_fields=list(template.fields))
        assert [r.id for r in rows] == [str(p["id"]) for p in pieces]
        overrides = {"temperature": 0, **eval_decoding(pieces)}
        for row, piece in zip(rows, pieces):
            assert row.reference == piece["text"]
            rendered, settings = prepare(engine, template, row.fields, overrides=overrides)
            assert rendered.prompt == piece["request"]
            assert engine.render(rendered.prompt) == piece["prompt"]
            assert engine.encode(rendered.prompt) == engine.encode(piece["request"])
            assert settings.temperature == 0 and settings.max_new_tokens == piece["settings"]["max_new_tokens"]
            assert settings.stop == piece["settings"]["stop"]  # a base model's template stops, none for chat
            assert settings.repetition_penalty == piece["settings"]["repetition_penalty"]
    assert isinstance(pieces[0]["request"], str) and isinstance(
        json.loads((tmp_path / "chat" / "heldout-eval.jsonl").read_text().splitlines()[0])["request"], list
    )
    bad = dict(pieces[0], request=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 2)
    with pytest.raises(InkwellError, match="cannot be replayed"):
        write_eval_data(tmp_path, [bad])
    with pytest.raises(InkwellError, match="does not render back"):
        write_eval_data(tmp_path, [dict(pieces[0], request=pieces[0]["request"] + "\n")])


def test_eval_decoding_is_greedy_with_the_pieces_settings():
    def piece(**settings) -> dict:
        return {"settings": settings}

    assert eval_decoding([piece(max_new_tokens=40, stop=["\nTitle:"], repetition_penalty=1.05)]) == {
        "temperature": 0.0,
        "num_return_sequences": 1,
        "seed": 0,
        "max_new_tokens": 40,
        "stop": ["\nTitle:"],
        "repetition_penalty": 1.05,
    }
    mixed = eval_decoding(
        [
            piece(max_new_tokens=500, stop=["a"], repetition_penalty=1.0),
            piece(stop=["b", "a"], repetition_penalty=1.1),
            piece(max_new_tokens=20, repetition_penalty=1.1),
        ]
    )
    assert (mixed["max_new_tokens"], mixed["stop"], mixed["repetition_penalty"]) == (200, ["a", "b"], 1.1)
    assert eval_decoding([piece()])["max_new_tokens"] == 160 and "repetition_penalty" not in eval_decoding([piece()])


def test_the_report_is_inkwell_evals_on_the_heldout_pieces(studio, base_engine, tiny_base_model, tmp_path):
    """report_for on a base model (prompt text) against a LoRA: the figures come from RUN/eval, and the
    perplexity is that of the creator's text given exactly the stored request."""
    from inkwell.evaluate.perplexity import sequence_nll
    from inkwell.generate.builder import EngineSpec, open_engine

    pieces = edited_pieces(studio, base_engine, "local", ["autumn rain", "bikes", "letters"])
    adapter = str(build_lora(tiny_base_model, tmp_path / "lora", seed=3))
    run = tmp_path / "run"
    run.mkdir()
    report = report_for(pieces, str(tiny_base_model), None, adapter, run=run)
    assert report["heldout_count"] == 3 and report["compared_with"] == "base"
    check_eval_report(run, report, pieces, (None, adapter))
    assert any(i["base_text"] != i["new_text"] for i in report["heldout"])  # the adapter writes other text
    # the perplexity is what the old grading computed: the final text after exactly the request's ids
    new_engine = open_engine(EngineSpec(str(tiny_base_model), adapter=adapter, backend="torch", dtype="fp32"))
    try:
        for key, engine in (("perplexity_base", base_engine), ("perplexity_new", new_engine)):
            for item, piece in zip(report["heldout"], pieces):
                ids = engine.encode(piece["request"])
                text = engine.tokenizer(piece["text"], add_special_tokens=False)["input_ids"]
                nll, tokens = sequence_nll(engine, ids + text, len(ids), max_length=engine.context_length)
                assert item[key] == pytest.approx(math.exp(nll / tokens), rel=1e-5)
    finally:
        new_engine.close()


def test_no_heldout_pieces_no_eval(tmp_path):
    report = report_for([], "any-model", None, str(tmp_path), run=tmp_path)
    assert report["heldout_count"] == 0 and report["eval"] is None and "note" in report
    assert not (tmp_path / "eval").exists()


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
def test_a_two_step_job_trains_and_grades_the_adapter(studio, pieces, chat_engine, tiny_chat_model, tmp_path, stage):
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
    held = held_piece(studio, "local", item["piece_id"])
    assert json.loads((run / "heldout.json").read_text()) == [held]
    evaluated = check_eval_report(run, report, [held], (None, str(run)))
    assert isinstance(item["base_text"], str) and isinstance(item["new_text"], str)
    assert report["win_rate"] in (0.0, 0.5, 1.0)
    # eval generated from the chat request the studio stored: the same prompt ids, the same greedy length
    assert evaluated["template"] == "feedback-heldout" and evaluated["settings"]["max_new_tokens"] == 12
    prompt_ids = len(chat_engine.encode(held["request"]))
    for system in ("base", "new"):
        (generated,) = [json.loads(line) for line in (run / "eval" / "generations" / f"{system}.jsonl").open()]
        assert (generated["id"], generated["prompt_tokens"]) == (str(held["id"]), prompt_ids)
    assert json.loads((run / "job-status.json").read_text()) == {"status": "finished"}
