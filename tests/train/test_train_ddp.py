"""Two CPU processes (torchrun + gloo) train the same as one process with twice the batch: the loop shards
each global batch across ranks and averages the loss over all target tokens of all ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_double_batch(
    make_config, run_config, tiny_chat_model, alpaca_file, read_losses, tmp_path
):
    training = {"max_steps": 3, "lr": 1e-3}
    single = run_config(
        make_config(tiny_chat_model, alpaca_file, method="full", name="single", training={**training, "batch_size": 2})
    )
    path = make_config(tiny_chat_model, alpaca_file, method="full", name="ddp", training={**training, "batch_size": 1})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            "-m",
            "inkwell",
            "train",
            str(path),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # printed once, by the main process
    out = tmp_path / "ddp"
    assert summary["output"] == str(out) and summary["steps"] == 3
    assert read_losses(out) == pytest.approx(read_losses(single.out), rel=1e-4)
    card = json.loads((out / "inkwell-run.json").read_text())
    assert card["weights"] == "full" and (out / "model.safetensors").exists()
