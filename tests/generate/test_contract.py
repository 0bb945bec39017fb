"""The engine contract: every backend declares its capabilities and offers the methods they promise; engines
are made by the one builder; product code never probes an engine's type or attributes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inkwell.errors import InkwellError
from inkwell.generate.builder import WORKLOADS, EngineSpec, open_engine
from inkwell.generate.contract import Capabilities, GenerationEngine
from inkwell.generate.settings import GenerationSettings

PACKAGE = Path(__file__).resolve().parents[2] / "inkwell"


def test_the_torch_engine_keeps_the_contract_and_declares_what_it_can(tiny_chat_model):
    engine = open_engine(EngineSpec(str(tiny_chat_model), backend="torch", dtype="fp32", device="cpu", batch_size=2))
    assert isinstance(engine, GenerationEngine)
    caps = engine.capabilities
    assert caps.continuous_batching and caps.scoring and caps.beams and caps.adapters and caps.local
    assert not caps.concurrent and not caps.cancellable
    ids = engine.encode("The quick brown fox")
    assert engine.count_tokens("The quick brown fox") == len(ids)
    assert tuple(engine.window_logits(ids).shape) == (len(ids), engine.model.config.vocab_size)
    batch = engine.continuous_batch(GenerationSettings(temperature=0, max_new_tokens=2), max_rows=2)
    assert batch.idle
    [result] = engine.generate(["The quick brown fox"], GenerationSettings(temperature=0, max_new_tokens=3))
    assert result.completion_tokens <= 3
    engine.close()


def test_the_scheduler_front_is_concurrent_and_cancellable(tiny_chat_model):
    from inkwell.generate.scheduler import ScheduledEngine, Scheduler

    engine = open_engine(EngineSpec(str(tiny_chat_model), backend="torch", dtype="fp32", device="cpu"))
    scheduler = Scheduler(engine).start()
    try:
        front = ScheduledEngine(scheduler)
        assert isinstance(front, GenerationEngine)
        assert front.capabilities.concurrent and front.capabilities.cancellable
        assert front.render("hi") == engine.render("hi")
        # request threads tokenise on their own copy of the tokenizer: never the decode thread's
        assert scheduler.front.tokenizer is not engine.tokenizer
    finally:
        scheduler.close()


def test_capabilities_default_to_the_least_any_engine_offers():
    caps = Capabilities()
    assert caps.streaming and caps.local
    assert not any(
        [
            caps.continuous_batching,
            caps.concurrent,
            caps.scoring,
            caps.beams,
            caps.adapters,
            caps.cancellable,
            caps.grammar,
        ]
    )
    assert set(caps.to_dict()) == {
        "streaming",
        "continuous_batching",
        "concurrent",
        "scoring",
        "beams",
        "adapters",
        "cancellable",
        "local",
        "grammar",
    }


@pytest.mark.parametrize(
    "spec, field, message",
    [
        (EngineSpec(backend="tensorrt"), "engine", "unknown engine"),
        (EngineSpec(workload="training"), "workload", "unknown workload"),
        (EngineSpec(batch_size=0), "batch_size", "invalid batch size"),
        (EngineSpec(backend="remote"), "base-url", "needs --base-url"),
        (
            EngineSpec(backend="remote", base_url="http://127.0.0.1:9/v1", adapter="runs/x"),
            "adapter",
            "local models only",
        ),
    ],
)
def test_a_bad_spec_names_the_field(spec, field, message):
    with pytest.raises(InkwellError, match=message) as info:
        open_engine(spec)
    assert info.value.field == field


def test_every_workload_ends_on_torch_and_score_stays_on_torch():
    assert set(WORKLOADS) == {"interactive", "bulk", "serve", "score"}
    assert all(w.order[-1] == "torch" for w in WORKLOADS.values())  # the engine that runs anything
    assert "onnx" not in WORKLOADS["bulk"].order + WORKLOADS["serve"].order  # static batches lose at 64 rows
    assert WORKLOADS["score"].order == ("torch",)


def test_a_gpu_or_an_explicit_dtype_gets_the_torch_engine_under_auto(tiny_chat_model):
    engine = open_engine(EngineSpec(str(tiny_chat_model), dtype="fp32", device="cpu", workload="score"))
    assert engine.capabilities.beams  # the torch engine (score: full precision)
    bf16 = open_engine(EngineSpec(str(tiny_chat_model), dtype="bf16", device="cpu"))  # explicit dtype: torch
    assert bf16.loaded.dtype == "bf16"


PROBES = re.compile(
    r"type\(engine\)|hasattr\(\s*(self\.)?engine|getattr\(\s*(self\.)?engine\b|"
    r"getattr\(\s*model\s*,\s*\"window_logits\""
)


def test_no_product_code_probes_an_engine():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if PROBES.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "ask engine.capabilities instead:\n" + "\n".join(offenders)


def test_engines_are_made_only_by_the_builder():
    """Constructing a backend class is the builder's job (tests and the backends' own modules aside)."""
    made = re.compile(r"\b(Engine|NativeEngine|OnnxEngine|RemoteEngine)\(")
    allowed = {
        "generate/builder.py",
        "generate/engine.py",
        "generate/native_engine.py",
        "generate/onnx_engine.py",
        "generate/remote.py",
        "generate/contract.py",
    }
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        if rel in allowed:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#")[0]
            if made.search(code) and "class " not in code:
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "use inkwell.generate.builder.open_engine(EngineSpec(...)):\n" + "\n".join(offenders)
