"""What the CPU fast paths (ONNX, native) share: settings they hand to the torch engine, the torch engine built
on first need, and the choice of each token in numpy.

Token choice is written by hand because transformers' warpers take torch tensors and these paths must not need
a torch round trip per step; the order (repetition penalty, min length, temperature, top-k, top-p) is theirs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.generate.engine import Engine
from inkwell.generate.rows import OnDelta, Prompt, Row, TextRows
from inkwell.generate.settings import GenerationSettings


def file_eos(loaded, *more) -> list:
    """End-of-text ids from the model folder's generation_config.json (there is no torch module on these
    paths to ask), plus any the runtime names."""
    path = Path(loaded.path) / "generation_config.json"
    return [json.loads(path.read_text()).get("eos_token_id") if path.exists() else None, *more]


def fast_rows(
    text: TextRows,
    prompts: Sequence[Prompt],
    settings: GenerationSettings,
    seeds,
    on_delta: OnDelta | None,
    should_stop: Callable[[int], bool] | None,
) -> list[Row]:
    """The rows of one `generate` call on a fast path, streaming to `on_delta`, cancelled by `should_stop`."""
    rows = text.make_rows(prompts, settings, seeds)
    for row in rows:
        row.stream = on_delta
        if should_stop is not None:
            row.cancelled = lambda index=row.out_index: should_stop(index)
    return rows


def needs_torch(settings: GenerationSettings) -> str | None:
    """Why these settings need the torch engine, or None when the fast paths honour them all."""
    if settings.num_beams > 1:
        return "beam search"
    if settings.no_repeat_ngram_size > 0:
        return "no_repeat_ngram_size"
    return None


class TorchFallback:
    """The torch engine for settings a fast path lacks: built by `factory` on first need, with a one-line notice."""

    def __init__(self, path: str, factory: Callable[[], Engine] | None, notice: Callable[[str], None] | None):
        self.path, self.factory, self.notice = path, factory, notice
        self.engine: Engine | None = None

    def __call__(self, reason: str) -> Engine:
        if self.engine is None:
            if self.factory is None:
                raise InkwellError(
                    f"{reason} is not available on the {self.path}", field="engine", hint="use --engine torch"
                )
            if self.notice:
                self.notice(f"note: {reason} runs on the torch engine (the {self.path} does not support it)")
            self.engine = self.factory()
        return self.engine


def pick_token(x, row, settings: GenerationSettings, eos, seen=None, penalty: float = 1.0) -> int:
    """One row's next token from its logits `x` (changed in place): repetition penalty on the `seen` tokens,
    end of text masked below min_new_tokens, the row's grammar mask, then greedy or sampled with the row's numpy RNG. The numpy
    paths' (ONNX, native) twin of the torch engine's warpers, in their order."""
    import numpy as np

    if seen is not None:
        x[seen] = np.where(x[seen] > 0, x[seen] / penalty, x[seen] * penalty)
    if len(row.generated) < row.min_new_tokens and eos.size and not (row.grammar and row.grammar.accepting):
        x[eos] = -np.inf  # (a complete grammar match may always end: min_new_tokens yields to it)
    if settings.greedy:
        if row.grammar is not None:
            row.grammar.apply(x)
        return int(np.argmax(x))
    if row.grammar is not None:
        # sample among the allowed tokens only: numpy's argpartition slows ~8x on a vocabulary of mostly -inf
        # (2.4 ms a token for SmolLM2), and the draw is the same (candidates keep their order)
        row.grammar.apply(x)
        ids = np.flatnonzero(x != -np.inf)
        choice = sample(x[ids], float(settings.temperature), settings.top_k, float(settings.top_p), row.generator)
        return int(ids[choice])
    return sample(x, float(settings.temperature), settings.top_k, float(settings.top_p), row.generator)


def sample(x, temperature: float, top_k: int, top_p: float, rng) -> int:
    import numpy as np

    x = x / temperature if temperature != 1.0 else x
    if 0 < top_k < x.size:
        candidates = np.argpartition(x, -top_k)[-top_k:]  # O(vocab), then sort only k
    else:
        candidates = np.arange(x.size)
    order = candidates[np.argsort(-x[candidates], kind="stable")]
    scores = x[order].astype(np.float64)
    probs = np.exp(scores - scores[0])
    probs /= probs.sum()
    if top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(probs), top_p) + 1)  # smallest prefix with mass >= top_p
        order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
    return int(order[rng.choice(len(order), p=probs)])
