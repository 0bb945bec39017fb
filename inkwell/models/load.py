"""Load a model for generation + its tokenizer from a registry name, a Hugging Face folder, a `.gguf` file, or a
PEFT adapter: a causal LM (decoder-only), or an encoder-decoder (T5 family) from a local folder, told apart by
the folder's config (`architecture_of`). Encoder-only models (BERT family) write nothing: they are classifiers.

GGUF files are de-quantised once with transformers' GGUF reader and cached as plain safetensors under
INKWELL_HOME/models, so later loads are a fast safetensors read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.home import models_dir
from inkwell.models.registry import EMBEDDED_ENCODERS, EMBEDDED_MODELS, get_embedded

MODEL_CARD = "inkwell-model.json"  # written beside prepared weights: where they came from, chat or base
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
DTYPES = ("auto", "fp32", "bf16", "fp16")


@dataclass
class LoadedModel:
    """A model ready for generation: the torch module, its tokenizer and what we know about it."""

    model: Any
    tokenizer: Any
    name: str  # registry name or the path the user gave
    path: Path  # the folder the weights were read from
    chat: bool  # use the chat template (instruct model) or plain completion (base model)
    context_length: int
    device: str
    dtype: str
    adapter: str | None = None
    # False when an adapter changes attention inputs (prefix/prompt tuning): the engine then uses HF generate.
    fast_path: bool = True
    info: dict = field(default_factory=dict)
    architecture: str = "decoder"  # decoder (causal LM) | seq2seq (encoder-decoder: the prompt goes to the encoder)

    @property
    def seq2seq(self) -> bool:
        return self.architecture == "seq2seq"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


# ---------------------------------------------------------------- devices and dtypes


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InkwellError(
            "device 'cuda' was asked for but no CUDA GPU is visible", field="device", hint="use --device cpu"
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise InkwellError(f"unknown device '{device}'", field="device", hint="use auto, cpu or cuda[:N]")
    return device


CPU_BF16_ENV = "INKWELL_CPU_BF16"  # auto (detect) | on | off: what `auto` dtypes and `bf16: auto` assume


def cpu_has_fast_bf16() -> bool:
    """bf16 matmuls are only fast on CPUs with AVX512-BF16 or AMX; elsewhere they are ~100x slower
    than fp32 (measured: 0.3 vs 138 GFLOP/s on an AVX2-only EPYC), so `auto` must not pick them.

    INKWELL_CPU_BF16=on|off overrides the detection: `off` keeps a bf16-capable CPU on fp32 (the test suite
    does this, so results do not depend on the machine), `on` forces the bf16 paths on any CPU (correct,
    only slow without the matrix units)."""
    setting = os.environ.get(CPU_BF16_ENV, "auto").strip().lower()
    if setting in ("on", "1", "true", "yes"):
        return True
    if setting in ("off", "0", "false", "no"):
        return False
    if setting not in ("", "auto"):
        raise InkwellError(
            f"{CPU_BF16_ENV}={setting!r} is not understood", field=CPU_BF16_ENV, hint="use auto, on or off"
        )
    import torch

    checks = [getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None)]
    return any(check is not None and check() for check in checks)


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype not in DTYPES:
        raise InkwellError(f"unknown dtype '{dtype}'", field="dtype", hint=f"use one of: {', '.join(DTYPES)}")
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            dtype = "bf16" if cpu_has_fast_bf16() else "fp32"
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype], dtype


# ---------------------------------------------------------------- resolving what the user named


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def embedded_cache_dir(name: str) -> Path:
    return models_dir() / name


def is_prepared(folder: Path) -> bool:
    return (folder / MODEL_CARD).exists() and (folder / "config.json").exists()


def check_hf_folder(folder: Path) -> None:
    """Say exactly which file is missing from a Hugging Face model folder."""
    if not (folder / "config.json").exists():
        raise InkwellError(
            f"'{folder}' is not a complete model folder: config.json is missing",
            field="model",
            hint="point at a folder saved with save_pretrained (config.json, *.safetensors, tokenizer files)",
        )
    if not any(next(folder.glob(p), None) for p in WEIGHT_PATTERNS):
        raise InkwellError(
            f"'{folder}' is not a complete model folder: no weights (*.safetensors or pytorch_model.bin)",
            field="model",
            hint="copy the model's .safetensors files into the folder",
        )
    if not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise InkwellError(
            f"'{folder}' is not a complete model folder: no tokenizer (one of {', '.join(TOKENIZER_FILES)})",
            field="model",
            hint="save the tokenizer into the folder with tokenizer.save_pretrained(folder)",
        )


def architecture_of(folder: Path) -> str:
    """What a model folder holds, from its config: `seq2seq` (an encoder-decoder such as T5 or BART; loads with
    AutoModelForSeq2SeqLM), `encoder` (encoder-only, BERT family: it reads and labels text but writes none), or
    `decoder` (a causal LM). transformers' own tables decide: `is_encoder_decoder` in the config, and the model
    types that have a masked-LM head (the encoder families) unless the config makes them a decoder."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(folder)
    except (ValueError, KeyError, OSError) as exc:  # e.g. a model_type this transformers does not know
        raise InkwellError(
            f"cannot read the model configuration in {folder}: {exc}",
            field="model",
            hint="check config.json (its model_type must be one transformers knows)",
        ) from None
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        return "encoder"
    return "decoder"


def architecture_of_spec(spec: str | None, adapter: str | None = None) -> str:
    """`architecture_of` for what the user typed, without preparing anything: embedded models and GGUF files are
    decoders; a local folder (or an adapter's base folder) is read from its config."""
    if not spec and adapter:
        spec = adapter_base(Path(adapter).expanduser())
    if not spec or spec in EMBEDDED_MODELS:
        return "decoder"
    if spec in EMBEDDED_ENCODERS:
        return "encoder"
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        try:
            return architecture_of(path)
        except InkwellError:  # an unreadable config: the loader says what is wrong with the folder
            return "decoder"
    return "decoder"


def refuse_encoder(spec: str, architecture: str) -> None:
    """An encoder-only model (BERT family) has no decoder to write with: say what it is good for."""
    if architecture == "encoder":
        raise InkwellError(
            f"'{spec}' is an encoder-only model (BERT family): it reads and labels text but cannot write it",
            field="model",
            hint="train it as a classifier (a `stage: classify` config, see configs/minilm-classify.yaml) and "
            "label texts with `inkwell classify`, or use a causal LM or a seq2seq (T5) model here",
        )


def read_card(folder: Path) -> dict:
    path = folder / MODEL_CARD
    return json.loads(path.read_text()) if path.exists() else {}


# ---------------------------------------------------------------- GGUF -> safetensors

# Seconds per MB of GGUF for the first-use de-quantisation, measured on 2 busy CPU cores (SmolLM2's 98 MB:
# ~30 s; Gemma-3's 253 MB: ~85 s, most of it reading the 262k-token vocabulary twice). Only for the notice.
DEQUANTISE_S_PER_MB = 0.33


def rough_duration(seconds: float) -> str:
    """A wait in words for a first-use notice: a person plans around the order of magnitude, not the second."""
    if seconds < 10:
        return "a few seconds"
    if seconds < 40:
        return "about half a minute"
    if seconds < 75:
        return "about a minute"
    if seconds < 150:
        return "about 1-2 minutes"
    minutes = round(seconds / 60)
    return f"about {minutes - 1}-{minutes + 1} minutes"


def prepare_gguf(gguf: Path, out_dir: Path, card: dict, progress: Callable[[str], None] | None = None) -> Path:
    """De-quantise a GGUF file into a plain HF folder (safetensors + tokenizer), written atomically."""
    say = progress or (lambda _msg: None)
    if not gguf.exists():
        raise InkwellError(f"GGUF file not found: {gguf}", field="model")
    megabytes = gguf.stat().st_size / 1e6
    # said before the heavy imports: this is the step a first `inkwell write` spends its time on
    say(
        f"preparing {card.get('name') or gguf.stem} for first use: de-quantising its GGUF ({megabytes:.0f} MB) into a "
        f"safetensors cache ({rough_duration(megabytes * DEQUANTISE_S_PER_MB)}; cached afterwards)"
    )
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    say(f"reading tokenizer from {gguf.name}")
    # transformers prefers a tokenizer.json/config.json lying beside the GGUF to the file's own (losing e.g. its
    # eos token and chat template), as in an `inkwell export --merge --gguf` folder: read the file on its own.
    alone = Path(tempfile.mkdtemp(prefix="inkwell-gguf-"))
    os.symlink(gguf.resolve(), alone / gguf.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(alone, gguf_file=gguf.name)
        say("de-quantising weights (once; cached afterwards)")
        gguf_model = AutoModelForCausalLM.from_pretrained(alone, gguf_file=gguf.name, dtype=torch.float32)
    except InkwellError:
        raise
    except Exception as exc:  # the GGUF reader raises many kinds of errors for unsupported files
        raise InkwellError(
            f"could not read GGUF file {gguf}: {exc}",
            field="model",
            hint="check the file is a complete GGUF of a supported architecture (llama, gemma3, qwen2, ...)",
        ) from exc
    finally:
        shutil.rmtree(alone, ignore_errors=True)
    # A GGUF-loaded model refuses save_pretrained; build a plain model from its config and copy the weights.
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise InkwellError(f"GGUF weights do not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    plain.tie_weights()
    plain.generation_config = gguf_model.generation_config

    tmp = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        say("writing safetensors cache")
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        card = dict(card, source_gguf=str(gguf), prepared_s=round(time.perf_counter() - started, 1))
        (tmp / MODEL_CARD).write_text(json.dumps(card, indent=2))
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def pull(name: str, progress: Callable[[str], None] | None = None, force: bool = False) -> Path:
    """Prepare an embedded model's cache folder (de-quantise its GGUF once). Returns the folder (an embedded
    encoder's is its package folder: nothing to prepare)."""
    if name in EMBEDDED_ENCODERS:
        return EMBEDDED_ENCODERS[name].folder()
    entry = get_embedded(name)
    out = embedded_cache_dir(name)
    if is_prepared(out) and not force:
        return out
    card = {
        "name": entry.name,
        "chat": entry.chat,
        "languages": list(entry.languages),
        "context_length": entry.context_length,
        "source_package": entry.package,
    }
    return prepare_gguf(entry.gguf_path(), out, card, progress)


def resolve(spec: str, progress: Callable[[str], None] | None = None) -> tuple[Path, dict]:
    """Turn what the user typed (name, folder, .gguf) into a prepared HF folder and its card."""
    if spec in EMBEDDED_MODELS:
        folder = pull(spec, progress)
        return folder, read_card(folder)
    if spec in EMBEDDED_ENCODERS:  # a plain HF folder inside its package: nothing to prepare
        encoder = EMBEDDED_ENCODERS[spec]
        return encoder.folder(), encoder.card()
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.exists():
            raise InkwellError(f"GGUF file not found: {path}", field="model")
        out = models_dir() / f"gguf-{path.stem}-{_file_fingerprint(path)}"
        if not is_prepared(out):
            prepare_gguf(path, out, {"name": path.stem, "source_path": str(path.resolve())}, progress)
        return out, read_card(out)
    if path.is_dir():
        if (path / "adapter_config.json").exists() and not (path / "config.json").exists():
            raise InkwellError(
                f"'{path}' holds a PEFT adapter, not a full model",
                field="model",
                hint=f"use --adapter {path} (with --model set to its base model)",
            )
        check_hf_folder(path)
        return path, read_card(path)
    if os.sep in spec or spec.startswith("."):
        raise InkwellError(
            f"model path not found: {path}", field="model", hint="check the path, or use a registry name"
        )
    get_embedded(spec)  # raises the 'unknown model; known models: ...' error
    raise AssertionError("unreachable")


def adapter_base(adapter_dir: Path) -> str | None:
    """The base model an adapter was trained on (from inkwell-run.json or adapter_config.json)."""
    run = adapter_dir / "inkwell-run.json"
    if run.exists():
        base = json.loads(run.read_text()).get("base_model")
        if base:
            return base
    cfg = adapter_dir / "adapter_config.json"
    if cfg.exists():
        return json.loads(cfg.read_text()).get("base_model_name_or_path") or None
    return None


def refuse_classifier(adapter_dir: Path) -> None:
    """A classify run's adapter carries a label head, not a language-model head: say so instead of failing
    somewhere inside PEFT."""
    import json

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    run = adapter_dir / "inkwell-run.json"
    stage = json.loads(run.read_text()).get("stage") if run.exists() else None
    if stage == "classify" or config.get("task_type") not in (None, "CAUSAL_LM", "SEQ_2_SEQ_LM"):
        raise InkwellError(
            f"'{adapter_dir}' is a classifier (stage: classify): it labels texts and cannot write them",
            field="adapter",
            hint=f"use `inkwell classify --model {adapter_dir} TEXT`, or an adapter "
            "trained with stage pretrain, sft or dpo",
        )


def load_model(
    spec: str | None = None,
    *,
    adapter: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load a model for generation. `spec` is a registry name, a HF folder or a .gguf path (default:
    the embedded default, or the base recorded in the adapter). A folder whose config is an encoder-decoder
    (T5 family) loads as a seq2seq model (`LoadedModel.seq2seq`)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from inkwell.models.registry import DEFAULT_MODEL

    hf_logging.disable_progress_bar()  # the per-tensor "Loading weights" bar is noise on every run
    adapter_dir = Path(adapter).expanduser() if adapter else None
    if adapter_dir is not None:
        if not (adapter_dir / "adapter_config.json").exists():
            raise InkwellError(
                f"'{adapter_dir}' is not a PEFT adapter folder: adapter_config.json is missing",
                field="adapter",
                hint="point --adapter at a folder written by `inkwell train` or peft's save_pretrained",
            )
        refuse_classifier(adapter_dir)
        if spec is None:
            spec = adapter_base(adapter_dir)
    spec = spec or DEFAULT_MODEL
    device = pick_device(device)
    torch_dtype, dtype_name = pick_dtype(dtype, device)
    folder, card = resolve(spec, progress)
    architecture = "decoder" if spec in EMBEDDED_MODELS else architecture_of(folder)
    refuse_encoder(spec, architecture)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    auto = AutoModelForSeq2SeqLM if architecture == "seq2seq" else AutoModelForCausalLM
    model = auto.from_pretrained(folder, dtype=torch_dtype)
    chat = card.get("chat", tokenizer.chat_template is not None)
    context = card.get("context_length") or getattr(model.config, "max_position_embeddings", 2048)
    if architecture == "seq2seq":  # T5's relative positions have no hard limit; n_positions is its trained length
        context = card.get("context_length") or getattr(model.config, "n_positions", None) or 512

    fast_path = True
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter_dir)
        except Exception as exc:
            raise InkwellError(
                f"could not load adapter {adapter_dir} onto '{spec}': {exc}",
                field="adapter",
                hint="use the base model the adapter was trained on (see its adapter_config.json)",
            ) from exc
        if model.peft_config["default"].peft_type.value in ("LORA", "IA3", "ADALORA"):
            model = model.merge_and_unload()  # same outputs, plain-model speed
        else:
            fast_path = False  # prefix/prompt tuning rewrite attention inputs: use PEFT's own generate

    model.to(device)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=spec,
        path=folder,
        chat=bool(chat),
        context_length=int(context),
        device=device,
        dtype=dtype_name,
        adapter=str(adapter_dir) if adapter_dir else None,
        fast_path=fast_path,
        info=card,
        architecture=architecture,
    )
