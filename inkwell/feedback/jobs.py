"""Training from feedback in a background process: start a job, follow it, cancel it.

    job = start_job(data, "local", stage="sft", base_model="smollm2-135m-instruct", runs_dir=Path("runs"))
    job = poll_job(data, job["id"])      # status, metrics [{step, loss}], report, adapter

A job's run folder, RUNS/<owner>/<timestamp>-<stage>/, is self-describing:

    job.json          what the child needs: stage, base model, the system compared against (and its adapter)
    train.jsonl       the exported rows of the training pieces (PII redacted unless asked otherwise)
    heldout.json      the held-out pieces: id, template, fields, request, prompt, text, original, settings
    recipe.yaml       the package recipe filled in: `inkwell train RUN/recipe.yaml` reruns it by hand
    job.log           the child's output (tracebacks land here, never in the status)
    metrics.jsonl     one line per optimizer step (written by the train recipe), + the adapter and run card
    heldout-eval.jsonl, heldout-template.yaml   the held-out pieces as `inkwell eval` rows (their exact requests)
    eval/             `inkwell eval`'s folder on them: report.json/.md/.html, plots, generations (base vs new)
    report.json       the held-out evaluation, from eval/: perplexity, ROUGE-L, generations, win rate
    job-status.json   written last, atomically: {"status": "finished" | "failed", "error"?}

The child is `python -m inkwell.feedback.job RUN` (inkwell/feedback/job.py) in its own session, so it
survives the server's restarts and a Ctrl-C in `inkwell feedback train`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from inkwell.errors import InkwellError
from inkwell.feedback.export import export_rows, split_pieces, usable_pieces, write_jsonl
from inkwell.home import atomic_write
from inkwell.store.studio import StudioData

STAGES = ("sft", "dpo")
DEFAULT_STAGE = "sft"  # measured by benchmarks/bench_feedback_loop.py: SFT on the edits lowers their perplexity
STATUS_FILE = "job-status.json"
REPORT_FILE = "report.json"
JOB_FILE = "job.json"
LOG_FILE = "job.log"
ENDED = "the training process ended without a result; see {log}"
EMPTY_HINT = "edit or compare a few pieces first"

# The child processes this server started, by pid: polled so a finished one is reaped, not left a zombie
# (a zombie still answers os.kill(pid, 0), so it would look alive forever).
_CHILDREN: dict[int, subprocess.Popen] = {}


def system_name(job_id: int) -> str:
    """The system name an adapter trained by a feedback job is served and promoted under."""
    return f"fb-{job_id}"


def recipe_text(stage: str) -> str:
    """The shipped recipe of a stage (inkwell/feedback/recipes/<stage>.yaml)."""
    if stage not in STAGES:
        raise InkwellError(f"unknown stage '{stage}'", field="stage", hint="use sft or dpo")
    return resources.files("inkwell.feedback").joinpath("recipes", f"{stage}.yaml").read_text(encoding="utf-8")


def fill_recipe(stage: str, *, model: str, output: Path, train: str = "train.jsonl", max_steps: int | None = None):
    """The stage's recipe as a dict with the job's model, output folder, data file and step limit."""
    recipe = yaml.safe_load(recipe_text(stage))
    recipe["model"] = model
    recipe["output"] = str(output)
    recipe["data"]["train"] = train
    if max_steps is not None:
        recipe["training"]["max_steps"] = int(max_steps)
    return recipe


def _run_folder(runs_dir: Path, owner: str, stage: str) -> Path:
    """A new folder RUNS/<owner>/<timestamp>-<stage>/ (the owner made safe as a folder name)."""
    safe_owner = re.sub(r"[^A-Za-z0-9_.-]", "_", owner).strip(".") or "owner"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = Path(runs_dir).expanduser().resolve() / safe_owner
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = parent / (f"{stamp}-{stage}" if n == 1 else f"{stamp}-{stage}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise InkwellError(f"could not make a new run folder in {parent}", field="runs_dir")


def _write_json(path: Path, value: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(value, handle, indent=2, ensure_ascii=False)


def start_job(
    data: StudioData,
    owner: str,
    *,
    stage: str,
    base_model: str,
    base_system: str = "base",
    runs_dir: Path,
    max_steps: int | None = None,
    template: str | None = None,
    holdout: float = 0.2,
    seed: int = 0,
    redact: bool = True,
) -> dict:
    """Start training `stage` (sft | dpo) on `owner`'s feedback in a background process; returns the job row.

    The owner's usable pieces (accepted, edited or explicitly picked, not rejected) are split into train and
    held-out pieces (split_pieces); the train pieces' rows (and, for dpo, the blind comparisons not on a
    held-out prompt) are the data. The new LoRA is trained on `base_model`; its report compares it on the
    held-out pieces with `base_system`: "base" (the model alone) or one of the owner's adapters."""
    if stage not in STAGES:
        raise InkwellError(f"unknown stage '{stage}'", field="stage", hint="use sft or dpo")
    if max_steps is not None and int(max_steps) < 1:
        raise InkwellError(f"max_steps {max_steps} must be 1 or more", field="max_steps")
    base_adapter = None
    if base_system != "base":
        adapters = data.adapters(owner)
        if base_system not in adapters:
            known = ", ".join(["base", *sorted(adapters)])
            raise InkwellError(f"no system '{base_system}' to compare with", field="base", hint=f"use one of: {known}")
        base_adapter = adapters[base_system]["path"]

    pool = usable_pieces(data, owner, template=template)
    train_ids, heldout_ids = split_pieces(pool, holdout, seed)
    held = [p for p in pool if p["id"] in set(heldout_ids)]
    rows = export_rows(data, owner, template=template, redact=redact, pieces=train_ids)
    if stage == "sft":
        train_rows = rows.sft
        empty = "no accepted or edited pieces to learn from"
    else:
        # a comparison on a held-out prompt would teach the answer the report then grades
        held_prompts = {p["prompt"] for p in held}
        leaks = {c["id"] for c in data.comparisons(owner, pending=False) if c["prompt"] in held_prompts}
        train_rows = [r for r in rows.dpo if r.get("comparison_id") not in leaks]
        empty = "no preference pairs (edits, picked variants or judged comparisons) to learn from"
    if not train_rows:
        scope = f" for template '{template}'" if template else ""
        raise InkwellError(
            f"{empty}{scope} (after holding out {len(heldout_ids)} piece(s))", field="stage", hint=EMPTY_HINT
        )

    run = _run_folder(runs_dir, owner, stage)
    try:
        _write_run(
            run,
            stage,
            base_model,
            base_system,
            base_adapter,
            train_rows,
            held,
            max_steps,
        )
    except BaseException:
        shutil.rmtree(run, ignore_errors=True)  # a job that never started leaves no folder behind
        raise
    files = {name: str(run / name) for name in ("train.jsonl", "heldout.json", "recipe.yaml", LOG_FILE)}
    job_data = {
        "files": files,
        "rows": {"train": len(train_rows), **rows.counts},
        "train_pieces": train_ids,
        "heldout_ids": heldout_ids,
        "adapter": str(run),
        "base_model": base_model,
        "template": template,
        "max_steps": max_steps,
        "redacted": redact,
    }
    job_id = data.new_job(owner, stage=stage, base=base_system, run_path=str(run), data=job_data)
    try:
        pid = _spawn(run)
    except OSError as exc:
        data.update_job(job_id, status="failed", error=f"could not start the training process: {exc}")
    else:
        data.update_job(job_id, pid=pid)
    return data.job(owner, job_id)


def _write_run(
    run: Path,
    stage: str,
    base_model: str,
    base_system: str,
    base_adapter: str | None,
    train_rows: list[dict],
    held: list[dict],
    max_steps: int | None,
) -> None:
    """The job's files in its run folder, the rows checked by the stage's own reader."""
    write_jsonl(run / "train.jsonl", train_rows)
    _write_json(
        run / "heldout.json",
        [
            {k: p[k] for k in ("id", "template", "fields", "request", "prompt", "text", "original", "settings")}
            for p in held
        ],
    )
    recipe = fill_recipe(stage, model=base_model, output=run, max_steps=max_steps)
    with atomic_write(run / "recipe.yaml") as handle:
        handle.write(f"# inkwell train {run / 'recipe.yaml'}\n")
        handle.write(f"# a feedback training job's copy of the recipe of `{recipe_text(stage).splitlines()[0][2:]}`\n")
        yaml.safe_dump(recipe, handle, sort_keys=False, allow_unicode=True)
    _check_rows(run / "recipe.yaml")
    _write_json(
        run / JOB_FILE,
        {"stage": stage, "base_model": base_model, "base_system": base_system, "base_adapter": base_adapter},
    )


def _check_rows(recipe: Path) -> None:
    """Read the written rows with the stage's own reader (no model): they must train as written."""
    from inkwell.train import check_data
    from inkwell.train.config import load_config

    report = check_data(load_config(recipe))
    kept = sum(f["kept"] for f in report.files)
    if not kept:
        problems = "; ".join(str(p) for p in report.problems[:3])
        raise InkwellError(f"none of the exported rows can be trained on: {problems}", field="stage", hint=EMPTY_HINT)


def job_threads() -> int:
    """CPU threads of a training job: INKWELL_JOB_THREADS, else half the cores (at least one), leaving the rest
    to the server beside it. Measured on 2 cores with one busy: greedy decoding took 297 s on 2 threads and
    15 s on 1 (OpenMP threads spin-wait for a core someone else holds); on an idle machine 2 threads gain 5-20%."""
    given = os.environ.get("INKWELL_JOB_THREADS", "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise InkwellError(f"INKWELL_JOB_THREADS={given!r} is not a whole number >= 1", field="INKWELL_JOB_THREADS")
        return int(given)
    return max(1, (os.cpu_count() or 2) // 2)


def _spawn(run: Path) -> int:
    """`python -m inkwell.feedback.job RUN` in its own session, output to RUN/job.log, offline."""
    import inkwell

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["OMP_NUM_THREADS"] = str(job_threads())
    package_root = str(Path(inkwell.__file__).resolve().parents[1])  # importable even without an install
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with (run / LOG_FILE).open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "inkwell.feedback.job", str(run)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: a Ctrl-C or a server restart does not take it down
        )
    _CHILDREN[process.pid] = process
    return process.pid


# ---------------------------------------------------------------- following a job


def _alive(pid: int | None) -> bool:
    """Whether the job's process still runs (a zombie or a reused pid running something else does not)."""
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process holds the pid: ours is gone
    proc = Path(f"/proc/{pid}")
    if proc.exists():  # Linux: tell a zombie or a reused pid from our job
        with contextlib.suppress(OSError):
            if (proc / "stat").read_text().split(") ", 1)[-1].startswith("Z"):
                return False
            return b"inkwell.feedback.job" in (proc / "cmdline").read_bytes()
    return True


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_losses(run: Path) -> list[dict]:
    """[{step, loss}] from RUN/metrics.jsonl (a half-written last line is left out)."""
    from inkwell.train.loop import read_metrics

    return [{"step": r["step"], "loss": r["loss"]} for r in read_metrics(run / "metrics.jsonl") if "loss" in r]


def poll_job(data: StudioData, job_id: int) -> dict:
    """The job, brought up to date: a running job whose status file appeared is finished or failed (with its
    report); one whose process is gone without a status file failed. Adds `run` (the run folder), `metrics`
    ([{step, loss}] so far), `adapter` (the adapter folder, once finished) and `log`."""
    job = data.job(None, job_id)
    run = Path(job["run_path"])
    if job["status"] == "running":
        status = _read_json(run / STATUS_FILE)
        if status is None and not _alive(job["pid"]):
            status = _read_json(run / STATUS_FILE)  # it may have written it just before it exited
            if status is None:
                status = {"status": "failed", "error": ENDED.format(log=run / LOG_FILE)}
        if status is not None:
            _record(data, job_id, run, status)
            job = data.job(None, job_id)
    finished = job["status"] in ("finished", "promoted", "discarded")
    job["run"] = str(run)
    job["log"] = str(run / LOG_FILE)
    job["metrics"] = read_losses(run)
    job["adapter"] = str(run) if finished and (run / "adapter_config.json").exists() else None
    return job


def _record(data: StudioData, job_id: int, run: Path, status: dict) -> None:
    if status.get("status") == "finished":
        report = _read_json(run / REPORT_FILE)
        if report is None:
            data.update_job(job_id, status="failed", error=f"the job finished without a readable {run / REPORT_FILE}")
        else:
            data.update_job(job_id, status="finished", report=report, error=None)
    else:
        data.update_job(job_id, status="failed", error=str(status.get("error") or "failed (no reason given)"))


def cancel_job(data: StudioData, job_id: int, timeout: float = 10.0) -> dict:
    """Stop a running job (SIGTERM to its process group; the child records "cancelled"), then poll it."""
    job = data.job(None, job_id)
    if job["status"] != "running":
        raise InkwellError(f"training job {job_id} is {job['status']}, not running", field="job_id")
    pid = job["pid"]
    if pid and _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    run = Path(job["run_path"])
    if _read_json(run / STATUS_FILE) is None:
        _write_json(run / STATUS_FILE, {"status": "failed", "error": "cancelled"})
    return poll_job(data, job_id)
