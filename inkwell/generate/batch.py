"""Batch jobs: one template over thousands of rows (CSV or JSONL), one output line per input row.

Results are appended, a whole line at a time, to `OUT.part` while the job runs; the finished file is
renamed to `OUT` in one step, so `OUT` is never half-written. `--resume` reads the ids already in
`OUT.part` (and `OUT`) and skips them. A bad row is reported with its line number and skipped.
"""

from __future__ import annotations

import csv
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from inkwell.errors import InkwellError
from inkwell.home import drop_torn_tail
from inkwell.generate.content import ContentResult, prepare, write_many
from inkwell.generate.engine import Engine
from inkwell.prompts.template import ContentTemplate, Example


@dataclass
class InputRow:
    line: int  # 1-based line number in the input file (CSV: the header is line 1)
    id: str
    fields: dict[str, Any] | None
    error: str | None = None


@dataclass
class BatchReport:
    output: Path
    total: int = 0
    written: int = 0
    skipped_done: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (line, id, reason)
    tokens: int = 0
    seconds: float = 0.0
    batch_id: str = ""


def read_rows(path: Path) -> Iterator[InputRow]:
    """Stream rows from CSV or JSONL. A row's id is its `id` value, else its line number."""
    try:
        yield from _read_rows(path)
    except UnicodeDecodeError as exc:
        raise InkwellError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})", field="input",
                           hint="save the file as UTF-8 (CSV UTF-8 in spreadsheet programs)") from None


def _read_rows(path: Path) -> Iterator[InputRow]:
    if not path.exists():
        raise InkwellError(f"input file not found: {path}", field="input")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: skip a spreadsheet BOM
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise InkwellError(f"{path}: the CSV has no header row", field="input", hint="the first line names the fields")
            for record in reader:
                line = reader.line_num
                if None in record:
                    yield InputRow(line, str(record.get("id") or line), None, "more values than header columns")
                    continue
                fields = {k: v for k, v in record.items() if k != "id" and v not in (None, "")}
                yield InputRow(line, str(record.get("id") or line), fields)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8-sig") as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield InputRow(line, str(line), None, f"not valid JSON ({exc.msg})")
                    continue
                if not isinstance(record, dict):
                    yield InputRow(line, str(line), None, "each line must be a JSON object")
                    continue
                row_id = str(record.get("id", line))
                fields = record.get("fields") if isinstance(record.get("fields"), dict) else {
                    k: v for k, v in record.items() if k != "id"
                }
                yield InputRow(line, row_id, fields)
    else:
        raise InkwellError(f"unsupported input format '{suffix}' for {path}", field="input", hint="use .csv or .jsonl")


def _done_ids(*paths: Path) -> set[str]:
    done: set[str] = set()
    for path in paths:
        if path.exists():
            with path.open(encoding="utf-8") as handle:
                for text in handle:
                    if text.endswith("\n"):
                        try:
                            done.add(str(json.loads(text)["id"]))
                        except (json.JSONDecodeError, KeyError, TypeError):
                            pass
    return done




def output_record(row: InputRow, item: ContentResult, model: str, template: str, sample: int | None) -> dict:
    record = {
        "id": row.id,
        "text": item.text,
        "model": model,
        "template": template,
        "fields": item.rendered.fields,
        "settings": item.settings.to_dict(),
        "usage": {"prompt_tokens": item.generation.prompt_tokens, "completion_tokens": item.generation.completion_tokens},
        "finish_reason": item.generation.finish_reason,
        "latency_s": item.generation.latency_s,
    }
    if item.data is not None:
        record["data"] = item.data
    if sample is not None:
        record["sample"] = sample
    return record


def run_batch(
    engine: Engine,
    template: ContentTemplate,
    input_path: str | Path,
    output_path: str | Path,
    *,
    resume: bool = False,
    shots: list[Example] | None = None,
    overrides: dict | None = None,
    progress: bool = True,
    on_result: Callable[[InputRow, ContentResult, str], None] | None = None,
    on_error: Callable[[InputRow, str], None] | None = None,
) -> BatchReport:
    """Run the job. `on_result` is called for each finished row (e.g. to log it); `on_error` for each bad row."""
    from tqdm import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    partial = output_path.with_name(output_path.name + ".part")
    report = BatchReport(output=output_path, batch_id=uuid.uuid4().hex[:12])
    if resume:
        drop_torn_tail(partial)
        done = _done_ids(partial)
        if output_path.exists():  # a finished earlier run: carry its rows into the new file
            drop_torn_tail(output_path)
            earlier = _done_ids(output_path) - done
            with output_path.open(encoding="utf-8") as src, partial.open("a", encoding="utf-8") as dst:
                for text in src:
                    try:
                        if str(json.loads(text)["id"]) in earlier:
                            dst.write(text)
                    except (json.JSONDecodeError, KeyError, TypeError):
                        pass
            done |= earlier
    else:
        done = set()
        partial.unlink(missing_ok=True)
    rows = list(read_rows(input_path))
    report.total = len(rows)
    if not rows:
        raise InkwellError(f"{input_path} holds no rows", field="input")
    seen: set[str] = set()
    todo: list[InputRow] = []
    for row in rows:
        if row.id in done:
            report.skipped_done += 1
        elif row.id in seen:
            row.error = f"duplicate id '{row.id}'"
            _fail(report, row, on_error)
        elif row.error:
            _fail(report, row, on_error)
        else:
            seen.add(row.id)
            todo.append(row)

    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="item", desc=f"batch {template.name}", disable=not progress, dynamic_ncols=True)
    step = max(1, engine.batch_size)
    with partial.open("a", encoding="utf-8") as sink:
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            ready: list[InputRow] = []
            rendered = []
            settings = None
            for row in chunk:
                try:
                    prompt, settings = prepare(engine, template, row.fields or {}, shots=shots, overrides=overrides)
                except InkwellError as exc:
                    row.error = str(exc).replace("\n", " ")
                    _fail(report, row, on_error)
                    bar.update(1)
                    continue
                ready.append(row)
                rendered.append(prompt)
            if not ready:
                continue
            outcomes = write_many(engine, template, rendered, settings)
            lines = []
            for row, outcome in zip(ready, outcomes):
                if isinstance(outcome, InkwellError):
                    row.error = str(outcome).replace("\n", " ")
                    _fail(report, row, on_error)
                    continue
                multi = len(outcome) > 1
                for item in outcome:
                    record = output_record(row, item, engine.loaded.name, template.name, item.generation.sample_index if multi else None)
                    lines.append(json.dumps(record, ensure_ascii=False) + "\n")
                    report.tokens += item.generation.completion_tokens
                    if on_result:
                        on_result(row, item, report.batch_id)
                report.written += 1
            sink.write("".join(lines))  # whole lines only; flushed so a kill loses at most this chunk
            sink.flush()
            os.fsync(sink.fileno())
            bar.update(len(ready))
            elapsed = time.perf_counter() - started
            bar.set_postfix(tok_s=f"{report.tokens / elapsed:.0f}" if elapsed else "-")
    bar.close()
    os.replace(partial, output_path)
    report.seconds = time.perf_counter() - started
    return report


def _fail(report: BatchReport, row: InputRow, on_error) -> None:
    report.failed.append((row.line, row.id, row.error or "unknown error"))
    if on_error:
        on_error(row, row.error or "unknown error")
