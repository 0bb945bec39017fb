"""Transitional: the old keyword form of `open_engine`, mapped onto `inkwell.generate.builder.open_engine(EngineSpec)`."""

from __future__ import annotations

from inkwell.generate.builder import EngineSpec
from inkwell.generate.builder import open_engine as _open


def open_engine(model=None, *, adapter=None, dtype="auto", device="auto", batch_size=16, engine="auto",
                precision="auto", progress=None, bulk=False):
    return _open(EngineSpec(model, adapter=adapter, backend=engine, workload="bulk" if bulk else "interactive",
                            dtype=dtype, precision=precision, device=device, batch_size=batch_size), progress)
