"""Kills: `inkwell train` and `inkwell batch` as real processes, SIGKILLed at random moments and resumed.

Training (LoRA on the tiny model, checkpoints every few steps) is killed three times and resumed each time
(`resume: auto`); it ends with the steps, logged losses and adapter weights of an uninterrupted run. A batch
job is killed once mid-way and resumed with `--resume`; every input id is in the output exactly once. Neither
leaves temporary files behind. The kill moments come from a seeded generator (RELIABILITY_SEED to vary them)."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from reliability_helpers import child_env, inkwell_command

pytestmark = pytest.mark.reliability

SEED = int(os.environ.get("RELIABILITY_SEED", "7"))
STEPS = 36
SAVE_EVERY = 3
# Rows long enough that a step takes tens of milliseconds: a kill lands inside training, not after it.
ROWS = [
    {
        "instruction": f"Describe product number {i}.",
        "output": "A light bamboo bottle with a soft heel, two deep pockets and a warm glow. " * (3 + i % 4),
    }
    for i in range(16)
]
# The three kills: a step range each, so that every resumed run gets further before it is killed again. The
# second aims at a checkpoint being written (its hidden `.step-N.tmp` folder), at the latest at the range's end.
KILL_WINDOWS = [(2, 11), (13, 23), (25, STEPS - 1)]
MID_SAVE = 1


def train_config(tmp: Path, model: Path, name: str) -> Path:
    data = tmp / "rows.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    config = {
        "stage": "sft",
        "model": str(model),
        "output": str(tmp / name),
        "data": {"train": [str(data)]},
        "method": "lora",
        "lora": {"r": 4},
        "training": {
            "max_steps": STEPS,
            "batch_size": 4,
            "lr": 1e-2,
            "schedule": "cosine",
            "progress": False,
            "max_length": 256,
            "bf16": "false",
            "save_every": SAVE_EVERY,
            "keep_last": 2,
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(f"# inkwell train {path}\n" + yaml.safe_dump(config))
    return path


def last_step(metrics: Path) -> int:
    """The last whole line's step in metrics.jsonl (0 before the first)."""
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError):
            continue
    return 0


def kill_moment(out: Path, low: int, target: int, mid_save: bool):
    """When to kill a training run: at step `target`, or (mid_save) once a checkpoint is being written from
    step `low` on."""
    metrics, checkpoints = out / "metrics.jsonl", out / "checkpoints"

    def reached() -> bool:
        step = last_step(metrics)
        return step >= target or (mid_save and step >= low and any(checkpoints.glob(".step-*.tmp")))

    return reached


def kill_when(proc: subprocess.Popen, reached, delay: float, timeout: float = 120) -> bool:
    """SIGKILL `proc` `delay` seconds after `reached()` turns true; False if it finished first."""
    deadline = time.monotonic() + timeout
    while not reached():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the child made no progress"
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return True


def strays(folder: Path) -> list[str]:
    """Temporary files a kill may leave: `.NAME.tmp` (checkpoints, atomic writes), `*.part`, `*.tmp`."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith((".tmp", ".part")) or (p.name.startswith(".") and p.name != ".gitignore")
    )


def losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def test_training_killed_three_times_resumes_to_the_uninterrupted_run(tiny_chat_model, tmp_path, figures):
    from safetensors.torch import load_file

    rng = random.Random(SEED)
    env = child_env(tmp_path / "home")
    whole_config = train_config(tmp_path, tiny_chat_model, "whole")
    killed_config = train_config(tmp_path, tiny_chat_model, "killed")
    killed_out = tmp_path / "killed"
    started = time.monotonic()

    def start(config: Path, log: str) -> subprocess.Popen:
        with (tmp_path / log).open("wb") as sink:  # a file, not a pipe: nobody reads a killed child's pipe
            return subprocess.Popen(inkwell_command("train", str(config)), env=env, stdout=sink, stderr=sink)

    whole = start(whole_config, "whole.log")  # alongside the kills
    kills = []
    for number, (low, high) in enumerate(KILL_WINDOWS):
        target, delay = rng.randint(low, high), rng.uniform(0, 0.05)
        proc = start(killed_config, f"killed-{number}.log")
        if number == MID_SAVE:
            target, delay = high, 0.0
        reached = kill_moment(killed_out, low, target, mid_save=number == MID_SAVE)
        assert kill_when(proc, reached, delay), (
            f"the run finished before step {target}: {(tmp_path / f'killed-{number}.log').read_text()[-2000:]}"
        )
        kept = [int(p.name[5:]) for p in sorted((killed_out / "checkpoints").glob("step-*"))]
        left = strays(killed_out)  # e.g. a checkpoint cut mid-save: the resumed run must clear it
        kills.append(
            f"step {last_step(killed_out / 'metrics.jsonl')} +{delay * 1000:.0f} ms (checkpoints {kept}, temp {left})"
        )

    last = subprocess.run(inkwell_command("train", str(killed_config)), env=env, capture_output=True, text=True)
    assert last.returncode == 0, last.stderr[-3000:]
    assert "resuming from" in last.stdout + last.stderr
    assert whole.wait(300) == 0, (tmp_path / "whole.log").read_text()[-3000:]
    seconds = time.monotonic() - started

    whole_out = tmp_path / "whole"
    assert [step for step, _ in losses(killed_out)] == list(range(1, STEPS + 1))
    assert losses(killed_out) == losses(whole_out)  # exactly: same data order, RNG, optimizer and schedule
    mine, theirs = (load_file(str(out / "adapter_model.safetensors")) for out in (killed_out, whole_out))
    assert mine.keys() == theirs.keys() and all((mine[k] == theirs[k]).all() for k in mine)
    card = json.loads((killed_out / "inkwell-run.json").read_text())
    assert card["metrics"]["steps"] == STEPS
    assert strays(killed_out) == []
    figures["training kills"] = (
        f"3 SIGKILLs at {'; '.join(kills)}; resumed to {STEPS} steps with identical losses and weights "
        f"(seed {SEED}; {seconds:.0f} s for 5 processes)"
    )


BATCH_ROWS = 40


def test_batch_killed_mid_way_resumes_with_every_id_once(tiny_chat_model, tmp_path, figures):
    rng = random.Random(SEED + 1)
    rows = tmp_path / "products.csv"
    with rows.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "product", "audience"])
        writer.writerows([f"p{i:03d}", f"bamboo bottle {i}", "hikers"] for i in range(BATCH_ROWS))
    out = tmp_path / "out" / "descriptions.jsonl"
    part = out.with_name(out.name + ".part")
    command = inkwell_command(
        "batch", "product-description", "--input", str(rows), "--output", str(out),
        "--model", str(tiny_chat_model), "--dtype", "fp32", "--device", "cpu",
        "--batch-size", "2", "--max-new-tokens", "48", "--seed", "3", "--no-progress", "--no-moderation",
    )  # fmt: skip
    env = child_env(tmp_path / "home")
    started = time.monotonic()

    def lines_written() -> int:
        try:
            return part.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    target, delay = rng.randint(8, BATCH_ROWS - 12), rng.uniform(0, 0.05)
    with (tmp_path / "batch.log").open("wb") as sink:
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    assert kill_when(proc, lambda: lines_written() >= target, delay), (tmp_path / "batch.log").read_text()[-2000:]
    at_kill = lines_written()
    assert not out.exists() and 0 < at_kill < BATCH_ROWS

    resumed = subprocess.run([*command, "--resume", "--json"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    seconds = time.monotonic() - started
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == [f"p{i:03d}" for i in range(BATCH_ROWS)]  # every id, exactly once
    assert strays(out.parent) == []
    summary = json.loads(resumed.stdout)
    figures["batch kill"] = (
        f"SIGKILL after {at_kill} of {BATCH_ROWS} rows written; --resume wrote the rest "
        f"({json.dumps({k: summary.get(k) for k in ('written', 'already_done')})}); every id once ({seconds:.0f} s)"
    )


def test_long_form_killed_mid_draft_resumes_to_the_uninterrupted_piece(tiny_chat_model, tmp_path, figures):
    """`inkwell write long` SIGKILLed while sections are being written: --resume finishes the piece, which
    reads exactly as a run that was never killed (same seed), and the folder holds no temporary file."""
    rng = random.Random(SEED + 2)

    def command(out: Path) -> list[str]:
        return inkwell_command(
            "write", "long", "article", "--topic", "how tides work", "--words", "400", "--sections", "4",
            "--candidates", "1", "--no-transitions", "--model", str(tiny_chat_model), "--engine", "torch",
            "--dtype", "fp32", "--device", "cpu", "--seed", "5", "--out", str(out), "--json",
        )  # fmt: skip

    env = child_env(tmp_path / "home")
    whole = subprocess.run(command(tmp_path / "whole"), env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    target, delay = rng.randint(1, 2), rng.uniform(0, 0.05)
    with (tmp_path / "long.log").open("wb") as sink:
        proc = subprocess.Popen(command(out), env=env, stdout=sink, stderr=sink)
    done = lambda: len(list((out / "sections").glob("*.json"))) if (out / "sections").exists() else 0  # noqa: E731
    assert kill_when(proc, lambda: done() >= target, delay), (tmp_path / "long.log").read_text()[-2000:]
    at_kill = done()
    assert 0 < at_kill < 4 and not (out / "piece.md").exists()

    refused = subprocess.run(command(out), env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr  # never over a run by accident
    resumed = subprocess.run([*command(out), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "piece.md").read_text() == (tmp_path / "whole" / "piece.md").read_text()
    assert strays(out) == []
    figures["long-form kill"] = (
        f"SIGKILL after {at_kill} of 4 sections written; --resume wrote the rest and the piece equals an "
        "uninterrupted run's"
    )
