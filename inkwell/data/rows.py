"""Rows on disk for `inkwell data`: streaming reading and atomic writing, and the checks and text of each
row format (the formats themselves, their detection and the readers live in `inkwell.data.formats`).

Schemas (`formats.FORMATS`, detected from a row's keys, first match wins): preference, messages (ShareGPT
`conversations` too), alpaca, prompt/completion, template, text/label, text.
Other keys (id, source, augmented, ...) are kept as they are.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from inkwell.data import formats
from inkwell.data.formats import FORMATS, RawRow, chat_turns, detect_format, turn_parts
from inkwell.errors import InkwellError
from inkwell.home import atomic_write

SCHEMAS: tuple[str, ...] = tuple(FORMATS)
ROLES = ("system", "user", "assistant", "tool")
# Keys that describe a row rather than hold its text: never cleaned, redacted or de-duplicated on.
META_KEYS = {"id", "label", "source", "augmented", "split", "role", "lang", "meta", "title", "author"}


def read_jsonl(path: str | Path, *, progress: bool = True, desc: str | None = None) -> Iterator[RawRow]:
    """Stream the rows of a JSONL file; a bad line comes back as a RawRow with its reason (the data commands
    list it and go on)."""
    return formats.read_jsonl(path, on_error="skip", progress=progress, desc=desc)


class JsonlSink:
    """Writes records to a temporary file that replaces `path` only when the block finishes without error."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0
        self._cm = None
        self._handle = None

    def __enter__(self) -> JsonlSink:
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
        raise InkwellError(
            f"the output would overwrite the input ({out})", field="out", hint="choose another --out path"
        )


# -------------------------------------------------------------------- schemas


def detect_schema(record: dict) -> str | None:
    return detect_format(record)


def _nonempty_str(record: dict, key: str, optional: bool = False) -> str | None:
    if key not in record or record[key] is None:
        return None if optional else f"missing '{key}'"
    value = record[key]
    if not isinstance(value, str):
        return f"'{key}' must be a string, not {type(value).__name__}"
    if not optional and not value.strip():
        return f"'{key}' is empty"
    return None


def _check_turns(turns: Any, key: str) -> str | None:
    """Why a list of chat turns ({role, content} or ShareGPT {from, value}) is not valid, or None."""
    if not isinstance(turns, list) or not turns:
        return f"'{key}' must be a non-empty list"
    roles = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return f"{key}[{i}] must be an object with role and content"
        role, content = turn_parts(turn)
        if role not in ROLES:
            return f"{key}[{i}].role {role!r} is not one of {', '.join(ROLES)}"
        if not isinstance(content, str):
            return f"{key}[{i}].content must be a string"
        roles.append((role, content))
    if all(role == "system" for role, _ in roles):
        return f"'{key}' holds only system messages"
    if not any(content.strip() for role, content in roles if role != "system"):
        return "every message is empty"
    return None


def _text_or_turns(record: dict, key: str, optional: bool = False) -> str | None:
    if isinstance(record.get(key), list):
        return _check_turns(record[key], key)
    return _nonempty_str(record, key, optional)


def validate(record: dict, schema: str) -> str | None:
    """Why `record` is not a valid row of `schema`, or None."""
    if schema == "messages":
        key, turns = chat_turns(record)
        return _check_turns(turns, key)
    if schema == "alpaca":
        return (
            _nonempty_str(record, "instruction")
            or _nonempty_str(record, "input", optional=True)
            or _nonempty_str(record, "output")
        )
    if schema == "prompt/completion":
        return _nonempty_str(record, "prompt", optional=True) or _nonempty_str(record, "completion")
    if schema == "preference":  # the prompt may live in chosen/rejected's messages
        return (
            _text_or_turns(record, "chosen")
            or _text_or_turns(record, "rejected")
            or _text_or_turns(record, "prompt", optional=isinstance(record.get("chosen"), list))
        )
    if schema == "template":
        if record.get("fields") is not None and not isinstance(record["fields"], dict):
            return "'fields' must be an object of template fields"
        return _nonempty_str(record, "template", optional=True) or _nonempty_str(record, "output")
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
    name = formats.format_name(schema)
    if name is not None and name not in SCHEMAS:
        raise InkwellError(f"unknown schema '{name}'", field="schema", hint=f"use auto or one of {', '.join(SCHEMAS)}")
    return name


# -------------------------------------------------------------------- the text a row holds


def _turn_paths(record: dict, key: str, side: str) -> list[tuple[Any, ...]]:
    paths = []
    for i, turn in enumerate(record.get(key) or []):
        if not isinstance(turn, dict):
            continue
        role, content = turn_parts(turn)
        if isinstance(content, str) and not (side == "input" and role != "user"):
            paths.append((key, i, "content" if "content" in turn else "value"))
    return paths


def content_fields(record: dict, schema: str | None, *, side: str = "all") -> list[tuple[Any, ...]]:
    """Where a row's text lives, as paths: ("text",), ("messages", 2, "content"), ...
    side="input" keeps only the prompt side (what augmentation may rewrite without changing the target)."""
    if schema == "messages":
        return _turn_paths(record, chat_turns(record)[0], side)
    if schema == "preference":
        keys = ["prompt"] if side == "input" else ["prompt", "chosen", "rejected"]
        paths = []
        for key in keys:
            if isinstance(record.get(key), list):
                paths += _turn_paths(record, key, "input" if key == "prompt" else side)
            elif isinstance(record.get(key), str):
                paths.append((key,))
        return paths
    if schema == "template":
        fields = record.get("fields")
        if isinstance(fields, dict):
            paths = [("fields", k) for k, v in fields.items() if isinstance(v, str)]
        else:
            paths = [
                (k,) for k, v in record.items() if isinstance(v, str) and k not in META_KEYS | {"template", "output"}
            ]
        return paths + ([("output",)] if side != "input" and isinstance(record.get("output"), str) else [])
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
