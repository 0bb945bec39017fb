"""`inkwell train` (every stage, `inkwell.train`) and `inkwell classify` (a trained classifier's labels)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from inkwell.cli.common import DeviceOpt, JsonOut, print_json, say


def train(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see configs/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value overrides, e.g. training.lr=1e-4 lora.r=16.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Validate the config and read the data files, then stop (no model is loaded)."),
    ] = False,
    as_json: JsonOut = False,
):
    """Train a model: pretrain, sft, dpo (preference pairs) or classify, with full/freeze/lora/adalora/ia3/prefix/prompt.

    Example: inkwell train configs/smollm2-lora-sft.yaml training.lr=1e-4 lora.r=16
    Several GPUs: accelerate launch -m inkwell train CONFIG.yaml (or torchrun --nproc_per_node N -m inkwell train ...)
    """
    from inkwell.train.config import load_config

    cfg = load_config(config, overrides)  # every key checked before anything heavy is imported
    if check:
        from inkwell.train import check_data

        report = check_data(cfg)  # each stage's own row reader
        say(report.summary())
        say(f"{config}: config and data are valid ({cfg.stage}, {cfg.method})")
        return
    import importlib

    from inkwell.train import RECIPES

    run = importlib.import_module(RECIPES[cfg.stage]).run(cfg, say=say)
    if not run.card:  # other processes of a multi-process run: the main process reports
        return
    if as_json:
        print_json({"output": str(run.out), **run.metrics})
    else:
        metrics = run.metrics
        val = f", val loss {metrics['val_loss']:.4f}" if metrics.get("val_loss") is not None else ""
        say(
            f"done: {metrics['steps']} steps, train loss {metrics['train_loss']:.4f}{val} ({metrics['stopped']}) -> {run.out}"
        )


def classify(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to classify ('-' reads one text from standard input).")
    ] = None,
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Output folder of `inkwell train` with stage: classify.")
    ] = ...,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help='JSONL rows with a "text" field to classify instead.')
    ] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOut = False,
):
    """Label texts with a trained classifier: the label and its probability per text.

    Example: inkwell classify --model runs/smollm2-classify "Cheese -- milk's leap toward immortality."
    """
    from inkwell.generate.jobs import classify_job

    items = [sys.stdin.read() if text == "-" else text for text in texts or []]
    results = classify_job(model, items, input, device=device)
    if as_json:
        print_json(results)
        return
    for result in results:
        preview = " ".join(result["text"].split())
        typer.echo(
            f"{result['label']}\t{result['probability']:.3f}\t{preview[:70] + ('...' if len(preview) > 70 else '')}"
        )
