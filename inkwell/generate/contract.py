"""The engine contract: what every generation backend (torch, ONNX, native, remote, the scheduler's front)
offers, and the capabilities it declares so that callers ask instead of probing types.

    if engine.capabilities.continuous_batching:
        batch = engine.continuous_batch(settings, max_rows=16)
    if engine.capabilities.scoring:
        logits = engine.window_logits(ids)

Learnt from simonw/llm's `Model` (one abstract `execute` plus `can_stream`) and torchtune's
`AdapterModule` protocol: a backend says what it can do; nothing checks `type()` or `hasattr` on it.
Engines are made by `inkwell.generate.builder.open_engine(EngineSpec)` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from inkwell.generate.rows import GenerationResult, OnDelta, Prompt
from inkwell.generate.settings import GenerationSettings


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do. Defaults are the least any engine offers (generate, stream)."""

    streaming: bool = True  # on_delta receives text as it is produced
    continuous_batching: bool = False  # continuous_batch(...) gives the Scheduler a step-level batch
    concurrent: bool = False  # generate() may be called from several threads at once (they share batches)
    scoring: bool = False  # window_logits(ids): next-token logits, for perplexity
    beams: bool = False  # num_beams > 1 (elsewhere: a fallback to the torch engine, said in a note)
    adapters: bool = False  # several PEFT adapters served unmerged from one base (select per request)
    cancellable: bool = False  # with_cancel(event) gives the same engine with its own cancel switch
    local: bool = True  # runs in this process (False: an HTTP backend; nothing to score or batch here)
    grammar: bool = False  # settings.grammar is honoured: output decoded under a JSON schema / regex / choices

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@runtime_checkable
class GenerationEngine(Protocol):
    """Prompts + settings -> results. `loaded` carries the model's facts (name, adapter, chat, context_length,
    tokenizer, dtype label); the methods below beyond `generate` exist where `capabilities` says so."""

    loaded: Any
    batch_size: int
    capabilities: Capabilities

    def render(self, prompt: Prompt) -> str: ...  # the exact text the model sees (chat template applied)

    def encode(self, prompt: Prompt) -> list[int]: ...

    def count_tokens(self, prompt: Prompt) -> int: ...

    def generate(
        self, prompts: Sequence[Prompt], settings: GenerationSettings | None = None, on_delta: OnDelta | None = None
    ) -> list[GenerationResult]: ...

    def close(self) -> None: ...


ScoreFn = Callable[[Sequence[int]], Any]  # window_logits: ids -> [len(ids), vocab] logits
