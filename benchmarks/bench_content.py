"""OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_content.py --out /tmp/inkwell-bench-content

The content suite (`inkwell eval --suite content`, docs/quality.md) on the embedded models, as `inkwell write`
runs them (the template's decoding settings, the engine `write` picks: native for SmolLM2, ONNX for Gemma):
1. SmolLM2-135M-Instruct, one candidate per task, on every task of the suite;
2. SmolLM2 with best-of N = 1, 4 and 8 on a stratified subset (the first K tasks of each template and language,
   --per-template), with the wall time of writing each (model load excluded; the same tasks and seeds for every N;
   a template's one or two tasks decode together, about what one `write --best-of N` call costs);
3. Gemma-3-270M (the Chinese-capable base model, prompted with each template's examples) on a larger stratified
   subset (--gemma-per-template), beside SmolLM2's outputs for the same tasks (from run 1: a paired comparison).
Prints the CPU's vector extensions, then pass rates per check and per template with 95% bootstrap intervals, and
writes each run's reports (report.md/.html/.json, suite.md) under OUT plus OUT/summary.json. On two busy cores
the whole run takes about 25 minutes; generations are cached in OUT, so a second run only re-scores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMOL, GEMMA = "smollm2-135m-instruct", "gemma3-270m"


def cpu_flags() -> str:
    """The CPU and the flags that decide its speed (inkwell.models.cpu, as every benchmark prints it)."""
    from inkwell.models.cpu import describe

    return describe()


def run(name: str, systems: list[str], out: Path, per_template: int | None, best_of: list[int], batch: int) -> dict:
    from inkwell.evaluate.data import parse_system
    from inkwell.evaluate.suite import SuiteConfig, run_suite

    config = SuiteConfig(
        "content",
        [parse_system(s) for s in systems],
        out,
        best_of=best_of,
        per_template=per_template,
        batch_size=batch,
    )
    started = time.perf_counter()
    report = run_suite(config, say=lambda m: print(f"  {m}", flush=True))
    print(f"{name}: {time.perf_counter() - started:.0f} s in all (loading included)", flush=True)
    return report


def cell(entry: dict) -> str:
    if entry.get("value") is None:
        return "–"
    low, high = entry["ci"] or (entry["value"], entry["value"])
    return f"{100 * entry['value']:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def table(reports: list[tuple[str, dict]]) -> list[str]:
    columns = [(label, report, s["name"]) for label, report in reports for s in report["systems"]]
    names = list(dict.fromkeys(k for _, report, system in columns for k in report["scores"][system]))
    lines = [
        "| metric | " + " | ".join(f"{label}: {system}" for label, _, system in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for metric in names:
        cells = [cell(report["scores"][system].get(metric, {})) for _, report, system in columns]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines.append("| tasks | " + " | ".join(str(report["rows"]) for _, report, _ in columns) + " |")
    seconds = [next(s for s in report["systems"] if s["name"] == system) for _, report, system in columns]
    lines.append("| writing wall s | " + " | ".join(f"{s['seconds']:.0f}" for s in seconds) + " |")
    lines.append("| new tokens | " + " | ".join(str(s["completion_tokens"]) for s in seconds) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-template", type=int, default=1, help="Best-of subset: tasks per template and language.")
    parser.add_argument(
        "--gemma-per-template", type=int, default=2, help="Gemma subset: tasks per template and language."
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/inkwell-bench-content"))
    parser.add_argument("--batch-size", type=int, default=32, help="Rows decoding at once.")
    parser.add_argument("--skip-gemma", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_flags()}", flush=True)
    smol = f"smollm2={SMOL}"
    reports = [("full", run("SmolLM2, every task", [smol], args.out / "full", None, [1], args.batch_size))]
    label = f"{args.per_template}/template"
    reports.append(
        (
            label,
            run(
                f"SmolLM2 best-of 1/4/8, {label}",
                [smol],
                args.out / "bestof",
                args.per_template,
                [1, 4, 8],
                args.batch_size,
            ),
        )
    )
    if not args.skip_gemma:
        cached = args.out / "full" / "generations" / "smollm2.jsonl"  # SmolLM2's outputs for the same tasks
        (args.out / "gemma" / "generations").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, args.out / "gemma" / "generations" / "smollm2.jsonl")
        k = args.gemma_per_template
        gemma = run(
            f"Gemma vs SmolLM2, {k}/template", [smol, f"gemma={GEMMA}"], args.out / "gemma", k, [1], args.batch_size
        )
        reports.append((f"{k}/template", gemma))
    lines = [f"CPU: {cpu_flags()}", ""] + table(reports)
    print("\n".join(lines))
    summary = {
        "cpu": cpu_flags(),
        "runs": [
            {
                "label": label,
                "rows": report["rows"],
                "systems": report["systems"],
                "scores": {
                    name: {k: v["value"] for k, v in values.items()} for name, values in report["scores"].items()
                },
                "intervals": {
                    name: {k: v["ci"] for k, v in values.items()} for name, values in report["scores"].items()
                },
            }
            for label, report in reports
        ],
        "table": lines,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
