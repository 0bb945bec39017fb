"""`inkwell data clean`: a fixed pipeline of steps over each row, counting what every step changed or removed.

  1. nfkc        Unicode NFKC                                   (changes rows)
  2. markup      HTML tags/entities and Markdown syntax removed (changes rows)
  3. whitespace  control/zero-width characters, spaces, blank lines (changes rows)
  4. length      rows shorter than --min-chars or longer than --max-chars  (removes)
  5. language    rows whose script-share language is not in --lang          (removes)
  6. exact-dup   rows whose normalised text was seen before                 (removes)
  7. near-dup    rows whose MinHash Jaccard with an earlier row >= threshold (removes)
Invalid rows (not JSON, or with no text) are removed and counted as `invalid`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inkwell.data.dedup import NearDupIndex, exact_key
from inkwell.data.rows import (
    JsonlSink,
    check_output,
    content_fields,
    content_text,
    detect_schema,
    map_content,
    read_jsonl,
)
from inkwell.data.text import LANGUAGES, detect_language, nfkc, normalize_whitespace, strip_markup
from inkwell.errors import InkwellError

STEPS = ("nfkc", "markup", "whitespace", "length", "language", "exact-dup", "near-dup")


@dataclass
class CleanConfig:
    nfkc: bool = True
    markup: bool = True
    whitespace: bool = True
    min_chars: int = 1
    max_chars: int | None = None
    languages: list[str] | None = None  # keep only these (zh, en, ...); None keeps all
    exact_dedup: bool = True
    near_dup_threshold: float | None = 0.7  # None disables near-duplicate removal
    num_perm: int = 128

    def validate(self) -> None:
        if self.min_chars < 0 or (self.max_chars is not None and self.max_chars < self.min_chars):
            raise InkwellError(
                f"invalid length bounds min={self.min_chars} max={self.max_chars}",
                field="min-chars",
                hint="use 0 <= --min-chars <= --max-chars",
            )
        for lang in self.languages or []:
            if lang not in LANGUAGES:
                raise InkwellError(f"unknown language '{lang}'", field="lang", hint=f"use {', '.join(LANGUAGES)}")


@dataclass
class CleanReport:
    rows_in: int = 0
    rows_out: int = 0
    changed: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # step -> a few `file:line` of removed rows

    def remove(self, step: str, where: str) -> None:
        self.removed[step] += 1
        bucket = self.examples.setdefault(step, [])
        if len(bucket) < 5:
            bucket.append(where)

    def to_dict(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "steps": {s: {"changed": self.changed.get(s, 0), "removed": self.removed.get(s, 0)} for s in STEPS},
            "invalid": self.removed.get("invalid", 0),
            "examples": self.examples,
        }


def clean_file(
    inp: str | Path, out: str | Path, config: CleanConfig | None = None, *, progress: bool = True
) -> CleanReport:
    config = config or CleanConfig()
    config.validate()
    check_output(Path(inp), Path(out))
    report = CleanReport()
    steps = [
        (name, fn)
        for name, on, fn in (
            ("nfkc", config.nfkc, nfkc),
            ("markup", config.markup, strip_markup),
            ("whitespace", config.whitespace, normalize_whitespace),
        )
        if on
    ]
    seen: set[int] = set()
    near = NearDupIndex(config.near_dup_threshold, config.num_perm) if config.near_dup_threshold else None
    with JsonlSink(out) as sink:
        for raw in read_jsonl(inp, progress=progress, desc="clean"):
            report.rows_in += 1
            if raw.record is None:
                report.remove("invalid", raw.where)
                continue
            record = raw.record
            schema = detect_schema(record)
            if not content_fields(record, schema):
                report.remove("invalid", raw.where)
                continue
            changed = set()

            def transform(value: str) -> str:
                for step, fn in steps:
                    new = fn(value)
                    if new != value:
                        changed.add(step)  # noqa: B023 - transform runs within this iteration
                        value = new
                return value

            if steps:
                record = map_content(record, schema, transform)
                for step in changed:
                    report.changed[step] += 1
            text = content_text(record, schema)
            if (
                len(text) < config.min_chars
                or not text.strip()
                or (config.max_chars is not None and len(text) > config.max_chars)
            ):
                report.remove("length", raw.where)
                continue
            if config.languages and detect_language(text) not in config.languages:
                report.remove("language", raw.where)
                continue
            if config.exact_dedup:
                key = exact_key(text)
                if key in seen:
                    report.remove("exact-dup", raw.where)
                    continue
                seen.add(key)
            if near is not None:
                signature = near.minhash(text)
                if near.query(text, signature):
                    report.remove("near-dup", raw.where)
                    continue
                near.add(report.rows_in, text, signature)  # only kept rows: no chains of removals
            sink.write(record)
            report.rows_out += 1
    return report
