"""A leaderboard of systems from blind comparisons: Bradley-Terry strengths on an Elo-like scale, with
bootstrap 95% intervals. Pure numpy; the caller passes the comparisons (store rows or plain dicts).

Bradley-Terry: P(i beats j) = p_i / (p_i + p_j), a tie counting as half a win each way. A prior of one
virtual game (half won) of every system against an anchor of strength 1 keeps a system that won or lost every
game finite and pins the scale. Ratings are 400 * log10(p), shifted so their mean is 1000 (an Elo gap of 400
= 10:1 odds).

The fit maximises that (concave) likelihood by Newton's method on log p, with step halving. The textbook MM
iteration (Hunter 2004: p_i <- W_i / sum_j n_ij / (p_i + p_j)) reaches the same maximum, but it crawls
exactly where a studio lives - a new system that wins every blind round: ~1,900 iterations to converge for
20 straight wins, 3.8 s for the 200 bootstrap refits, where Newton needs about 10 steps.
tests/feedback/test_feedback_leaderboard.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PRIOR_GAMES = 1.0  # virtual games of every system against the anchor (half of them won)
SCALE = 400.0  # Elo's: a 400-point gap means 10:1 odds
MEAN_RATING = 1000.0
MAX_ITERATIONS = 100
TOLERANCE = 1e-10  # largest change of a log strength in the last Newton step


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings for large |x|


def _log_likelihood(theta: np.ndarray, wins: np.ndarray) -> float:
    diff = theta[:, None] - theta[None, :]
    pairs = float(np.sum(wins * np.log(_sigmoid(diff) + 1e-300)))
    prior = PRIOR_GAMES / 2 * float(np.sum(np.log(_sigmoid(theta) + 1e-300) + np.log(_sigmoid(-theta) + 1e-300)))
    return pairs + prior


def fit_strengths(wins: np.ndarray) -> np.ndarray:
    """Bradley-Terry strengths (anchor = 1). `wins[i, j]`: how often i beat j (a tie adds 0.5 both ways)."""
    n = len(wins)
    games = wins + wins.T
    theta = np.zeros(n)
    current = _log_likelihood(theta, wins)
    for _ in range(MAX_ITERATIONS):
        p = _sigmoid(theta[:, None] - theta[None, :])
        anchor = _sigmoid(theta)
        gradient = wins.sum(axis=1) + PRIOR_GAMES / 2 - (games * p).sum(axis=1) - PRIOR_GAMES * anchor
        curvature = games * p * p.T
        hessian = curvature - np.diag(curvature.sum(axis=1) + PRIOR_GAMES * anchor * (1 - anchor))
        step = np.linalg.solve(hessian, -gradient)  # the prior makes the Hessian negative definite
        scale = 1.0
        while True:  # halve the step until the likelihood does not fall
            candidate = theta + scale * step
            value = _log_likelihood(candidate, wins)
            if value >= current - 1e-12 or scale < 1e-6:
                break
            scale /= 2
        theta, current = candidate, value
        if np.max(np.abs(scale * step)) < TOLERANCE:
            break
    return np.exp(theta)


def ratings_of(strengths: np.ndarray) -> np.ndarray:
    """Strengths on the Elo-like scale, mean MEAN_RATING."""
    elo = SCALE * np.log10(strengths)
    return elo - elo.mean() + MEAN_RATING


def _tally(index: np.ndarray, left: np.ndarray, right: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """wins[i, j] of the comparisons at positions `index`; score = 1 (left won), 0.5 (tie), 0 (right won)."""
    wins = np.zeros((n, n))
    np.add.at(wins, (left[index], right[index]), score[index])
    np.add.at(wins, (right[index], left[index]), 1.0 - score[index])
    return wins


def leaderboard(comparisons: Sequence[dict], *, bootstrap: int = 200, seed: int = 0) -> list[dict]:
    """[{system, rating, low, high, wins, losses, ties, n}] best first, from judged comparisons
    ({left_system, right_system, winner: left | right | tie}; unjudged ones and a system against itself are
    skipped). `low`/`high`: the 2.5th/97.5th percentiles of the rating over `bootstrap` resamples of the
    comparisons (seeded, so the same comparisons give the same table)."""
    judged = [
        c for c in comparisons if c.get("winner") in ("left", "right", "tie") and c["left_system"] != c["right_system"]
    ]
    systems = sorted({c["left_system"] for c in judged} | {c["right_system"] for c in judged})
    if not systems:
        return []
    position = {name: i for i, name in enumerate(systems)}
    left = np.array([position[c["left_system"]] for c in judged], dtype=int)
    right = np.array([position[c["right_system"]] for c in judged], dtype=int)
    score = np.array([{"left": 1.0, "tie": 0.5, "right": 0.0}[c["winner"]] for c in judged])
    n = len(systems)

    everything = np.arange(len(judged))
    rating = ratings_of(fit_strengths(_tally(everything, left, right, score, n)))
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        samples = np.empty((bootstrap, n))
        for b in range(bootstrap):
            pick = rng.integers(0, len(judged), size=len(judged))
            samples[b] = ratings_of(fit_strengths(_tally(pick, left, right, score, n)))
        low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    else:
        low, high = rating, rating

    table = []
    for i, name in enumerate(systems):
        as_left, as_right = left == i, right == i
        wins = int(np.sum(score[as_left] == 1.0) + np.sum(score[as_right] == 0.0))
        losses = int(np.sum(score[as_left] == 0.0) + np.sum(score[as_right] == 1.0))
        ties = int(np.sum(score[as_left | as_right] == 0.5))
        table.append(
            {
                "system": name,
                "rating": round(float(rating[i]), 1),
                # widened to contain the rating shown: a percentile interval of a skewed resample may not
                "low": round(float(min(low[i], rating[i])), 1),
                "high": round(float(max(high[i], rating[i])), 1),
                "wins": wins,
                "losses": losses,
                "ties": ties,
                "n": wins + losses + ties,
            }
        )
    table.sort(key=lambda row: (-row["rating"], row["system"]))
    return table
