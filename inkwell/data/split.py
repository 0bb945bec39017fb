"""`inkwell data split`: train / val / test files with a fixed seed, stratified by label, leak-free.

Two passes over the input, so memory holds a few numbers per row rather than the rows:
  1. group rows that must stay together - exact duplicates, near duplicates (MinHash LSH, transitive:
     if a~b and b~c, all three are one group) and augmented rows with their source row - and note labels;
  2. assign whole groups to splits, stratum by stratum (one stratum per label), in a seeded random order,
     each group to the split furthest below its target share; then stream the rows into the three files.
Augmented rows are written only to train unless keep_augmented_eval is set (evaluation should see real data).
"""

from __future__ import annotations

import random
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from inkwell.data.dedup import NearDupIndex, exact_key
from inkwell.data.rows import content_text, detect_schema, read_jsonl, sinks
from inkwell.errors import InkwellError

SPLITS = ("train", "val", "test")


class _UnionFind:
    def __init__(self):
        self.parent = array("q")

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the earliest row is the root: stable across runs


@dataclass
class SplitReport:
    counts: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    rows: int = 0
    groups: int = 0
    grouped_rows: int = 0  # rows in groups of two or more
    augmented_dropped: int = 0
    invalid: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "counts": self.counts,
            "labels": self.labels,
            "groups": self.groups,
            "rows_in_shared_groups": self.grouped_rows,
            "augmented_dropped_from_eval": self.augmented_dropped,
            "invalid": len(self.invalid),
            "files": self.files,
        }


def parse_ratios(text: str | tuple | list) -> tuple[float, float, float]:
    try:
        values = [float(x) for x in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        values = []
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise InkwellError(
            f"invalid split ratios {text!r}", field="ratios", hint="three numbers: train,val,test, e.g. 0.8,0.1,0.1"
        )
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


def _label_of(record: dict, label_field: str | None) -> str | None:
    if not label_field or label_field not in record or record[label_field] is None:
        return None
    value = record[label_field]
    return value if isinstance(value, str) else str(value)


def assign(groups: dict[int, list[int]], group_label: dict[int, str | None], ratios, seed: int) -> dict[int, int]:
    """Group root -> split index. Each label's groups are shuffled with the seed, then each goes to the split
    with the largest shortfall against its target share (shares measured in rows)."""
    rng = random.Random(seed)
    strata: dict[str | None, list[int]] = defaultdict(list)
    for root in sorted(groups):
        strata[group_label[root]].append(root)
    placed: dict[int, int] = {}
    for label in sorted(strata, key=lambda x: (x is None, str(x))):
        roots = strata[label]
        rng.shuffle(roots)
        counts = [0, 0, 0]
        for root in roots:
            size = len(groups[root])
            total = sum(counts) + size
            shortfall = [ratios[k] * total - counts[k] for k in range(3)]
            best = max(range(3), key=lambda k: (shortfall[k], -k))
            placed[root] = best
            counts[best] += size
    return placed


def split_file(
    inp: str | Path,
    out_dir: str | Path,
    *,
    ratios=(0.8, 0.1, 0.1),
    seed: int = 13,
    label_field: str | None = "label",
    near_dup_threshold: float | None = 0.7,
    keep_augmented_eval: bool = False,
    progress: bool = True,
) -> SplitReport:
    ratios = parse_ratios(ratios)
    out_dir = Path(out_dir)
    report = SplitReport()
    uf = _UnionFind()
    first_of_key: dict[int, int] = {}
    waiting_for_source: dict[int, list[int]] = defaultdict(list)
    labels: list[str | None] = []
    augmented = bytearray()
    near = NearDupIndex(near_dup_threshold) if near_dup_threshold else None

    # pass 1: groups and labels
    for raw in read_jsonl(inp, progress=progress, desc="split: grouping"):
        if raw.record is None:
            report.invalid.append(f"{raw.where}: {raw.error}")
            continue
        record = raw.record
        i = uf.add()
        text = content_text(record, detect_schema(record))
        key = exact_key(text)
        if key in first_of_key:
            uf.union(i, first_of_key[key])
        else:
            first_of_key[key] = i
        for j in waiting_for_source.pop(key, []):
            uf.union(i, j)
        mark = record.get("augmented")
        augmented.append(1 if mark else 0)
        if isinstance(mark, dict) and isinstance(mark.get("source"), str):
            try:
                source = int(mark["source"], 16)
            except ValueError:
                source = None
            if source is not None:
                if source in first_of_key:
                    uf.union(i, first_of_key[source])
                else:
                    waiting_for_source[source].append(i)
        if near is not None:
            signature = near.minhash(text)
            for j in near.query(text, signature):
                uf.union(i, j)
            near.add(i, text, signature)
        labels.append(_label_of(record, label_field))
    if not labels:
        raise InkwellError(f"{inp} holds no valid rows", field="input")

    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(labels)):
        groups[uf.find(i)].append(i)
    group_label: dict[int, str | None] = {}
    for root, members in groups.items():
        real = [labels[i] for i in members if not augmented[i]] or [labels[i] for i in members]
        group_label[root] = Counter(real).most_common(1)[0][0]  # a mixed group follows its majority label
    placed = assign(groups, group_label, ratios, seed)
    report.groups = len(groups)
    report.grouped_rows = sum(len(m) for m in groups.values() if len(m) > 1)

    # pass 2: write
    paths = {name: out_dir / f"{name}.jsonl" for name in SPLITS}
    counts: Counter = Counter()
    label_counts: dict[str, Counter] = {name: Counter() for name in SPLITS}
    with sinks(paths) as outs:
        i = 0
        for raw in read_jsonl(inp, progress=progress, desc="split: writing"):
            if raw.record is None:
                continue
            name = SPLITS[placed[uf.find(i)]]
            if augmented[i] and name != "train" and not keep_augmented_eval:
                report.augmented_dropped += 1
            else:
                outs[name].write(raw.record)
                counts[name] += 1
                if labels[i] is not None:
                    label_counts[name][labels[i]] += 1
            i += 1
    report.rows = len(labels)
    report.counts = {name: counts.get(name, 0) for name in SPLITS}
    report.labels = {name: dict(c) for name, c in label_counts.items() if c}
    report.files = {name: str(p) for name, p in paths.items()}
    return report
