"""Ensembles: several systems (base models, adapters, remote backends) writing one request's candidates together,
so that a chooser (best-of, compose/bestof.py) ranks them all by the same checks.

    engine = open_engine(EngineSpec(systems=["smollm2-135m-instruct", "smollm2-135m-instruct:runs/ads-lora"]))
    engine.generate(prompts, settings)   # settings.num_return_sequences shared among the systems in turn

`num_return_sequences` is shared, not multiplied: with two systems and 4 samples per prompt, each system writes
2, so a best-of-4 over an ensemble still ranks 4 candidates (and keeps as many versions as without one). Sample k
of a prompt keeps its seed (seed + k) whichever system writes it. Each result says which model (and adapter)
wrote it, for the record and the history store.

The likelihood tie-break of best-of is off (`scoring` False): log-probabilities from different models are not on
one scale. Logit averaging (a product of experts decoded token by token) is not done: it needs one decode loop
over several models' caches, which no engine here has; pooled candidates need nothing new from the engines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from inkwell.errors import InkwellError
from inkwell.generate.contract import Capabilities
from inkwell.generate.rows import GenerationResult, OnDelta, Prompt
from inkwell.generate.settings import GenerationSettings

MAX_SYSTEMS = 8


class EnsembleEngine:
    """The engine contract over several member engines (`members`: [(label, engine)]). Prompts are rendered and
    counted by the first member (context length: the smallest of them); each member renders its own copy."""

    def __init__(self, members: Sequence[tuple[str, object]]):
        if not 2 <= len(members) <= MAX_SYSTEMS:
            raise InkwellError(
                f"an ensemble needs 2 to {MAX_SYSTEMS} systems, got {len(members)}",
                field="systems",
                hint="give --systems MODEL[:ADAPTER],MODEL[:ADAPTER],...",
            )
        chats = {bool(engine.loaded.chat) for _label, engine in members}  # type: ignore[attr-defined]
        if len(chats) > 1:
            raise InkwellError(
                "the systems of an ensemble must all be chat (instruction-tuned) models or all base models: "
                "they are given the same prompt",
                field="systems",
                hint="pick systems of one kind",
            )
        self.members = list(members)
        first = members[0][1]
        context = min(int(engine.loaded.context_length) for _label, engine in members)  # type: ignore[attr-defined]
        self.loaded = dataclasses.replace(first.loaded, context_length=context)  # type: ignore[attr-defined]
        self.batch_size = first.batch_size  # type: ignore[attr-defined]
        self.render = first.render  # type: ignore[attr-defined]
        self.encode = first.encode  # type: ignore[attr-defined]
        self.count_tokens = first.count_tokens  # type: ignore[attr-defined]
        caps = [engine.capabilities for _label, engine in members]  # type: ignore[attr-defined]
        self.capabilities = Capabilities(
            streaming=False,  # the candidates of several systems are ranked before anything is shown
            grammar=all(c.grammar for c in caps),
            local=all(c.local for c in caps),
        )

    def generate(
        self, prompts: Sequence[Prompt], settings: GenerationSettings | None = None, on_delta: OnDelta | None = None
    ) -> list[GenerationResult]:
        settings = settings or GenerationSettings()
        n, k = settings.num_return_sequences, len(self.members)
        shares = [n // k + (1 if j < n % k else 0) for j in range(k)]
        results: list[GenerationResult] = []
        first = 0
        for (_label, engine), share in zip(self.members, shares, strict=True):
            if not share:
                continue
            seed = None if settings.seed is None else settings.seed + first
            part = dataclasses.replace(settings, num_return_sequences=share, seed=seed)
            for result in engine.generate(prompts, part):  # type: ignore[attr-defined]
                result.sample_index += first
                result.model, result.adapter = engine.loaded.name, engine.loaded.adapter  # type: ignore[attr-defined]
                results.append(result)
            first += share
        return sorted(results, key=lambda r: (r.prompt_index, r.sample_index))

    def close(self) -> None:
        for _label, engine in self.members:
            engine.close()  # type: ignore[attr-defined]


def parse_systems(text: str | Sequence[str]) -> list[tuple[str | None, str | None]]:
    """`MODEL[:ADAPTER],...` (or a list of them) -> [(model, adapter)]; a bare adapter folder is `:runs/x`."""
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p and p.strip()]
    out: list[tuple[str | None, str | None]] = []
    for item in items:
        model, _, adapter = item.partition(":")
        if not model and not adapter:
            raise InkwellError(f"empty system in {text!r}", field="systems", hint="MODEL[:ADAPTER],MODEL[:ADAPTER]")
        out.append((model.strip() or None, adapter.strip() or None))
    if not 2 <= len(out) <= MAX_SYSTEMS:
        raise InkwellError(
            f"--systems takes 2 to {MAX_SYSTEMS} systems, got {len(out)}",
            field="systems",
            hint="e.g. --systems smollm2-135m-instruct,smollm2-135m-instruct:runs/my-lora",
        )
    return out
