"""OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_shots.py --out /tmp/inkwell-bench-shots

Worked examples on the content suite (docs/quality.md): each embedded model written zero-shot and with its
template's closest worked examples (prompts/shots.py: in the request's language, the same choices first, then the
closest subject), on a stratified subset (the first --per-template tasks of each template and language), the same
tasks, seeds and settings otherwise. SmolLM2-135M-Instruct is a chat model: `inkwell write` shows it no examples
unless --shots gives them, so its "closest" column is what showing them (as earlier chat turns) would do;
Gemma-3-270M is a base model, and its "closest" column is what `write` does. Prints the CPU, then pass rates per
check with 95% bootstrap intervals and the writing time (model load excluded); writes each run's reports under OUT
and OUT/summary.json. Generations are cached in OUT, so a second run only re-scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = {"smollm2": "smollm2-135m-instruct", "gemma": "gemma3-270m"}
MODES = ("none", "closest")


def run(name: str, model: str, shots: str, out: Path, per_template: int) -> dict:
    from inkwell.evaluate.data import parse_system
    from inkwell.evaluate.suite import SuiteConfig, run_suite

    config = SuiteConfig("content", [parse_system(f"{name}={model}")], out, per_template=per_template, shots=shots)
    started = time.perf_counter()
    report = run_suite(config, say=lambda m: print(f"  {m}", flush=True))
    print(f"{name} ({shots}): {time.perf_counter() - started:.0f} s in all (loading included)", flush=True)
    return report


def cell(entry: dict) -> str:
    if entry.get("value") is None:
        return "–"
    low, high = entry["ci"] or (entry["value"], entry["value"])
    return f"{100 * entry['value']:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def main() -> None:
    from inkwell.models.cpu import describe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--per-template", type=int, default=1, help="Tasks per template and language.")
    parser.add_argument("--out", type=Path, default=Path("/tmp/inkwell-bench-shots"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    print(f"CPU: {describe()}", flush=True)
    columns = []
    for name in args.models:
        for shots in MODES:
            report = run(name, MODELS[name], shots, args.out / f"{name}-{shots}", args.per_template)
            columns.append((f"{name} {shots}", report, report["systems"][0]))
    metrics = list(columns[0][1]["scores"][columns[0][2]["name"]])
    lines = [f"CPU: {describe()}", "", "| metric | " + " | ".join(c[0] for c in columns) + " |"]
    lines.append("|---|" + "---|" * len(columns))
    for metric in metrics:
        lines.append(f"| {metric} | " + " | ".join(cell(r["scores"][s["name"]][metric]) for _, r, s in columns) + " |")
    lines.append("| tasks | " + " | ".join(str(r["rows"]) for _, r, _ in columns) + " |")
    lines.append("| writing wall s | " + " | ".join(f"{s['seconds']:.0f}" for _, _, s in columns) + " |")
    lines.append("| new tokens | " + " | ".join(str(s["completion_tokens"]) for _, _, s in columns) + " |")
    print("\n".join(lines))
    summary = {
        "cpu": describe(),
        "columns": {label: {k: v["value"] for k, v in r["scores"][s["name"]].items()} for label, r, s in columns},
        "table": lines,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
