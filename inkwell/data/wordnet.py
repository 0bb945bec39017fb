"""English synonyms from the WordNet 3.0 database files installed by Debian (`apt-get install wordnet`).

A small reader instead of `nltk.corpus.wordnet`: nltk's reader expects its own `nltk_data` download (and a
`lexnames` file Debian does not ship), while everything needed here is two documented formats (wndb(5)):
  index.POS   "lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offset..."  sorted by lemma,
              offsets in order of sense frequency;
  data.POS    one synset per line at byte `offset`: "offset lex_filenum ss_type w_cnt(hex) word lex_id ...".
Lemmas are found by binary search in the sorted index (nothing is loaded into memory) and synsets by seeking
to their offset, so start-up is instant and lookups take microseconds after the first.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from inkwell.errors import InkwellError

WORDNET_DIRS = (
    "/usr/share/wordnet",
    "/usr/local/share/wordnet",
    "/usr/share/wordnet-3.0",
    "/opt/homebrew/share/wordnet",
)
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_MARKER = re.compile(r"\([a-z]+\)$")  # adjective position markers: "galore(ip)"


def find_wordnet_dir() -> Path:
    candidates = ([os.environ["INKWELL_WORDNET_DIR"]] if os.environ.get("INKWELL_WORDNET_DIR") else []) + list(
        WORDNET_DIRS
    )
    for folder in candidates:
        path = Path(folder)
        if all((path / f"{kind}.{name}").is_file() for name in POS_FILES.values() for kind in ("index", "data")):
            return path
    raise InkwellError(
        f"WordNet data files not found (looked in {', '.join(candidates)})",
        field="method",
        hint="sudo apt-get install wordnet   (or set INKWELL_WORDNET_DIR to a folder with index.noun, data.noun, ...)",
    )


class WordNet:
    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder else find_wordnet_dir()
        self._handles: dict[str, object] = {}
        self._sizes: dict[str, int] = {}

    def _file(self, kind: str, pos: str):
        key = f"{kind}.{POS_FILES[pos]}"
        if key not in self._handles:
            path = self.folder / key
            self._handles[key] = path.open("rb")
            self._sizes[key] = path.stat().st_size
        return self._handles[key], self._sizes[key]

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _index_line(self, pos: str, lemma: str) -> list[str] | None:
        """Binary search over line starts in [lo, hi) of the sorted index file."""
        handle, size = self._file("index", pos)
        key = lemma.encode("utf-8")
        lo, hi = 0, size
        while lo < hi:
            mid = (lo + hi) // 2
            if mid:
                handle.seek(mid - 1)
                handle.readline()  # to the first line starting at or after mid
            else:
                handle.seek(0)
            start = handle.tell()
            if start >= hi:
                hi = mid
                continue
            line = handle.readline()
            if not line:
                hi = mid
                continue
            head = line.split(b" ", 1)[0]  # license lines start with spaces: head b"" sorts first
            if head == key:
                return line.decode("utf-8").split()
            if head < key:
                lo = handle.tell()
            else:
                hi = mid
        return None

    def senses(self, lemma: str, pos: str) -> list[int]:
        """Synset offsets of `lemma` as `pos` (n, v, a, r), most frequent sense first."""
        fields = self._index_line(pos, lemma.lower().replace(" ", "_"))
        if not fields:
            return []
        synset_cnt = int(fields[2])
        return [int(x) for x in fields[-synset_cnt:]]

    def synset_words(self, pos: str, offset: int) -> list[str]:
        handle, _ = self._file("data", pos)
        handle.seek(offset)
        fields = handle.readline().decode("utf-8").split()
        count = int(fields[3], 16)
        words = fields[4 : 4 + 2 * count : 2]
        return [_MARKER.sub("", w).replace("_", " ") for w in words]

    def sense_count(self, lemma: str, pos: str) -> int:
        return len(self.senses(lemma, pos))

    @lru_cache(maxsize=50_000)  # noqa: B019 - one WordNet per process; the cache is the point
    def synonyms(self, word: str, max_senses: int = 2) -> tuple[str, ...]:
        """Single-word synonyms of `word` from the commonest senses of its commonest part of speech.
        Without a tagger the part of speech is a guess; taking the one with most senses ("quick": adjective)
        and only its first senses keeps replacements close to the original meaning."""
        low = word.lower()
        best_pos = max(POS_FILES, key=lambda p: self.sense_count(low, p))
        found: list[str] = []
        for offset in self.senses(low, best_pos)[:max_senses]:
            for candidate in self.synset_words(best_pos, offset):
                if " " in candidate or "-" in candidate or candidate.lower() == low or not candidate.isalpha():
                    continue
                if candidate not in found:
                    found.append(candidate)
        return tuple(found)
