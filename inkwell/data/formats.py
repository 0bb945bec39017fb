"""Rows on disk, one vocabulary: the formats a row may take, how to tell them apart, and the readers (whole
text, JSONL, CSV) that every command uses, so a bad file is reported the same way everywhere: `file:line: reason`.

Formats, told from a row's keys (first match wins):

    preference         {"prompt", "chosen", "rejected"}      (chosen/rejected may be message lists)
    messages           {"messages": [{"role", "content"}, ...]}
                       or ShareGPT {"conversations": [{"from", "value"}, ...]} (human/gpt read as user/assistant)
    alpaca             {"instruction", "input" (optional), "output", "system" (optional)}
    prompt/completion  {"prompt", "completion"}
    template           {"template" (optional), "fields": {...}, "output"}, or flat {field: ..., "output"} when a
                       template is given
    text/label         {"text", "label"}
    text               {"text"}
    CSV                a header row names the columns; a column map renames them (text=body, label=category)

Readers stream line by line, number lines from 1, tolerate a UTF-8 byte-order mark, and follow the caller's
error policy for a bad line (not UTF-8, not JSON, not an object, a ragged CSV record): `on_error="raise"` stops
with an InkwellError naming file:line and the fix; `on_error="skip"` yields the line as a RawRow holding the
reason, for the caller to list, and goes on. Each command keeps its own policy (data: skip and list; eval,
shots: raise; batch: a bad row fails alone, a file in another encoding stops the job).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.files import TOO_DEEP, UTF8_HINT, NotUTF8, check_file, utf8_problem

FORMATS: dict[str, str] = {
    "preference": '{"prompt", "chosen", "rejected"}',
    "messages": '{"messages": [{"role", "content"}, ...]} or {"conversations": [{"from", "value"}, ...]}',
    "alpaca": '{"instruction", "input" (optional), "output"}',
    "prompt/completion": '{"prompt", "completion"}',
    "template": '{"fields": {...}, "output"} (template name on the row or given)',
    "text/label": '{"text", "label"}',
    "text": '{"text"}',
}
# Other spellings users (and train configs) write for the same formats.
ALIASES = {
    "prompt_completion": "prompt/completion",
    "text_label": "text/label",
    "chat": "messages",
    "sharegpt": "messages",
    "dpo": "preference",
}
# ShareGPT speakers -> chat roles; any other name is kept and checked by the reader of the row.
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant"}
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv", ".tsv")
JSONL_HINT = 'each line must be one JSON object, e.g. {"text": "..."}'
BOM = b"\xef\xbb\xbf"


@dataclass
class RawRow:
    """One record of an input file: the parsed record, or why it could not be read (`error` set; `record` is then
    None, or for a ragged CSV record what could be read)."""

    source: str  # the file
    line: int  # 1-based; a CSV record's first line
    record: dict | None
    error: str | None = None
    json_type: str | None = None  # valid JSON that is not an object: its type ("list", "str", ...)
    index: int | None = None  # an item of a .json file holding a list

    @property
    def where(self) -> str:
        return f"{self.source}:[{self.index}]" if self.index is not None else f"{self.source}:{self.line}"


# -------------------------------------------------------------------- formats


def detect_format(record: dict, *, template: str | None = None) -> str | None:
    """The format of a row (a key of FORMATS) from its keys, or None. `template`: a template is given for
    the whole file, so flat {field: ..., "output"} rows are template rows."""
    keys = record.keys()
    if "chosen" in keys and "rejected" in keys:
        return "preference"
    if "messages" in keys or "conversations" in keys:
        return "messages"
    if "instruction" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt/completion"
    if "fields" in keys or "template" in keys or (template and "output" in keys):
        return "template"
    if "text" in keys:
        return "text/label" if "label" in keys else "text"
    return None


def format_name(name: str | None) -> str | None:
    """A format name in the one spelling (aliases accepted); None for auto. Unknown names are returned as they
    are, for the caller to refuse in its own words."""
    if name in (None, "", "auto"):
        return None
    return ALIASES.get(name, name)


def chat_turns(record: dict) -> tuple[str, Any]:
    """(key, turns) of a messages row: "messages", else ShareGPT's "conversations"."""
    key = "messages" if "messages" in record else "conversations"
    return key, record.get(key)


def turn_parts(turn: dict) -> tuple[Any, Any]:
    """(role, content) of one chat turn, {role, content} or ShareGPT {from, value} (human/gpt mapped)."""
    role = turn.get("role", turn.get("from"))
    content = turn.get("content", turn.get("value"))
    if isinstance(role, str):
        role = SHAREGPT_ROLES.get(role, role)
    return role, content


def as_messages(record: dict) -> dict:
    """A ShareGPT row rewritten as a messages row (other keys kept); any other row as it is."""
    if "messages" in record or not isinstance(record.get("conversations"), list):
        return record
    messages = []
    for turn in record["conversations"]:
        role, content = turn_parts(turn) if isinstance(turn, dict) else (None, turn)
        messages.append({"role": role, "content": content})
    return {"messages": messages, **{k: v for k, v in record.items() if k != "conversations"}}


def template_fields(record: dict, *, drop: tuple[str, ...] = ("id", "output", "template")) -> dict:
    """A template row's fields: the object under "fields", else every key of the row but `drop`."""
    fields = record.get("fields")
    if isinstance(fields, dict):
        return fields
    return {k: v for k, v in record.items() if k not in drop}


# -------------------------------------------------------------------- whole text files


# -------------------------------------------------------------------- JSONL (and .json lists)


def progress_bar(total: int | None, desc: str, enabled: bool = True, unit: str = "B"):
    """A tqdm bar on standard error (bytes by default, so a bar over a file is meaningful from the start)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024 if unit == "B" else 1000,
        disable=not enabled,
        dynamic_ncols=True,
        file=sys.stderr,
        leave=False,
    )


def _check_policy(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _bad(row: RawRow, on_error: str, field: str | None, hint: str) -> RawRow:
    """The bad row for the caller (skip), or the error (raise)."""
    if on_error == "raise":
        raise InkwellError(f"{row.where}: {row.error}", field=field, hint=hint)
    return row


def _parse_line(path: Path, number: int, raw: bytes) -> tuple[RawRow, str]:
    """One JSONL line -> (row, hint for its problem)."""
    raw = raw.rstrip(b"\r\n")  # so a truncated line's error column is on this line, not past its end
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _, reason = utf8_problem(raw, exc, number)
        return RawRow(str(path), number, None, reason), UTF8_HINT
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return RawRow(str(path), number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"), JSONL_HINT
    except RecursionError:
        return RawRow(str(path), number, None, f"not valid JSON ({TOO_DEEP})"), JSONL_HINT
    if not isinstance(record, dict):
        kind = type(record).__name__
        return RawRow(str(path), number, None, f"not a JSON object (a {kind})", json_type=kind), JSONL_HINT
    return RawRow(str(path), number, record), ""


def _json_list(path: Path, data: bytes, on_error: str, strict_encoding: bool, field: str | None) -> Iterator[RawRow]:
    """The items of a .json file holding one list of rows."""
    try:
        items = json.loads(data.decode("utf-8"))
    except RecursionError:
        yield _bad(RawRow(str(path), 1, None, f"not valid JSON ({TOO_DEEP})"), on_error, field, JSONL_HINT)
        return
    except UnicodeDecodeError as exc:
        line, reason = utf8_problem(data, exc)
        if strict_encoding:
            raise NotUTF8(path, line, reason, field=field) from None
        yield _bad(RawRow(str(path), line, None, reason), on_error, field, UTF8_HINT)
        return
    except json.JSONDecodeError as exc:
        row = RawRow(str(path), exc.lineno, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
        yield _bad(row, on_error, field, "a .json file holds one list of row objects: [{...}, {...}]")
        return
    for index, item in enumerate(items):
        if isinstance(item, dict):
            yield RawRow(str(path), 1, item, index=index)
        else:
            kind = type(item).__name__
            row = RawRow(str(path), 1, None, f"not a JSON object (a {kind})", json_type=kind, index=index)
            yield _bad(row, on_error, field, "each item of the list must be one JSON object")


def read_jsonl(
    path: str | Path,
    *,
    on_error: str = "raise",
    strict_encoding: bool = False,
    field: str | None = "input",
    what: str = "input file",
    progress: bool = False,
    desc: str | None = None,
) -> Iterator[RawRow]:
    """Stream the rows of a JSONL file, one RawRow per non-blank line (a .json file that holds one list of
    objects yields its items). `strict_encoding`: bytes that are not UTF-8 raise even when skipping bad rows
    (a file saved in another encoding is one mistake, not one per row)."""
    _check_policy(on_error)
    path = Path(path).expanduser()
    check_file(path, what, field)
    bar = progress_bar(path.stat().st_size, desc or path.name, progress)
    try:
        with path.open("rb") as handle:
            if path.suffix.lower() == ".json" and handle.read(64).lstrip(BOM + b" \t\r\n").startswith(b"["):
                handle.seek(0)
                data = handle.read()
                bar.update(len(data))
                yield from _json_list(path, data.removeprefix(BOM), on_error, strict_encoding, field)
                return
            handle.seek(0)
            for number, raw in enumerate(handle, start=1):
                bar.update(len(raw))
                if number == 1:
                    raw = raw.removeprefix(BOM)
                if not raw.strip():
                    continue
                row, hint = _parse_line(path, number, raw)
                if row.error is None:
                    yield row
                elif hint == UTF8_HINT and strict_encoding:
                    raise NotUTF8(path, row.line, row.error, field=field)
                else:
                    yield _bad(row, on_error, field, hint)
    finally:
        bar.close()


# -------------------------------------------------------------------- CSV


MAX_CSV_FIELD = 16 * 1024 * 1024  # characters in one CSV field: a long article fits; the module's 128 KiB did not


def read_csv(
    path: str | Path,
    *,
    on_error: str = "raise",
    strict_encoding: bool = False,
    field: str | None = "input",
    what: str = "input file",
    column_map: dict[str, str] | None = None,
    delimiter: str | None = None,
    fill_missing: bool = False,
    progress: bool = False,
    desc: str | None = None,
) -> Iterator[RawRow]:
    """Stream the records of a CSV (.tsv: tab-separated) file as {column: value} rows; the header row names the
    columns. `column_map` {field: column} keeps only the mapped columns (and `id`) under their field names.
    A record with more values than the header, or fewer (unless `fill_missing`: read as empty), is a bad row."""
    _check_policy(on_error)
    path = Path(path).expanduser()
    check_file(path, what, field)
    column_map = column_map or {}
    bad_lines: dict[int, str] = {}  # line -> why it is not UTF-8 (skip policy: its record is reported)

    def lines(handle, bar) -> Iterator[str]:
        for number, raw in enumerate(handle, start=1):
            bar.update(len(raw))
            if number == 1:
                raw = raw.removeprefix(BOM)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                _, reason = utf8_problem(raw, exc, number)
                if number == 1 or strict_encoding or on_error == "raise":
                    raise NotUTF8(path, number, reason, field=field) from None
                bad_lines[number] = reason
                yield raw.decode("utf-8", errors="replace")

    csv.field_size_limit(MAX_CSV_FIELD)
    bar = progress_bar(path.stat().st_size, desc or path.name, progress)
    try:
        with path.open("rb") as handle:
            sep = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
            reader = csv.reader(lines(handle, bar), delimiter=sep)
            try:
                header = next(reader, None)
                if not header or not any(h.strip() for h in header):
                    raise InkwellError(
                        f"{path}: the CSV has no header row", field=field, hint="the first line names the columns"
                    )
                missing = [column for column in column_map.values() if column not in header]
                if missing:
                    raise InkwellError(
                        f"{path}: no column(s) {', '.join(missing)} (columns: {', '.join(header)})", field="map"
                    )
                end = reader.line_num
                while True:
                    try:
                        values = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:  # e.g. a field past the limit: that record only, then go on
                        yield _bad(
                            RawRow(str(path), end + 1, None, f"not valid CSV ({exc})"),
                            on_error,
                            field,
                            "check the quoting of that record",
                        )
                        end = reader.line_num
                        continue
                    start, end = end + 1, reader.line_num
                    if not values:  # a blank line
                        continue
                    problem = next((bad_lines[n] for n in range(start, end + 1) if n in bad_lines), None)
                    if problem is None and len(values) > len(header):
                        problem = "more values than header columns"
                    if problem is None and len(values) < len(header) and not fill_missing:
                        problem = "fewer values than header columns"
                    record = dict(zip(header, values + [""] * (len(header) - len(values))))
                    if problem is not None:  # a ragged record keeps what could be read (its id, say)
                        encoding = any(start <= n <= end for n in bad_lines)
                        hint = UTF8_HINT if encoding else f"each record needs {len(header)} values: {sep.join(header)}"
                        yield _bad(
                            RawRow(str(path), start, None if encoding else record, problem), on_error, field, hint
                        )
                        continue
                    if column_map:
                        row = {name: record[column] for name, column in column_map.items()}
                        if "id" in record and "id" not in row:
                            row["id"] = record["id"]
                        record = row
                    yield RawRow(str(path), start, record)
            except csv.Error as exc:  # e.g. a NUL byte or an unclosed quote at the end of the file
                yield _bad(
                    RawRow(str(path), reader.line_num, None, f"not valid CSV ({exc})"),
                    on_error,
                    field,
                    "check the quoting of that record",
                )
    finally:
        bar.close()


def read_records(path: str | Path, **options) -> Iterator[RawRow]:
    """Rows of a JSONL/.json or CSV/TSV file, by its suffix (`options`: read_jsonl's, and read_csv's for CSV)."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return read_csv(path, **options)
    for key in ("column_map", "delimiter", "fill_missing"):
        options.pop(key, None)
    return read_jsonl(path, **options)
