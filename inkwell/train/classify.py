"""Text classification: a sequence-classification head on a causal LM or an encoder, trained on {"text", "label"} rows.

    inkwell train configs/smollm2-classify.yaml [key=value ...]     # a causal LM (SmolLM2)
    inkwell train configs/minilm-classify.yaml [key=value ...]      # an encoder (all-MiniLM-L6-v2, BERT family)
    inkwell classify --model runs/smollm2-classify "Cheese -- milk's leap toward immortality."

Labels are strings; the label list is every label in the training rows (sorted), stored as id2label/label2id
in inkwell-run.json (and in config.json for full/freeze). The model is AutoModelForSequenceClassification
built from the base: on a causal LM its `score` head is new and reads the last real token (the pad token is
set so it is found); on an encoder (BERT family) its `classifier` head is new and reads the pooled [CLS] token.
LoRA uses PEFT's SEQ_CLS task, which trains and saves the head with the adapter; freeze trains the head too
(and BERT's pooler, which sits between the last layer and the head).

The recipe trains through the shared loop (loop.py) with the classifier's own pieces: one cross-entropy per
example (losses.SequenceClassificationLoss), batches with one label per row, and a validation that adds
accuracy and macro F1 to the loss. Validation, and the final report, give accuracy, per-class
precision/recall/F1 and the confusion matrix (scikit-learn's metrics). Loading a trained run and labelling
texts is inference: `Classifier` in generate/classify.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.generate.classify import classifier_tokenizer, pad_right
from inkwell.models.heads import load_classifier
from inkwell.train.config import ClassifyConfig, config_dict
from inkwell.train.data import DataReport, Row, expand, read_shaped_rows, split_off, text_field
from inkwell.train.loop import config_digest, make_accelerator, plan_steps, precision_of, train_loop
from inkwell.train.losses import SequenceClassificationLoss
from inkwell.train.methods import apply_method, count_parameters, dropout_overrides, save_weights, step_hook
from inkwell.train.outputs import (
    TrainedRun,
    check_architecture,
    check_length,
    context_of,
    model_spec,
    output_dir,
    write_run_card,
)

SHAPE = "text, label"


# ---------------------------------------------------------------- rows


def read_examples(files: list[Path], report: DataReport, key: str = "data.train") -> list[Row]:
    return read_shaped_rows(files, report, check_example, SHAPE, key)


def check_example(raw: dict, source: str, report: DataReport) -> Row | None:
    text = text_field(raw, "text", source, report)
    if text is None:
        return None
    if "label" not in raw or raw["label"] is None:
        report.problem(source, "label", f"is missing; a classify row needs {SHAPE}")
        return None
    label = raw["label"]
    if not isinstance(label, str):  # 0/1 or true/false would silently become different classes than "0"/"1"
        report.problem(source, "label", f"must be a string (the class name), got {type(label).__name__} {label!r}")
        return None
    if not label.strip():
        report.problem(source, "label", "is empty")
        return None
    return Row(source, "labelled", {"text": text, "label": label.strip()})


def encode_examples(
    tokenizer, rows: list[Row], label2id: dict[str, int], max_length: int, report: DataReport
) -> list[dict]:
    """Token ids of each text (with the tokenizer's special tokens, cut at max_length) and its class id."""
    examples = []
    for row in rows:
        label = row.value["label"]
        if label not in label2id:
            report.problem(
                row.source, "label", f"'{label}' is not a label of the training rows ({', '.join(label2id)})"
            )
            continue
        ids = tokenizer(row.value["text"], add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
        examples.append({"input_ids": ids, "label": label2id[label], "source": row.source})
    return examples


def collate(examples: list[dict], pad_id: int) -> dict:
    """Right padding (as inference pads, see generate/classify.py) and one class id per row."""
    import torch

    ids, mask = pad_right([e["input_ids"] for e in examples], pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([e["label"] for e in examples])}


# ---------------------------------------------------------------- model


def load_classifier_base(folder: Path, labels: list[str], pad_id: int, dropout: float | None = None):
    """AutoModelForSequenceClassification from a causal LM or encoder folder, fp32, with our labels, pad token and
    dropout."""
    overrides = {}
    if dropout is not None:
        from transformers import AutoConfig

        overrides = dropout_overrides(AutoConfig.from_pretrained(folder), dropout)
    return load_classifier(folder, labels, pad_id, **overrides)


def head_parameters(model) -> list:
    """The new classification head (`score` in llama/gemma/qwen, `classifier` in BERT and elsewhere), with the
    pooler that feeds an encoder's head (BERT's dense layer over [CLS]), which sits above every block."""
    head = getattr(model, "score", None)
    head = getattr(model, "classifier", None) if head is None else head
    if head is None:
        raise InkwellError("cannot find the classification head of this model", field="model")
    body = getattr(model, model.base_model_prefix, None)
    pooler = getattr(body, "pooler", None)
    return list(head.parameters()) + (list(pooler.parameters()) if pooler is not None else [])


# ---------------------------------------------------------------- metrics


def classification_report(true: list[int], pred: list[int], labels: list[str]) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1/support and the confusion matrix (rows = true label)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=ids, zero_division=0)
    matrix = confusion_matrix(true, pred, labels=ids)
    return {
        "accuracy": round(sum(t == p for t, p in zip(true, pred)) / max(len(true), 1), 6),
        "macro_f1": round(float(f1.mean()), 6),
        "per_class": {
            label: {
                "precision": round(float(precision[i]), 6),
                "recall": round(float(recall[i]), 6),
                "f1": round(float(f1[i]), 6),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {"labels": labels, "rows": matrix.tolist()},
    }


def format_report(report: dict) -> str:
    """The report as a person reads it: a per-class table, then the confusion matrix."""
    labels = report["confusion_matrix"]["labels"]
    width = max(8, *(len(label) for label in labels))
    lines = [
        f"accuracy {report['accuracy']:.3f}, macro F1 {report['macro_f1']:.3f}",
        f"{'label':<{width}}  precision  recall     f1  support",
    ]
    for label, row in report["per_class"].items():
        lines.append(
            f"{label:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}"
        )
    lines.append("confusion matrix (rows: true label, columns: predicted)")
    lines.append(" " * width + "  " + "  ".join(f"{label[:8]:>8}" for label in labels))
    for label, row in zip(labels, report["confusion_matrix"]["rows"]):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{n:>8d}" for n in row))
    return "\n".join(lines)


def evaluate(model, examples: list[dict], batch_size: int, pad_id: int, device, labels: list[str]) -> dict:
    """Mean cross-entropy and the classification report. Every process scores the whole set: validation sets
    are small, and all processes then agree on early stopping without gathering predictions."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    total, true, pred = 0.0, [], []
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(examples[start : start + batch_size], pad_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            total += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
            true += batch["labels"].tolist()
            pred += logits.argmax(-1).tolist()
    model.train(was_training)
    return {"loss": total / max(len(examples), 1), **classification_report(true, pred, labels)}


# ---------------------------------------------------------------- the recipe


def run(cfg: ClassifyConfig, *, callbacks: list = (), say: Callable[[str], None] = print) -> TrainedRun:
    from accelerate.utils import set_seed

    from inkwell.models.load import resolve

    t = cfg.training
    config_dir = cfg._source.parent if cfg._source else None
    out = output_dir(cfg)
    accelerator = make_accelerator(t.bf16)
    main = accelerator.is_main_process
    if not main:
        say = lambda _message: None  # noqa: E731 - one voice per run

    # 1. rows (no tokenizer or model yet); the labels come from the training rows
    report = DataReport(on_error=cfg.data.on_error)
    train_rows = read_examples(expand(cfg.data.train, config_dir, "data.train"), report)
    val_rows = read_examples(expand(cfg.data.val, config_dir, "data.val"), report, "data.val") if cfg.data.val else []
    labels = sorted({row.value["label"] for row in train_rows})
    if len(labels) < 2:
        raise InkwellError(
            f"classification needs at least two labels in the training rows, found {labels}", field="data.train"
        )
    label2id = {label: i for i, label in enumerate(labels)}

    # 2. tokens
    spec = model_spec(cfg.model.name, config_dir)
    with accelerator.main_process_first():
        folder, card = resolve(spec, progress=say)
    check_architecture(folder, spec, "classify")  # a causal LM or an encoder (BERT family)
    check_length(t.max_length, context_of(folder, card))
    tokenizer = classifier_tokenizer(folder)  # an encoder has [PAD] and no end-of-text token: neither is needed
    train_set = encode_examples(tokenizer, train_rows, label2id, t.max_length, report)
    val_set = encode_examples(tokenizer, val_rows, label2id, t.max_length, report)
    if cfg.data.val_split:
        train_set, val_set = split_off(train_set, cfg.data.val_split, t.seed)
    say(report.summary() + f"\nlabels: {', '.join(labels)}")
    if not train_set:
        raise InkwellError("no training examples left after skipping bad rows", field="data.train")

    # 3. the model: a new head on the causal LM or encoder, then the method
    set_seed(t.seed)
    pad_id = tokenizer.pad_token_id
    model = load_classifier_base(folder, labels, pad_id, t.dropout)
    steps_per_epoch, total_steps = plan_steps(len(train_set), t, accelerator.num_processes)
    model = apply_method(model, cfg, folder, total_steps, task_type="SEQ_CLS")
    if cfg.method == "freeze":
        for param in head_parameters(model):
            param.requires_grad_(True)  # the head is new: it always learns
    params = count_parameters(model)
    say(
        f"classify ({len(labels)} labels) {cfg.method} on {spec}: {params['trainable']:,} of {params['total']:,} weights "
        f"({params['percent']}%), {len(train_set)} train / {len(val_set)} val examples, {total_steps} steps -> {out}"
    )

    # 4. the shared loop, with a cross-entropy per example and a validation that also scores the predictions
    def validate(model) -> dict:
        scores = evaluate(model, val_set, t.batch_size, pad_id, accelerator.device, labels)
        return {
            "val_loss": round(scores["loss"], 6),
            "val_accuracy": scores["accuracy"],
            "val_macro_f1": scores["macro_f1"],
        }

    out.mkdir(parents=True, exist_ok=True)
    resolved = config_dict(cfg)
    started = time.perf_counter()
    result = train_loop(
        model,
        train_set,
        val_set,
        t,
        out,
        accelerator,
        pad_id=pad_id,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        digest=config_digest(resolved),
        after_step=step_hook(model, cfg.method),
        callbacks=callbacks,
        say=say,
        loss_of=SequenceClassificationLoss(),
        collate_fn=collate,
        validate=validate,
        speed="examples",
        desc="classify",
    )

    # 5. the final report (validation rows, else the training rows: say which), the weights, the run card
    trained, state = result.model, result.state
    trained.eval()
    evaluated_on = "val" if val_set else "train"
    final = evaluate(trained, val_set or train_set, t.batch_size, pad_id, accelerator.device, labels)
    say(f"on the {evaluated_on} rows:\n" + format_report(final))
    losses = [r["loss"] for r in result.records if "loss" in r]
    metrics = {
        "steps": state.step,
        "train_loss": losses[-1] if losses else None,
        "val_loss": round(final["loss"], 6) if val_set else None,
        "best_val_loss": state.best_val,
        "best_step": state.best_step,
        "stopped": state.stopped,
        "seconds": round(time.perf_counter() - started, 2),
        "evaluated_on": evaluated_on,
        **{k: final[k] for k in ("accuracy", "macro_f1", "per_class", "confusion_matrix")},
    }
    run_card: dict = {}
    if main:
        model_card = {
            "name": out.name,
            "chat": False,
            "context_length": context_of(folder, card),
            "base_model": spec,
            "task": "classify",
            "labels": labels,
            "trained_by": "inkwell train (classify)",
        }
        weights = save_weights(trained, cfg.method, out, tokenizer, model_card)
        run_card = write_run_card(
            out,
            precision=precision_of(accelerator),
            stage="classify",
            method=cfg.method,
            weights=weights,
            base_model=spec,
            base_model_path=str(folder),
            labels=labels,
            id2label={str(i): label for i, label in enumerate(labels)},
            label2id=label2id,
            max_length=t.max_length,
            data={"format": "labelled", "examples": {"train": len(train_set), "val": len(val_set)}, **report.to_dict()},
            parameters=params,
            metrics=metrics,
            config=resolved,
            command=cfg._command,
        )
        say(f"saved {weights} weights to {out}")
    accelerator.wait_for_everyone()
    return TrainedRun(out=out, model=trained, tokenizer=tokenizer, card=run_card)
