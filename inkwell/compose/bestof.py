"""Best-of-n: write N candidates together and keep the best, ranked by the template's checks
(compose/checks.py), then by the model's length-normalised likelihood of the text given its prompt.

    overrides, choose = best_of_settings({"temperature": 0.7}, best_of=4)   # 4 candidates per version
    results = write(engine, template, fields, overrides=overrides, choose=choose)   # generate.content
    results[0].extra["best_of"]   # {"n": 4, "rank": 1, "score": 1.0, "checks": {...}, "candidates": [...]}

The N candidates are one request of N return sequences, so a continuous batch decodes them side by side:
on a CPU the batch costs far less than N times one stream. The checks are the ranking's first key (the share
of the template's applicable checks a candidate passes): a piece a creator can use beats one they cannot, however
fluent. The likelihood (mean log-probability per token, as the engine scores the prompt plus the text) breaks
ties among the best; it costs one forward pass per tied candidate, so it is computed only for them, and only
where the engine can score (`capabilities.scoring`: the torch, native and ONNX engines; not the server's
scheduler or a remote server, where ties keep the order they were written in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inkwell.errors import InkwellError

if TYPE_CHECKING:  # the checks load on first use: the server's schemas import this module for MAX_BEST_OF
    from inkwell.compose.checks import Verdict

MAX_BEST_OF = 16  # candidates per version: each is a row of the batch
MAX_ROWS = 64  # versions x candidates: GenerationSettings' limit on return sequences


def check_best_of(best_of: int, n: int = 1, field: str = "best-of") -> None:
    """An InkwellError naming `field` when best_of is out of range or best_of x n is too many rows."""
    if not isinstance(best_of, int) or isinstance(best_of, bool) or not 1 <= best_of <= MAX_BEST_OF:
        raise InkwellError(
            f"{field} must be a whole number between 1 and {MAX_BEST_OF}, got {best_of!r}",
            field=field,
            hint="e.g. 4: four candidates, the best kept",
        )
    if best_of * n > MAX_ROWS:
        raise InkwellError(
            f"{field} {best_of} x {n} versions is {best_of * n} candidates; at most {MAX_ROWS}",
            field=field,
            hint=f"lower {field} or the number of versions",
        )


def best_of_settings(overrides: dict, best_of: int) -> tuple[dict, BestOf | None]:
    """(overrides asking for `best_of` candidates per version, the chooser to pass to write/write_many), or the
    overrides unchanged and None when best_of is 1."""
    versions = int(overrides.get("num_return_sequences") or 1)
    check_best_of(best_of, versions)
    if best_of == 1:
        return overrides, None
    if overrides.get("temperature") in (0, 0.0):
        raise InkwellError(
            "best-of needs sampling: with temperature 0 (greedy) every candidate is the same text",
            field="best-of",
            hint="leave the temperature to the template, or set one above 0",
        )
    wider = {**overrides, "num_return_sequences": versions * best_of}
    return wider, BestOf(best_of)


@dataclass
class Candidate:
    index: int  # its place among the candidates, in the order they were written
    item: Any  # generate.content.ContentResult
    verdict: Verdict
    likelihood: float | None = None  # mean log-probability per token (nats); None: not computed

    @property
    def key(self) -> tuple:
        """Sort key: checks first, then likelihood (unscored last among equals), then written order."""
        return (-self.verdict.score, -(self.likelihood if self.likelihood is not None else -math.inf), self.index)

    def summary(self) -> dict:
        return {
            "index": self.index,
            "score": round(self.verdict.score, 4),
            "failed": self.verdict.failed,
            "likelihood": None if self.likelihood is None else round(self.likelihood, 4),
        }


class BestOf:
    """The chooser `generate.content.write_many(choose=...)` calls with each prompt's candidates: it ranks them
    and returns the best `len(candidates) // n` (the versions asked for), each with its scores in
    `item.extra["best_of"]` (so they reach --json, the server's answer and the history store)."""

    def __init__(self, n: int, likelihood: bool = True):
        check_best_of(n)
        self.n = n
        self.likelihood = likelihood  # False: checks only (ties keep their written order)

    def __call__(self, engine, template, rendered, candidates: Sequence[Any]) -> list[Any]:
        ranked = self.rank(engine, template, rendered, candidates)
        keep = max(1, len(candidates) // self.n)
        chosen = ranked[:keep]
        listing = sorted((c.summary() for c in ranked), key=lambda s: s["index"])
        for rank, candidate in enumerate(chosen, start=1):
            candidate.item.extra["best_of"] = {
                "n": self.n,
                "rank": rank,
                "index": candidate.index,
                "score": round(candidate.verdict.score, 4),
                "checks": candidate.verdict.flags(),
                "failed": candidate.verdict.failed,
                "likelihood": None if candidate.likelihood is None else round(candidate.likelihood, 4),
                "candidates": listing,
            }
        return [c.item for c in chosen]

    def rank(self, engine, template, rendered, candidates: Sequence[Any]) -> list[Candidate]:
        """The candidates best first. Likelihoods are computed for the candidates that tie on checks with the
        last one kept (when there are more of them than places), where the engine can score."""
        from inkwell.compose.checks import check_output

        fields = rendered.fields
        scored = [Candidate(i, item, check_output(template, fields, item.text)) for i, item in enumerate(candidates)]
        keep = max(1, len(candidates) // self.n)
        by_checks = sorted(scored, key=lambda c: (-c.verdict.score, c.index))
        cut = by_checks[keep - 1].verdict.score
        contenders = [c for c in scored if c.verdict.score >= cut]
        if self.likelihood and len(contenders) > keep and engine.capabilities.scoring:
            prompt_ids = engine.encode(rendered.prompt)
            for candidate in contenders:
                candidate.likelihood = mean_logprob(engine, prompt_ids, candidate.item.text)
        return sorted(scored, key=lambda c: c.key)


def mean_logprob(engine, prompt_ids: Sequence[int], text: str) -> float | None:
    """Mean log-probability per token of `text` after the prompt (nats; higher is likelier), from one
    `window_logits` pass. The prompt is cut from the left to fit the context. None for an empty text."""
    import torch

    target = engine.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not target:
        return None
    room = max(1, int(engine.loaded.context_length) - len(target))
    context = list(prompt_ids)[-room:] or list(target[:1])
    ids = context + list(target)
    logits = torch.as_tensor(engine.window_logits(ids)).float()
    start = len(ids) - len(target)  # logits at position t predict token t + 1
    logprobs = torch.log_softmax(logits[start - 1 : len(ids) - 1], dim=-1)
    picked = logprobs.gather(-1, torch.tensor(target)[:, None])
    return float(picked.mean())
