"""Writing an evaluation's reports from its report dict: report.json (everything), report.md and a
self-contained report.html (plots embedded as data: URIs; the PNGs are also written to plots/ beside the
Markdown). All three print numbers with the same `fmt`, so they agree to the digit.

Contents: the metric table (value and 95% bootstrap interval per system), human rating means when
`inkwell rate` has collected some, notes and caveats, plots (metric bars with intervals, output length
histograms, training loss curves for systems that are training runs), and the examples side by side with
their per-example scores.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from inkwell.home import atomic_write

DECIMALS = {"0-100": 2, "0-1": 4, "cosine": 4, "ratio": 3, "tokens": 1, "ppl": 2, "1-5": 2}
RATING = "human_rating"
HIDDEN_FROM_PLOTS = {"length_median", "length_std", "length_min", "length_max", "copied_span_max"}


def fmt(value: Any, scale: str = "") -> str:
    """How every report prints a number (the JSON keeps full precision)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{DECIMALS.get(scale, 4)}f}"


def fmt_cell(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "–"
    text = fmt(entry["value"], entry.get("scale", ""))
    if entry.get("ci"):
        lo, hi = entry["ci"]
        text += f" [{fmt(lo, entry.get('scale', ''))}, {fmt(hi, entry.get('scale', ''))}]"
    return text


def metric_rows(report: dict) -> list[str]:
    names: list[str] = []
    for system_scores in report["scores"].values():
        for name in system_scores:
            if name not in names:
                names.append(name)
    return names


def _table(report: dict) -> tuple[list[str], list[tuple[str, list[str], dict]]]:
    """(system names, [(metric, cells, info)]) with rating means as the last row."""
    systems = [s["name"] for s in report["systems"]]
    rows = []
    for name in metric_rows(report):
        entries = [report["scores"].get(s, {}).get(name) for s in systems]
        info = next((e for e in entries if e), {})
        rows.append((name, [fmt_cell(e) for e in entries], info))
    ratings = report.get("ratings") or {}
    if ratings:
        cells = []
        for s in systems:
            r = ratings.get(s)
            cells.append(
                fmt_cell({"value": r["mean"], "ci": r.get("ci"), "scale": "1-5"}) + f" (n={r['n']})" if r else "–"
            )
        rows.append(
            (RATING, cells, {"scale": "1-5", "higher_is_better": True, "note": "mean human rating (inkwell rate)"})
        )
    return systems, rows


def _direction(info: dict) -> str:
    hib = info.get("higher_is_better")
    return "↑" if hib is True else "↓" if hib is False else ""


# ---------------------------------------------------------------- ratings


def collect_ratings(out: Path, resamples: int = 1000) -> dict:
    """system -> {mean, n, ci} from the store's ratings of this folder (latest per example/system/rater)."""
    import numpy as np

    from inkwell.evaluate.stats import bootstrap_ci, mean_reduce, resample_weights
    from inkwell.store import Store

    store = Store()
    try:
        rows = store.ratings(str(Path(out).resolve()))
    finally:
        store.close()
    latest: dict[tuple, int] = {}
    for r in rows:
        latest[(r["example_id"], r["system"], r["rater"])] = r["rating"]
    per_system: dict[str, list[int]] = {}
    for (_example, system, _rater), rating in latest.items():
        per_system.setdefault(system, []).append(rating)
    summary = {}
    for system, values in sorted(per_system.items()):
        arr = np.asarray(values, dtype=np.float64)
        ci = bootstrap_ci(arr, mean_reduce, resample_weights(len(arr), resamples)) if len(arr) > 1 else None
        summary[system] = {"mean": float(arr.mean()), "n": len(arr), "ci": list(ci) if ci else None}
    return summary


# ---------------------------------------------------------------- plots


def make_plots(report: dict, folder: Path) -> list[dict]:
    """PNG files under `folder`; returns [{"file": relative path, "title": ...}]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    plots = []
    systems = [s["name"] for s in report["systems"]]
    colors = [plt.get_cmap("tab10")(i % 10) for i in range(len(systems))]

    names = [
        n
        for n in metric_rows(report)
        if n not in HIDDEN_FROM_PLOTS and any(report["scores"][s].get(n, {}).get("value") is not None for s in systems)
    ]
    # one panel per scale (metrics sharing a scale side by side, a bar per system): few axes, fast to draw
    panels: dict[str, list[tuple[str, list[dict | None]]]] = {}
    for name in names:
        entries = [report["scores"][s].get(name) for s in systems]
        scale = next((e.get("scale", "") for e in entries if e), "")
        panels.setdefault(scale, []).append((name, entries))
    if report.get("ratings"):
        panels["1-5"] = [
            (
                RATING,
                [
                    (
                        {
                            "value": report["ratings"][s]["mean"],
                            "ci": report["ratings"][s].get("ci"),
                            "higher_is_better": True,
                        }
                        if s in report["ratings"]
                        else None
                    )
                    for s in systems
                ],
            )
        ]
    if panels:
        cols = 1 if len(panels) == 1 else 2
        rows = math.ceil(len(panels) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(12, 3.3 * rows), squeeze=False)
        for ax in axes.flat[len(panels) :]:
            ax.axis("off")
        bar = 0.8 / max(1, len(systems))
        for ax, (scale, group) in zip(axes.flat, panels.items()):
            for k, system in enumerate(systems):
                xs, values, low, high = [], [], [], []
                for i, (_name, entries) in enumerate(group):
                    entry = entries[k]
                    value = entry["value"] if entry and entry.get("value") is not None else 0.0
                    xs.append(i + (k - (len(systems) - 1) / 2) * bar)
                    values.append(value)
                    low.append(max(0.0, value - entry["ci"][0]) if entry and entry.get("ci") else 0.0)
                    high.append(max(0.0, entry["ci"][1] - value) if entry and entry.get("ci") else 0.0)
                ax.bar(xs, values, width=bar, color=colors[k], yerr=[low, high], capsize=3, label=system)
            labels = [
                f"{name} {_direction(next((e for e in entries if e), {}) or {})}".strip() for name, entries in group
            ]
            ax.set_xticks(range(len(group)), labels, rotation=30, ha="right", fontsize=8)
            ax.set_title(scale or "value", fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle("Metrics per system (95% bootstrap intervals; panels by scale)", fontsize=10)
        fig.subplots_adjust(
            left=0.06, right=0.99, bottom=0.25 / rows, top=1 - 0.3 / (3.3 * rows) - 0.04, wspace=0.15, hspace=0.75
        )
        fig.savefig(folder / "metrics.png", dpi=90)
        plt.close(fig)
        plots.append({"file": f"{folder.name}/metrics.png", "title": "Metrics per system"})

    from inkwell.evaluate.text import word_tokens

    lengths = {s: [len(word_tokens(e["outputs"][s]["text"])) for e in report["examples"]] for s in systems}
    lengths["reference"] = [len(word_tokens(e["reference"])) for e in report["examples"]]
    top = max((max(v) for v in lengths.values() if v), default=1)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    bins = min(30, max(5, top + 1))
    for (name, values), color in zip(lengths.items(), colors + ["black"]):
        ax.hist(
            values,
            bins=bins,
            range=(0, top + 1),
            histtype="step",
            linewidth=1.6,
            label=name,
            color=color,
            linestyle="--" if name == "reference" else "-",
        )
    ax.set_xlabel("output length (word tokens; CJK characters)")
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    ax.set_title("Output lengths", fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / "lengths.png", dpi=90)
    plt.close(fig)
    plots.append({"file": f"{folder.name}/lengths.png", "title": "Output lengths"})

    for name, points in (report.get("training") or {}).items():
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        for key, style in (("loss", "-"), ("val_loss", "--")):
            xy = [(p["step"], p[key]) for p in points if isinstance(p.get(key), (int, float))]
            if xy:
                ax.plot(
                    [x for x, _ in xy], [y for _, y in xy], style, marker="." if key == "val_loss" else None, label=key
                )
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
        ax.set_title(f"Training loss: {name}", fontsize=10)
        fig.tight_layout()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        fig.savefig(folder / f"loss-{safe}.png", dpi=90)
        plt.close(fig)
        plots.append({"file": f"{folder.name}/loss-{safe}.png", "title": f"Training loss: {name}"})
    return plots


# ---------------------------------------------------------------- Markdown


def _example_scores(entry: dict, report: dict, system: str) -> str:
    scales = {k: v.get("scale", "") for k, v in report["scores"].get(system, {}).items()}
    return " · ".join(f"{k} {fmt(v, scales.get(k, ''))}" for k, v in entry.get("scores", {}).items())


def render_markdown(report: dict) -> str:
    systems, rows = _table(report)
    lines = [
        "# Inkwell evaluation report",
        "",
        f"Data: `{report['data']}` ({report['rows']} rows, language {report['lang']}"
        + (f", template `{report['template']}`" if report.get("template") else "")
        + ")",
        "",
        "## Systems",
        "",
        "| system | spec | generated | cached | failed |",
        "|---|---|---|---|---|",
    ]
    for s in report["systems"]:
        lines.append(f"| {s['name']} | `{s['spec']}` | {s['generated']} | {s['cached']} | {s['failed']} |")
    lines += [
        "",
        "## Metrics",
        "",
        "Value [95% bootstrap interval]; ↑ higher is better, ↓ lower is better.",
        "",
        "| metric | " + " | ".join(systems) + " |",
        "|---|" + "---|" * len(systems),
    ]
    for name, cells, info in rows:
        lines.append(f"| {f'{name} {_direction(info)}'.rstrip()} | " + " | ".join(cells) + " |")
    for name, extra in (report.get("extras") or {}).items():
        for _metric, data in extra.items():
            if data and "confusion_matrix" in data:
                lines += [
                    "",
                    f"Confusion matrix for {name} (rows: reference, columns: predicted)",
                    "",
                    "| | " + " | ".join(data["columns"]) + " |",
                    "|---|" + "---|" * len(data["columns"]),
                ]
                for label, counts in zip(data["labels"], data["confusion_matrix"]):
                    lines.append(f"| {label} | " + " | ".join(str(c) for c in counts) + " |")
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    if report.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{p['title']}]({p['file']})" for p in report["plots"]]
    shown = report["examples"][: report.get("report_examples", 100)]
    lines += ["", f"## Examples ({len(shown)} of {len(report['examples'])})", ""]
    for example in shown:
        lines += [
            f"### {example['id']}",
            "",
            "**Prompt:**",
            "",
            _quote(example["prompt"]),
            "",
            "**Reference:**",
            "",
            _quote(example["reference"]),
            "",
        ]
        for system in systems:
            entry = example["outputs"][system]
            lines += [
                f"**{system}** — {_example_scores(entry, report, system)}",
                "",
                _quote(
                    entry["text"]
                    if entry["text"]
                    else f"(no output{': ' + entry['error'] if entry.get('error') else ''})"
                ),
                "",
            ]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in (text or " ").splitlines() or [" "])


# ---------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.grid{display:grid;gap:8px;margin-bottom:1.5em}.cell{border:1px solid #ddd;border-radius:4px;padding:6px;background:#fafafa}
.cell pre,.ref pre{white-space:pre-wrap;word-wrap:break-word;margin:4px 0;font-size:13px}
.scores{color:#555;font-size:12px}.ref{background:#eef6ee;border:1px solid #cdc;border-radius:4px;padding:6px;margin:4px 0}
.err{color:#a00;font-size:12px}img{max-width:100%}h3{margin-bottom:4px}
"""


def render_html(report: dict, out: Path) -> str:
    e = html.escape
    systems, rows = _table(report)
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Inkwell evaluation</title><style>{_CSS}</style></head><body>",
        "<h1>Inkwell evaluation report</h1>",
        f"<p>Data: <code>{e(report['data'])}</code> ({report['rows']} rows, language {e(report['lang'])}"
        + (f", template <code>{e(report['template'])}</code>" if report.get("template") else "")
        + ")</p>",
        "<h2>Systems</h2><table><tr><th>system</th><th>spec</th><th>generated</th><th>cached</th><th>failed</th></tr>",
    ]
    for s in report["systems"]:
        parts.append(
            f"<tr><td>{e(s['name'])}</td><td><code>{e(s['spec'])}</code></td><td class='num'>{s['generated']}</td>"
            f"<td class='num'>{s['cached']}</td><td class='num'>{s['failed']}</td></tr>"
        )
    parts.append(
        "</table><h2>Metrics</h2><p>Value [95% bootstrap interval]; ↑ higher is better, ↓ lower is better.</p>"
    )
    parts.append("<table id='metrics'><tr><th>metric</th>" + "".join(f"<th>{e(s)}</th>" for s in systems) + "</tr>")
    for name, cells, info in rows:
        title = f" title='{e(info.get('note', ''))}'" if info.get("note") else ""
        parts.append(
            f"<tr><td{title}>{e(name)}{' ' + _direction(info) if _direction(info) else ''}</td>"
            + "".join(f"<td class='num'>{e(c)}</td>" for c in cells)
            + "</tr>"
        )
    parts.append("</table>")
    for name, extra in (report.get("extras") or {}).items():
        for data in extra.values():
            if data and "confusion_matrix" in data:
                parts.append(
                    f"<p>Confusion matrix for {e(name)} (rows: reference, columns: predicted)</p><table><tr><th></th>"
                    + "".join(f"<th>{e(c)}</th>" for c in data["columns"])
                    + "</tr>"
                )
                for label, counts in zip(data["labels"], data["confusion_matrix"]):
                    parts.append(
                        f"<tr><th>{e(label)}</th>" + "".join(f"<td class='num'>{c}</td>" for c in counts) + "</tr>"
                    )
                parts.append("</table>")
    if report.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in report["notes"]) + "</ul>")
    if report.get("plots"):
        parts.append("<h2>Plots</h2>")
        for plot in report["plots"]:
            data = base64.b64encode((out / plot["file"]).read_bytes()).decode()
            parts.append(
                f"<figure><img alt='{e(plot['title'])}' src='data:image/png;base64,{data}'><figcaption>{e(plot['title'])}</figcaption></figure>"
            )
    shown = report["examples"][: report.get("report_examples", 100)]
    parts.append(f"<h2>Examples ({len(shown)} of {len(report['examples'])})</h2>")
    columns = f"grid-template-columns:repeat({len(systems)},minmax(0,1fr))"
    for example in shown:
        parts.append(
            f"<h3>{e(example['id'])}</h3><div class='ref'><b>Prompt</b><pre>{e(example['prompt'])}</pre>"
            f"<b>Reference</b><pre>{e(example['reference'])}</pre></div><div class='grid' style='{columns}'>"
        )
        for system in systems:
            entry = example["outputs"][system]
            error = f"<div class='err'>{e(entry['error'])}</div>" if entry.get("error") else ""
            parts.append(
                f"<div class='cell'><b>{e(system)}</b><pre>{e(entry['text'])}</pre>{error}"
                f"<div class='scores'>{e(_example_scores(entry, report, system))}</div></div>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------- writing


def write_reports(report: dict, out: Path, with_ratings: bool = True) -> dict:
    """Write report.json, report.md, report.html and plots/ into `out` (each file atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if with_ratings:
        report["ratings"] = collect_ratings(out)
    report["plots"] = make_plots(report, out / "plots")
    with atomic_write(out / "report.json") as handle:
        json.dump(report, handle, ensure_ascii=False, indent=2)
    with atomic_write(out / "report.md") as handle:
        handle.write(render_markdown(report))
    with atomic_write(out / "report.html") as handle:
        handle.write(render_html(report, out))
    return report


def load_report(out: Path) -> dict:
    from inkwell.errors import InkwellError

    path = Path(out) / "report.json"
    if not path.exists():
        raise InkwellError(
            f"no evaluation report in {out} (report.json is missing)",
            field="dir",
            hint="run `inkwell eval ... --out DIR` first",
        )
    from inkwell.files import read_json

    return read_json(path, field="dir")  # a damaged report: an error naming file:line, not a traceback


def refresh(out: Path) -> dict:
    """Re-write the reports of an evaluation folder with the current ratings (no metric is recomputed)."""
    return write_reports(load_report(out), out)


def summary(report: dict, out: Path) -> dict:
    """`inkwell eval --json`: where the reports are, what each system generated, and the scores."""
    return {
        "out": str(out),
        "rows": report["rows"],
        "reports": [str(out / name) for name in ("report.json", "report.md", "report.html")],
        "systems": {
            s["name"]: {"generated": s["generated"], "cached": s["cached"], "failed": s["failed"]}
            for s in report["systems"]
        },
        "scores": {name: {k: v["value"] for k, v in values.items()} for name, values in report["scores"].items()},
    }


def score_table(report: dict) -> list[str]:
    """`inkwell eval`'s terminal table: one row per metric, one column per system."""
    names = [s["name"] for s in report["systems"]]
    lines = [f"{'metric':<22}" + "".join(f"{n:>28}" for n in names)]
    for metric in metric_rows(report):
        lines.append(f"{metric:<22}" + "".join(f"{fmt_cell(report['scores'][n].get(metric)):>28}" for n in names))
    return lines
