"""Text classification: a sequence-classification head on a causal LM, trained on {"text", "label"} rows.

    inkwell train configs/smollm2-classify.yaml [key=value ...]
    inkwell classify --model runs/smollm2-classify "Cheese -- milk's leap toward immortality."

Labels are strings; the label list is every label in the training rows (sorted), stored as id2label/label2id
in inkwell-run.json (and in config.json for full/freeze). The model is AutoModelForSequenceClassification
built from the causal LM (its `score` head is new, its pad token set so the last real token is pooled).
LoRA uses PEFT's SEQ_CLS task, which trains and saves the head with the adapter; freeze trains the head too.

The loop is a small one of our own: the shared loop (loop.py) is built around next-token loss over target
tokens, and a classifier's loss is one cross-entropy per example. It reuses the shared pieces (accelerator,
optimizer, schedule, batches, checkpoints with exact resume, metrics.jsonl, loss plot). Validation, and the
final report, give accuracy, per-class precision/recall/F1 and the confusion matrix (scikit-learn's metrics).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from inkwell.errors import InkwellError
from inkwell.home import atomic_write
from inkwell.train.config import ClassifyConfig, config_dict
from inkwell.train.data import DataReport, Row, expand, read_shaped_rows, split_off, text_field
from inkwell.train.loop import (precision_of, CHECKPOINTS, METRICS, PLOT, TENSORBOARD, LoopState, activate_neftune, build_optimizer,
                                build_scheduler, checkpoint_folders, config_digest, epoch_batches, find_checkpoint,
                                load_checkpoint, make_accelerator, plan_steps, plot_losses, read_metrics, save_checkpoint,
                                tensorboard_writer)
from inkwell.train.methods import apply_method, count_parameters, dropout_overrides, save_weights
from inkwell.train.outputs import (RUN_CARD, TrainedRun, check_length, context_of, load_tokenizer, model_spec, output_dir,
                                   write_run_card)

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


def encode_examples(tokenizer, rows: list[Row], label2id: dict[str, int], max_length: int, report: DataReport) -> list[dict]:
    """Token ids of each text (with the tokenizer's special tokens, cut at max_length) and its class id."""
    examples = []
    for row in rows:
        label = row.value["label"]
        if label not in label2id:
            report.problem(row.source, "label", f"'{label}' is not a label of the training rows ({', '.join(label2id)})")
            continue
        ids = tokenizer(row.value["text"], add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
        examples.append({"input_ids": ids, "label": label2id[label], "source": row.source})
    return examples


def collate(examples: list[dict], pad_id: int) -> dict:
    """Right padding: the classification head pools the last token that is not padding."""
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, example in enumerate(examples):
        ids[i, :len(example["input_ids"])] = torch.tensor(example["input_ids"])
        mask[i, :len(example["input_ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([e["label"] for e in examples])}


# ---------------------------------------------------------------- model


def load_classifier_base(folder: Path, labels: list[str], pad_id: int, dropout: float | None = None):
    """AutoModelForSequenceClassification from a causal LM folder, fp32, with our labels and pad token."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # as load_base does: no "Loading weights" bar for a small model
    config = AutoConfig.from_pretrained(folder)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score is newly initialised, lm_head unused": expected, not for users
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, dtype=torch.float32, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)}, pad_token_id=pad_id, **dropout_overrides(config, dropout))
    finally:
        hf_logging.set_verbosity(verbosity)
    return model


def head_parameters(model) -> list:
    """The new classification head (`score` in llama/gemma/qwen, `classifier` elsewhere)."""
    head = getattr(model, "score", None)
    head = getattr(model, "classifier", None) if head is None else head
    if head is None:
        raise InkwellError("cannot find the classification head of this model", field="model")
    return list(head.parameters())


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
        "per_class": {label: {"precision": round(float(precision[i]), 6), "recall": round(float(recall[i]), 6),
                              "f1": round(float(f1[i]), 6), "support": int(support[i])} for i, label in enumerate(labels)},
        "confusion_matrix": {"labels": labels, "rows": matrix.tolist()},
    }


def format_report(report: dict) -> str:
    """The report as a person reads it: a per-class table, then the confusion matrix."""
    labels = report["confusion_matrix"]["labels"]
    width = max(8, *(len(label) for label in labels))
    lines = [f"accuracy {report['accuracy']:.3f}, macro F1 {report['macro_f1']:.3f}",
             f"{'label':<{width}}  precision  recall     f1  support"]
    for label, row in report["per_class"].items():
        lines.append(f"{label:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}")
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
            batch = {k: v.to(device) for k, v in collate(examples[start:start + batch_size], pad_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            total += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
            true += batch["labels"].tolist()
            pred += logits.argmax(-1).tolist()
    model.train(was_training)
    return {"loss": total / max(len(examples), 1), **classification_report(true, pred, labels)}


# ---------------------------------------------------------------- the recipe


def run(cfg: ClassifyConfig, *, callbacks: list = (), say: Callable[[str], None] = print) -> TrainedRun:
    import torch
    import torch.nn.functional as F
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

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
        raise InkwellError(f"classification needs at least two labels in the training rows, found {labels}", field="data.train")
    label2id = {label: i for i, label in enumerate(labels)}

    # 2. tokens
    spec = model_spec(cfg.model.name, config_dir)
    with accelerator.main_process_first():
        folder, card = resolve(spec, progress=say)
    check_length(t.max_length, context_of(folder, card))
    tokenizer, _stop = load_tokenizer(folder)
    train_set = encode_examples(tokenizer, train_rows, label2id, t.max_length, report)
    val_set = encode_examples(tokenizer, val_rows, label2id, t.max_length, report)
    if cfg.data.val_split:
        train_set, val_set = split_off(train_set, cfg.data.val_split, t.seed)
    say(report.summary() + f"\nlabels: {', '.join(labels)}")
    if not train_set:
        raise InkwellError("no training examples left after skipping bad rows", field="data.train")

    # 3. the model: a new head on the causal LM, then the method
    set_seed(t.seed)
    model = load_classifier_base(folder, labels, tokenizer.pad_token_id, t.dropout)
    steps_per_epoch, total_steps = plan_steps(len(train_set), t, accelerator.num_processes)
    model = apply_method(model, cfg, folder, total_steps, task_type="SEQ_CLS")
    if cfg.method == "freeze":
        for param in head_parameters(model):
            param.requires_grad_(True)  # the head is new: it always learns
    params = count_parameters(model)
    say(f"classify ({len(labels)} labels) {cfg.method} on {spec}: {params['trainable']:,} of {params['total']:,} weights "
        f"({params['percent']}%), {len(train_set)} train / {len(val_set)} val examples, {total_steps} steps -> {out}")

    # 4. the loop: the shared loop's shape, with one cross-entropy per example
    out.mkdir(parents=True, exist_ok=True)
    resolved = config_dict(cfg)
    digest = config_digest(resolved)
    metrics_path, checkpoints = out / METRICS, out / CHECKPOINTS
    optimizer = build_optimizer(model, t)
    scheduler = build_scheduler(optimizer, t, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    state = LoopState()
    resume_from = find_checkpoint(t.resume, checkpoints)
    if resume_from is not None:
        state = load_checkpoint(resume_from, raw, optimizer, scheduler, accelerator, digest, say)
        say(f"resuming from {resume_from} (step {state.step} of {total_steps})")
        if main:
            kept = [r for r in read_metrics(metrics_path) if r.get("step", 0) <= state.step]
            with atomic_write(metrics_path) as handle:
                handle.writelines(json.dumps(r) + "\n" for r in kept)
    elif main:
        if t.resume == "never" and checkpoint_folders(checkpoints):
            say(f"training.resume is never: removing the old checkpoints in {checkpoints}")
            shutil.rmtree(checkpoints, ignore_errors=True)
        metrics_path.unlink(missing_ok=True)
    accelerator.wait_for_everyone()

    started = time.perf_counter()
    rank, world = accelerator.process_index, accelerator.num_processes
    device, pad_id = accelerator.device, tokenizer.pad_token_id
    neftune = activate_neftune(raw.get_input_embeddings(), t.neftune_alpha) if t.neftune_alpha else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    lengths = [len(e["input_ids"]) for e in train_set]
    bar = tqdm(total=total_steps, initial=state.step, disable=not (main and t.progress), desc="classify", unit="step", dynamic_ncols=True)
    board = tensorboard_writer(out / TENSORBOARD, state.step, say) if main and t.tensorboard else None

    def write(record: dict) -> None:
        if main:
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        if board is not None:  # every number, as train/<key> or val/<key>
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    board.add_scalar(f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}", value, record["step"])
            board.flush()

    model.train()
    try:
        if val_set and t.eval_on_start and state.step == 0:  # the start of the validation curve
            start = evaluate(model, val_set, t.batch_size, pad_id, device, labels)
            state.best_val, state.best_step = round(start["loss"], 6), 0
            write({"step": 0, "epoch": 0.0, "val_loss": round(start["loss"], 6), "val_accuracy": start["accuracy"],
                   "val_macro_f1": start["macro_f1"]})
        while state.step < total_steps and not state.stopped:
            batches = epoch_batches(lengths, t.batch_size, world, t.seed, state.epoch, False)
            windows = [batches[i:i + t.grad_accum] for i in range(0, len(batches), t.grad_accum)]
            for window in windows[state.window:]:
                if state.step >= total_steps:
                    break
                tick = time.perf_counter()
                micro = [collate([train_set[i] for i in group[rank * t.batch_size:(rank + 1) * t.batch_size]], pad_id)
                         for group in window]
                n_step = sum(len(group) for group in window)  # examples of the whole step, all processes
                step_loss = torch.zeros((), device=device)
                for k, batch in enumerate(micro):
                    batch = {key: value.to(device) for key, value in batch.items()}
                    sync = k == len(micro) - 1
                    with accelerator.no_sync(model) if not sync else contextlib.nullcontext():
                        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
                        loss = F.cross_entropy(logits, batch["labels"], reduction="sum") / n_step
                        accelerator.backward(loss * world)  # DDP averages over processes; the loss is a global mean
                    step_loss += loss.detach()
                grad_norm = accelerator.clip_grad_norm_(trainable, t.max_grad_norm or float("inf"))
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_value = float(accelerator.reduce(step_loss, "sum"))
                state.step += 1
                state.window += 1
                state.tokens += sum(lengths[i] for group in window for i in group)
                record: dict[str, Any] = {"step": state.step, "epoch": round(state.step / steps_per_epoch, 4), "loss": round(loss_value, 6),
                                          "lr": lr, "grad_norm": round(float(grad_norm), 6),
                                          "examples_per_s": round(n_step / max(time.perf_counter() - tick, 1e-9), 1)}
                if val_set and ((t.eval_every and state.step % t.eval_every == 0) or state.step == total_steps):
                    scores = evaluate(model, val_set, t.batch_size, pad_id, device, labels)
                    record.update(val_loss=round(scores["loss"], 6), val_accuracy=scores["accuracy"], val_macro_f1=scores["macro_f1"])
                    if state.best_val is None or record["val_loss"] < state.best_val:
                        state.best_val, state.best_step, state.bad_evals = record["val_loss"], state.step, 0
                    else:
                        state.bad_evals += 1
                        if t.early_stopping_patience and state.bad_evals >= t.early_stopping_patience:
                            state.stopped = "early_stopping"
                if state.step >= total_steps and not state.stopped:
                    state.stopped = "max_steps"
                write(record)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", **({"val_acc": f"{record['val_accuracy']:.3f}"} if "val_accuracy" in record else {}))
                if t.save_every and (state.step % t.save_every == 0 or state.stopped):
                    save_checkpoint(checkpoints, state, raw, optimizer, scheduler, accelerator, t.keep_last, digest)
                for callback in callbacks:
                    callback(state, record)
                if state.stopped:
                    break
            else:
                state.epoch += 1
                state.window = 0
        if not state.stopped:
            state.stopped = "max_steps"
    finally:
        bar.close()
        if board is not None:
            board.close()
        if neftune is not None:
            neftune.remove()
    accelerator.wait_for_everyone()

    # 5. the final report (validation rows, else the training rows: say which), the weights, the run card
    trained = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    trained.eval()
    evaluated_on = "val" if val_set else "train"
    final = evaluate(trained, val_set or train_set, t.batch_size, pad_id, device, labels)
    say(f"on the {evaluated_on} rows:\n" + format_report(final))
    records = read_metrics(metrics_path) if main else []
    losses = [r["loss"] for r in records if "loss" in r]
    metrics = {
        "steps": state.step, "train_loss": losses[-1] if losses else None, "val_loss": round(final["loss"], 6) if val_set else None,
        "best_val_loss": state.best_val, "best_step": state.best_step, "stopped": state.stopped,
        "seconds": round(time.perf_counter() - started, 2), "evaluated_on": evaluated_on,
        **{k: final[k] for k in ("accuracy", "macro_f1", "per_class", "confusion_matrix")},
    }
    run_card: dict = {}
    if main:
        if records:
            plot_losses(records, out / PLOT, title=out.name)
        model_card = {"name": out.name, "chat": False, "context_length": context_of(folder, card), "base_model": spec,
                      "task": "classify", "labels": labels, "trained_by": "inkwell train (classify)"}
        weights = save_weights(trained, cfg.method, out, tokenizer, model_card)
        run_card = write_run_card(
            out, precision=precision_of(accelerator), stage="classify", method=cfg.method, weights=weights, base_model=spec, base_model_path=str(folder),
            labels=labels, id2label={str(i): label for i, label in enumerate(labels)}, label2id=label2id,
            max_length=t.max_length, data={"format": "labelled", "examples": {"train": len(train_set), "val": len(val_set)}, **report.to_dict()},
            parameters=params, metrics=metrics, config=resolved, command=cfg._command,
        )
        say(f"saved {weights} weights to {out}")
    accelerator.wait_for_everyone()
    return TrainedRun(out=out, model=trained, tokenizer=tokenizer, card=run_card)


# ---------------------------------------------------------------- using a trained classifier


class Classifier:
    """A trained classify run, loaded for use: `Classifier.load(OUT).predict(["text", ...])`."""

    def __init__(self, model, tokenizer, labels: list[str], max_length: int, device):
        self.model, self.tokenizer, self.labels, self.max_length, self.device = model, tokenizer, labels, max_length, device

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto") -> "Classifier":
        import torch

        from inkwell.models.load import resolve

        run_dir = Path(run_dir).expanduser()
        card_path = run_dir / RUN_CARD
        if not card_path.exists():
            raise InkwellError(f"'{run_dir}' is not a training run folder ({RUN_CARD} is missing)", field="model",
                               hint="point --model at the output folder of `inkwell train` with stage: classify")
        card = json.loads(card_path.read_text(encoding="utf-8"))
        if card.get("stage") != "classify":
            raise InkwellError(f"'{run_dir}' holds a {card.get('stage')} run, not a classifier", field="model",
                               hint="train one with a `stage: classify` config (see configs/smollm2-classify.yaml)")
        labels = card["labels"]
        if card.get("weights") == "full":
            tokenizer, _ = load_tokenizer(run_dir)
            model = load_classifier_base(run_dir, labels, tokenizer.pad_token_id)
        else:
            from peft import PeftModel

            base = Path(card["base_model_path"]) if card.get("base_model_path") and Path(card["base_model_path"]).exists() \
                else resolve(card["base_model"])[0]
            tokenizer, _ = load_tokenizer(base)
            with warnings.catch_warnings():  # PEFT calls a transformers property deprecated in v5: noise for users
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(load_classifier_base(base, labels, tokenizer.pad_token_id), run_dir)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device).eval()
        return cls(model, tokenizer, labels, int(card.get("max_length") or 512), device)

    def predict(self, texts: list[str], batch_size: int = 16) -> list[dict]:
        """[{"label", "probability", "probabilities": {label: p}}] per text, in order."""
        import torch

        results = []
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(texts), batch_size):
            examples = [{"input_ids": self.tokenizer(text, add_special_tokens=True, truncation=True, max_length=self.max_length)["input_ids"] or [pad_id],
                         "label": 0} for text in texts[start:start + batch_size]]
            batch = collate(examples, pad_id)
            with torch.no_grad():
                logits = self.model(input_ids=batch["input_ids"].to(self.device), attention_mask=batch["attention_mask"].to(self.device)).logits
            for row in logits.float().softmax(-1).tolist():
                best = max(range(len(row)), key=row.__getitem__)
                results.append({"label": self.labels[best], "probability": round(row[best], 6),
                                "probabilities": {label: round(p, 6) for label, p in zip(self.labels, row)}})
        return results
