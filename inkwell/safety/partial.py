"""Where a finding may still be growing at the end of a text that is not finished yet (streamed output).

A streamed row can only be released once nothing at its end could turn into a finding as more text arrives:
`+1 555` may become a phone number, `kill` may become `kill yourself`, `john.smith` an e-mail address. The
standard `re` module cannot say whether a pattern *could* match if the text went on; the `regex` package can
(`partial=True`), so the same pattern sources are compiled there once and asked for the earliest match that
runs into the end of the text. A full match that ends exactly at the end counts too (it may still extend).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import regex

WINDOW = 2048  # characters before the end that are searched: findings longer than this are not held whole
FALLBACK_HOLD = 24  # a pattern `regex` cannot compile (a policy's own syntax quirk): hold this many characters
_FLAGS = {
    re.IGNORECASE: regex.IGNORECASE,
    re.MULTILINE: regex.MULTILINE,
    re.DOTALL: regex.DOTALL,
    re.VERBOSE: regex.VERBOSE,
    re.ASCII: regex.ASCII,
}  # the two modules number some flags differently
_COMPILED: dict[tuple[str, int], regex.Pattern | None] = {}


def _compiled(pattern: re.Pattern) -> regex.Pattern | None:
    key = (pattern.pattern, pattern.flags)
    if key not in _COMPILED:
        try:
            flags = 0
            for theirs, ours in _FLAGS.items():
                flags |= ours if pattern.flags & theirs else 0
            _COMPILED[key] = regex.compile(pattern.pattern, flags)
        except regex.error:
            _COMPILED[key] = None
    return _COMPILED[key]


def open_start(patterns: Iterable[re.Pattern], text: str) -> int | None:
    """The earliest offset where a match of any pattern starts and reaches the end of `text` (complete or not):
    the text from there on is undecided. None when every match ends before the end."""
    end = len(text)
    start = max(0, end - WINDOW)
    best: int | None = None
    for pattern in patterns:
        compiled = _compiled(pattern)
        if compiled is None:
            hold = max(0, end - FALLBACK_HOLD)
            best = hold if best is None else min(best, hold)
            continue
        for match in compiled.finditer(text, start, partial=True):
            if match.end() == end and match.end() > match.start():
                best = match.start() if best is None else min(best, match.start())
                break
    return best
