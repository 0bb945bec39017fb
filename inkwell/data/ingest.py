"""`inkwell data ingest`: text, Markdown, CSV and JSONL sources -> one JSONL file of valid rows.

* `.txt` / `.md` files (or folders of them): one row per file, or per paragraph with unit="paragraph";
  rows are {"text", "source"}.
* `.csv`: one row per record; `column_map` renames columns to schema fields (text=body, label=category);
  with a map, only the mapped columns (and `id`) are kept.
* `.jsonl`: rows as they are.
The schema is the one given, else the first valid row's; every row is validated against it. Invalid rows are
reported as `file:line: reason` and skipped, and the valid ones are still written.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from inkwell.data.rows import JsonlSink, RawRow, check_schema_name, detect_schema, progress_bar, read_jsonl, validate
from inkwell.errors import InkwellError

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
TABLE_SUFFIXES = {".csv", ".tsv"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED = TEXT_SUFFIXES | TABLE_SUFFIXES | JSONL_SUFFIXES
MAX_LISTED = 10_000  # invalid rows kept for the report; all are counted


@dataclass
class IngestReport:
    output: Path
    schema: str | None = None
    written: int = 0
    files: int = 0
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (file:line, reason)
    invalid_count: int = 0
    schemas_seen: Counter = field(default_factory=Counter)
    skipped_files: list[str] = field(default_factory=list)

    def bad(self, where: str, reason: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < MAX_LISTED:
            self.invalid.append((where, reason))

    def to_dict(self) -> dict:
        return {
            "output": str(self.output), "schema": self.schema, "written": self.written, "files": self.files,
            "invalid": self.invalid_count, "invalid_rows": [{"where": w, "reason": r} for w, r in self.invalid],
            "skipped_files": self.skipped_files,
        }


def expand_sources(sources: list[str | Path], report: IngestReport) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix.lower() in SUPPORTED and not child.name.startswith("."):
                    files.append(child)
                else:
                    report.skipped_files.append(str(child))
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED:
                raise InkwellError(f"unsupported file type '{path.suffix}' for {path}", field="source",
                                   hint="use .txt, .md, .csv, .tsv or .jsonl files (or folders of them)")
            files.append(path)
        else:
            raise InkwellError(f"source not found: {path}", field="source")
    if not files:
        raise InkwellError("no .txt, .md, .csv or .jsonl files in the sources", field="source")
    return files


def _text_rows(path: Path, unit: str, progress: bool) -> Iterator[RawRow]:
    bar = progress_bar(path.stat().st_size, path.name, progress)
    try:
        if unit == "file":
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                yield RawRow(str(path), 1, None, f"not UTF-8 ({exc.reason} at byte {exc.start})")
                return
            bar.update(path.stat().st_size)
            yield RawRow(str(path), 1, {"text": text.strip(), "source": str(path)})
            return
        # Paragraphs: blank-line separated blocks, streamed line by line.
        block: list[str] = []
        start = 1
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                bar.update(len(raw))
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield RawRow(str(path), number, None, f"not UTF-8 ({exc.reason})")
                    continue
                if line.strip():
                    if not block:
                        start = number
                    block.append(line.rstrip("\r\n"))
                elif block:
                    yield RawRow(str(path), start, {"text": "\n".join(block).strip(), "source": f"{path}:{start}"})
                    block = []
            if block:
                yield RawRow(str(path), start, {"text": "\n".join(block).strip(), "source": f"{path}:{start}"})
    finally:
        bar.close()


def _decoded_lines(handle, bar) -> Iterator[str]:
    """Feeds csv.reader line by line while advancing the progress bar by bytes."""
    for number, raw in enumerate(handle):
        bar.update(len(raw))
        yield raw.decode("utf-8-sig" if number == 0 else "utf-8", errors="replace")


def _csv_rows(path: Path, column_map: dict[str, str], delimiter: str | None, progress: bool) -> Iterator[RawRow]:
    bar = progress_bar(path.stat().st_size, path.name, progress)
    try:
        with path.open("rb") as handle:
            sep = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
            reader = csv.DictReader(_decoded_lines(handle, bar), delimiter=sep)
            header = reader.fieldnames
            if not header:
                raise InkwellError(f"{path}: the CSV has no header row", field="source", hint="the first line names the columns")
            missing = [column for column in column_map.values() if column not in header]
            if missing:
                raise InkwellError(f"{path}: no column(s) {', '.join(missing)} (columns: {', '.join(header)})", field="map")
            for record in reader:
                line = reader.line_num
                if None in record:
                    yield RawRow(str(path), line, None, "more values than header columns")
                    continue
                if any(v is None for v in record.values()):
                    yield RawRow(str(path), line, None, "fewer values than header columns")
                    continue
                if column_map:
                    row = {fld: record[col] for fld, col in column_map.items()}
                    if "id" in record and "id" not in row:
                        row["id"] = record["id"]
                else:
                    row = dict(record)
                yield RawRow(str(path), line, row)
    finally:
        bar.close()


def parse_column_map(pairs: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InkwellError(f"--map expects field=column, got '{pair}'", field="map", hint="--map text=body --map label=category")
        fld, column = (p.strip() for p in pair.split("=", 1))
        if not fld or not column:
            raise InkwellError(f"--map expects field=column, got '{pair}'", field="map")
        mapping[fld] = column
    return mapping


def ingest(
    sources: list[str | Path],
    out: str | Path,
    *,
    schema: str | None = None,
    column_map: dict[str, str] | None = None,
    unit: str = "file",
    delimiter: str | None = None,
    progress: bool = True,
) -> IngestReport:
    if unit not in ("file", "paragraph"):
        raise InkwellError(f"unknown unit '{unit}'", field="unit", hint="use file or paragraph")
    out = Path(out)
    forced = check_schema_name(schema)
    report = IngestReport(output=out, schema=forced)
    files = expand_sources(sources, report)
    if any(f.resolve() == out.resolve() for f in files):
        raise InkwellError(f"the output would overwrite an input ({out})", field="out")
    report.files = len(files)
    with JsonlSink(out) as sink:
        for path in files:
            suffix = path.suffix.lower()
            if suffix in TEXT_SUFFIXES:
                rows = _text_rows(path, unit, progress)
            elif suffix in TABLE_SUFFIXES:
                rows = _csv_rows(path, column_map or {}, delimiter, progress)
            else:
                rows = read_jsonl(path, progress=progress)
            for raw in rows:
                if raw.record is None:
                    report.bad(raw.where, raw.error or "unreadable")
                    continue
                detected = detect_schema(raw.record)
                if detected is None:
                    keys = ", ".join(sorted(raw.record)) or "none"
                    report.bad(raw.where, f"no known schema (keys: {keys}); expected text, text/label, prompt/completion, alpaca or messages")
                    continue
                report.schemas_seen[detected] += 1
                target = report.schema or detected
                # With an auto-detected schema, a row of another shape is a mistake (a labelled row in plain
                # text data is fine: the label is just an extra key). A forced --schema only validates.
                if not forced and detected != target and (detected, target) != ("text/label", "text"):
                    problem = f"row looks like {detected} but the data is {target}"
                else:
                    problem = validate(raw.record, target)
                if problem:
                    report.bad(raw.where, problem)
                    continue
                report.schema = target
                sink.write(raw.record)
                report.written += 1
    return report
