"""`inkwell data redact`: find personal data and secrets in every row's text and replace them.

Detection is `inkwell.safety.pii` (shared with moderation); replacement is `inkwell.safety.redact`:
`placeholder` ([EMAIL]), `mask` (same length, `*` for letters and digits) or `hash` (a salted SHA-256 token, the
same for the same value, so joins and counts survive). Metadata keys (id, label, ...) are left alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inkwell.data.rows import JsonlSink, check_output, detect_schema, map_content, read_jsonl
from inkwell.safety.pii import PII_TYPES, check_types, detect_pii
from inkwell.safety.redact import REDACT_MODES, default_salt, redact


@dataclass
class RedactReport:
    rows: int = 0
    rows_changed: int = 0
    invalid: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {t: self.counts.get(t, 0) for t in PII_TYPES}


def redact_text(
    text: str, types: list[str] | None = None, mode: str = "placeholder", salt: str | None = None
) -> tuple[str, Counter]:
    found = detect_pii(text, types)
    if not found:
        return text, Counter()
    return redact(text, found, mode, salt=salt).text, Counter(m.type for m in found)


def redact_file(
    inp: str | Path,
    out: str | Path,
    *,
    types: list[str] | None = None,
    mode: str = "placeholder",
    salt: str | None = None,
    progress: bool = True,
) -> RedactReport:
    types = check_types(types)
    if mode not in REDACT_MODES:
        from inkwell.errors import InkwellError

        raise InkwellError(
            f"unknown redaction mode '{mode}'", field="mode", hint=f"use one of {', '.join(REDACT_MODES)}"
        )
    if mode == "hash" and salt is None:
        salt = default_salt()
    check_output(Path(inp), Path(out))
    report = RedactReport()
    with JsonlSink(out) as sink:
        for raw in read_jsonl(inp, progress=progress, desc="redact"):
            if raw.record is None:
                report.invalid.append(f"{raw.where}: {raw.error}")
                continue
            report.rows += 1
            row_counts: Counter = Counter()

            def apply(text: str) -> str:
                new, counts = redact_text(text, types, mode, salt)
                row_counts.update(counts)  # noqa: B023 - apply runs within this iteration
                return new

            record = map_content(raw.record, detect_schema(raw.record), apply)
            if row_counts:
                report.rows_changed += 1
                report.counts.update(row_counts)
            sink.write(record)
    return report
