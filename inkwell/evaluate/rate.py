"""`inkwell rate DIR`: blind human ratings of an evaluation's outputs, 1 (bad) to 5 (excellent).

Every (example, system) output not yet rated by this rater is shown in a seeded random order with the
system name hidden; each answer goes to the store's `ratings` table at once (so quitting loses nothing),
and the folder's reports are re-written with rating means at the end.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inkwell.evaluate.report import load_report, refresh


@dataclass
class RatingSession:
    rated: int = 0
    skipped: int = 0
    remaining: int = 0
    quit: bool = False


class StopRating(Exception):
    """Raised by an `ask` function to end the session (end of input, Ctrl-D)."""


def pending_items(out: Path, rater: str | None, seed: int = 0) -> list[tuple[dict, str]]:
    """(example, system) pairs this rater has not rated, shuffled with `seed`."""
    from inkwell.store import Store

    report = load_report(out)
    store = Store()
    try:
        done = {(r["example_id"], r["system"]) for r in store.ratings(str(Path(out).resolve()), rater=rater)}
    finally:
        store.close()
    systems = [s["name"] for s in report["systems"]]
    items = [
        (example, system)
        for example in report["examples"]
        for system in systems
        if (str(example["id"]), system) not in done
    ]
    random.Random(seed).shuffle(items)
    return items


def run_session(
    out: Path,
    *,
    ask: Callable[[str], str],
    show: Callable[[str], None],
    rater: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    show_reference: bool = False,
) -> RatingSession:
    from inkwell.store import Store

    out = Path(out)
    items = pending_items(out, rater, seed)
    session = RatingSession(remaining=len(items))
    if limit is not None:
        items = items[:limit]
    if not items:
        show("nothing left to rate in this folder" + (f" for rater '{rater}'" if rater else ""))
        return session
    eval_dir = str(out.resolve())
    store = Store()
    try:
        for number, (example, system) in enumerate(items, start=1):
            show(f"\n──────── {number} of {len(items)} ────────")
            show(f"PROMPT:\n{example['prompt']}")
            if show_reference:
                show(f"\nREFERENCE:\n{example['reference']}")
            text = example["outputs"][system]["text"]
            show(f"\nOUTPUT:\n{text if text.strip() else '(empty output)'}\n")
            while True:
                try:
                    answer = ask("Rating 1-5 (s = skip, q = quit)").strip().lower()
                except StopRating:
                    answer = "q"
                if answer in ("1", "2", "3", "4", "5"):
                    store.add_rating(
                        eval_dir=eval_dir, example_id=str(example["id"]), system=system, rating=int(answer), rater=rater
                    )
                    session.rated += 1
                    session.remaining -= 1
                    break
                if answer in ("s", "skip"):
                    session.skipped += 1
                    break
                if answer in ("q", "quit"):
                    session.quit = True
                    break
                show("please answer 1, 2, 3, 4 or 5 (or s to skip, q to quit)")
            if session.quit:
                break
    finally:
        store.close()
    if session.rated:
        refresh(out)
    return session
