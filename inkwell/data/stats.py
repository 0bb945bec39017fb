"""`inkwell data stats`: what a JSONL file holds - rows, schemas, languages, token lengths (with a PNG
histogram), exact and near duplicates, personal data by type, labels and augmented rows. One streaming pass."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inkwell.data.dedup import NearDupIndex, exact_key
from inkwell.data.rows import content_text, detect_schema, read_jsonl
from inkwell.data.text import approx_tokens, detect_language
from inkwell.safety.pii import PII_TYPES, detect_pii


@dataclass
class Stats:
    rows: int = 0
    invalid: int = 0
    invalid_rows: list[str] = field(default_factory=list)  # the first few `file:line: reason`
    schemas: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    augmented: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    pii: Counter = field(default_factory=Counter)
    rows_with_pii: int = 0
    lengths: array = field(default_factory=lambda: array("I"))
    tokenizer: str = "approx"
    plot: str | None = None

    def token_summary(self) -> dict:
        if not self.lengths:
            return {}
        values = np.frombuffer(self.lengths, dtype=np.uint32)  # 4 bytes a row, no Python ints

        def pct(p: float) -> int:
            return int(np.percentile(values, p * 100, method="lower"))

        return {
            "tokenizer": self.tokenizer,
            "total": int(values.sum(dtype=np.int64)),
            "min": int(values.min()),
            "mean": round(float(values.mean()), 1),
            "p50": pct(0.5),
            "p90": pct(0.9),
            "p99": pct(0.99),
            "max": int(values.max()),
        }

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "invalid": self.invalid,
            "invalid_rows": self.invalid_rows,
            "schemas": dict(self.schemas),
            "languages": dict(self.languages.most_common()),
            "tokens": self.token_summary(),
            "duplicates": {"exact": self.exact_duplicates, "near": self.near_duplicates},
            "pii": {t: self.pii.get(t, 0) for t in PII_TYPES},
            "rows_with_pii": self.rows_with_pii,
            "labels": dict(self.labels.most_common()),
            "augmented": self.augmented,
            "plot": self.plot,
        }


def plot_histogram(lengths, path: str | Path, title: str) -> Path:
    """A PNG histogram, drawn with matplotlib's Agg canvas directly (no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from inkwell.home import atomic_write

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    values = np.frombuffer(lengths, dtype=np.uint32) if isinstance(lengths, array) else np.asarray(lengths)
    ax.hist(values, bins=int(min(50, max(5, len(np.unique(values))))), color="#3b6ea8", edgecolor="white")
    ax.set_xlabel("tokens per row")
    ax.set_ylabel("rows")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    return path


def stats_file(
    inp: str | Path,
    *,
    plot: str | Path | None = None,
    count_tokens: Callable[[str], int] | None = None,
    tokenizer_name: str = "approx",
    near_dup_threshold: float | None = 0.7,
    pii: bool = True,
    progress: bool = True,
) -> Stats:
    stats = Stats(tokenizer=tokenizer_name if count_tokens else "approx")
    count_tokens = count_tokens or approx_tokens
    seen: set[int] = set()
    near = NearDupIndex(near_dup_threshold) if near_dup_threshold else None
    for raw in read_jsonl(inp, progress=progress, desc="stats"):
        if raw.record is None:
            stats.invalid += 1
            if len(stats.invalid_rows) < 10:
                stats.invalid_rows.append(f"{raw.where}: {raw.error}")
            continue
        record = raw.record
        stats.rows += 1
        schema = detect_schema(record)
        stats.schemas[schema or "unknown"] += 1
        text = content_text(record, schema)
        stats.languages[detect_language(text)] += 1
        stats.lengths.append(count_tokens(text))
        if record.get("augmented"):
            stats.augmented += 1
        if schema == "text/label":
            stats.labels[str(record["label"])] += 1
        key = exact_key(text)
        if key in seen:
            stats.exact_duplicates += 1
        else:
            seen.add(key)
            if near is not None:
                signature = near.minhash(text)
                if near.query(text, signature):
                    stats.near_duplicates += 1
                else:
                    near.add(stats.rows, text, signature)
        if pii:
            found = detect_pii(text)
            if found:
                stats.rows_with_pii += 1
                stats.pii.update(m.type for m in found)
    if plot and stats.lengths:
        stats.plot = str(
            plot_histogram(stats.lengths, plot, f"{Path(inp).name}: {stats.rows} rows ({stats.tokenizer} tokens)")
        )
    return stats
