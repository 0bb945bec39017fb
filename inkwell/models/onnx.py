"""Convert a prepared Hugging Face folder (plus an optional LoRA-family adapter) into an ONNX Runtime GenAI
model for the fast CPU path, once, cached by what went into it.

We do not write the ONNX graph ourselves: `onnxruntime_genai.models.builder` (Microsoft's model builder)
emits fused attention, rotary and int4/int8 MatMulNBits kernels for the common decoder architectures, and
builds a 135M model in about 15 s offline. It runs in a subprocess so its progress output and its memory
stay out of the caller's process.

    folder = build_onnx("smollm2-135m-instruct", precision="int4")   # cached under INKWELL_HOME/models/onnx
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.home import atomic_write, models_dir
from inkwell.models.onnx_exact import grid4, repack
from inkwell.models.onnx_logits import last_position_logits

# int4: 4-bit weights in blocks of 32 with int8 activations in the matmuls (accuracy level 4). For a model
# de-quantised from a 4-bit GGUF (the embedded ones) the GGUF's own grid is re-packed without loss
# (`onnx_exact.py`): +0.4% perplexity; re-quantising other weights to int4 costs far more (+37% on SmolLM2).
# int8: 8-bit weights for any model (+0.3% perplexity on SmolLM2), slower. fp32: no quantisation (equality tests).
# auto: int4 where its weights are exact (a 4-bit GGUF source, no adapter), else int8.
PRECISIONS = ("int4", "int8", "fp32")
CHOICES = ("auto", *PRECISIONS)
BUILDER_OPTIONS = {
    "int4": ["--extra_options", "int4_accuracy_level=4", "int4_block_size=32"],
    "int8": [],
    "fp32": [],
}
# Decoder architectures the model builder supports that we have checked end to end (llama covers SmolLM2).
SUPPORTED_ARCHITECTURES = (
    "LlamaForCausalLM",
    "Gemma3ForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Phi3ForCausalLM",
)
LORA_FAMILY = ("LORA", "IA3", "ADALORA")  # adapters that fold into the weights; prefix/prompt tuning does not
CARD = "inkwell-onnx.json"
BUILD_FAILED_HINT = "use --engine torch; the plain path runs every model transformers loads"


class FastPathUnavailable(InkwellError):
    """This model/adapter cannot run on the ONNX path; the caller falls back to the torch engine."""


def runtime_available() -> bool:
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError:
        return False
    return True


def _hash_files(paths: list[Path], digest=None):
    digest = digest or hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest


def source_key(folder: Path, adapter: Path | None, precision: str) -> str:
    """What the built model depends on: the base weights and config, the adapter's files, the precision and
    the builder's version. Base weights are keyed by name, size and modification time (hashing 0.5-1 GB on
    every start would cost seconds); adapters, small and often retrained in place, by their content."""
    import onnxruntime_genai

    digest = hashlib.sha256()
    rewrites = ("|exact-grid-v1" if precision == "int4" else "") + "|last-logits-v1"
    digest.update(f"{precision}|{onnxruntime_genai.__version__}|{BUILDER_OPTIONS[precision]}{rewrites}".encode())
    digest.update((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    if adapter is not None:
        _hash_files([p for p in adapter.iterdir() if p.is_file() and p.name.startswith("adapter_")], digest)
    return digest.hexdigest()[:16]


def check_supported(folder: Path, adapter: Path | None) -> None:
    """Raise FastPathUnavailable with the reason when the ONNX path cannot serve this model faithfully."""
    if not runtime_available():
        raise FastPathUnavailable(
            "onnxruntime-genai is not installed",
            field="engine",
            hint="pip install onnxruntime-genai, or use --engine torch",
        )
    config = json.loads((folder / "config.json").read_text())
    architecture = (config.get("architectures") or ["?"])[0]
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise FastPathUnavailable(
            f"architecture {architecture} is not supported by the ONNX path",
            field="engine",
            hint=f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}",
        )
    if adapter is not None:
        peft_type = json.loads((adapter / "adapter_config.json").read_text()).get("peft_type", "?")
        if peft_type not in LORA_FAMILY:
            raise FastPathUnavailable(
                f"{peft_type.lower()} adapters change the attention inputs and cannot be "
                "merged into the weights the ONNX path runs",
                field="adapter",
                hint="it runs on the torch engine instead (--engine torch)",
            )


def build_onnx(
    spec: str | None = None,
    *,
    adapter: str | None = None,
    precision: str = "int4",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The ONNX Runtime GenAI folder for a model (+ adapter) at a precision; built on first use, then cached.

    A LoRA-family adapter is merged into the base weights first (PEFT's merge_and_unload), so a fine-tuned
    run gets the fast path too; the cache key includes the adapter's content, so retraining rebuilds."""
    from inkwell.models.load import adapter_base, resolve
    from inkwell.models.registry import DEFAULT_MODEL

    if precision not in CHOICES:
        raise InkwellError(
            f"unknown precision {precision!r}", field="precision", hint=f"use one of: {', '.join(CHOICES)}"
        )
    adapter_dir = Path(adapter).expanduser() if adapter else None
    if adapter_dir is not None and not (adapter_dir / "adapter_config.json").exists():
        raise InkwellError(
            f"'{adapter_dir}' is not a PEFT adapter folder: adapter_config.json is missing",
            field="adapter",
            hint="point --adapter at a folder written by `inkwell train`",
        )
    if spec is None and adapter_dir is not None:
        spec = adapter_base(adapter_dir)
    folder, source_card = resolve(spec or DEFAULT_MODEL, progress)
    check_supported(folder, adapter_dir)
    if precision == "auto":
        precision = auto_precision(folder, adapter_dir)
    key = source_key(folder, adapter_dir, precision)
    out = models_dir() / "onnx" / f"{folder.name}-{precision}-{key}"
    if not (out / CARD).exists():
        _build(out, folder, spec or DEFAULT_MODEL, adapter_dir, precision, key, source_card, progress)
    grid = read_onnx_card(out).get("int4_exact")
    if grid and grid["kept"] and progress:  # said on every use, not only when built
        progress(
            f"note: {grid['kept']} of {grid['kept'] + grid['exact']} matmuls are not on a 4-bit grid and were "
            "rounded to int4 (expect a perplexity loss; --precision int8 loses far less)"
        )
    return out


def _build(
    out: Path,
    folder: Path,
    spec: str,
    adapter_dir: Path | None,
    precision: str,
    key: str,
    source_card: dict,
    progress: Callable[[str], None] | None,
) -> None:
    failed = out.parent / f"{out.name}.failed"  # a build that failed on these inputs is not retried every run
    if failed.exists():
        raise FastPathUnavailable(failed.read_text(encoding="utf-8").strip(), field="engine", hint=BUILD_FAILED_HINT)
    out.parent.mkdir(parents=True, exist_ok=True)
    if progress:  # one line before the wait, saying what it is for and how long (the merge adds seconds)
        what = f"{spec} with adapter {adapter_dir}" if adapter_dir is not None else spec
        progress(
            f"preparing {what} for the CPU fast path: building its {precision} ONNX model (first use, "
            f"{build_duration(folder)}; cached afterwards)"
        )
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out.parent) as scratch:
        source = folder
        if adapter_dir is not None:
            if progress:
                progress(f"merging adapter {adapter_dir} into {spec} for the fast path")
            source = _merge(spec, adapter_dir, Path(scratch) / "merged")
        target = Path(scratch) / "onnx"
        try:
            _run_builder(source, target, precision, Path(scratch) / "cache", progress is not None)  # show a bar
        except FastPathUnavailable as exc:
            with atomic_write(failed) as handle:
                handle.write(str(exc).split("\n  fix: ")[0] + f"\n(remembered in {failed}; delete it to try again)\n")
            raise
        grid = repack(target, source) if precision == "int4" else None
        last_position_logits(target)
        _card_write(target, folder, adapter_dir, precision, key, source_card, grid)
        try:
            os.replace(target, out)  # atomic: a half-built folder never has the card at `out`
        except OSError:  # another process finished first
            if not (out / CARD).exists():
                raise


def auto_precision(folder: Path, adapter: Path | None) -> str:
    """int4 when the weights sit on a 4-bit grid the ONNX path can hold exactly (checked on the first layer's
    projections), else int8. A merged LoRA adapter moves the weights off the grid."""
    if adapter is not None:
        return "int8"
    from safetensors import safe_open

    for path in sorted(folder.glob("*.safetensors")):
        # numpy first: this runs on every start of the fast path, which must not import torch (time, memory);
        # torch only for dtypes numpy lacks (bfloat16)
        for framework in ("np", "pt"):
            try:
                with safe_open(str(path), framework) as handle:
                    names = [n for n in handle.keys() if n.startswith("model.layers.0.") and n.endswith("_proj.weight")]
                    if not names:
                        break
                    tensors = [handle.get_tensor(n) for n in names]
            except (TypeError, ValueError):
                continue
            tensors = [t if framework == "np" else t.float().numpy() for t in tensors]
            return "int4" if all(grid4(t) is not None for t in tensors) else "int8"
    return "int8"


def _merge(spec: str, adapter: Path, to: Path) -> Path:
    from inkwell.models.load import load_model

    loaded = load_model(spec, adapter=str(adapter), dtype="fp32", device="cpu")
    loaded.model.save_pretrained(to)
    loaded.tokenizer.save_pretrained(to)
    template = loaded.path / "chat_template.jinja"
    if template.exists() and not (to / template.name).exists():
        shutil.copy(template, to / template.name)
    return to


# Seconds per MB of the source's safetensors for a build, measured on 2 busy CPU cores (SmolLM2's 538 MB in
# fp32: ~15 s; Gemma-3's 1.1 GB: ~45 s). Only for the first-use notice.
BUILD_S_PER_MB = 0.04


def build_duration(source: Path) -> str:
    """How long building the ONNX model of `source` takes, in words, for the first-use notice."""
    from inkwell.models.load import rough_duration

    megabytes = sum(p.stat().st_size for p in Path(source).glob("*.safetensors")) / 1e6
    return rough_duration(megabytes * BUILD_S_PER_MB)


def _run_builder(source: Path, target: Path, precision: str, cache: Path, show: bool = False) -> None:
    """Run the model builder in a subprocess; `show`: a progress bar on stderr, one step per layer it reads
    (the builder prints "Reading layer N"), then one for saving."""
    from tqdm import tqdm

    command = [
        sys.executable,
        "-m",
        "inkwell.models.onnx_builder",
        "-i",
        str(source),
        "-o",
        str(target),
        "-p",
        precision,
        "-e",
        "cpu",
        "-c",
        str(cache),
        *BUILDER_OPTIONS[precision],
    ]
    # unbuffered: the builder's lines arrive as it prints them, not in one block at the end
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    config = json.loads((Path(source) / "config.json").read_text())
    layers = (config.get("text_config") or config).get("num_hidden_layers") or 0
    # embedding + layers + final norm + LM head + saving; stderr goes to a file, so a chatty builder cannot
    # fill a pipe nobody reads
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as errors,
        tqdm(total=layers + 4, desc="building ONNX model", unit="step", disable=not show, leave=False) as bar,
    ):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        out_lines = []
        for line in proc.stdout:
            out_lines.append(line)
            if line.startswith(("Reading ", "Saving ONNX model")):
                bar.update(1)
        returncode = proc.wait()
        errors.seek(0)
        stderr, stdout = errors.read(), "".join(out_lines)
    if returncode != 0 or not (target / "genai_config.json").exists():
        lines = [line.strip() for line in (stderr or stdout or "").splitlines() if line.strip()]
        tail = lines[-1] if lines else f"exit code {returncode}"  # the exception's own line, not the traceback
        raise FastPathUnavailable(
            f"the ONNX model builder failed for {source}: {tail}", field="engine", hint=BUILD_FAILED_HINT
        )


def _card_write(
    target: Path,
    folder: Path,
    adapter: Path | None,
    precision: str,
    key: str,
    source_card: dict,
    grid: dict | None = None,
) -> None:
    card = {
        "source": str(folder),
        "adapter": str(adapter) if adapter else None,
        "precision": precision,
        "key": key,
        "name": source_card.get("name", folder.name),
    }
    if grid is not None:  # int4: how many matmuls kept the source's exact grid (the rest: the builder's rounding)
        card["int4_exact"] = grid
    if "chat" in source_card:
        card["chat"] = bool(source_card["chat"])
    (target / CARD).write_text(json.dumps(card, indent=2))


def is_onnx_folder(spec: str | os.PathLike | None) -> bool:
    """An ONNX Runtime GenAI model folder (built here, or written by `inkwell export --quantize`)."""
    return spec is not None and (Path(spec).expanduser() / "genai_config.json").is_file()


def read_onnx_card(folder: Path) -> dict:
    path = Path(folder) / CARD
    return json.loads(path.read_text()) if path.exists() else {}
