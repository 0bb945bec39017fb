"""Pick the engine a command runs on: the ONNX fast path on CPU where it applies, the torch engine otherwise.

    engine = open_engine("smollm2-135m-instruct")                 # auto: ONNX int4 on CPU, torch on GPU
    engine = open_engine(model, adapter=run_dir, engine="torch")  # always the plain path

`auto` takes the ONNX path when the device is the CPU, the dtype is left to us, onnxruntime-genai is
installed, the architecture is supported and any adapter folds into the weights (LoRA, IA3, AdaLoRA);
otherwise it says why in one line and runs on torch. The figures behind this choice are in
docs/generation.md (benchmarks/bench_generate.py measures them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from inkwell.errors import InkwellError

ENGINES = ("auto", "torch", "onnx")


def open_engine(model: str | None = None, *, adapter: str | None = None, dtype: str = "auto",
                device: str = "auto", batch_size: int = 16, engine: str = "auto", precision: str = "auto",
                progress: Callable[[str], None] | None = None):
    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model, pick_device

    if engine not in ENGINES:
        raise InkwellError(f"unknown engine {engine!r}", field="engine", hint=f"use one of: {', '.join(ENGINES)}")

    def plain() -> Engine:
        return Engine(load_model(model, adapter=adapter, dtype=dtype, device=device, progress=progress),
                      batch_size=batch_size)

    from inkwell.models.onnx import is_onnx_folder, read_onnx_card

    if is_onnx_folder(model):  # an exported quantised model: only the ONNX path runs it
        if engine == "torch":
            raise InkwellError(f"'{model}' is an ONNX model folder; the torch engine cannot load it", field="model",
                               hint="drop --engine torch, or point --model at the original model")
        folder = Path(model).expanduser()
        card = read_onnx_card(folder)
        source = card.get("source") if card.get("source") and Path(card["source"]).exists() else None
        fallback = None
        if source:
            def fallback() -> Engine:  # beams and no-repeat n-grams: the full-precision model it came from
                return Engine(load_model(source, adapter=card.get("adapter"), dtype=dtype, device=device,
                                         progress=progress), batch_size=batch_size)
        from inkwell.generate.onnx_engine import OnnxEngine

        return OnnxEngine(folder, onnx_folder_model(folder, card), batch_size=batch_size, fallback=fallback,
                          notice=progress)
    if engine == "torch":
        return plain()
    if engine == "auto" and (pick_device(device) != "cpu" or dtype not in ("auto", "fp32")):
        return plain()  # GPUs and explicit dtypes: the torch engine (bf16 + SDPA on CUDA)
    from inkwell.models.onnx import FastPathUnavailable, build_onnx, runtime_available

    if engine == "auto" and not runtime_available():
        return plain()
    try:
        onnx_dir = build_onnx(model, adapter=adapter, precision=precision, progress=progress)
    except FastPathUnavailable as exc:
        if engine == "onnx":
            raise
        if progress:
            progress(f"note: {exc.args[0]}; using the torch engine")
        return plain()
    from inkwell.generate.onnx_engine import OnnxEngine

    built = read_onnx_card(onnx_dir).get("precision", precision)  # auto -> what it resolved to
    return OnnxEngine(onnx_dir, light_model(model, adapter, built, progress), batch_size=batch_size,
                      fallback=plain, notice=progress)


def onnx_folder_model(folder: Path, card: dict):
    """The LoadedModel facts of an ONNX folder: its tokenizer and chat template travel inside it."""
    from transformers import AutoTokenizer

    from inkwell.models.load import LoadedModel

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    genai = json.loads((folder / "genai_config.json").read_text())["model"]
    return LoadedModel(model=None, tokenizer=tokenizer, name=str(folder), path=folder,
                       chat=bool(card.get("chat", tokenizer.chat_template is not None)),
                       context_length=int(genai.get("context_length") or 2048), device="cpu",
                       dtype=f"onnx-{card.get('precision', '?')}", adapter=card.get("adapter"), fast_path=True,
                       info=card)


def light_model(model: str | None, adapter: str | None, precision: str, progress=None):
    """A LoadedModel with the tokenizer and facts but no torch weights: the ONNX path never needs them,
    so a process on it stays small (peak RSS is one of the fast path's targets)."""
    from transformers import AutoTokenizer

    from inkwell.models.load import LoadedModel, adapter_base, read_card, resolve
    from inkwell.models.registry import DEFAULT_MODEL

    spec = model or (adapter_base(Path(adapter).expanduser()) if adapter else None) or DEFAULT_MODEL
    folder, card = resolve(spec, progress)
    card = card or read_card(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)  # as load_model: the base's tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = json.loads((folder / "config.json").read_text())
    context = card.get("context_length") or config.get("max_position_embeddings") or 2048
    return LoadedModel(model=None, tokenizer=tokenizer, name=spec, path=folder,
                       chat=bool(card.get("chat", tokenizer.chat_template is not None)), context_length=int(context),
                       device="cpu", dtype=f"onnx-{precision}", adapter=str(adapter) if adapter else None,
                       fast_path=True, info=card)

