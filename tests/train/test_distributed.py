"""Training under `accelerate launch` with the shipped configs (configs/accelerate-*.yaml): two CPU processes
(gloo) run the SFT recipe on the tiny model, finish, save an adapter that loads, and both took part.

On a CPU the FSDP config trains as DDP (accelerate applies FSDP only to GPU-like process groups; docs/scale.md),
so both configs are checked the same way here. Each launch takes 15-40 s on 2 shared cores (marked slow)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ACCELERATE_CONFIGS = sorted((REPO / "configs").glob("accelerate-*.yaml"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_each_accelerate_config_starts_with_its_command_and_loads(path):
    from accelerate.commands.config.config_args import load_config_from_file

    first = path.read_text().splitlines()[0]
    assert (
        first == f"# accelerate launch --config_file configs/{path.name} -m inkwell train configs/smollm2-lora-sft.yaml"
    )
    config = load_config_from_file(str(path))  # accelerate's own reader: unknown keys would fail here
    assert config.num_processes == 2 and yaml.safe_load(path.read_text())["mixed_precision"] == "no"


def test_both_configs_are_shipped():
    assert [p.name for p in ACCELERATE_CONFIGS] == ["accelerate-ddp-cpu.yaml", "accelerate-fsdp-cpu.yaml"]


@pytest.mark.slow  # two processes start torch and the recipe: 15-40 s a launch on 2 shared cores
@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_sft_under_accelerate_launch_with_two_cpu_processes(path, make_config, tiny_chat_model, alpaca_file, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # 6 rows, batch 1 per process, 2 processes: 3 optimizer steps make one epoch only if both processes trained
    training = {"max_steps": 3, "batch_size": 1, "lr": 1e-3, "save_every": 3}
    run = make_config(tiny_chat_model, alpaca_file, method="lora", name="run", training=training, lora={"r": 4})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path)]
    launch += ["--main_process_port", str(free_port())]  # the config's 29500 may be taken
    done = subprocess.run(
        [*launch, "-m", "inkwell", "train", str(run), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # printed once, by the main process
    out = tmp_path / "run"
    assert summary["output"] == str(out) and summary["steps"] == 3 and summary["stopped"] == "max_steps"

    # both ranks took part: each wrote its random-number state into the checkpoint, and the 6 rows were one
    # epoch in 3 steps (one process alone would have needed 6)
    checkpoint = out / "checkpoints" / "step-00000003"
    assert (checkpoint / "rng-0.pt").exists() and (checkpoint / "rng-1.pt").exists()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3] and metrics[-1]["epoch"] == 1.0

    card = json.loads((out / "inkwell-run.json").read_text())
    assert card["weights"] == "adapter" and card["metrics"]["steps"] == 3
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_chat_model), out)
    assert any("lora_B" in name and p.abs().sum() > 0 for name, p in model.named_parameters())  # trained
