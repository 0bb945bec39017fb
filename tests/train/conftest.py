"""Helpers for the training tests: small data files, a config writer and a runner, all on the tiny models
from tests/conftest.py. Every run is a few optimizer steps on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ALPACA_ROWS = [
    {"instruction": "Describe a bamboo bottle.", "output": "A light bottle."},
    {"instruction": "Describe a linen apron.", "input": "for cooks", "output": "Soft linen, two pockets."},
    {"instruction": "Describe wool socks.", "output": "Warm socks with a soft heel."},
    {"instruction": "Describe a brass lamp.", "output": "A lamp with a warm glow."},
    {"instruction": "Describe a tea pot.", "output": "Pours well, keeps tea hot."},
    {"instruction": "Describe a tote bag.", "output": "Canvas, strong, folds flat."},
]
# Preference pairs (dpo): the chosen answer of each prompt is the same word, so a few steps separate them.
PAIR_ROWS = [
    {"prompt": "Describe a bamboo bottle.", "chosen": "A light bottle.", "rejected": "Headlines and news."},
    {"prompt": "Describe wool socks.", "chosen": "Warm socks with a soft heel.", "rejected": "Poems, stories."},
    {
        "prompt": "Describe a brass lamp.",
        "chosen": "A lamp with a warm glow.",
        "rejected": "The lazy dog.",
        "system": "Be brief.",
    },
    {
        "prompt": [{"role": "user", "content": "Describe a tea pot."}],
        "chosen": [{"role": "assistant", "content": "Pours well."}],
        "rejected": [{"role": "assistant", "content": "Quizzes and summaries."}],
    },
]
# Labelled texts (classify): three classes any model can tell apart by their characters.
LABELLED_ROWS = [
    {"text": "床前明月光，疑是地上霜。", "label": "zh"},
    {"text": "举头望明月，低头思故乡。", "label": "zh"},
    {"text": "The quick brown fox jumps.", "label": "en"},
    {"text": "Poems, stories and headlines.", "label": "en"},
    {"text": '{"question": "?", "answer": "a"}', "label": "json"},
    {"text": '{"options": ["a", "b"]}', "label": "json"},
]
TEXT = (
    "The quick brown fox jumps over the lazy dog. Inkwell writes content: ads, emails, reviews, travel guides, "
    "quizzes and summaries. Poems, stories, headlines and news articles. "
) * 6


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (tests/conftest.py says why)."""


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))
    return path


@pytest.fixture
def alpaca_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "data" / "alpaca.jsonl", ALPACA_ROWS)


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "data" / "pairs.jsonl", PAIR_ROWS)


@pytest.fixture
def labelled_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "data" / "labelled.jsonl", LABELLED_ROWS)


@pytest.fixture
def text_folder(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT)
    (folder / "b.md").write_text("# Notes\n\n" + TEXT[::-1])
    return folder


@pytest.fixture
def make_config(tmp_path):
    """make_config(model, data_file, method="lora", **sections) -> path of a small SFT/pretrain config.
    Defaults: 3 steps of batch 2, no progress bar, no checkpoints."""

    def make(model, train, *, stage="sft", method="lora", name="run", training=None, data=None, **sections) -> Path:
        config = {
            "stage": stage,
            "model": str(model) if not isinstance(model, dict) else model,
            "output": str(tmp_path / name),
            "data": {"train": [str(train)], **(data or {})},
            "method": method,
            "training": {
                "max_steps": 3,
                "batch_size": 2,
                "lr": 1e-2,
                "progress": False,
                "max_length": 256,
                "schedule": "constant",
                "bf16": "false",  # identities below hold in fp32
                **(training or {}),
            },
            **sections,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"# inkwell train {path}\n" + yaml.safe_dump(config, allow_unicode=True))
        return path

    return make


@pytest.fixture
def run_config():
    """run_config(path, *overrides, callbacks=[]) -> TrainedRun (quiet)."""
    from inkwell.train import train

    def run(path, *overrides, callbacks=()):
        return train(path, list(overrides), callbacks=list(callbacks), say=lambda _message: None)

    return run


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def read_losses():
    return losses
