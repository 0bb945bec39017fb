"""The blind-comparison leaderboard: Bradley-Terry on an Elo-like scale with bootstrap intervals."""

from __future__ import annotations

import numpy as np

from inkwell.feedback.leaderboard import PRIOR_GAMES, fit_strengths, leaderboard


def _games(pairs: list[tuple[str, str, str | None]]) -> list[dict]:
    return [{"left_system": a, "right_system": b, "winner": w} for a, b, w in pairs]


def test_a_system_that_always_wins_ranks_first_with_a_higher_interval():
    rows = leaderboard(_games([("base", "fb-1", "right"), ("fb-1", "base", "left")] * 6))
    assert [r["system"] for r in rows] == ["fb-1", "base"]
    best, worst = rows
    assert best["low"] > worst["high"]
    assert best["rating"] > 1000 > worst["rating"] and abs(best["rating"] + worst["rating"] - 2000) < 0.2
    assert (best["wins"], best["losses"], best["ties"], best["n"]) == (12, 0, 0, 12)
    assert np.isfinite(best["rating"])  # the prior keeps an unbeaten system finite


def test_ties_give_equal_ratings_and_unjudged_games_are_skipped():
    rows = leaderboard(_games([("a", "b", "tie")] * 5 + [("a", "b", None), ("a", "a", "left")]))
    assert [r["rating"] for r in rows] == [1000.0, 1000.0]
    assert all(r["ties"] == 5 and r["n"] == 5 for r in rows)


def test_deterministic_with_a_seed_and_intervals_contain_the_rating():
    games = _games(
        [("a", "b", w) for w in ["left", "right", "left", "tie", "left", "left", "right", "left"]]
        + [("b", "c", "left"), ("c", "a", "right"), ("b", "c", "tie")]
    )
    first = leaderboard(games, seed=3)
    assert leaderboard(games, seed=3) == first
    assert leaderboard(games, seed=4) != first  # other resamples, other intervals
    for row in first:
        assert row["low"] <= row["rating"] <= row["high"]
    assert leaderboard([]) == []
    assert leaderboard(games, bootstrap=0)[0]["low"] == leaderboard(games, bootstrap=0)[0]["rating"]


def test_newton_fit_matches_hunters_mm_iteration():
    """The fit is the maximum of the same likelihood the textbook MM iteration converges to."""
    rng = np.random.default_rng(0)
    wins = rng.integers(0, 6, size=(4, 4)).astype(float)
    np.fill_diagonal(wins, 0)
    wins[0, 1], wins[1, 0] = 7.0, 0.0  # one lopsided pair
    games = wins + wins.T
    p = np.ones(4)
    for _ in range(50_000):  # MM with the same prior: half of PRIOR_GAMES won against an anchor of strength 1
        denominator = (games / (p[:, None] + p[None, :])).sum(axis=1) + PRIOR_GAMES / (p + 1)
        p = (wins.sum(axis=1) + PRIOR_GAMES / 2) / denominator
    assert np.allclose(fit_strengths(wins), p, rtol=1e-6)
