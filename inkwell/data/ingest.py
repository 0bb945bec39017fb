"""`inkwell data ingest`: text, Markdown, CSV and JSONL sources -> one JSONL file of valid rows.

* `.txt` / `.md` files (or folders of them): one row per file, or per paragraph with unit="paragraph";
  rows are {"text", "source"}.
* `.csv`: one row per record; `column_map` renames columns to schema fields (text=body, label=category);
  with a map, only the mapped columns (and `id`) are kept.
* `.jsonl` (or a `.json` list): rows as they are; ShareGPT `conversations` rows are written as `messages`.
Every file is read by `inkwell.data.formats`. The schema is the one given, else the first valid row's; every row is validated against it. Invalid rows are
reported as `file:line: reason` and skipped, and the valid ones are still written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from inkwell.data.formats import BOM, RawRow, as_messages, progress_bar, read_csv, read_jsonl
from inkwell.data.rows import SCHEMAS, JsonlSink, check_schema_name, detect_schema, validate
from inkwell.errors import InkwellError
from inkwell.files import NotUTF8, read_text, utf8_problem

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
TABLE_SUFFIXES = {".csv", ".tsv"}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
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
            "output": str(self.output),
            "schema": self.schema,
            "written": self.written,
            "files": self.files,
            "invalid": self.invalid_count,
            "invalid_rows": [{"where": w, "reason": r} for w, r in self.invalid],
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
                raise InkwellError(
                    f"unsupported file type '{path.suffix}' for {path}",
                    field="source",
                    hint="use .txt, .md, .csv, .tsv or .jsonl files (or folders of them)",
                )
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
                text = read_text(path, field="source")
            except NotUTF8 as exc:
                yield RawRow(str(path), exc.line, None, exc.reason)
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
                if number == 1:
                    raw = raw.removeprefix(BOM)
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield RawRow(str(path), number, None, utf8_problem(raw, exc, number)[1])
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


def parse_column_map(pairs: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InkwellError(
                f"--map expects field=column, got '{pair}'", field="map", hint="--map text=body --map label=category"
            )
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
                rows = read_csv(
                    path, on_error="skip", field="source", column_map=column_map, delimiter=delimiter, progress=progress
                )
            else:
                rows = read_jsonl(path, on_error="skip", field="source", progress=progress)
            for raw in rows:
                if raw.error:
                    report.bad(raw.where, raw.error)
                    continue
                detected = detect_schema(raw.record)
                if detected is None:
                    keys = ", ".join(sorted(raw.record)) or "none"
                    report.bad(raw.where, f"no known schema (keys: {keys}); expected {', '.join(SCHEMAS)}")
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
                sink.write(as_messages(raw.record))  # one vocabulary out: ShareGPT rows become messages
                report.written += 1
    return report
