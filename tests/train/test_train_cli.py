"""`inkwell train CONFIG [key=value ...]` end to end: overrides reach the run, the output folder describes
itself, and `inkwell write --adapter OUT` uses it. `python -m inkwell train` works (what accelerate launches)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from inkwell.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def test_train_then_write_with_the_adapter(make_config, tiny_chat_model, alpaca_file, capsys):
    path = make_config(tiny_chat_model, alpaca_file, name="cli-run")
    main(["train", str(path), "training.max_steps=2", "lora.r=2", "--json"])
    summary = json.loads(capsys.readouterr().out)
    out = Path(summary["output"])
    assert summary["steps"] == 2 and summary["train_loss"] > 0

    card = json.loads((out / "inkwell-run.json").read_text())
    assert card["stage"] == "sft" and card["method"] == "lora" and card["weights"] == "adapter"
    assert card["base_model"] == str(tiny_chat_model) and card["chat"] is True
    assert card["config"]["lora"]["r"] == 2 and card["config"]["training"]["max_steps"] == 2
    assert card["command"] == f"inkwell train {path} training.max_steps=2 lora.r=2"
    assert card["data"]["files"][0]["sha256"] == hashlib.sha256(alpaca_file.read_bytes()).hexdigest()
    assert card["metrics"]["steps"] == 2 and {"torch", "transformers", "peft"} <= set(card["versions"])
    assert (out / "loss.png").exists() and (out / "adapter_model.safetensors").exists()

    # no --model: the base model comes from inkwell-run.json
    main(
        [
            "write",
            "product-description",
            "--adapter",
            str(out),
            "--set",
            "product=mug",
            "--max-new-tokens",
            "3",
            "--seed",
            "1",
            "--no-log",
            "--json",
        ]
    )
    record = json.loads(capsys.readouterr().out)
    assert record["adapter"] == str(out) and record["model"] == str(tiny_chat_model)


def test_python_m_inkwell_train_check_reads_data_without_a_model(make_config, tiny_chat_model, alpaca_file):
    path = make_config(tiny_chat_model, alpaca_file)
    done = subprocess.run(
        [sys.executable, "-m", "inkwell", "train", str(path), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "6 rows from 1 file(s); skipped 0" in done.stderr and "config and data are valid (sft, lora)" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "inkwell", "train", str(path), "data.train=missing.jsonl", "--check"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: data.train: file not found: missing.jsonl")
