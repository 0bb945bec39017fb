"""Reading a user's text files safely: UTF-8 (a byte-order mark dropped), and every problem an error that names
the file, the line where there is one, and the fix - never a UnicodeDecodeError traceback.

    text = read_text(path, field="file")            # a whole text file
    config = read_yaml(path, field="config")        # YAML, errors at file:line
    schema = read_json(path, field="schema")        # JSON, errors at file:line

The bottom of the house: every folder may use it (row files have their own streaming readers in data/formats.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError

UTF8_HINT = "save the file as UTF-8 (in a spreadsheet: CSV UTF-8; in an editor: save with encoding UTF-8)"


class NotUTF8(InkwellError):
    """A file (or line) that is not UTF-8 text, named by file:line of the first bad byte."""

    def __init__(self, path: str | Path, line: int, reason: str, *, field: str | None = None):
        self.path, self.line, self.reason = str(path), line, reason
        self.where = f"{path}:{line}"
        super().__init__(f"{self.where}: {reason}", field=field, hint=UTF8_HINT)


def check_file(path: Path, what: str, field: str | None) -> None:
    if path.is_dir():
        raise InkwellError(f"{path} is a folder, not a file", field=field, hint="name a file")
    if not path.is_file():
        raise InkwellError(f"{what} not found: {path}", field=field)


def utf8_problem(data: bytes, exc: UnicodeDecodeError, first_line: int = 1) -> tuple[int, str]:
    """(line, reason) of the first byte that is not UTF-8 in `data` (a whole file, or lines from `first_line`)."""
    start = data.rfind(b"\n", 0, exc.start) + 1
    line = first_line + data.count(b"\n", 0, exc.start)
    return line, f"not UTF-8 (byte 0x{data[exc.start]:02x} at column {exc.start - start + 1})"


def read_text(path: Path, *, field: str, what: str = "file") -> str:
    """A whole UTF-8 text file (a byte-order mark dropped). Missing file, folder or non-UTF-8 bytes:
    InkwellError naming the file (and file:line of the first bad byte)."""
    path = Path(path).expanduser()
    check_file(path, what, field)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, reason = utf8_problem(data, exc)
        raise NotUTF8(path, line, reason, field=field) from None


# Python's JSON and YAML parsers recurse once per level: a hostile file of 100,000 `[` exhausts the stack
# (RecursionError, a traceback). Real data nests a few levels; such files are refused by name instead.
TOO_DEEP = "nested too deeply (thousands of levels of brackets)"


def read_json(path: Path, *, field: str, what: str = "file") -> Any:
    """A whole JSON file (a schema, a report): read_text's errors, and invalid JSON named by file:line."""
    text = read_text(path, field=field, what=what)
    try:
        return json.loads(text)
    except RecursionError:
        raise InkwellError(f"{path}: not valid JSON ({TOO_DEEP})", field=field) from None
    except json.JSONDecodeError as exc:
        raise InkwellError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})",
            field=field,
            hint="check the brackets, quotes and commas around that line",
        ) from None


def read_yaml(path: Path, *, field: str, what: str = "file") -> Any:
    """A whole YAML file (a policy, a config): read_text's errors, and invalid YAML named by file:line."""
    import yaml

    text = read_text(path, field=field, what=what)
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise InkwellError(f"{path}: not valid YAML ({TOO_DEEP})", field=field) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InkwellError(
            f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})",
            field=field,
            hint="check the indentation and brackets around that line",
        ) from None
