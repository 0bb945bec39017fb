"""Known poems: `inkwell write poem` flags a poem that reproduces a published one, on standard error and in --json.

    known = KnownPoems.load()                     # None when no reference poems are installed
    known.find("春眠不觉晓，处处闻啼鸟。…")          # KnownMatch(copied=20, title="《春晓》", author="孟浩然", ...)

Small models recite: asked for a 绝句 about spring, Gemma-3 may write 春眠不觉晓 word for word. The check is the
memorisation metric's (memorisation.py: the longest run of tokens also found, in order, in a corpus; Chinese is
counted in characters, punctuation and case ignored) over the poems Debian ships: the 300 Tang poems and 100
Song ci of `fortunes-zh`, and the English `songs-poems` file of `fortunes`. A poem is flagged when it copies at
least COPIED_ZH characters (two five-character lines) or COPIED_EN words in a row. The index is built on first use
(under a second for these files). Without the packages nothing is checked, and --json says so
(`known_poem: {"checked": false, "reason": ...}`); CI installs them (Makefile, DEBIAN_DATA).

Limits: only poems in those files are known (a famous modern poem is not), and a copy with a changed character
every few characters is not a run, so it is not flagged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from inkwell.evaluate.memorisation import CorpusIndex

COPIED_ZH = 10  # characters in a row: a whole five-character couplet (a shared 5-character line can be allusion)
COPIED_EN = 12  # words in a row: the memorisation metric's default threshold (evaluate/metrics.py)
FILES = {"tang300": "fortunes-zh", "song100": "fortunes-zh", "songs-poems": "fortunes"}  # file -> Debian package
_HAN = re.compile(r"[\u3400-\u9fff]")


@dataclass
class KnownMatch:
    copied: int  # tokens in a row (Chinese: characters; English: words)
    text: str  # the copied run
    title: str
    author: str
    source: str  # package/file

    @property
    def flagged(self) -> bool:
        return self.copied >= (COPIED_ZH if _HAN.search(self.text) else COPIED_EN)

    def describe(self) -> str:
        what = f"{self.title} by {self.author}" if self.title and self.author else self.title or "a known poem"
        unit = "characters" if _HAN.search(self.text) else "words"
        shown = self.text if len(self.text) <= 40 else self.text[:40] + "…"
        return f"the poem reproduces {what} ({self.source}): {self.copied} {unit} in a row, '{shown}'"

    def to_json(self) -> dict:
        return {
            "checked": True,
            "flagged": self.flagged,
            "copied": self.copied,
            "threshold": COPIED_ZH if _HAN.search(self.text) else COPIED_EN,
            "text": self.text,
            "title": self.title,
            "author": self.author,
            "source": self.source,
        }


class KnownPoems:
    """The reference poems and their copied-span index."""

    def __init__(self, poems: list[dict]):
        self.poems = poems
        self.index = CorpusIndex.build([p["text"] for p in poems])
        self._joined = [_joined(p["text"]) for p in poems]

    @staticmethod
    def files() -> list[Path]:
        from inkwell.data.sample import fortune_dirs

        for folder in fortune_dirs():
            found = [folder / name for name in FILES if (folder / name).is_file()]
            if found:
                return found
        return []

    @classmethod
    def load(cls) -> KnownPoems | None:
        return _load()

    def find(self, poem: str) -> KnownMatch:
        """The poem's longest run copied from a reference poem, and which poem that is."""
        span = self.index.longest_spans([poem])[0]
        copied = _joined(span.text)
        at = next((i for i, text in enumerate(self._joined) if copied and copied in text), None)
        found = self.poems[at] if at is not None else {}
        return KnownMatch(
            span.length, span.text, found.get("title", ""), found.get("author", ""), found.get("source", "")
        )


def _joined(text: str) -> str:
    from inkwell.evaluate.text import word_tokens

    return " ".join(word_tokens(text))


@lru_cache(maxsize=1)
def _load() -> KnownPoems | None:
    from inkwell.data.fortune_files import read_fortunes
    from inkwell.data.sample import to_row

    poems = []
    for path in KnownPoems.files():
        source = f"{FILES[path.name]}/{path.name}"
        poems += [row for entry in read_fortunes(path) if (row := to_row(entry, source))["text"].strip()]
    return KnownPoems(poems) if poems else None


def missing_reason() -> str:
    from inkwell.data.sample import fortune_dirs

    packages = " and ".join(sorted(set(FILES.values())))
    return f"no reference poems installed (Debian packages {packages}; looked in {fortune_dirs()[0]} and others)"


def flag_known_poems(write: Callable[..., Any], say: Callable[[str], None]) -> Callable[..., Any]:
    """`inkwell write`'s write step, checking every poem-template version against the known poems:
    record.extra["known_poem"] (printed by --json), and a warning on standard error for each one that copies."""

    def checked(engine: Any, job: Any, **kwargs: Any) -> Any:
        outcome = write(engine, job, **kwargs)
        template = getattr(job, "template", None)  # a --data job wraps its TemplateJob; poems are never --data
        if template is None or template.name != "poem" or not outcome.records:
            return outcome
        known = KnownPoems.load()
        if known is None:
            for record in outcome.records:
                record.extra["known_poem"] = {"checked": False, "reason": missing_reason()}
            say(f"note: the known-poem check was skipped: {missing_reason()}")
            return outcome
        for index, record in enumerate(outcome.records):
            match = known.find(record.text)
            record.extra["known_poem"] = match.to_json()
            if match.flagged:
                version = f" (version {index + 1})" if len(outcome.records) > 1 else ""
                outcome.warnings.append(f"{match.describe()}{version}")
        return outcome

    return checked
