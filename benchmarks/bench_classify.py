"""Text classification on an encoder against a causal LM: all-MiniLM-L6-v2 (configs/minilm-classify.yaml, 22M
weights, full fine-tuning) against SmolLM2-135M-Instruct (configs/smollm2-classify.yaml, LoRA) on the shipped
topic data (configs/data/fortune-topics.jsonl: 500 quotes, 5 labels), in one process.

    python benchmarks/bench_classify.py [--epochs 1] [--batch 16] [--repeats 3]

Both recipes train from their shipped configs on the same rows with the same seeded validation split
(val_split 0.2: 400 train / 100 held-out rows) for the same number of epochs (--epochs; default 1, so the whole
run takes minutes on 2 CPU cores; the configs themselves train 3-4 epochs), without intermediate validation or
checkpoints. Each run is then loaded as `inkwell classify --model OUT` loads it and labels the 100 held-out
texts in batches of --batch, timed over --repeats passes after one warm-up pass.

Prints the CPU and the machine's load average (other processes slow both sides alike), each side's accuracy,
macro F1, training examples/s and classify texts/s, then MiniLM's ratios against SmolLM2; the last line is
a JSON object of them (speed ratios: higher is better for MiniLM; accuracy: the difference in points).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # threads that spin while waiting would steal shared cores

CASES = {  # name: the shipped config it trains with
    "minilm": REPO / "configs" / "minilm-classify.yaml",
    "smollm2": REPO / "configs" / "smollm2-classify.yaml",
}


def held_out_rows(config: Path) -> list[dict]:
    """The validation rows of the config's seeded split (as the recipe draws them: every row kept, same order)."""
    from inkwell.train.config import load_config
    from inkwell.train.data import split_off

    cfg = load_config(config)
    path = (config.parent / cfg.data.train[0]).resolve()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return split_off(rows, cfg.data.val_split, cfg.training.seed)[1]


def run_case(name: str, epochs: float, batch: int, repeats: int, out: Path) -> dict:
    from inkwell.generate.classify import Classifier
    from inkwell.train import train

    overrides = [
        f"output={out}",
        f"training.epochs={epochs}",
        "training.eval_every=0",
        "training.early_stopping_patience=0",
        "training.save_every=0",
        "training.progress=false",
        "training.tensorboard=false",
    ]
    started = time.perf_counter()
    run = train(CASES[name], overrides, say=lambda _message: None)
    train_wall = time.perf_counter() - started
    metrics, examples = run.card["metrics"], run.card["data"]["examples"]
    assert metrics["evaluated_on"] == "val" and examples["val"] == 100, examples

    rows = held_out_rows(CASES[name])
    texts = [row["text"] for row in rows]
    started = time.perf_counter()
    classifier = Classifier.load(out, device="cpu")
    load_s = time.perf_counter() - started
    predictions = classifier.predict(texts, batch_size=batch)  # warm-up; also the accuracy check below
    started = time.perf_counter()
    for _ in range(repeats):
        classifier.predict(texts, batch_size=batch)
    classify_s = time.perf_counter() - started
    accuracy = sum(p["label"] == row["label"] for p, row in zip(predictions, rows)) / len(rows)
    return {
        "method": run.card["method"],
        "precision": run.card["precision"],
        "weights": run.card["parameters"]["total"],
        "trainable": run.card["parameters"]["trainable"],
        "steps": metrics["steps"],
        "accuracy": metrics["accuracy"],
        "accuracy_classify": round(accuracy, 4),  # the saved run, loaded on its own: must match
        "macro_f1": metrics["macro_f1"],
        "train_s": round(metrics["seconds"], 1),
        "train_wall_s": round(train_wall, 1),
        "train_examples_per_s": round(examples["train"] * epochs / metrics["seconds"], 2),
        "load_s": round(load_s, 2),
        "classify_texts_per_s": round(len(texts) * repeats / classify_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs each side trains (default 1)")
    parser.add_argument("--batch", type=int, default=16, help="texts per classify batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed classify passes over the held-out texts")
    args = parser.parse_args()

    from inkwell.models.cpu import describe

    print(describe())
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="inkwell-bench-classify-") as tmp:
        for name in CASES:
            results[name] = run_case(name, args.epochs, args.batch, args.repeats, Path(tmp) / name)
            print(f"{name}: {json.dumps(results[name])}", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    mini, smol = results["minilm"], results["smollm2"]
    ratios = {
        "epochs": args.epochs,
        "accuracy_points": round(100 * (mini["accuracy"] - smol["accuracy"]), 1),
        "macro_f1_points": round(100 * (mini["macro_f1"] - smol["macro_f1"]), 1),
        "classify_texts_per_s_ratio": round(mini["classify_texts_per_s"] / smol["classify_texts_per_s"], 2),
        "train_examples_per_s_ratio": round(mini["train_examples_per_s"] / smol["train_examples_per_s"], 2),
        "load_s_ratio": round(mini["load_s"] / smol["load_s"], 2),
    }
    print(
        f"MiniLM vs SmolLM2 ({args.epochs:g} epoch(s) each): accuracy {mini['accuracy']:.3f} vs {smol['accuracy']:.3f} "
        f"({ratios['accuracy_points']:+.1f} points), classify {ratios['classify_texts_per_s_ratio']}x texts/s, "
        f"training {ratios['train_examples_per_s_ratio']}x examples/s"
    )
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
