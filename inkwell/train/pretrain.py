"""Pretraining: next-token prediction on raw text, packed into blocks of training.max_length tokens.

    inkwell train configs/tiny-gpt-pretrain.yaml [key=value ...]

Either continues training a pretrained model (model: NAME, method full/freeze/lora), or builds a small
llama-style model from scratch (model: {from_scratch: {...}}) that reuses an existing model's tokenizer.
The loss counts every token. Documents are joined with the end-of-text token and cut into blocks without
restarting positions, as GPT-style pretraining does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.train.collate import pack_blocks
from inkwell.train.config import PretrainConfig, config_dict
from inkwell.train.data import DataReport, expand, read_rows, split_off
from inkwell.train.loop import config_digest, make_accelerator, plan_steps, precision_of, train_loop
from inkwell.train.methods import apply_method, count_parameters, save_weights, step_hook
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


def build_from_scratch(spec, tokenizer):
    """A small llama model with random weights sized by `model.from_scratch`, its vocabulary the tokenizer's."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate or 4 * spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads or spec.heads,
        max_position_embeddings=spec.context,
        tie_word_embeddings=True,  # tied: fewer weights, better for small models
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).to(torch.float32)


def _blocks(rows, tokenizer, block: int, where: str) -> list[dict]:
    documents = [tokenizer(row.value["text"], add_special_tokens=True)["input_ids"] for row in rows]
    blocks, _dropped = pack_blocks(documents, block, tokenizer.eos_token_id)
    if rows and not blocks:
        total = sum(len(d) + 1 for d in documents)
        raise InkwellError(
            f"{where}: the text is {total} tokens, less than one block of training.max_length ({block})",
            field=where,
            hint="add text or lower training.max_length",
        )
    return blocks


def run(cfg: PretrainConfig, *, callbacks: list = (), say: Callable[[str], None] = print) -> TrainedRun:
    from accelerate.utils import set_seed

    from inkwell.models.load import resolve

    t = cfg.training
    config_dir = cfg._source.parent if cfg._source else None
    out = output_dir(cfg)
    accelerator = make_accelerator(t.bf16)
    if not accelerator.is_main_process:
        say = lambda _message: None  # noqa: E731

    # 1. text (no tokenizer or model yet)
    report = DataReport(on_error=cfg.data.on_error)
    train_rows = read_rows(
        expand(cfg.data.train, config_dir, "data.train"),
        cfg.data.format,
        report,
        config_dir=config_dir,
        allowed=("text",),
    )
    val_rows = (
        read_rows(
            expand(cfg.data.val, config_dir, "data.val"),
            cfg.data.format,
            report,
            config_dir=config_dir,
            allowed=("text",),
        )
        if cfg.data.val
        else []
    )

    # 2. tokenizer and blocks
    scratch = cfg.model.from_scratch
    with accelerator.main_process_first():
        if scratch is not None:
            spec = None
            folder, card = resolve(model_spec(scratch.tokenizer_from, config_dir), progress=say)
            context = scratch.context
        else:
            spec = model_spec(cfg.model.name, config_dir)
            folder, card = resolve(spec, progress=say)
            check_architecture(folder, spec, "pretrain")  # a causal LM: an encoder or T5 is refused by name
            context = context_of(folder, card)
    check_length(t.max_length, context)
    tokenizer, _stop = load_tokenizer(folder)
    train_set = _blocks(train_rows, tokenizer, t.max_length, "data.train")
    val_set = _blocks(val_rows, tokenizer, t.max_length, "data.val")
    if cfg.data.val_split:
        train_set, val_set = split_off(train_set, cfg.data.val_split, t.seed)
    say(report.summary() + f"\n{len(train_set)} train / {len(val_set)} val blocks of {t.max_length} tokens")
    if not train_set:
        raise InkwellError("no training text left after skipping bad rows", field="data.train")

    # 3. the model
    set_seed(t.seed)
    if scratch is not None:
        model = build_from_scratch(scratch, tokenizer)
    else:
        model = load_base(folder, t.dropout)
    steps_per_epoch, total_steps = plan_steps(len(train_set), t, accelerator.num_processes)
    model = apply_method(model, cfg, Path(folder), total_steps)
    params = count_parameters(model)
    say(
        f"pretraining {cfg.method} on {spec or 'a model from scratch'}: {params['trainable']:,} trainable weights, "
        f"{total_steps} steps -> {out}"
    )

    # 4. the loop
    out.mkdir(parents=True, exist_ok=True)
    resolved = config_dict(cfg)
    result = train_loop(
        model,
        train_set,
        val_set,
        t,
        out,
        accelerator,
        pad_id=tokenizer.pad_token_id,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        digest=config_digest(resolved),
        after_step=step_hook(model, cfg.method),
        callbacks=callbacks,
        say=say,
    )

    # 5. outputs
    trained = result.model
    trained.eval()
    run_card: dict = {}
    chat = False if scratch is not None else bool(card.get("chat", tokenizer.chat_template is not None))
    if accelerator.is_main_process:
        model_card = {
            "name": out.name,
            "chat": chat,
            "context_length": context,
            "languages": card.get("languages", []),
            "base_model": spec,
            "trained_by": "inkwell train (pretrain)",
        }
        weights = save_weights(trained, cfg.method, out, tokenizer, model_card)
        run_card = write_run_card(
            out,
            precision=precision_of(accelerator),
            stage="pretrain",
            method=cfg.method,
            weights=weights,
            base_model=spec,
            base_model_path=None if scratch else str(folder),
            from_scratch=scratch.model_dump() if scratch else None,
            tokenizer_from=str(folder) if scratch else None,
            chat=chat,
            template=None,
            data={"format": "text", "examples": {"train": len(train_set), "val": len(val_set)}, **report.to_dict()},
            parameters=params,
            metrics=result.final,
            config=resolved,
            command=cfg._command,
        )
        say(f"saved {weights} weights to {out}")
    accelerator.wait_for_everyone()
    return TrainedRun(out=out, model=trained, tokenizer=tokenizer, card=run_card)
