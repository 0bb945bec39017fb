"""Memorisation: how much of each output is copied verbatim from the training corpus.

For every output we find its longest span of consecutive tokens that also occurs, in the same order, in
the corpus; an output "memorises" when that span reaches a threshold (default 12 tokens). Tokens are the
evaluation word tokens (`text.word_tokens`: case-folded words, CJK characters, no punctuation), so a copy
that differs only in case or punctuation still counts.

The corpus is indexed once as a suffix array over its token ids (built with numpy prefix doubling, about
log2(longest repeat) sorts). All output positions are then looked up together: a vectorised binary search
places each output suffix among the corpus suffixes, and its longest match is its longest common prefix
with one of the two neighbours there. 10k outputs against a 10 MB corpus take seconds (see the docs for
measured figures). Documents are separated by a token that never matches, so spans never cross them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inkwell.data.formats import read_jsonl
from inkwell.errors import InkwellError
from inkwell.evaluate.text import join_tokens, word_tokens
from inkwell.files import read_text

_SEP = -1  # between corpus documents
_UNKNOWN = -2  # an output token the corpus never has
_END = -3  # after each output


@dataclass
class CopiedSpan:
    length: int  # tokens
    text: str  # the copied tokens (joined), "" when nothing is copied
    start: int  # token index in the output


def suffix_array(seq: np.ndarray) -> np.ndarray:
    """Suffix array of an integer sequence by prefix doubling: rank by the first 2^k tokens until all ranks
    differ. Shorter suffixes sort first among equal prefixes."""
    n = len(seq)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rank = np.unique(seq, return_inverse=True)[1].astype(np.int64).ravel()
    k = 1
    while k < n:
        second = np.zeros(n, dtype=np.int64)
        second[: n - k] = rank[k:] + 1  # 0 = past the end, smallest
        uniq, rank = np.unique(rank * (n + 1) + second, return_inverse=True)
        rank = rank.astype(np.int64).ravel()
        if len(uniq) == n:
            break
        k *= 2
    return np.argsort(rank, kind="stable")


def _match(q: np.ndarray, qpos: np.ndarray, c: np.ndarray, cpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longest common prefix of q[qpos:] and c[cpos:] for each pair, and whether the corpus suffix sorts
    before the query suffix. Compares a window of tokens at a time; only pairs still equal go on, with the
    window doubling, so long copies cost few rounds. Every query ends in _END and the corpus in _SEP,
    which never match each other, so a mismatch always comes (reads past the end are clipped)."""
    m = len(qpos)
    lcp = np.zeros(m, dtype=np.int64)
    corpus_first = np.zeros(m, dtype=bool)
    active = np.arange(m)
    width = 8
    while active.size:
        offsets = np.arange(width)
        qa = q.take(qpos[active, None] + lcp[active, None] + offsets, mode="clip")
        ca = c.take(cpos[active, None] + lcp[active, None] + offsets, mode="clip")
        differ = qa != ca
        found = differ.any(1)
        first = differ.argmax(1)
        done, at = active[found], first[found]
        lcp[done] += at
        rows = np.nonzero(found)[0]
        corpus_first[done] = ca[rows, at] < qa[rows, at]
        lcp[active[~found]] += width
        active = active[~found]
        width = min(width * 2, 4096)
    return lcp, corpus_first


def _prefix_key(seq: np.ndarray, starts: np.ndarray, width: int, base: int) -> np.ndarray:
    """The first `width` tokens after each start as one integer that sorts like the tokens do."""
    key = np.zeros(len(starts), dtype=np.int64)
    for offset in range(width):
        key = key * base + (seq.take(starts + offset, mode="clip") + 3)
    return key


class CorpusIndex:
    """A suffix array over a tokenised corpus; build once, then ask `longest_spans` for any outputs."""

    def __init__(self, vocab: dict[str, int], corpus: np.ndarray, sa: np.ndarray, documents: int = 0):
        self.vocab = vocab
        self.corpus = corpus
        self.sa = sa
        self.documents = documents
        self._keys: np.ndarray | None = None
        self._key_base = 0
        self._key_tokens = 1

    @property
    def tokens(self) -> int:
        return int((self.corpus >= 0).sum())

    @classmethod
    def build(cls, texts: Iterable[str]) -> CorpusIndex:
        vocab: dict[str, int] = {}
        ids: list[int] = []
        documents = 0
        for text in texts:
            documents += 1
            for token in word_tokens(text):
                index = vocab.get(token)
                if index is None:
                    index = vocab[token] = len(vocab)
                ids.append(index)
            ids.append(_SEP)
        corpus = np.asarray(ids if ids else [_SEP], dtype=np.int64)
        return cls(vocab, corpus, suffix_array(corpus), documents)

    # ------------------------------------------------------------ saving (eval caches the index)

    def save(self, path: str | Path) -> None:
        from inkwell.home import atomic_write

        words = [""] * len(self.vocab)
        for word, index in self.vocab.items():
            words[index] = word
        with atomic_write(path, "wb") as handle:
            np.savez(
                handle,
                corpus=self.corpus,
                sa=self.sa,
                vocab=np.asarray(json.dumps(words, ensure_ascii=False)),
                documents=np.asarray(self.documents),
            )

    @classmethod
    def load(cls, path: str | Path) -> CorpusIndex:
        with np.load(path) as data:
            words = json.loads(str(data["vocab"]))
            return cls({w: i for i, w in enumerate(words)}, data["corpus"], data["sa"], int(data["documents"]))

    # ------------------------------------------------------------ lookups

    def _prefix_keys(self) -> np.ndarray:
        if getattr(self, "_keys", None) is None:
            base = len(self.vocab) + 3  # token values shifted by 3 so the markers (-3..-1) come first
            self._key_base = base
            self._key_tokens = 3 if base**3 < 2**62 else 2 if base**2 < 2**62 else 1
            self._keys = _prefix_key(self.corpus, self.sa, self._key_tokens, base)
        return self._keys

    def longest_spans(self, outputs: Sequence[str], chunk: int = 200_000) -> list[CopiedSpan]:
        """For each output, its longest run of tokens found verbatim in the corpus."""
        tokenised = [word_tokens(text) for text in outputs]
        ids: list[int] = []
        starts: list[int] = []
        for toks in tokenised:
            starts.append(len(ids))
            ids.extend(self.vocab.get(t, _UNKNOWN) for t in toks)
            ids.append(_END)
        q = np.asarray(ids if ids else [_END], dtype=np.int64)
        positions = np.nonzero(q != _END)[0]
        best = np.zeros(len(q), dtype=np.int64)
        for begin in range(0, len(positions), chunk):
            part = positions[begin : begin + chunk]
            best[part] = self._match_lengths(q, part)
        spans = []
        for toks, start in zip(tokenised, starts):
            if not toks:
                spans.append(CopiedSpan(0, "", 0))
                continue
            lengths = best[start : start + len(toks)]
            at = int(lengths.argmax())
            length = int(lengths[at])
            spans.append(CopiedSpan(length, join_tokens(toks[at : at + length]), at))
        return spans

    def _match_lengths(self, q: np.ndarray, positions: np.ndarray) -> np.ndarray:
        n = len(self.sa)
        # Narrow each query to the block of suffixes sharing its first few tokens with one searchsorted
        # (suffixes in array order have non-decreasing prefix keys), then binary-search inside the block.
        keys = self._prefix_keys()
        qkeys = _prefix_key(q, positions, self._key_tokens, self._key_base)
        lo = np.searchsorted(keys, qkeys, side="left").astype(np.int64)
        hi = np.searchsorted(keys, qkeys, side="right").astype(np.int64)
        # vectorised lower bound: the first corpus suffix that does not sort before the query suffix
        while True:
            open_ = np.nonzero(lo < hi)[0]
            if not open_.size:
                break
            mid = (lo[open_] + hi[open_]) // 2
            _lcp, corpus_first = _match(q, positions[open_], self.corpus, self.sa[mid])
            lo[open_] = np.where(corpus_first, mid + 1, lo[open_])
            hi[open_] = np.where(corpus_first, hi[open_], mid)
        best = np.zeros(len(positions), dtype=np.int64)
        for neighbour in (lo - 1, lo):
            ok = (neighbour >= 0) & (neighbour < n)
            if ok.any():
                lcp, _ = _match(q, positions[ok], self.corpus, self.sa[neighbour[ok]])
                best[ok] = np.maximum(best[ok], lcp)
        return best


# ---------------------------------------------------------------- reading a corpus


def read_corpus(paths: Sequence[str | Path]) -> list[str]:
    """Documents from JSONL (a row's `text`, else all its string values, chat `messages` included) or plain
    text files (one document each); folders are read recursively."""
    docs: list[str] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InkwellError(f"corpus file not found: {path}", field="corpus")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.suffix.lower() in (".jsonl", ".ndjson"):
                docs += [
                    _row_text(row.record)
                    for row in read_jsonl(file, on_error="raise", field="corpus", what="corpus file")
                ]
            else:
                docs.append(read_text(file, field="corpus", what="corpus file"))
    return docs


def _row_text(row) -> str:
    if isinstance(row, str):
        return row
    if isinstance(row, dict):
        if isinstance(row.get("text"), str):
            return row["text"]
        return "\n".join(_row_text(v) for v in row.values() if isinstance(v, (str, list, dict)))
    if isinstance(row, list):
        return "\n".join(_row_text(v) for v in row)
    return ""


def corpus_fingerprint(paths: Sequence[str | Path]) -> str:
    digest = hashlib.sha256()
    for raw in paths:
        path = Path(raw).expanduser()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            digest.update(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_or_build_index(paths: Sequence[str | Path], cache_dir: str | Path | None = None) -> CorpusIndex:
    """Build the index for the corpus files, or load it from `cache_dir` when the files are unchanged."""
    cache = Path(cache_dir) / f"corpus-{corpus_fingerprint(paths)}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        try:
            return CorpusIndex.load(cache)
        except Exception:  # a damaged cache file: rebuild it
            pass
    index = CorpusIndex.build(read_corpus(paths))
    if cache is not None:
        index.save(cache)
    return index
