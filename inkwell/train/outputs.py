"""What a finished run folder holds, and the small loaders every recipe needs to get there.

OUT/
  inkwell-run.json      base model, stage, method, data files + sha256, resolved config, final metrics, template
  metrics.jsonl         one line per optimizer step: step, epoch, loss, lr, grad_norm, tokens_per_s[, val_loss]
  loss.png              train (and validation) loss
  tensorboard/          TensorBoard events of the same metrics (training.tensorboard)
  checkpoints/step-N/   the last `keep_last` checkpoints (when save_every > 0)
  -- full / freeze --   config.json, model.safetensors, tokenizer files, inkwell-model.json  (load_model(OUT))
  -- adapters --        adapter_config.json, adapter_model.safetensors  (PeftModel.from_pretrained / --adapter OUT)
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.home import atomic_write

RUN_CARD = "inkwell-run.json"


@dataclass
class TrainedRun:
    """What a recipe hands back: the folder, the trained model (in memory) and the run card."""

    out: Path
    model: Any
    tokenizer: Any
    card: dict

    @property
    def metrics(self) -> dict:
        return self.card["metrics"]


def output_dir(config) -> Path:
    """training output: `output:` as given (relative to the current folder), else runs/<config name>."""
    if config.output:
        return Path(config.output).expanduser()
    stem = config._source.stem if config._source else f"{config.stage}-{config.method}"
    return Path("runs") / stem


def model_spec(name: str, config_dir: Path | None) -> str:
    """A registry name stays a name; a relative folder/.gguf is looked up beside the config, then here.
    Paths come back absolute so the run card's base_model works from any folder."""
    from inkwell.models.registry import EMBEDDED_MODELS

    if name in EMBEDDED_MODELS:
        return name
    path = Path(name).expanduser()
    if not path.is_absolute() and config_dir is not None and (config_dir / path).exists():
        path = config_dir / path
    return str(path.resolve()) if path.exists() else name


def load_tokenizer(folder: Path) -> tuple[Any, set[int]]:
    """The tokenizer (pad = eos when it has none) and the ids that end a reply (as the engine stops on)."""
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise InkwellError(f"the tokenizer in {folder} has no end-of-text token", field="model")
    stop = {tokenizer.eos_token_id}
    try:
        eos = GenerationConfig.from_pretrained(folder).eos_token_id
        stop.update(eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else [])
    except OSError:
        pass
    return tokenizer, stop


# What each stage trains (models.load.architecture_of): causal LMs everywhere; encoder-decoders (T5) learn
# prompt -> response pairs in sft; encoders (BERT) only get a classification head.
STAGE_ARCHITECTURES = {
    "pretrain": ("decoder",),
    "sft": ("decoder", "seq2seq"),
    "dpo": ("decoder",),
    "classify": ("decoder", "encoder"),
}


def check_architecture(folder: Path, spec: str, stage: str) -> str:
    """The architecture of the model in `folder` (decoder | seq2seq | encoder) when `stage` trains it; otherwise
    an error that says which stage does."""
    from inkwell.models.load import architecture_of

    architecture = architecture_of(folder)
    if architecture in STAGE_ARCHITECTURES[stage]:
        return architecture
    if architecture == "encoder":
        raise InkwellError(
            f"'{spec}' is an encoder-only model (BERT family): it labels texts but cannot learn to write them "
            f"(stage: {stage})",
            field="model",
            hint="train it with stage: classify (see configs/minilm-classify.yaml), or use a causal LM here",
        )
    if architecture == "seq2seq":
        hint = (
            "use a causal LM or an encoder (e.g. all-minilm-l6-v2)"
            if stage == "classify"
            else "train an encoder-decoder with stage: sft (prompt -> response rows), or use a causal LM here"
        )
        raise InkwellError(
            f"stage {stage} does not train encoder-decoder (seq2seq) models such as '{spec}'", field="model", hint=hint
        )
    raise InkwellError(f"stage {stage} does not train causal LMs such as '{spec}'", field="model")


def load_base(folder: Path, dropout: float | None, architecture: str = "decoder"):
    """The pretrained model in fp32 (autocast gives bf16 speed; fp32 master weights keep small updates): a causal
    LM, or with architecture seq2seq an encoder-decoder (AutoModelForSeq2SeqLM)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM
    from transformers.utils import logging as hf_logging

    from inkwell.train.methods import dropout_overrides

    hf_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(folder)
    auto = AutoModelForSeq2SeqLM if architecture == "seq2seq" else AutoModelForCausalLM
    return auto.from_pretrained(folder, dtype=torch.float32, **dropout_overrides(config, dropout))


def context_of(folder: Path, card: dict) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    return int(card.get("context_length") or getattr(config, "max_position_embeddings", 2048))


def check_length(max_length: int, context: int) -> None:
    if max_length > context:
        raise InkwellError(
            f"training.max_length ({max_length}) is longer than the model's context ({context})",
            field="training.max_length",
            hint=f"use training.max_length={context} or less",
        )


def versions() -> dict:
    import accelerate
    import peft
    import torch
    import transformers

    from inkwell import __version__ as inkwell_version

    return {
        "inkwell": inkwell_version,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
    }


def write_run_card(out: Path, **fields) -> dict:
    card = {
        "inkwell_run": 1,
        "created_at": datetime.datetime.now().isoformat(timespec="seconds"),
        **fields,
        "versions": versions(),
    }
    with atomic_write(out / RUN_CARD) as handle:
        json.dump(card, handle, indent=2, ensure_ascii=False, default=str)
    _remember(out, card)
    return card


def _remember(out: Path, card: dict) -> None:
    """Record the run in the store so `inkwell models list` shows it; the run folder itself stays the source
    of truth, so a store problem is a warning, never a failed training run."""
    import sqlite3
    import warnings

    from inkwell.store import Store

    try:
        store = Store()
        try:
            store.record_run(
                out,
                stage=card.get("stage"),
                method=card.get("method"),
                base_model=card.get("base_model"),
                metrics=card.get("metrics") or card.get("final_metrics"),
            )
        finally:
            store.close()
    except (sqlite3.Error, OSError) as exc:
        warnings.warn(f"could not record the run in the history database: {exc}", stacklevel=2)
