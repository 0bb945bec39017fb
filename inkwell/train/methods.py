"""Training methods: which weights learn, and how a trained model is saved so it loads back in one call.

    full      every weight trains; saved as a full Hugging Face folder (safetensors + tokenizer + card)
    freeze    only the last N transformer blocks (+ the final norm) train; saved like full
    lora      low-rank adapters (PEFT LoraConfig; rsLoRA and DoRA are switches)   -> PEFT adapter folder
    adalora   LoRA whose ranks are pruned during training (PEFT AdaLoraConfig)      -> PEFT adapter folder
    ia3       learned scaling vectors (PEFT IA3Config)                              -> PEFT adapter folder
    prefix    trained key/value prefixes in every layer (PEFT PrefixTuningConfig)   -> PEFT adapter folder
    prompt    trained soft-prompt embeddings (PEFT PromptTuningConfig)              -> PEFT adapter folder

Every PEFT method comes straight from PEFT; only `freeze` is ours (a few lines of requires_grad).
AdaLoRA's PEFT forward adds its orthogonal regulariser to every loss it returns (training and validation).
Adapter folders are plain PEFT layout, so `PeftModel.from_pretrained(base, OUT)` and
`inkwell write --adapter OUT` both load them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.home import atomic_write
from inkwell.models.load import MODEL_CARD
from inkwell.train.config import ADAPTER_METHODS

# Config attributes that hold dropout probabilities in common architectures; training.dropout sets them all.
DROPOUT_KEYS = (
    "attention_dropout",
    "hidden_dropout",
    "dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout_rate",  # T5
)


def dropout_overrides(config: Any, dropout: float | None) -> dict:
    """from_pretrained kwargs that set every dropout the model's config has (modules read them at build time)."""
    if dropout is None:
        return {}
    return {key: dropout for key in DROPOUT_KEYS if hasattr(config, key)}


def apply_method(model, cfg, base_folder: Path, total_steps: int, task_type: str = "CAUSAL_LM"):
    """Make the requested weights trainable. Returns the model (a PeftModel for adapter methods).
    `task_type` SEQ_CLS (the classify stage) makes PEFT train and save the new `score` head with the adapter."""
    method = cfg.method
    if method == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    if method == "freeze":
        return _freeze_all_but_last(model, cfg.freeze.trainable_layers)
    import peft

    config = peft_config(cfg, base_folder, total_steps, task_type)
    try:
        with warnings.catch_warnings():  # PEFT calls a transformers property deprecated in v5: noise for users
            warnings.simplefilter("ignore", FutureWarning)
            return peft.get_peft_model(model, config)
    except ValueError as exc:  # e.g. target modules not found in this architecture
        raise InkwellError(
            f"{method}: PEFT cannot apply {method} to this model: {exc}",
            field=method,
            hint=f"check {method}.target_modules against the model's module names",
        ) from None


def peft_config(cfg, base_folder: Path, total_steps: int, task_type: str = "CAUSAL_LM"):
    """The PEFT config of an adapter method (the DPO stage hands it to TRL, which wraps the model itself)."""
    import peft

    method = cfg.method
    if method == "lora":
        s = cfg.lora
        config = peft.LoraConfig(
            task_type=task_type,
            r=s.r,
            lora_alpha=s.alpha,
            lora_dropout=s.dropout,
            target_modules=s.target_modules,
            use_rslora=s.use_rslora,
            use_dora=s.use_dora,
        )
    elif method == "adalora":
        s = cfg.adalora
        if s.tinit + s.tfinal >= total_steps:
            raise InkwellError(
                f"adalora.tinit + adalora.tfinal ({s.tinit} + {s.tfinal}) must be below the number of training steps ({total_steps})",
                field="adalora.tinit",
                hint="lower them, or train for more steps",
            )
        config = peft.AdaLoraConfig(
            task_type=task_type,
            init_r=s.init_r,
            target_r=s.target_r,
            lora_alpha=s.alpha,
            lora_dropout=s.dropout,
            target_modules=s.target_modules,
            tinit=s.tinit,
            tfinal=s.tfinal,
            deltaT=s.delta_t,
            total_step=total_steps,
        )
    elif method == "ia3":
        s = cfg.ia3
        config = peft.IA3Config(
            task_type=task_type, target_modules=s.target_modules, feedforward_modules=s.feedforward_modules
        )
    elif method == "prefix":
        config = peft.PrefixTuningConfig(task_type=task_type, num_virtual_tokens=cfg.prefix.num_virtual_tokens)
    elif method == "prompt":
        s = cfg.prompt
        init = (
            {
                "prompt_tuning_init": "TEXT",
                "prompt_tuning_init_text": s.init_text,
                "tokenizer_name_or_path": str(base_folder),
            }
            if s.init_text
            else {}
        )
        config = peft.PromptTuningConfig(task_type=task_type, num_virtual_tokens=s.num_virtual_tokens, **init)
    else:
        raise AssertionError(method)
    return config


def _freeze_all_but_last(model, trainable_layers: int):
    blocks = transformer_blocks(model)
    if trainable_layers > len(blocks):
        raise InkwellError(
            f"freeze.trainable_layers is {trainable_layers} but the model has {len(blocks)} layers",
            field="freeze.trainable_layers",
            hint=f"use 1..{len(blocks)}",
        )
    for param in model.parameters():
        param.requires_grad_(False)
    for block in blocks[len(blocks) - trainable_layers :]:
        for param in block.parameters():
            param.requires_grad_(True)
    norm = getattr(getattr(model, "model", None), "norm", None)  # the final norm of llama/gemma/qwen models
    if norm is not None:
        for param in norm.parameters():
            param.requires_grad_(True)
    return model


def transformer_blocks(model) -> list:
    """The model's stack of transformer blocks: its longest nn.ModuleList (model.model.layers in llama/gemma)."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise InkwellError(
            "cannot find the transformer layers of this model", field="method", hint="use method: full or lora"
        )
    return list(max(lists, key=len))


def step_hook(model, method: str) -> Callable[[int], None] | None:
    """Work a method needs after each backward pass, before the optimizer step. AdaLoRA re-allocates
    ranks there (PEFT's `update_and_allocate` must run with the gradients still present)."""
    if method != "adalora":
        return None

    def update(step: int) -> None:
        model.base_model.update_and_allocate(step)

    return update


def count_parameters(model) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "total": total, "percent": round(100 * trainable / max(total, 1), 4)}


def save_weights(model, method: str, out: Path, tokenizer, card: dict) -> str:
    """Write the trained weights into `out`. Returns 'adapter' or 'full'."""
    out.mkdir(parents=True, exist_ok=True)
    if method in ADAPTER_METHODS:
        model.save_pretrained(out)  # adapter_config.json + adapter_model.safetensors
        return "adapter"
    model.save_pretrained(out)  # config.json + model.safetensors (+ generation_config.json)
    tokenizer.save_pretrained(out)
    with atomic_write(out / MODEL_CARD) as handle:
        json.dump(card, handle, indent=2, ensure_ascii=False)
    return "full"
