"""Reading Debian fortune files: entries separated by `%` lines, with ANSI colour codes (fortunes-zh titles)
and backspace overstrikes (some English files) removed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _strip_ansi(text: str) -> str:
    # Repeated: fortunes-zh has escapes nested inside escapes ("\x1b[;\x1b[34;1mm"); one pass leaves "\x1b[;m".
    while "\x1b" in text:
        stripped = _ANSI.sub("", text)
        if stripped == text:
            return text.replace("\x1b", "")
        text = stripped
    return text


def _apply_backspaces(text: str) -> str:
    """Terminal overstrikes ("_\bU" prints an underlined U): each backspace erases the character before it."""
    if "\b" not in text:
        return text
    out: list[str] = []
    for ch in text:
        if ch == "\b":
            if out:
                out.pop()
        else:
            out.append(ch)
    return "".join(out)


def clean_entry(text: str) -> str:
    return _apply_backspaces(_strip_ansi(text)).strip("\n").rstrip()


def read_fortunes(path: Path) -> Iterator[str]:
    """Entries of one fortune file, streamed."""
    block: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.rstrip("\r\n") == "%":
                entry = clean_entry("".join(block))
                if entry.strip():
                    yield entry
                block = []
            else:
                block.append(line)
    entry = clean_entry("".join(block))
    if entry.strip():
        yield entry
