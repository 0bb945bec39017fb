"""What this CPU can do, read once from /proc/cpuinfo (Linux): the instruction-set flags that decide which
kernels are fast here (AVX2; AVX512 with BF16/VNNI; AMX matrix units), for engines to dispatch on and for
every benchmark to print beside its figures (machines of the same kind come with different CPUs)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

# The flags that decide speed for Inkwell's kernels and torch's, in the order they are printed.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile")


@lru_cache(maxsize=1)
def cpu_info() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor; ("unknown", {}) where /proc/cpuinfo cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown", frozenset()
    model, flags = "unknown", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        if model != "unknown" and flags:
            break
    return model, flags


def has(flag: str) -> bool:
    return flag in cpu_info()[1]


def describe() -> str:
    """One line for a benchmark's output: `AMD EPYC 9B14; 2 CPUs; flags: avx2 avx512f avx512_bf16 ...`."""
    model, flags = cpu_info()
    have = [f for f in SPEED_FLAGS if f in flags]
    return f"{model}; {os.cpu_count()} CPUs; flags: {' '.join(have) or 'none of ' + ' '.join(SPEED_FLAGS)}"
