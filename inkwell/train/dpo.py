"""Preference tuning (DPO): make `chosen` answers likelier than `rejected` ones, relative to a frozen reference.

    inkwell train configs/smollm2-dpo.yaml [key=value ...]

Rows (one JSON object per line):

    {"prompt": "Write a short quote about food.", "chosen": "...", "rejected": "...", "system": "..." (optional)}
    {"prompt": [{"role": "user", "content": ...}], "chosen": [{"role": "assistant", "content": ...}], "rejected": [...]}
    {"chosen": [user..., assistant], "rejected": [user..., assistant]}   (the shared messages are the prompt)

The prompt is rendered exactly as generation renders it (the SFT encoder does it: chat template with the
generation prompt for chat models, plain text with special tokens for base models), so the preference is
learnt on the text `inkwell generate --chat` / `inkwell write` feed the model. Training itself is TRL's
DPOTrainer (a transformers Trainer): we hand it tokenised pairs, the method's weights and our options.
The reference model is the model before training: a frozen copy for full/freeze; for LoRA, TRL switches the
adapter off (the base model), so no second copy is held. The output folder is the same as SFT's (PEFT
adapter or full model + inkwell-run.json + metrics.jsonl + loss.png), so `inkwell write --adapter OUT` works.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.home import atomic_write
from inkwell.train.collate import IGNORE, Encoder, NotEncodable
from inkwell.train.config import DPOConfig, config_dict
from inkwell.train.data import DataReport, Row, expand, parse_messages, read_shaped_rows, split_off, text_field
from inkwell.train.loop import (
    CHECKPOINTS,
    METRICS,
    PLOT,
    TENSORBOARD,
    LoopState,
    plot_losses,
    read_metrics,
    tensorboard_writer,
    use_bf16,
)
from inkwell.train.methods import apply_method, count_parameters, peft_config, save_weights
from inkwell.train.outputs import (
    TrainedRun,
    check_architecture,
    check_length,
    context_of,
    load_base,
    load_tokenizer,
    model_spec,
    output_dir,
    write_run_card,
)

SHAPE = "prompt, chosen, rejected"
# TRL's log keys -> ours in metrics.jsonl (the loss plot reads loss / val_loss, as for every stage)
RENAME = {"learning_rate": "lr", "eval_loss": "val_loss"}


# ---------------------------------------------------------------- rows


def read_pairs(files: list[Path], report: DataReport, key: str = "data.train") -> list[Row]:
    return read_shaped_rows(files, report, check_pair, SHAPE, key)


def check_pair(raw: dict, source: str, report: DataReport) -> Row | None:
    """One preference row -> Row(kind "preference", {"messages": prompt messages, "chosen": str, "rejected": str})."""
    for key in ("chosen", "rejected"):
        if key not in raw or raw[key] is None:
            report.problem(source, key, f"is missing; a dpo row needs {SHAPE}")
            return None
    answers: dict[str, str] = {}
    before: dict[str, list[dict]] = {}
    for key in ("chosen", "rejected"):
        value = raw[key]
        if isinstance(value, list):  # messages: the last one is the answer, any before it belong to the prompt
            messages = parse_messages(value, source, key, report)
            if messages is None:
                return None
            if messages[-1]["role"] != "assistant":
                report.problem(
                    source, f"{key}[{len(messages) - 1}].role", "the last message must be the assistant's answer"
                )
                return None
            before[key], answers[key] = messages[:-1], messages[-1]["content"]
        else:
            text = text_field(raw, key, source, report)
            if text is None:
                return None
            before[key], answers[key] = [], text
        if not answers[key].strip():
            report.problem(source, key, "is empty")
            return None
    if before["chosen"] != before["rejected"]:
        report.problem(source, "rejected", "chosen and rejected must share every message before the answer")
        return None
    if answers["chosen"].strip() == answers["rejected"].strip():
        report.problem(source, "rejected", "is the same text as chosen: nothing to prefer")
        return None
    prompt = raw.get("prompt")
    if isinstance(prompt, list):
        messages = parse_messages(prompt, source, "prompt", report)
        if messages is None:
            return None
        if "system" in raw:
            report.problem(source, "system", "put the system message in the prompt's messages")
            return None
    elif prompt is None and before["chosen"]:
        messages = []
    else:
        text = text_field(raw, "prompt", source, report)
        system = text_field(raw, "system", source, report, required=False) if text is not None else None
        if text is None or system is None:
            return None
        messages = ([{"role": "system", "content": system}] if system.strip() else []) + [
            {"role": "user", "content": text}
        ]
    messages = messages + before["chosen"]
    if not messages:
        report.problem(source, "prompt", "is missing")
        return None
    return Row(
        source, "preference", {"messages": messages, "chosen": answers["chosen"], "rejected": answers["rejected"]}
    )


# ---------------------------------------------------------------- tokens


def encode_pairs(encoder: Encoder, rows: list[Row], report: DataReport) -> list[dict]:
    """{prompt_ids, chosen_ids, rejected_ids, source}: what TRL's preference collator batches."""
    examples = []
    for row in rows:
        try:
            example = encode_pair(encoder, row)
        except NotEncodable as exc:
            report.problem(row.source, None, str(exc))
            continue
        size = len(example["prompt_ids"]) + max(len(example["chosen_ids"]), len(example["rejected_ids"]))
        if size > encoder.max_length:
            report.problem(row.source, None, f"is {size} tokens, over training.max_length ({encoder.max_length})")
            continue
        examples.append(example)
    return examples


def encode_pair(encoder: Encoder, row: Row) -> dict:
    """Each answer is encoded as an SFT example of the same prompt; the prompt is what the labels mask."""
    messages = row.value["messages"]
    halves = {}
    for key in ("chosen", "rejected"):
        if encoder.chat:
            example = encoder.encode(
                Row(row.source, "messages", {"messages": messages + [{"role": "assistant", "content": row.value[key]}]})
            )
        else:  # base models: one prompt, as `inkwell generate --completion` sends it
            if [m["role"] for m in messages] not in (["user"], ["system", "user"]):
                raise NotEncodable(
                    "a model without a chat template takes one prompt (and optional system), not a conversation"
                )
            text = "\n\n".join(m["content"] for m in messages)
            example = encoder.encode(
                Row(row.source, "prompt_completion", {"prompt": text, "completion": row.value[key]})
            )
        ids, labels = example["input_ids"], example["labels"]
        # the answer is the labelled tail; earlier assistant turns of a conversation prompt are labelled too, so
        # split after the last masked token
        cut = max(i for i, label in enumerate(labels) if label == IGNORE) + 1
        halves[key] = (ids[:cut], ids[cut:])
    (prompt, chosen), (prompt_again, rejected) = halves["chosen"], halves["rejected"]
    if prompt != prompt_again:  # cannot happen with prefix-stable chat templates; guard the assumption
        raise NotEncodable("the chat template renders the prompt differently before the chosen and the rejected answer")
    return {"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected, "source": row.source}


# ---------------------------------------------------------------- checkpoints


def complete_checkpoints(root: Path) -> list[Path]:
    """Trainer checkpoints (checkpoint-N) whose trainer_state.json, written last, exists; oldest first."""
    if not root.is_dir():
        return []
    found = [
        p for p in root.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def resume_point(resume: str, root: Path) -> Path | None:
    if resume == "never":
        return None
    if resume == "auto":
        found = complete_checkpoints(root)
        return found[-1] if found else None
    path = Path(resume).expanduser()
    if not (path / "trainer_state.json").exists():
        raise InkwellError(
            f"training.resume: {path} is not a checkpoint folder (no trainer_state.json)",
            field="training.resume",
            hint=f"use auto, never, or a folder like {root}/checkpoint-100",
        )
    return path


def _step_of(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])


# ---------------------------------------------------------------- the recipe


def run(cfg: DPOConfig, *, callbacks: list = (), say: Callable[[str], None] = print) -> TrainedRun:
    import copy

    import torch
    import trl
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import set_seed
    from datasets import Dataset

    from inkwell.models.load import resolve

    t = cfg.training
    config_dir = cfg._source.parent if cfg._source else None
    out = output_dir(cfg)
    AcceleratorState._reset_state()  # the Trainer builds its own Accelerator; forget an earlier run's precision
    main = PartialState().is_main_process
    if not main:
        say = lambda _message: None  # noqa: E731 - one voice per run

    # 1. rows: files exist, every row has prompt/chosen/rejected (no tokenizer or model yet)
    report = DataReport(on_error=cfg.data.on_error)
    train_rows = read_pairs(expand(cfg.data.train, config_dir, "data.train"), report)
    val_rows = read_pairs(expand(cfg.data.val, config_dir, "data.val"), report, "data.val") if cfg.data.val else []

    # 2. tokens: prompts rendered as generation renders them
    spec = model_spec(cfg.model.name, config_dir)
    folder, card = resolve(spec, progress=say)
    check_architecture(folder, spec, "dpo")  # a causal LM: an encoder or T5 is refused by name
    check_length(t.max_length, context_of(folder, card))
    tokenizer, stop_ids = load_tokenizer(folder)
    chat = bool(card.get("chat", tokenizer.chat_template is not None))  # the rule load_model uses
    encoder = Encoder(tokenizer, chat=chat, stop_ids=stop_ids, max_length=t.max_length)
    train_set = encode_pairs(encoder, train_rows, report)
    val_set = encode_pairs(encoder, val_rows, report)
    if cfg.data.val_split:
        train_set, val_set = split_off(train_set, cfg.data.val_split, t.seed)
    say(report.summary())
    if not train_set:
        raise InkwellError(
            "no preference pairs left after skipping bad rows",
            field="data.train",
            hint="see the skipped rows above; fix them or point data.train at other files",
        )

    # 3. the policy, its method and the reference
    set_seed(t.seed)
    model = load_base(folder, t.dropout)
    ref_model, adapter = None, None
    if cfg.method == "lora":
        adapter = peft_config(cfg, folder, 0)  # TRL wraps the model; the reference = the adapter switched off
    else:
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)  # the model before training, frozen
        model = apply_method(model, cfg, folder, 0)

    # 4. TRL's trainer, told our options (each TrainingSettings key maps to one Trainer argument)
    checkpoints = out / CHECKPOINTS
    resume_from = resume_point(t.resume, checkpoints)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / METRICS
    if main:
        if resume_from is not None:  # forget steps logged after that checkpoint: the resumed run logs them again
            step = _step_of(resume_from)
            kept = [r for r in read_metrics(metrics_path) if r.get("step", 0) <= step]
            with atomic_write(metrics_path) as handle:
                handle.writelines(json.dumps(r) + "\n" for r in kept)
            say(f"resuming from {resume_from} (step {step})")
        else:
            if t.resume == "never" and complete_checkpoints(checkpoints):
                say(f"training.resume is never: removing the old checkpoints in {checkpoints}")
            shutil.rmtree(checkpoints, ignore_errors=True)
            metrics_path.unlink(missing_ok=True)
    has_val = bool(val_set)
    evaluating = has_val and t.eval_every > 0
    args = trl.DPOConfig(
        output_dir=str(checkpoints),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        optim="sgd" if t.optimizer == "sgd" else "adamw_torch",
        optim_args=f"momentum={t.momentum}" if t.optimizer == "sgd" else None,
        warmup_steps=t.warmup_steps or t.warmup_ratio,  # a value below 1 is a fraction of all steps
        lr_scheduler_type={"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[t.schedule],
        max_grad_norm=t.max_grad_norm or 0.0,  # 0 = no clipping
        bf16=use_bf16(t.bf16),
        use_cpu=not torch.cuda.is_available(),
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=1,
        report_to="none",
        disable_tqdm=not t.progress,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=t.eval_every or None,
        eval_on_start=evaluating and t.eval_on_start,
        save_strategy="steps" if t.save_every else "no",
        save_steps=t.save_every or 500,
        save_total_limit=t.keep_last,
        metric_for_best_model="eval_loss" if t.early_stopping_patience else None,
        greater_is_better=False,
        neftune_noise_alpha=t.neftune_alpha or None,
        activation_checkpointing=False,  # small models: recomputing activations costs more time than it saves memory
        max_length=t.max_length,  # rows over it were already skipped and reported, so nothing is cut
        disable_dropout=t.dropout is None,  # TRL's default: dropout would make policy and reference scores noisy
        beta=cfg.dpo.beta,
        loss_type=[cfg.dpo.loss_type],
        label_smoothing=cfg.dpo.label_smoothing,
        precompute_ref_log_probs=cfg.dpo.precompute_ref_log_probs,
    )
    trainer_class, metrics_class = _trainer_classes()
    board = (
        tensorboard_writer(out / TENSORBOARD, _step_of(resume_from) if resume_from else 0, say)
        if main and t.tensorboard
        else None
    )
    trainer_callbacks = [metrics_class(metrics_path, main, list(callbacks), board)]
    if t.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        trainer_callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))
    with _quiet_transformers():
        try:
            trainer = trainer_class(
                model=model,
                ref_model=ref_model,
                args=args,
                processing_class=tokenizer,
                peft_config=adapter,
                train_dataset=Dataset.from_list(train_set),
                eval_dataset=Dataset.from_list(val_set) if has_val else None,
                callbacks=trainer_callbacks,
            )
        except ValueError as exc:  # e.g. lora.target_modules not in this architecture
            raise InkwellError(f"dpo: TRL cannot set up training: {exc}", field="method") from None
        _quiet_progress(trainer, t.progress)
        params = count_parameters(trainer.model)
        say(
            f"dpo {cfg.method} on {spec}: {params['trainable']:,} of {params['total']:,} weights ({params['percent']}%), "
            f"{len(train_set)} train / {len(val_set)} val pairs, beta {cfg.dpo.beta}, loss {cfg.dpo.loss_type} -> {out}"
        )
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        if has_val and not any(
            "eval_loss" in h and h.get("step") == trainer.state.global_step for h in trainer.state.log_history
        ):
            trainer.evaluate()  # validate at the end, as every stage does
    if board is not None:
        board.close()

    # 5. outputs: the same folder layout as SFT
    trained = trainer.accelerator.unwrap_model(trainer.model)
    trained.eval()
    records = read_metrics(metrics_path) if main else []
    run_card: dict = {}
    if main:
        if records:
            plot_losses(records, out / PLOT, title=out.name)
        model_card = {
            "name": out.name,
            "chat": chat,
            "context_length": context_of(folder, card),
            "languages": card.get("languages", []),
            "base_model": spec,
            "trained_by": "inkwell train (dpo)",
        }
        weights = save_weights(trained, cfg.method, out, tokenizer, model_card)
        run_card = write_run_card(
            out,
            precision="bf16" if use_bf16(t.bf16) else "fp32",
            stage="dpo",
            method=cfg.method,
            weights=weights,
            base_model=spec,
            base_model_path=str(folder),
            chat=chat,
            template=None,
            data={
                "format": "preference",
                "examples": {"train": len(train_set), "val": len(val_set)},
                **report.to_dict(),
            },
            parameters=params,
            metrics=_final(records, trainer, result),
            config=config_dict(cfg),
            command=cfg._command,
        )
        say(f"saved {weights} weights to {out}")
    PartialState().wait_for_everyone()
    return TrainedRun(out=out, model=trained, tokenizer=tokenizer, card=run_card)


def _final(records: list[dict], trainer, result) -> dict:
    """The run card's metrics: the keys every stage reports, plus the last reward statistics."""
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    early = any(
        getattr(cb, "early_stopping_patience_counter", 0) >= getattr(cb, "early_stopping_patience", 1 << 30)
        for cb in trainer.callback_handler.callbacks
    )
    last = train[-1] if train else {}
    best = min(val, key=lambda r: r["val_loss"]) if val else None
    return {
        "steps": trainer.state.global_step,
        "train_loss": last.get("loss"),
        "val_loss": val[-1]["val_loss"] if val else None,
        "best_val_loss": best["val_loss"] if best else None,
        "best_step": best["step"] if best else None,
        "stopped": "early_stopping" if early else "max_steps",
        "seconds": round(result.metrics.get("train_runtime", 0.0), 2),
        **{
            k: last[k]
            for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
            if k in last
        },
        **{k: val[-1][k] for k in ("val_rewards/margins", "val_rewards/accuracies") if val and k in val[-1]},
    }


@contextlib.contextmanager
def _quiet_transformers():
    """Trainer's notes (e.g. early stopping without reloading the best model) and TRL 1.16's calls of a property
    transformers 5 deprecated (a warning per step) are not for users."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)


def _quiet_progress(trainer, progress: bool) -> None:
    """The Trainer prints every log dict (to stdout, or above the bar); we keep the bar and write the logs to
    metrics.jsonl instead."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class _Bar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(
                    loss=f"{logs['loss']:.4f}", margin=f"{logs.get('rewards/margins', 0):.3f}"
                )

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(_Bar())


def _trainer_classes():
    import trl
    from transformers import TrainerCallback

    class PretokenizedDPOTrainer(trl.DPOTrainer):
        """TRL's DPOTrainer fed with pairs we tokenised ourselves: its own tokenisation would render the prompt
        with special tokens added and strings joined, not as generation renders it."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    class MetricsFile(TrainerCallback):
        """metrics.jsonl: one line per step (loss, lr, grad_norm, rewards/...), validation as val_*; then the
        recipe's callbacks(state, record), as the shared loop calls them (tests use them to simulate a crash)."""

        def __init__(self, path: Path, main: bool, callbacks: list, board=None):
            self.path, self.main, self.callbacks, self.board = path, main, callbacks, board

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if "train_runtime" in logs:  # the summary at the end, not a step
                return
            record: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            for key, value in logs.items():
                if key in ("epoch", "total_flos"):
                    continue
                key = RENAME.get(key, key)
                record["val_" + key[5:] if key.startswith("eval_") else key] = value
            if self.main:
                with self.path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
            if self.board is not None:  # every number, as train/<key> or val/<key>
                for key, value in record.items():
                    if key not in ("step", "epoch") and isinstance(value, (int, float)):
                        self.board.add_scalar(
                            f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}", value, record["step"]
                        )
                self.board.flush()
            loop_state = LoopState(step=state.global_step, epoch=int(state.epoch or 0))
            for callback in self.callbacks:
                callback(loop_state, record)

    return PretokenizedDPOTrainer, MetricsFile
