"""Batch jobs: one template over thousands of rows (CSV or JSONL), one output line per input row.

Results are appended, a whole line at a time and in input order, to `OUT.part` while the job runs; the
finished file is renamed to `OUT` in one step, so `OUT` is never half-written. `--resume` reads the ids
already in `OUT.part` (and `OUT`) and skips them. A bad row is reported with its line number and skipped.

With an engine that takes concurrent calls (the scheduler's `ScheduledEngine`, as `inkwell batch` uses),
rows are fed progressively: a few batches' worth are in flight at once, so as rows of the continuous batch
finish, the next rows join it and the batch stays full. Otherwise rows go `batch_size` at a time.
Optional hooks screen each row's fields before it runs and each output record before it is written (the
CLI's moderation), so the output is written once.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.data.formats import CSV_SUFFIXES, JSONL_SUFFIXES, read_jsonl, read_records, template_fields
from inkwell.errors import InkwellError
from inkwell.generate.content import Choose, ContentResult, prepare, write_many
from inkwell.generate.engine import Engine
from inkwell.home import drop_torn_tail
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
    """Stream rows from CSV or JSONL. A row's id is its `id` value, else its line number. A bad row comes back
    with its reason (it fails alone); a file that is not UTF-8 stops the job (every row would be wrong)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.exists() and suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise InkwellError(f"unsupported input format '{suffix}' for {path}", field="input", hint="use .csv or .jsonl")
    # fill_missing: trailing empty cells a spreadsheet left out are empty fields (template defaults apply)
    for raw in read_records(path, on_error="skip", strict_encoding=True, field="input", fill_missing=True):
        record = raw.record or {}
        if suffix in CSV_SUFFIXES:
            row_id = str(record.get("id") or raw.line)
            fields = {k: v for k, v in record.items() if k != "id" and v not in (None, "")}
        else:
            row_id = str(record.get("id", raw.line))
            fields = template_fields(record, drop=("id",))
        yield InputRow(raw.line, row_id, None, raw.error) if raw.error else InputRow(raw.line, row_id, fields)


def _done_ids(*paths: Path) -> set[str]:
    """Ids already written to these output files (lines that are not whole records are ignored)."""
    done: set[str] = set()
    for path in paths:
        if path.exists():
            for raw in read_jsonl(path, on_error="skip", field="output"):
                if raw.record is not None and "id" in raw.record:
                    done.add(str(raw.record["id"]))
    return done


def output_record(row: InputRow, item: ContentResult, engine, template: str, sample: int | None) -> dict:
    """One output line: the row's `id`, the generation record as `--json` prints it but without the adapter,
    and `sample` (which version) when a row has several."""
    from inkwell.generate.record import GenerationRecord

    extra = {} if sample is None else {"sample": sample}
    record = GenerationRecord.of_content(engine, item, template=template, source="batch", extra=extra)
    return {"id": row.id, **record.to_json(adapter=False)}


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
    screen_input: Callable[[InputRow], dict] | None = None,
    screen_output: Callable[[dict], dict] | None = None,
    fixed_reply: Callable[[InputRow], str | None] | None = None,
    annotate: Callable[[InputRow, ContentResult], None] | None = None,
    choose: Choose | None = None,
) -> BatchReport:
    """Run the job. `on_result` is called for each finished row (e.g. to log it); `on_error` for each bad row.

    `screen_input(row)` returns the fields to generate from (e.g. redacted) or raises InkwellError to leave
    the row out (reported via `on_error`). `screen_output(record)` returns the record to write (e.g.
    redacted); a record with an `error` key counts its row as failed and is not passed to `on_result`.
    `fixed_reply(row)`: a text that answers the row without the model (e.g. compose's "I don't know, a colleague
    will follow up" when no knowledge passage is relevant), or None to generate. `annotate(row, item)` sees each
    result before its output line is made (e.g. to add citations). Hooks and callbacks run on the calling
    thread, except fixed_reply, which runs where the row is generated. `choose` keeps the best of each row's
    candidates (best-of-n: ask for n x N return sequences; compose/bestof.py)."""
    from tqdm import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    partial = output_path.with_name(output_path.name + ".part")
    report = BatchReport(output=output_path, batch_id=uuid.uuid4().hex[:12])
    output_path.parent.mkdir(parents=True, exist_ok=True)  # else `OUT.part` fails with a traceback
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
    if screen_input is not None:
        todo = _screen_inputs(todo, screen_input, report, on_error, input_path)

    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="item", desc=f"batch {template.name}", disable=not progress, dynamic_ncols=True)

    def finish(row: InputRow, outcome) -> list[str]:
        """A row's output lines (on_result called first, so a callback that raises keeps them unwritten)."""
        if isinstance(outcome, InkwellError):
            row.error = str(outcome).replace("\n", " ")
            _fail(report, row, on_error)
            return []
        multi = len(outcome) > 1
        lines, kept, blocked = [], [], None
        for item in outcome:
            if annotate is not None:
                annotate(row, item)
            record = output_record(row, item, engine, template.name, item.generation.sample_index if multi else None)
            if screen_output is not None:
                record = screen_output(record)
                if "error" in record:
                    blocked = blocked or str(record["error"])
                else:  # what is kept (and logged) is what was written, redactions included
                    item.text, item.data = record.get("text", item.text), record.get("data", item.data)
                    kept.append(item)
            else:
                kept.append(item)
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            report.tokens += item.generation.completion_tokens
        if on_result:
            for item in kept:
                on_result(row, item, report.batch_id)
        if blocked is not None:
            report.failed.append((row.line, row.id, blocked))
        else:
            report.written += 1
        return lines

    with partial.open("a", encoding="utf-8") as sink:

        def write(lines: list[str], count: int) -> None:
            if lines:  # whole lines only; flushed so a kill loses at most the rows in flight
                sink.write("".join(lines))
                sink.flush()
                os.fsync(sink.fileno())
            bar.update(count)
            elapsed = time.perf_counter() - started
            bar.set_postfix(tok_s=f"{report.tokens / elapsed:.0f}" if elapsed else "-")

        if engine.capabilities.concurrent:
            _run_progressively(engine, template, todo, shots, overrides, finish, write, fixed_reply, choose)
        else:
            _run_in_chunks(
                engine, template, todo, shots, overrides, finish, write, report, on_error, fixed_reply, choose
            )
    bar.close()
    os.replace(partial, output_path)
    report.seconds = time.perf_counter() - started
    return report


def _screen_inputs(todo: list[InputRow], screen, report: BatchReport, on_error, input_path: Path) -> list[InputRow]:
    kept: list[InputRow] = []
    for row in todo:
        try:
            row.fields = screen(row)
        except InkwellError as exc:
            row.error = str(exc).split("\n")[0]
            _fail(report, row, on_error)
            continue
        kept.append(row)
    if todo and not kept and not report.skipped_done:
        raise InkwellError(
            f"every row of {input_path} was blocked by moderation or invalid",
            field="input",
            hint="see the messages above for each row",
        )
    return kept


def _fixed(rendered, settings, text: str) -> list[ContentResult]:
    """A row answered without the model (fixed_reply): no tokens generated, finish reason `fixed`."""
    from inkwell.generate.rows import GenerationResult

    generation = GenerationResult(text, 0, 0, "fixed", 0.0, 0, 0, settings.seed)
    return [ContentResult(text, None, generation, rendered, settings)]


def _run_in_chunks(
    engine, template, todo, shots, overrides, finish, write, report, on_error, fixed_reply=None, choose=None
) -> None:
    """`batch_size` rows per engine call, each chunk written when it is done."""
    step = max(1, engine.batch_size)
    for start in range(0, len(todo), step):
        ready: list[InputRow] = []
        rendered = []
        settings = None
        answered: list[tuple[InputRow, list[ContentResult]]] = []
        for row in todo[start : start + step]:
            try:
                prompt, settings = prepare(engine, template, row.fields or {}, shots=shots, overrides=overrides)
            except InkwellError as exc:
                row.error = str(exc).replace("\n", " ")
                _fail(report, row, on_error)
                write([], 1)
                continue
            text = fixed_reply(row) if fixed_reply is not None else None
            if text is not None:
                answered.append((row, _fixed(prompt, settings, text)))
                continue
            ready.append(row)
            rendered.append(prompt)
        if answered:
            _finish_together(answered, finish, write)
        if not ready:
            continue
        assert settings is not None  # set with every ready row
        outcomes = write_many(engine, template, rendered, settings, choose=choose)
        _finish_together(zip(ready, outcomes), finish, write)


def _run_progressively(engine, template, todo, shots, overrides, finish, write, fixed_reply=None, choose=None) -> None:
    """Rows in flight on worker threads (each renders its prompt, generates, retries invalid JSON), written
    in input order. Keeping `4 x batch_size` rows in flight lets the scheduler fill every place that a
    finished row frees at the next step; the threads mostly wait on the scheduler."""
    from concurrent.futures import ThreadPoolExecutor

    cancel = threading.Event()
    worker_engine = engine.with_cancel(cancel) if engine.capabilities.cancellable else engine
    ahead = max(2, 4 * engine.batch_size)

    def work(row: InputRow):
        if cancel.is_set():
            return None
        try:
            prompt, settings = prepare(worker_engine, template, row.fields or {}, shots=shots, overrides=overrides)
            text = fixed_reply(row) if fixed_reply is not None else None
            if text is not None:
                return _fixed(prompt, settings, text)
            (outcome,) = write_many(worker_engine, template, [prompt], settings, choose=choose)
        except InkwellError as exc:  # this row only (a prompt the template cannot render, a too-long prompt)
            return exc
        return outcome

    in_flight: deque = deque()  # (row, future), in input order

    def drain(wait_for_head: bool) -> None:
        def ready():
            count = 0
            while in_flight and (in_flight[0][1].done() or (wait_for_head and not count)):
                row, future = in_flight.popleft()
                count += 1
                yield row, future.result()

        _finish_together(ready(), finish, write)

    pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="inkwell-batch")
    try:
        for row in todo:
            while len(in_flight) >= ahead:
                drain(wait_for_head=True)
            in_flight.append((row, pool.submit(work, row)))
            drain(wait_for_head=False)
        while in_flight:
            drain(wait_for_head=True)
    finally:
        if in_flight:  # interrupted (Ctrl-C, a failing callback): stop the rows still queued or decoding
            cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _finish_together(pairs, finish, write) -> None:
    """Finish rows that are done together and write them in one flush; when one row's callback raises
    (Ctrl-C, a failing on_result), the rows finished before it are still written, so resume skips them."""
    lines: list[str] = []
    count = 0
    try:
        for row, outcome in pairs:
            lines += finish(row, outcome)
            count += 1
    finally:
        if count:
            write(lines, count)


def _fail(report: BatchReport, row: InputRow, on_error) -> None:
    report.failed.append((row.line, row.id, row.error or "unknown error"))
    if on_error:
        on_error(row, row.error or "unknown error")
