"""Replacing found spans: placeholders (`[EMAIL]`), length-preserving masks, or salted hashes.

`redact()` also returns where each replacement landed in the new text, so callers (and tests) can check that
the output holds exactly the placeholders reported and that putting the originals back restores the input.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

RedactMode = Literal["placeholder", "mask", "hash"]
REDACT_MODES: tuple[str, ...] = ("placeholder", "mask", "hash")


class SpanLike(Protocol):
    type: str
    start: int
    end: int


@dataclass(frozen=True)
class Replacement:
    type: str
    start: int  # in the original text
    end: int
    new_start: int  # in the redacted text
    new_end: int
    original: str
    replacement: str


@dataclass
class Redacted:
    text: str
    replacements: list[Replacement]

    def restore(self) -> str:
        """The original text, rebuilt from the redacted one (the round trip the tests check)."""
        out, last = [], 0
        for r in self.replacements:
            out.append(self.text[last : r.new_start])
            out.append(r.original)
            last = r.new_end
        out.append(self.text[last:])
        return "".join(out)


def placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


def mask(value: str) -> str:
    """Same length as the value; separators (`@ . - space`) stay so the shape is still readable."""
    return "".join("*" if ch.isalnum() else ch for ch in value)


def salted_hash(kind: str, value: str, salt: str) -> str:
    """The same value gives the same token under one salt, so joins and counts survive without the value."""
    digest = hashlib.sha256(f"{salt}\x00{kind}\x00{value}".encode()).hexdigest()[:12]
    return f"[{kind.upper()}:{digest}]"


def default_salt() -> str:
    """INKWELL_REDACT_SALT, else a random salt kept in INKWELL_HOME/redact-salt: stable across runs on one
    machine (consistent pseudonyms between files) but never shipped in code, where anyone could use it to
    confirm guesses of hashed values."""
    if os.environ.get("INKWELL_REDACT_SALT"):
        return os.environ["INKWELL_REDACT_SALT"]
    from inkwell.home import atomic_write, inkwell_home

    path = inkwell_home() / "redact-salt"
    if not path.exists():
        with atomic_write(path) as handle:
            handle.write(secrets.token_hex(16))
    return path.read_text(encoding="utf-8").strip()


def replacement_for(kind: str, value: str, mode: str, salt: str | None = None, template: str | None = None) -> str:
    if mode == "mask":
        return mask(value)
    if mode == "hash":
        return salted_hash(kind, value, salt if salt is not None else default_salt())
    if template is not None:
        return template.replace("{TYPE}", kind.upper()).replace("{type}", kind)
    return placeholder(kind)


def redact(
    text: str,
    spans: Sequence[SpanLike],
    mode: str = "placeholder",
    *,
    salt: str | None = None,
    templates: dict[str, str | None] | None = None,
) -> Redacted:
    """Replace each span (non-overlapping after this call drops the later of any overlapping pair).
    `templates` maps a span type to its own placeholder ("" deletes, e.g. invisible characters)."""
    if mode not in REDACT_MODES:
        from inkwell.errors import InkwellError

        raise InkwellError(
            f"unknown redaction mode '{mode}'", field="mode", hint=f"use one of {', '.join(REDACT_MODES)}"
        )
    if mode == "hash" and salt is None:
        salt = default_salt()
    out: list[str] = []
    replacements: list[Replacement] = []
    last = 0
    length = 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.start < last or span.end <= span.start:
            continue
        value = text[span.start : span.end]
        template = (templates or {}).get(span.type)
        new = "" if template == "" else replacement_for(span.type, value, mode, salt, template)
        before = text[last : span.start]
        out.append(before)
        length += len(before)
        out.append(new)
        replacements.append(Replacement(span.type, span.start, span.end, length, length + len(new), value, new))
        length += len(new)
        last = span.end
    out.append(text[last:])
    return Redacted("".join(out), replacements)
