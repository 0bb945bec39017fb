"""CPU feature detection: the flags every benchmark prints and engines dispatch on."""

from pathlib import Path

from inkwell.models import cpu

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx2
"""


def test_flags_and_model_come_from_the_first_processor(monkeypatch):
    monkeypatch.setattr(Path, "read_text", lambda self, **kw: CPUINFO)
    cpu.cpu_info.cache_clear()
    try:
        model, flags = cpu.cpu_info()
        assert model.startswith("Intel(R) Xeon(R) Platinum 8481C") and "amx_int8" in flags
        assert cpu.has("amx_bf16") and not cpu.has("avx512_fp16")
        assert cpu.describe().endswith("flags: avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_int8 amx_tile")
    finally:
        cpu.cpu_info.cache_clear()


def test_an_unreadable_cpuinfo_says_so(monkeypatch):
    def fail(self, **kw):
        raise OSError("no /proc")

    monkeypatch.setattr(Path, "read_text", fail)
    cpu.cpu_info.cache_clear()
    try:
        assert cpu.cpu_info() == ("unknown", frozenset())
        assert "none of avx2" in cpu.describe()
    finally:
        cpu.cpu_info.cache_clear()
