"""Text normalisation for evasion-robust matching, with a map back to the original offsets.

Moderation must see "ＫＩＬＬ", "kіll" (Cyrillic і), "k\u200bill" and "K i l l" as the same word, but report
findings as spans of the text the user actually wrote. `fold()` builds the matching view: compatibility
decomposition (full-width and styled letters become plain ones), accents dropped, case folded, look-alike
letters from other scripts mapped to Latin, and invisible characters removed; `index[i]` is the original
position of folded character `i`. Separators and leetspeak are handled by the term patterns
(`inkwell.safety.terms`), not here, so the folded text keeps its word boundaries.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# Invisible characters: zero-width joiners/spaces, word joiner, BOM, soft hyphen, Mongolian vowel separator,
# bidirectional controls (embeddings, overrides, isolates, marks) and Unicode tag characters (used to smuggle
# hidden ASCII into prompts). Listed by hand because no Unicode property covers exactly "renders as nothing".
ZERO_WIDTH = {
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u180e",
    "\u2061",
    "\u2062",
    "\u2063",
    "\u2064",
}
BIDI_CONTROLS = {
    "\u200e",
    "\u200f",
    "\u061c",  # marks
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",  # embeddings and overrides
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",  # isolates
}


def is_invisible(ch: str) -> bool:
    return ch in ZERO_WIDTH or ch in BIDI_CONTROLS or 0xE0000 <= ord(ch) <= 0xE007F


def invisible_kind(ch: str) -> str:
    if ch in BIDI_CONTROLS:
        return "bidi-control"
    if 0xE0000 <= ord(ch) <= 0xE007F:
        return "tag-character"
    return "zero-width"


# Letters from other scripts that look like Latin ones (after case folding). A curated subset of Unicode's
# confusables.txt: that file is not in the standard library, and the handful below are the ones used to dodge
# word filters in practice (Cyrillic and Greek look-alikes, Latin small capitals, dotless i).
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a",
    "в": "b",
    "е": "e",
    "ё": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ѕ": "s",
    "һ": "h",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ӏ": "l",
    "ь": "b",
    "п": "n",
    "г": "r",
    # Greek
    "α": "a",
    "β": "b",
    "γ": "y",
    "ε": "e",
    "η": "n",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "ω": "w",
    "ς": "s",
    "σ": "o",
    "μ": "u",
    # Latin small capitals and other look-alikes that NFKD leaves alone
    "ᴀ": "a",
    "ʙ": "b",
    "ᴄ": "c",
    "ᴅ": "d",
    "ᴇ": "e",
    "ɢ": "g",
    "ʜ": "h",
    "ɪ": "i",
    "ᴊ": "j",
    "ᴋ": "k",
    "ʟ": "l",
    "ᴍ": "m",
    "ɴ": "n",
    "ᴏ": "o",
    "ᴘ": "p",
    "ʀ": "r",
    "ꜱ": "s",
    "ᴛ": "t",
    "ᴜ": "u",
    "ᴠ": "v",
    "ᴡ": "w",
    "ʏ": "y",
    "ᴢ": "z",
    "ı": "i",
    "ȷ": "j",
    "ɑ": "a",
    "ɡ": "g",
    "ꞵ": "b",
}

_CACHE: dict[str, str] = {}


def _fold_char(ch: str) -> str:
    """One character -> its folded form ('' when it should vanish). Cached: texts reuse few characters."""
    folded = _CACHE.get(ch)
    if folded is not None:
        return folded
    if is_invisible(ch):
        folded = ""
    else:
        # NFKD splits "é" into "e" + accent and maps full-width/styled forms to plain ones; dropping the
        # combining marks (category Mn) removes accents and "zalgo" decoration.
        parts = []
        for part in unicodedata.normalize("NFKD", ch):
            if unicodedata.category(part) == "Mn":
                continue
            for low in part.casefold():
                parts.append(CONFUSABLES.get(low, low))
        folded = "".join(parts)
        if not folded and unicodedata.category(ch) != "Mn":
            folded = ch
    if len(_CACHE) < 50_000:
        _CACHE[ch] = folded
    return folded


@dataclass
class Folded:
    """The matching view of a text and the original offset of each of its characters."""

    text: str
    index: Sequence[int]
    original: str

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Folded [start, end) -> original [start, end)."""
        if end <= start:
            pos = self.index[start] if start < len(self.index) else len(self.original)
            return pos, pos
        return self.index[start], self.index[end - 1] + 1


def fold(text: str) -> Folded:
    if text.isascii():  # the common case: no decomposition, confusables or invisibles possible
        return Folded(text.lower(), range(len(text)), text)
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        if not folded:
            continue
        out.append(folded)
        if len(folded) == 1:
            index.append(i)
        else:
            index.extend([i] * len(folded))
    return Folded("".join(out), index, text)


def fold_text(text: str) -> str:
    return fold(text).text
