"""Pick the engine a command runs on: a CPU fast path where one applies, the torch engine otherwise.

    engine = open_engine("smollm2-135m-instruct")                 # auto: native on CPU, torch on GPU
    engine = open_engine(model, adapter=run_dir, engine="torch")  # always the plain path

On the CPU, with the dtype left to us, `auto` tries in this order:
1. native - Inkwell's decoder on the model's own GGUF blocks (a llama-architecture GGUF in Q4_0/Q4_1/Q8_0,
   no adapter, `--precision auto`): the fastest single stream;
2. onnx - ONNX Runtime GenAI (other architectures, adapters folded into the weights, int4/int8/fp32);
3. torch - anything else, with a one-line note saying why.
The figures behind this order are in docs/generation.md (benchmarks/bench_generate.py measures them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from inkwell.errors import InkwellError

ENGINES = ("auto", "native", "onnx", "torch")


def open_engine(model: str | None = None, *, adapter: str | None = None, dtype: str = "auto",
                device: str = "auto", batch_size: int = 16, engine: str = "auto", precision: str = "auto",
                progress: Callable[[str], None] | None = None, bulk: bool = False):
    """`bulk` (batch jobs): under `auto`, skip the ONNX path, whose static batches of <= 32 rows lose to the
    torch engine's continuous batching at 64 rows (docs/generation.md has the figures)."""
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
    if engine == "native" and (pick_device(device) != "cpu" or dtype not in ("auto", "fp32")):
        raise InkwellError("the native engine runs on the CPU with the GGUF's own blocks", field="engine",
                           hint="drop --device/--dtype, or use --engine torch")
    if engine in ("auto", "native"):
        native = open_native(model, adapter, precision, batch_size, plain, progress, required=engine == "native")
        if native is not None:
            return native
    from inkwell.models.onnx import FastPathUnavailable, build_onnx, runtime_available

    if engine == "auto" and (bulk or not runtime_available()):
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
    return OnnxEngine(onnx_dir, light_model(model, adapter, f"onnx-{built}", progress), batch_size=batch_size,
                      fallback=plain, notice=progress)


def open_native(model: str | None, adapter: str | None, precision: str, batch_size: int, plain, progress,
                required: bool):
    """The native engine, or None (with the reason said when it is worth saying) where it does not apply.
    `required` (--engine native): every reason is an error naming the flag to change."""
    from inkwell.generate.native import NativeUnavailable

    def skip(reason: str, loud: bool = False):
        if required:
            raise InkwellError(f"the native engine cannot run this: {reason}", field="engine",
                               hint="use --engine auto (it picks the ONNX or torch path)")
        if loud and progress:
            progress(f"note: {reason}; using another engine")
        return None

    if adapter:
        return skip("an adapter runs on the ONNX path (merged into the weights there)")
    if precision != "auto":
        return skip(f"--precision {precision} runs on the ONNX path (the native engine uses the GGUF's own blocks)")
    from inkwell.models.load import resolve
    from inkwell.models.registry import DEFAULT_MODEL

    spec = model or DEFAULT_MODEL
    folder, card = resolve(spec, progress)
    gguf = (card or {}).get("source_gguf")
    if not gguf or not Path(gguf).exists():
        return skip("the model has no GGUF file behind it")
    arch = json.loads((folder / "config.json").read_text()).get("model_type")
    if arch != "llama":  # before opening the GGUF: reading a large vocabulary's metadata takes seconds
        return skip(f"the native engine runs llama-architecture models (this one is {arch})")
    from inkwell.generate.native import Decoder
    from inkwell.generate.native_engine import NativeEngine

    try:
        decoder = Decoder.open(gguf)
    except NativeUnavailable as exc:  # the model's shape: a quiet skip; the machine (no compiler...): a note
        return skip(exc.args[0], loud=exc.machine)
    label = f"native-{decoder.config['blocks']}"
    return NativeEngine(decoder, light_model(spec, None, label, progress), batch_size=batch_size, fallback=plain,
                        notice=progress)


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


def light_model(model: str | None, adapter: str | None, label: str, progress=None):
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
                       device="cpu", dtype=label, adapter=str(adapter) if adapter else None,
                       fast_path=True, info=card)

