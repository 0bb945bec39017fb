"""The shipped MiniLM classify config on the real all-MiniLM-L6-v2 encoder (the package Inkwell ships for semantic
similarity), cut to a few steps: the recipe runs on the real WordPiece tokenizer, and the run labels texts
through `inkwell classify` for full fine-tuning and LoRA alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


@pytest.mark.parametrize("method", ["full", "lora"])
def test_minilm_config_trains_and_labels_text(tmp_path, capsys, method):
    from inkwell.cli import main
    from inkwell.train import train

    out = tmp_path / f"minilm-{method}"
    run = train(
        REPO / "configs" / "minilm-classify.yaml",
        [
            f"output={out}",
            f"method={method}",
            "training.max_steps=4",
            "training.eval_every=0",
            "training.early_stopping_patience=0",
            "training.progress=false",
        ],
        say=lambda _message: None,
    )
    assert run.card["labels"] == ["computers", "food", "law", "love", "science"]
    assert run.card["base_model"] == "all-minilm-l6-v2" and run.card["metrics"]["evaluated_on"] == "val"
    main(["classify", "--model", str(out), "Cheese -- milk's leap toward immortality.", "--json"])
    [result] = json.loads(capsys.readouterr().out)
    assert result["label"] in run.card["labels"] and abs(sum(result["probabilities"].values()) - 1) < 1e-4
