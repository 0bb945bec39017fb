"""Bootstrap confidence intervals for metrics.

Every metric that supports an interval gives per-example sufficient statistics (an n x k array) and a
`reduce(sums, n)` that turns their column sums into the metric: a mean is (x,) -> sum/n, corpus BLEU is
sacrebleu's n-gram counts -> BLEU, perplexity is (nll, tokens) -> exp(nll/tokens). A bootstrap resample is
then a weight vector over the rows (how often each row was drawn), so one matrix product sums the
statistics for all resamples at once. Systems evaluated on the same rows share the same resamples (a paired
bootstrap), so their intervals are comparable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_RESAMPLES = 1000
Reduce = Callable[[np.ndarray, int], float]


def resample_weights(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Resampler:
    """The bootstrap resamples of n rows: block b of `Resampler.blocks()` holds, per resample, how many times
    each row was drawn. The same (n, resamples, seed) always gives the same resamples."""
    return Resampler(n, resamples, seed)


class Resampler:
    """Bootstrap resamples as weight matrices (resamples x n). Kept in memory when that is small (up to
    32M cells, 128 MB in float32), else regenerated block by block from the seed on each use."""

    BLOCK = 100
    KEEP_CELLS = 32_000_000

    def __init__(self, n: int, resamples: int, seed: int = 0):
        self.n, self.resamples, self.seed = n, resamples, seed
        self._kept: list[np.ndarray] | None = None
        if n * resamples <= self.KEEP_CELLS:
            self._kept = list(self._generate())

    @property
    def shape(self) -> tuple[int, int]:
        return self.resamples, self.n

    def _generate(self):
        rng = np.random.default_rng(self.seed)
        for start in range(0, self.resamples, self.BLOCK):
            count = min(self.BLOCK, self.resamples - start)
            block = np.zeros((count, self.n), dtype=np.float32)
            for b in range(count):
                block[b] = np.bincount(rng.integers(0, self.n, size=self.n), minlength=self.n)
            yield block

    def blocks(self):
        return iter(self._kept) if self._kept is not None else self._generate()

    def matrix(self) -> np.ndarray:
        return np.concatenate(list(self.blocks())) if self.resamples else np.zeros((0, self.n), dtype=np.float32)


def bootstrap_ci(
    stats: np.ndarray,
    reduce: Reduce,
    weights: Resampler,
    confidence: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile interval of `reduce` over the resamples; None when it cannot be computed (no rows)."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim == 1:
        stats = stats[:, None]
    n = stats.shape[0]
    if n == 0 or weights.n != n or weights.resamples == 0:
        return None
    values = []
    for block in weights.blocks():
        sums = block.astype(np.float64) @ stats  # resamples x k
        values.extend(reduce(row, n) for row in sums)
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def mean_reduce(sums: np.ndarray, n: int) -> float:
    return float(sums[0] / n) if n else float("nan")


def ratio_reduce(sums: np.ndarray, n: int) -> float:
    return float(sums[0] / sums[1]) if sums[1] else float("nan")
