"""The native decoder (decoder.c): built once per machine with the system C compiler, loaded through ctypes.

    decoder = Decoder.open(gguf_path)              # NativeUnavailable (with the reason) when it cannot run
    ctx = decoder.context(rows=8)                  # KV slots for up to 8 sequences
    ctx.slot(0, max_len=640)                       # room for 640 positions in slot 0
    logits = ctx.forward(tokens, slots, positions, want=[len(tokens) - 1])   # -> [1, vocab] float32

The weights are the GGUF file's own quantised blocks, memory-mapped (no copy, no re-quantisation). The shared
library is compiled on first use into the model cache (`native/decoder-<source hash>.so`, written to a
temporary name and renamed, so a crash never leaves half a library) - a few seconds with gcc; machines with
no C compiler, no AVX2/FMA/F16C or no OpenMP get the ONNX path with a one-line notice.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("decoder.c")
FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp", "-shared", "-fPIC", "-lm"]
SUPPORTED_TYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 8}
LAYER_KINDS = {
    "attn_q": 0,
    "attn_k": 1,
    "attn_v": 2,
    "attn_output": 3,
    "ffn_gate": 4,
    "ffn_up": 5,
    "ffn_down": 6,
    "attn_norm": 7,
    "ffn_norm": 8,
}
EMBED, HEAD, OUT_NORM = 9, 10, 11


class NativeUnavailable(Exception):
    """The native decoder cannot run here or on this model; args[0] says why in one line. `machine` is True
    when the reason is this machine (CPU, compiler), not the model."""

    def __init__(self, reason: str, machine: bool = False):
        super().__init__(reason)
        self.machine = machine


def cpu_supported() -> str | None:
    """Why this CPU cannot run the kernel, or None."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the native decoder needs an x86-64 CPU (this is {platform.machine()})"
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "the native decoder could not read the CPU's features (/proc/cpuinfo)"
    missing = [f for f in ("avx2", "fma", "f16c") if f not in flags]
    return f"the CPU lacks {', '.join(missing)}" if missing else None


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")


def unavailable_here() -> str | None:
    """Why this machine cannot build or run the decoder (CPU, compiler), or None."""
    return cpu_supported() or (None if compiler() else "no C compiler (cc)")


def library_path() -> Path:
    from inkwell.home import models_dir

    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    return models_dir() / "native" / f"decoder-{digest}.so"


def load_library(progress: Callable[[str], None] | None = None) -> ctypes.CDLL:
    """The compiled decoder, built on first use; `progress` hears one line before the build."""
    reason = cpu_supported()
    if reason:
        raise NativeUnavailable(reason, machine=True)
    target = library_path()
    if not target.exists():
        cc = compiler()
        if not cc:
            raise NativeUnavailable("no C compiler (cc) to build the native decoder", machine=True)
        if progress:
            progress(
                "compiling Inkwell's native CPU decoder with the system C compiler (first use, a few seconds; "
                "cached afterwards)"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".decoder-", suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            try:
                done = subprocess.run([cc, str(SOURCE), "-o", tmp, *FLAGS], capture_output=True, text=True)
            except OSError as exc:
                raise NativeUnavailable(f"building the native decoder failed ({exc})", machine=True) from exc
            if done.returncode != 0:
                first = (done.stderr.strip().splitlines() or ["no output"])[0]
                raise NativeUnavailable(f"building the native decoder failed ({first})", machine=True)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(target))
    lib.ink_new.restype = ctypes.c_void_p
    lib.ink_new.argtypes = [ctypes.c_int] * 7 + [ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_int]
    lib.ink_set.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.ink_ctx.restype = ctypes.c_void_p
    lib.ink_ctx.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.ink_slot.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.ink_slot.restype = ctypes.c_int
    lib.ink_ctx_free.argtypes = [ctypes.c_void_p]
    lib.ink_forward.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.ink_forward.restype = ctypes.c_int
    lib.ink_free.argtypes = [ctypes.c_void_p]
    return lib


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    return field.contents() if field is not None else default


class Decoder:
    """One GGUF model in the native decoder, with a KV cache for `rows` sequences (see `reset`)."""

    def __init__(
        self,
        lib: ctypes.CDLL,
        gguf_path: str | os.PathLike,
        table: list[dict],
        config: dict,
        threads: int,
        pack: bool = True,
    ):
        import numpy as np

        self.lib, self.config = lib, config
        self.vocab = config["vocab"]
        self._own: Context | None = None
        self.file = np.memmap(gguf_path, dtype=np.uint8, mode="r")  # the C side points into this mapping
        self.handle = lib.ink_new(
            config["layers"],
            config["dim"],
            config["heads"],
            config["kv_heads"],
            config["head_dim"],
            config["ffn"],
            config["vocab"],
            config["eps"],
            config["theta"],
            threads,
            int(pack),
        )
        for tensor in table:
            self._set(tensor)

    @classmethod
    def open(
        cls,
        gguf_path: str | os.PathLike,
        threads: int | None = None,
        pack: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> Decoder:
        """`pack=False` keeps the matrices in the GGUF's row layout (the slower row-wise kernels, which
        also serve matrices whose row count is not a multiple of 8): for tests and comparisons. `progress`
        hears a line before each first-use step (reading the tensor table, compiling the library)."""
        table, config = read_gguf(gguf_path, progress)
        return cls(load_library(progress), gguf_path, table, config, threads or os.cpu_count() or 1, pack)

    def _set(self, tensor: dict) -> None:
        name, shape = tensor["name"], tensor["shape"]
        address = self.file.ctypes.data + tensor["offset"]
        qtype = SUPPORTED_TYPES.get(tensor["type"], 0)
        cols, rows = shape[0], (shape[1] if len(shape) > 1 else 1)
        if name == "token_embd.weight":
            kinds = [EMBED] + ([] if self.config["separate_head"] else [HEAD])
        elif name == "output.weight":
            kinds = [HEAD]
        elif name == "output_norm.weight":
            kinds = [OUT_NORM]
        else:
            kinds = [LAYER_KINDS[name.split(".")[2]]]
        for kind in kinds:
            layer = int(name.split(".")[1]) if kind < EMBED else 0
            self.lib.ink_set(self.handle, layer, kind, qtype, address, rows, cols)

    def context(self, rows: int) -> Context:
        """A decoding context with `rows` KV slots (all empty)."""
        return Context(self, rows)

    def reset(self, rows: int, max_len: int) -> Context:
        """Replace the decoder's own context (what `forward` uses) by one with `rows` slots of `max_len`."""
        self._own = self.context(rows)
        for row in range(rows):
            self._own.slot(row, max_len)
        return self._own

    def forward(self, tokens, rows, positions, want):
        """`Context.forward` on the context of the last `reset`."""
        return self._own.forward(tokens, rows, positions, want)

    def close(self) -> None:
        self._own = None
        if self.handle:
            self.lib.ink_free(self.handle)
            self.handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass


class Context:
    """KV slots for up to `rows` sequences on one Decoder, plus scratch space; one thread at a time."""

    def __init__(self, decoder: Decoder, rows: int):
        self.decoder, self.lib, self.rows = decoder, decoder.lib, rows
        self.lengths = [0] * rows
        self.handle = self.lib.ink_ctx(decoder.handle, rows)
        if not self.handle:
            raise MemoryError(f"no memory for a decoding context of {rows} sequences")

    def slot(self, row: int, max_len: int) -> None:
        """Give slot `row` an empty cache of `max_len` positions (0 frees it)."""
        if not self.lib.ink_slot(self.handle, row, max_len):
            raise MemoryError(f"no memory for a KV cache of {max_len} positions")
        self.lengths[row] = max_len

    def forward(self, tokens, rows, positions, want):
        """Run the entries (token, slot, position) through the model; logits [len(want), vocab] of the entries
        whose indexes are in `want`."""
        import numpy as np

        tokens = np.ascontiguousarray(tokens, dtype=np.int32)
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        positions = np.ascontiguousarray(positions, dtype=np.int32)
        want = np.ascontiguousarray(want, dtype=np.int32)
        logits = np.empty((len(want), self.decoder.vocab), dtype=np.float32)
        code = self.lib.ink_forward(
            self.handle,
            len(tokens),
            tokens.ctypes.data,
            rows.ctypes.data,
            positions.ctypes.data,
            len(want),
            want.ctypes.data,
            logits.ctypes.data,
        )
        if code:
            why = {1: "out of memory", 2: "a token, slot or position out of range", 3: "a logits index out of range"}
            raise ValueError(f"native decoder: {why.get(code, f'error {code}')}")
        return logits

    def close(self) -> None:
        if self.handle:
            self.lib.ink_ctx_free(self.handle)
            self.handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def read_gguf(gguf_path: str | os.PathLike, progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """The tensor table (name, type, shape, byte offset) and model config of a GGUF file, checked for the
    native decoder (NativeUnavailable otherwise). gguf's reader parses the whole vocabulary into Python objects
    (4 s for SmolLM2's), so the result is kept beside the library, keyed by the file's size and mtime."""
    import json

    from inkwell.home import atomic_write, models_dir

    path = Path(gguf_path)
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|v1".encode()).hexdigest()[:16]
    cached = models_dir() / "native" / f"gguf-{key}.json"
    if cached.exists():
        saved = json.loads(cached.read_text())
        if "unavailable" in saved:
            raise NativeUnavailable(saved["unavailable"])
        return saved["tensors"], saved["config"]
    if progress:
        progress(
            f"reading {path.name}'s tensor table for the native decoder (first use, a few seconds; cached afterwards)"
        )
    try:
        table, config = _read_gguf(path)
        saved = {"tensors": table, "config": config}
    except NativeUnavailable as exc:
        saved = {"unavailable": exc.args[0]}
    with atomic_write(cached) as handle:
        json.dump(saved, handle)
    if "unavailable" in saved:
        raise NativeUnavailable(saved["unavailable"])
    return table, config


def _read_gguf(path: Path) -> tuple[list[dict], dict]:
    try:
        import gguf
    except ImportError as exc:  # a dependency of the GGUF loader; missing only in odd installs
        raise NativeUnavailable("the gguf package is not installed") from exc
    reader = gguf.GGUFReader(str(path))
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise NativeUnavailable(f"the native decoder runs llama-architecture models (this one is {arch})")
    names = {t.name for t in reader.tensors}
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        is_norm = tensor.name.endswith("norm.weight")
        if (is_norm and kind != "F32") or (not is_norm and kind not in SUPPORTED_TYPES):
            raise NativeUnavailable(f"the native decoder cannot read {tensor.name} ({kind})")
        part = tensor.name.split(".")
        if part[0] == "blk" and (len(part) != 4 or part[2] not in LAYER_KINDS):
            raise NativeUnavailable(f"the native decoder does not know the tensor {tensor.name}")
        if part[0] != "blk" and tensor.name not in ("token_embd.weight", "output.weight", "output_norm.weight"):
            raise NativeUnavailable(f"the native decoder does not know the tensor {tensor.name}")
    embed = next(t for t in reader.tensors if t.name == "token_embd.weight")
    dim, vocab = int(embed.shape[0]), int(embed.shape[1])
    heads = int(_field(reader, "llama.attention.head_count"))
    kv_heads = int(_field(reader, "llama.attention.head_count_kv", heads))
    head_dim = int(_field(reader, "llama.rope.dimension_count", dim // heads))
    scaling = _field(reader, "llama.rope.scaling.type")
    if scaling not in (None, "none"):
        raise NativeUnavailable(f"the native decoder does not do RoPE scaling ({scaling})")
    if head_dim * heads != dim or heads % kv_heads or dim % 32 or head_dim % 8 or head_dim > 256:
        raise NativeUnavailable(
            "the native decoder needs head_dim x heads = width (a multiple of 32) and a "
            "head_dim that is a multiple of 8, at most 256"
        )
    config: dict[str, Any] = {
        "layers": int(_field(reader, "llama.block_count")),
        "dim": dim,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "ffn": int(_field(reader, "llama.feed_forward_length")),
        "vocab": vocab,
        "eps": float(_field(reader, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "theta": float(_field(reader, "llama.rope.freq_base", 10000.0)),
        "separate_head": "output.weight" in names,
        "context_length": int(_field(reader, "llama.context_length", 2048)),
        "blocks": Counter(
            t.tensor_type.name
            for t in reader.tensors
            if t.name.startswith("blk.") and not t.name.endswith("norm.weight")
        ).most_common(1)[0][0],
    }
    if config["ffn"] % 32:
        raise NativeUnavailable("the native decoder needs a feed-forward width that is a multiple of 32")
    table = [
        {"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in t.shape], "offset": int(t.data_offset)}
        for t in reader.tensors
    ]
    return table, config
