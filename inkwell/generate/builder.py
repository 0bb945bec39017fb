"""The one place an engine is made: `open_engine(EngineSpec)`.

    engine = open_engine(EngineSpec())                                       # the default model, interactive
    engine = open_engine(EngineSpec(model, adapter=run_dir, backend="torch"))
    engine = open_engine(EngineSpec(model, workload="bulk", batch_size=64))  # `inkwell batch`
    engine = open_engine(EngineSpec(backend="remote", base_url="http://127.0.0.1:8000/v1", model="tiny"))

`backend="auto"` means "the fastest engine that honours the request for this workload", from one table
(`WORKLOADS`, documented in docs/generation.md with the measured figures behind it). On the CPU, with the
dtype left to us, the candidates are tried in the workload's order:
1. native - Inkwell's decoder on the model's own GGUF blocks (a llama-architecture GGUF in Q4_0/Q4_1/Q8_0,
   no adapter, `precision auto`): the fastest single stream, and continuous batching;
2. onnx - ONNX Runtime GenAI (other architectures, adapters folded into the weights, int4/int8/fp32);
   interactive work only: its static batches of <= 32 rows lose to continuous batching in bulk;
3. torch - anything else (GPUs, explicit dtypes, unmerged adapters, beams, encoder-decoder models such as T5),
   with a one-line note saying why.
`score` (evaluation) stays on torch under auto: reference likelihoods in full precision, as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from inkwell.errors import InkwellError

BACKENDS = ("auto", "native", "onnx", "torch", "remote")


@dataclass(frozen=True)
class Workload:
    """What `backend="auto"` tries, in order, for one kind of work (CPU, dtype auto/fp32)."""

    order: tuple[str, ...]
    why: str


# The one table of defaults. The CLI's own default backend per command: write/generate/batch/eval `auto`,
# serve `torch` (adapters unmerged, switched per batch; `--engine native|auto` opts in).
WORKLOADS: dict[str, Workload] = {
    "interactive": Workload(("native", "onnx", "torch"), "write, generate: one or a few streams, lowest latency"),
    "bulk": Workload(("native", "torch"), "batch jobs: continuous batching; ONNX's static batches lose at 64 rows"),
    "serve": Workload(("native", "torch"), "the server: continuous batching across requests"),
    "score": Workload(("torch",), "eval: generations and reference likelihoods in full precision"),
}


@dataclass
class EngineSpec:
    """Everything that decides which engine runs and how. Validated by `open_engine`, field by field."""

    model: str | None = None  # registry name, HF folder, .gguf file, ONNX folder; remote: the served name
    adapter: str | None = None  # a PEFT adapter folder (local backends)
    backend: str = "auto"  # auto | native | onnx | torch | remote
    workload: str = "interactive"  # interactive | bulk | serve | score (what `auto` optimises for)
    dtype: str = "auto"  # torch: auto | fp32 | bf16 | fp16
    precision: str = "auto"  # fast paths: auto | int4 | int8 | fp32
    device: str = "auto"  # auto | cpu | cuda[:N]
    batch_size: int = 16
    base_url: str | None = None  # remote
    api_key: str | None = None  # remote
    adapters: dict[str, str] = field(default_factory=dict)  # serve: name -> folder, attached unmerged (torch)
    systems: list[str] = field(default_factory=list)  # an ensemble: MODEL[:ADAPTER] each (generate/ensemble.py)

    def check(self) -> None:
        if self.backend not in BACKENDS:
            raise InkwellError(
                f"unknown engine {self.backend!r}", field="engine", hint=f"use one of: {', '.join(BACKENDS)}"
            )
        if self.workload not in WORKLOADS:
            raise InkwellError(
                f"unknown workload {self.workload!r}", field="workload", hint=f"use one of: {', '.join(WORKLOADS)}"
            )
        if self.batch_size < 1:
            raise InkwellError(
                f"invalid batch size {self.batch_size}", field="batch_size", hint="use a whole number >= 1"
            )
        if self.backend == "remote":
            if not self.base_url:
                raise InkwellError(
                    "--backend openai needs --base-url",
                    field="base-url",
                    hint="e.g. --base-url http://127.0.0.1:8000/v1",
                )
            if self.adapter or self.adapters:
                raise InkwellError(
                    "--adapter applies to local models only",
                    field="adapter",
                    hint="with --backend openai, name the served adapter with --model",
                )


Progress = Callable[[str], None] | None


def open_engine(spec: EngineSpec, progress: Progress = None):
    """The engine `spec` asks for (see the module docstring); `progress` receives one-line notes."""
    spec.check()
    if spec.systems:
        return _ensemble(spec, progress)
    if spec.backend == "remote":
        return _remote(spec, progress)
    from inkwell.models.onnx import is_onnx_folder

    if is_onnx_folder(spec.model):  # an exported quantised model: only the ONNX path runs it
        return _onnx_folder(spec, progress)
    if spec.adapters:
        return _torch(spec, progress)  # several adapters unmerged: only the torch engine holds them
    if _seq2seq(spec):  # an encoder-decoder (T5): only the torch engine runs it (transformers' generate)
        return _torch(spec, progress)
    from inkwell.models.load import pick_device

    cpu = pick_device(spec.device) == "cpu" and spec.dtype in ("auto", "fp32")
    if spec.backend == "torch" or (spec.backend == "auto" and not cpu):
        return _torch(spec, progress)  # GPUs and explicit dtypes: the torch engine (bf16 + SDPA on CUDA)
    if spec.backend == "native" and not cpu:
        raise InkwellError(
            "the native engine runs on the CPU with the GGUF's own blocks",
            field="engine",
            hint="drop --device/--dtype, or use --engine torch",
        )
    order = WORKLOADS[spec.workload].order if spec.backend == "auto" else (spec.backend,)
    for backend in order:
        if backend == "native":
            native = _native(spec, progress, required=spec.backend == "native")
            if native is not None:
                return native
        elif backend == "onnx":
            onnx = _onnx(spec, progress, required=spec.backend == "onnx")
            if onnx is not None:
                return onnx
    return _torch(spec, progress)


def _ensemble(spec: EngineSpec, progress: Progress):
    """One engine per system (each by the rules above, with this spec's other options), behind EnsembleEngine."""
    import dataclasses

    from inkwell.generate.ensemble import EnsembleEngine, parse_systems

    if spec.model or spec.adapter:
        raise InkwellError(
            "--systems names every model (and adapter) of the ensemble: drop --model/--adapter",
            field="systems",
            hint="e.g. --systems smollm2-135m-instruct,smollm2-135m-instruct:runs/my-lora",
        )
    members = []
    try:
        for model, adapter in parse_systems(spec.systems):
            label = ":".join(p for p in (model, adapter) if p)
            members.append(
                (label, open_engine(dataclasses.replace(spec, model=model, adapter=adapter, systems=[]), progress))
            )
        return EnsembleEngine(members)
    except BaseException:
        for _label, engine in members:
            engine.close()
        raise


def _seq2seq(spec: EngineSpec) -> bool:
    """True for an encoder-decoder model folder (read from its config); --engine native/onnx then say that only
    the torch engine runs it. An encoder-only model (BERT) writes nothing: refused for every engine. Embedded
    models and GGUF files are decoders: nothing is read for them."""
    from inkwell.models.load import architecture_of_spec, refuse_encoder

    architecture = architecture_of_spec(spec.model, spec.adapter)
    refuse_encoder(spec.model or spec.adapter or "", architecture)
    if architecture != "seq2seq":
        return False
    if spec.backend in ("native", "onnx"):
        raise InkwellError(
            f"the {spec.backend} engine runs decoder-only models, and '{spec.model or spec.adapter}' is an "
            "encoder-decoder (seq2seq) model",
            field="engine",
            hint="use --engine torch (or auto, which picks it)",
        )
    return True


# ---------------------------------------------------------------- each backend


def _torch(spec: EngineSpec, progress: Progress):
    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    loaded = load_model(spec.model, adapter=spec.adapter, dtype=spec.dtype, device=spec.device, progress=progress)
    attached = {}
    if spec.adapters:
        from inkwell.generate.scheduler import attach_adapters

        attached = attach_adapters(loaded, spec.adapters)  # before the engine: it wraps loaded.model
    engine = Engine(loaded, batch_size=spec.batch_size)
    engine.adapters = attached
    return engine


def _remote(spec: EngineSpec, progress: Progress):
    """An engine that sends generations to an OpenAI-compatible server (scale-out)."""
    from inkwell.generate.remote import RemoteEngine

    engine = RemoteEngine(spec.base_url or "", spec.model, spec.api_key, batch_size=spec.batch_size)
    if engine.approximate_counts and progress:
        progress(f"note: no local tokenizer for '{engine.loaded.name}': prompt token counts are approximate")
    return engine


def _onnx_folder(spec: EngineSpec, progress: Progress):
    if spec.backend == "torch":
        raise InkwellError(
            f"'{spec.model}' is an ONNX model folder; the torch engine cannot load it",
            field="model",
            hint="drop --engine torch, or point --model at the original model",
        )
    from inkwell.generate.onnx_engine import OnnxEngine
    from inkwell.models.onnx import read_onnx_card

    folder = Path(spec.model or "").expanduser()
    card = read_onnx_card(folder)
    source = card.get("source") if card.get("source") and Path(card["source"]).exists() else None
    fallback = None
    if source:

        def fallback():  # beams and no-repeat n-grams: the full-precision model it came from
            from dataclasses import replace

            return _torch(replace(spec, model=source, adapter=card.get("adapter")), progress)

    return OnnxEngine(
        folder, onnx_folder_model(folder, card), batch_size=spec.batch_size, fallback=fallback, notice=progress
    )


def _onnx(spec: EngineSpec, progress: Progress, required: bool):
    """The ONNX fast path, or None (said in a note) where it cannot be built; `required`: errors instead."""
    from inkwell.models.onnx import FastPathUnavailable, build_onnx, read_onnx_card, runtime_available

    if not required and not runtime_available():
        return None
    try:
        onnx_dir = build_onnx(spec.model, adapter=spec.adapter, precision=spec.precision, progress=progress)
    except FastPathUnavailable as exc:
        if required:
            raise
        if progress:
            progress(f"note: {exc.args[0]}; using the torch engine")
        return None
    from inkwell.generate.onnx_engine import OnnxEngine

    built = read_onnx_card(onnx_dir).get("precision", spec.precision)  # auto -> what it resolved to
    return OnnxEngine(
        onnx_dir,
        light_model(spec.model, spec.adapter, f"onnx-{built}", progress),
        batch_size=spec.batch_size,
        fallback=lambda: _torch(spec, progress),
        notice=progress,
    )


def _native(spec: EngineSpec, progress: Progress, required: bool):
    """The native engine, or None (with the reason said when it is worth saying) where it does not apply.
    `required` (--engine native): every reason is an error naming the flag to change."""
    from inkwell.generate.native import NativeUnavailable

    def skip(reason: str, loud: bool = False):
        if required:
            raise InkwellError(
                f"the native engine cannot run this: {reason}",
                field="engine",
                hint="use --engine auto (it picks the ONNX or torch path)",
            )
        if loud and progress:
            progress(f"note: {reason}; using another engine")
        return None

    if spec.adapter:
        return skip("an adapter runs on the ONNX path (merged into the weights there)")
    if spec.precision != "auto":
        return skip(
            f"--precision {spec.precision} runs on the ONNX path (the native engine uses the GGUF's own blocks)"
        )
    from inkwell.models.load import resolve
    from inkwell.models.registry import DEFAULT_MODEL

    name = spec.model or DEFAULT_MODEL
    folder, card = resolve(name, progress)
    gguf = (card or {}).get("source_gguf")
    if not gguf or not Path(gguf).exists():
        return skip("the model has no GGUF file behind it")
    arch = json.loads((folder / "config.json").read_text()).get("model_type")
    if arch != "llama":  # before opening the GGUF: reading a large vocabulary's metadata takes seconds
        return skip(f"the native engine runs llama-architecture models (this one is {arch})")
    from inkwell.generate.native import Decoder
    from inkwell.generate.native_engine import NativeEngine

    try:
        decoder = Decoder.open(gguf, progress=progress)  # first use: a line before each wait
    except NativeUnavailable as exc:  # the model's shape: a quiet skip; the machine (no compiler...): a note
        return skip(exc.args[0], loud=exc.machine)
    label = f"native-{decoder.config['blocks']}"
    return NativeEngine(
        decoder,
        light_model(name, None, label, progress),
        batch_size=spec.batch_size,
        fallback=lambda: _torch(spec, progress),
        notice=progress,
    )


# ---------------------------------------------------------------- model facts without torch weights


def onnx_folder_model(folder: Path, card: dict):
    """The LoadedModel facts of an ONNX folder: its tokenizer and chat template travel inside it."""
    from transformers import AutoTokenizer

    from inkwell.models.load import LoadedModel

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    genai = json.loads((folder / "genai_config.json").read_text())["model"]
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        name=str(folder),
        path=folder,
        chat=bool(card.get("chat", tokenizer.chat_template is not None)),
        context_length=int(genai.get("context_length") or 2048),
        device="cpu",
        dtype=f"onnx-{card.get('precision', '?')}",
        adapter=card.get("adapter"),
        fast_path=True,
        info=card,
    )


def light_model(model: str | None, adapter: str | None, label: str, progress=None):
    """A LoadedModel with the tokenizer and facts but no torch weights: the fast paths never need them,
    so a process on them stays small (peak RSS is one of the fast path's targets)."""
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
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        name=spec,
        path=folder,
        chat=bool(card.get("chat", tokenizer.chat_template is not None)),
        context_length=int(context),
        device="cpu",
        dtype=label,
        adapter=str(adapter) if adapter else None,
        fast_path=True,
        info=card,
    )
