"""Rows on disk: streaming JSONL reading and writing, progress, and the five row schemas.

Schemas (detected from a row's keys, first match wins):
  messages           {"messages": [{"role": "user", "content": ...}, ...]}
  alpaca             {"instruction", "input" (optional), "output"}
  prompt/completion  {"prompt", "completion"}
  text/label         {"text", "label"}
  text               {"text"}
Other keys (id, source, augmented, ...) are kept as they are.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from inkwell.errors import InkwellError
from inkwell.home import atomic_write

SCHEMAS: tuple[str, ...] = ("messages", "alpaca", "prompt/completion", "text/label", "text")
ROLES = ("system", "user", "assistant", "tool")
# Keys that describe a row rather than hold its text: never cleaned, redacted or de-duplicated on.
META_KEYS = {"id", "label", "source", "augmented", "split", "role", "lang", "meta", "title", "author"}


@dataclass
class RawRow:
    """One line of an input file: the parsed record, or why it could not be parsed."""

    source: str
    line: int
    record: dict | None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def progress_bar(total: int | None, desc: str, enabled: bool = True, unit: str = "B"):
    """A tqdm bar on standard error (bytes by default, so a bar over a file is meaningful from the start)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", unit_divisor=1024 if unit == "B" else 1000,
                disable=not enabled, dynamic_ncols=True, file=sys.stderr, leave=False)


def read_jsonl(path: str | Path, *, progress: bool = True, desc: str | None = None) -> Iterator[RawRow]:
    """Stream the rows of a JSONL file (bytes are read line by line; nothing else is held)."""
    path = Path(path)
    if not path.is_file():
        raise InkwellError(f"input file not found: {path}", field="input")
    bar = progress_bar(path.stat().st_size, desc or path.name, progress)
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                bar.update(len(raw))
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield RawRow(str(path), number, None, f"not UTF-8 ({exc.reason} at byte {exc.start})")
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield RawRow(str(path), number, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
                    continue
                if not isinstance(record, dict):
                    yield RawRow(str(path), number, None, f"not a JSON object (a {type(record).__name__})")
                    continue
                yield RawRow(str(path), number, record)
    finally:
        bar.close()


class JsonlSink:
    """Writes records to a temporary file that replaces `path` only when the block finishes without error."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0
        self._cm = None
        self._handle = None

    def __enter__(self) -> "JsonlSink":
        self._cm = atomic_write(self.path)
        self._handle = self._cm.__enter__()
        return self

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def __exit__(self, *exc) -> bool:
        return bool(self._cm.__exit__(*exc))


@contextlib.contextmanager
def sinks(paths: dict[str, Path]):
    """Several atomic outputs at once (split's train/val/test): all appear, or none."""
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(JsonlSink(path)) for name, path in paths.items()}


def check_output(inp: Path, out: Path) -> None:
    if Path(inp).resolve() == Path(out).resolve():
        raise InkwellError(f"the output would overwrite the input ({out})", field="out", hint="choose another --out path")


# -------------------------------------------------------------------- schemas


def detect_schema(record: dict) -> str | None:
    keys = set(record)
    if "messages" in keys:
        return "messages"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt/completion"
    if "text" in keys and "label" in keys:
        return "text/label"
    if "text" in keys:
        return "text"
    return None


def _nonempty_str(record: dict, key: str, optional: bool = False) -> str | None:
    if key not in record or record[key] is None:
        return None if optional else f"missing '{key}'"
    value = record[key]
    if not isinstance(value, str):
        return f"'{key}' must be a string, not {type(value).__name__}"
    if not optional and not value.strip():
        return f"'{key}' is empty"
    return None


def validate(record: dict, schema: str) -> str | None:
    """Why `record` is not a valid row of `schema`, or None."""
    if schema == "messages":
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                return f"messages[{i}] must be an object with role and content"
            if message.get("role") not in ROLES:
                return f"messages[{i}].role {message.get('role')!r} is not one of {', '.join(ROLES)}"
            if not isinstance(message.get("content"), str):
                return f"messages[{i}].content must be a string"
        if all(m["role"] == "system" for m in messages):
            return "'messages' holds only system messages"
        if not any(m["content"].strip() for m in messages if m["role"] != "system"):
            return "every message is empty"
        return None
    if schema == "alpaca":
        return _nonempty_str(record, "instruction") or _nonempty_str(record, "input", optional=True) or _nonempty_str(record, "output")
    if schema == "prompt/completion":
        return _nonempty_str(record, "prompt", optional=True) or _nonempty_str(record, "completion")
    if schema == "text/label":
        problem = _nonempty_str(record, "text")
        if problem:
            return problem
        if "label" not in record:
            return "missing 'label'"
        label = record.get("label")
        if label is None or isinstance(label, (dict, list)) or (isinstance(label, str) and not label.strip()):
            return "'label' must be a non-empty string, number or boolean"
        return None
    if schema == "text":
        return _nonempty_str(record, "text")
    raise InkwellError(f"unknown schema '{schema}'", field="schema", hint=f"use one of {', '.join(SCHEMAS)}")


def check_schema_name(schema: str | None) -> str | None:
    if schema in (None, "", "auto"):
        return None
    aliases = {"prompt_completion": "prompt/completion", "text_label": "text/label", "chat": "messages"}
    schema = aliases.get(schema, schema)
    if schema not in SCHEMAS:
        raise InkwellError(f"unknown schema '{schema}'", field="schema", hint=f"use auto or one of {', '.join(SCHEMAS)}")
    return schema


# -------------------------------------------------------------------- the text a row holds


def content_fields(record: dict, schema: str | None, *, side: str = "all") -> list[tuple[Any, ...]]:
    """Where a row's text lives, as paths: ("text",), ("messages", 2, "content"), ...
    side="input" keeps only the prompt side (what augmentation may rewrite without changing the target)."""
    if schema == "messages":
        paths = []
        for i, message in enumerate(record.get("messages") or []):
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                if side == "input" and message.get("role") != "user":
                    continue
                paths.append(("messages", i, "content"))
        return paths
    keys = {
        "alpaca": ["instruction", "input"] if side == "input" else ["instruction", "input", "output"],
        "prompt/completion": ["prompt"] if side == "input" else ["prompt", "completion"],
        "text/label": ["text"],
        "text": ["text"],
    }.get(schema)
    if keys is None:  # unknown layout: every top-level string that is not metadata
        keys = [k for k, v in record.items() if isinstance(v, str) and k not in META_KEYS]
    return [(k,) for k in keys if isinstance(record.get(k), str)]


def _get(record: dict, path: tuple) -> Any:
    value: Any = record
    for step in path:
        value = value[step]
    return value


def _set(record: dict, path: tuple, value: Any) -> None:
    target: Any = record
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def content_text(record: dict, schema: str | None) -> str:
    """All of a row's text joined by newlines (what language detection, dedup and stats look at)."""
    return "\n".join(_get(record, p) for p in content_fields(record, schema))


def map_content(record: dict, schema: str | None, fn: Callable[[str], str], *, side: str = "all") -> dict:
    """A copy of the row with `fn` applied to each text field."""
    out = json.loads(json.dumps(record))  # deep copy of plain JSON data
    for path in content_fields(out, schema, side=side):
        _set(out, path, fn(_get(out, path)))
    return out
