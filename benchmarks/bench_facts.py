"""python benchmarks/bench_facts.py --tables 30 --retries 2 --max-new-tokens 160 --model smollm2-135m-instruct

Facts tables -> text, checked number by number: over `--tables` tables (the two real ones in examples/data/ plus
tables generated from a fixed seed: prices over days, wide and long; sales by region; match statistics; monthly
temperatures), the embedded model writes a `report` from each table's derived facts, and every number of the
text is checked against the table (inkwell/compose/factcheck.py). Printed, per side:

- plain: the first version, written with the facts in the prompt and no check (what `--fact-retries 0` gives);
- checked: the same version rewritten (a new seed each time, up to `--retries` times) while it has an unsupported
  number or name, keeping the candidate with the fewest (what `inkwell write report --data` does by default);

the share of the generated numbers that the data supports, the share of pieces with no unsupported number, and
the unsupported names. Both sides come from the same run: the plain side is the first candidate of the checked
one (same seed, same prompt), so the difference is the check's alone. Seeds are fixed (table i uses seed i);
the template's temperature (0.3) applies. The CPU's flags (avx2 / avx512 / amx) are printed first; the last
line is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The native engine's OpenMP threads busy-wait by default: beside another process doing the same on these 2 shared
# cores, a piece took 80 s instead of 8 s (measured). Passive waiting costs nothing when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REAL = [
    ROOT / "examples" / "data" / "paris-2024-medals.csv",
    ROOT / "examples" / "data" / "us-state-population-census.csv",
]
REAL_TITLES = ["Paris 2024 Olympic medal table, top 10", "Population of ten US states, 2010 and 2020 censuses"]
# Made-up names for the generated tables (they are synthetic, and say so in their titles).
TICKERS = ["ACME", "BOLT", "CRUX", "DYNA", "EVER", "FLUX"]
REGIONS = ["North", "South", "East", "West", "Central", "Coastal", "Highlands"]
TEAMS = [
    ("Riverside", "Harbor City"),
    ("Northgate", "Westfield"),
    ("Oakridge", "Lakeview"),
    ("Redcliff", "Stonebridge"),
]
CITIES = ["Eastport", "Millbrook", "Sunvale"]


def cpu_flags() -> str:
    """The CPU and the flags that decide its speed (inkwell.models.cpu)."""
    from inkwell.models.cpu import describe

    return describe()


# ---------------------------------------------------------------- the tables


def generated_tables(count: int, seed: int) -> list[tuple[str, list[dict]]]:
    """`count` (title, rows) tables of four shapes, the same for the same seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shapes = [_prices_wide, _prices_long, _sales, _match, _temperatures]
    return [shapes[i % len(shapes)](rng, i) for i in range(count)]


def _days(rng, n: int) -> list[str]:
    import pandas as pd

    start = pd.Timestamp("2024-01-02") + pd.Timedelta(days=int(rng.integers(0, 300)))
    return [d.strftime("%Y-%m-%d") for d in pd.bdate_range(start, periods=n)]


def _walk(rng, n: int, start: float) -> list[float]:
    prices = [start]
    for _ in range(n - 1):
        prices.append(prices[-1] * (1 + rng.normal(0, 0.02)))
    return [round(p, 2) for p in prices]


def _prices_wide(rng, i: int):
    days = _days(rng, int(rng.integers(5, 11)))
    names = list(rng.choice(TICKERS, size=int(rng.integers(2, 4)), replace=False))
    series = {t: _walk(rng, len(days), float(rng.uniform(20, 400))) for t in names}
    rows = [{"date": d, **{t: f"{series[t][k]:.2f}" for t in names}} for k, d in enumerate(days)]
    return f"Closing prices of {', '.join(names)} (synthetic)", rows


def _prices_long(rng, i: int):
    days = _days(rng, int(rng.integers(4, 8)))
    names = list(rng.choice(TICKERS, size=int(rng.integers(2, 4)), replace=False))
    rows = []
    for t in names:
        for d, p in zip(days, _walk(rng, len(days), float(rng.uniform(20, 400)))):
            rows.append({"date": d, "ticker": t, "close": f"{p:.2f}"})
    return "Daily closes (synthetic)", rows


def _sales(rng, i: int):
    regions = list(rng.choice(REGIONS, size=int(rng.integers(3, 7)), replace=False))
    rows = [
        {"region": r, "sales": int(rng.integers(20, 900)) * 100, "units": int(rng.integers(50, 5000))} for r in regions
    ]
    return f"Sales by region, Q{1 + i % 4} (synthetic)", rows


def _match(rng, i: int):
    home, away = TEAMS[i % len(TEAMS)]
    possession = int(rng.integers(35, 66))
    stats = {
        "possession": (f"{possession}%", f"{100 - possession}%"),
        "shots": (int(rng.integers(3, 25)), int(rng.integers(3, 25))),
        "shots on target": (int(rng.integers(0, 10)), int(rng.integers(0, 10))),
        "corners": (int(rng.integers(0, 12)), int(rng.integers(0, 12))),
        "fouls": (int(rng.integers(5, 20)), int(rng.integers(5, 20))),
    }
    rows = [{"statistic": k, home: a, away: b} for k, (a, b) in stats.items()]
    return f"{home} v {away}: match statistics (synthetic)", rows


def _temperatures(rng, i: int):
    cities = list(rng.choice(CITIES, size=2, replace=False))
    base = {c: float(rng.uniform(-5, 10)) for c in cities}
    rows = []
    for month in range(1, 13):
        season = 12 * (1 - abs(month - 7) / 6)
        rows.append({"month": f"2023-{month:02d}", **{c: f"{base[c] + season + rng.normal(0, 1):.1f}" for c in cities}})
    return f"Monthly mean temperature in {' and '.join(cities)}, °C (synthetic)", rows


# ---------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=30, help="tables in all, the 2 real ones included")
    parser.add_argument("--retries", type=int, default=2, help="rewrites of a version with unsupported spans")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--template", default="report")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated tables")
    parser.add_argument("--show", type=int, default=2, help="print this many texts (marked) as examples")
    args = parser.parse_args()

    from inkwell.compose.report import fit_facts, prepare_report, write_checked
    from inkwell.generate.builder import EngineSpec, open_engine

    print(f"cpu: {cpu_flags()}", flush=True)
    tables: list[tuple[str, Path | list[dict]]] = [(title, path) for title, path in zip(REAL_TITLES, REAL)]
    tables = tables[: args.tables] + [*generated_tables(max(0, args.tables - len(tables)), args.seed)]
    started = time.perf_counter()
    engine = open_engine(EngineSpec(args.model, backend=args.engine), lambda note: print(note, file=sys.stderr))
    print(f"model: {engine.loaded.name} ({type(engine).__name__}), loaded in {time.perf_counter() - started:.1f}s")

    sides: dict[str, list[dict]] = {"plain": [], "checked": []}
    attempts, seconds = [], []
    for i, (title, data) in enumerate(tables):
        overrides = {"seed": i, "max_new_tokens": args.max_new_tokens}
        job = prepare_report(data, args.template, None, {"title": title}, overrides=overrides, retries=args.retries)
        sheet, fields = job.sheet, job.job.fields
        fit_facts(engine, job.job.template, fields, sheet, overrides)
        evidence = sheet.evidence(fields)
        t0 = time.perf_counter()
        (version,) = write_checked(engine, job.job, evidence, args.retries)
        seconds.append(time.perf_counter() - t0)
        attempts.append(len(version.unsupported_per_attempt))
        for side, check in (("plain", version.first), ("checked", version.check)):
            numbers = check.numbers
            sides[side].append(
                {
                    "numbers": len(numbers),
                    "supported": sum(s.supported for s in numbers),
                    "names_unsupported": sum(1 for s in check.unsupported if s.kind == "name"),
                }
            )
        plain, checked = sides["plain"][-1], sides["checked"][-1]
        print(
            f"{i + 1:2d}. {title[:58]:58s} rows {sheet.rows:3d}  plain {plain['supported']:2d}/{plain['numbers']:2d}"
            f"  checked {checked['supported']:2d}/{checked['numbers']:2d}  attempts {attempts[-1]}  {seconds[-1]:5.1f}s",
            flush=True,
        )
        if i < args.show:
            print("    " + version.check.marked().replace("\n", "\n    "))
    engine.close()

    figures: dict = {"tables": len(tables), "retries": args.retries, "max_new_tokens": args.max_new_tokens}
    print(
        f"\n{'side':8s} {'numbers':>8s} {'supported':>10s} {'share':>7s} {'pieces w/o unsupported number':>30s} {'names unsupported':>18s}"
    )
    for side, rows in sides.items():
        numbers = sum(r["numbers"] for r in rows)
        supported = sum(r["supported"] for r in rows)
        clean = sum(r["numbers"] == r["supported"] for r in rows)
        names = sum(r["names_unsupported"] for r in rows)
        share = supported / numbers if numbers else float("nan")
        print(
            f"{side:8s} {numbers:8d} {supported:10d} {share:7.1%} {clean:>24d}/{len(rows)} ({clean / len(rows):.0%}) {names:18d}"
        )
        figures[side] = {
            "numbers": numbers,
            "supported": supported,
            "share_supported": round(share, 4),
            "pieces_without_unsupported_number": clean,
            "share_pieces_clean": round(clean / len(rows), 4),
            "names_unsupported": names,
        }
    figures["mean_attempts"] = round(sum(attempts) / len(attempts), 2)
    figures["seconds_per_piece"] = round(sum(seconds) / len(seconds), 2)
    figures["seconds_total"] = round(time.perf_counter() - started, 1)
    figures["cpu"] = cpu_flags()
    print(
        f"\nmean attempts per piece {figures['mean_attempts']}, {figures['seconds_per_piece']}s per piece, {figures['seconds_total']}s in all"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
