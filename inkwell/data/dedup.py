"""Duplicate detection: exact (hash of normalised text) and near (MinHash LSH from `datasketch`).

Exact keys are 8-byte BLAKE2b digests of the text after NFKC, case folding and whitespace collapsing: the set
of keys costs well under 100 bytes a row, whatever the row length.

Near duplicates are found on character shingles (5-grams of the normalised text with punctuation removed;
2-grams for Chinese, where one character carries about a word), estimated with MinHash and indexed with
`datasketch.MinHashLSH`. LSH candidates are confirmed against a kept signature so rows below the threshold are
not merged by chance; the kept signature is a 1-byte-per-permutation "b-bit" MinHash (Li & König, 2010) -
128 bytes a row instead of 1 KB for the full one, with a Jaccard estimate that is nearly as good.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib

import numpy as np

from inkwell.data.text import detect_language

_PUNCT = re.compile(r"[\W_]+", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalize_for_dedup(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def exact_key(text: str) -> int:
    digest = hashlib.blake2b(normalize_for_dedup(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def shingles(text: str, size: int | None = None) -> set[str]:
    """Character n-grams of the text with case, punctuation and spacing removed from the comparison."""
    norm = _SPACES.sub(" ", _PUNCT.sub(" ", normalize_for_dedup(text))).strip()
    if size is None:
        size = 2 if detect_language(norm) in ("zh", "ja") else 5
    if not norm:
        return set()
    if len(norm) <= size:
        return {norm}
    return {norm[i : i + size] for i in range(len(norm) - size + 1)}


def lsh_params(threshold: float, num_perm: int, recall: float = 0.995) -> tuple[int, int]:
    """(bands, rows per band) for LSH that finds a pair at the threshold with probability >= `recall`.

    datasketch's own choice balances false positives against false negatives, which misses about half of the
    pairs just above the threshold (b=9, r=13 for 0.7: a pair with Jaccard 0.82 is a candidate only half the
    time). Candidates are confirmed against the kept signatures anyway, so extra candidates cost little and
    missed ones would let near duplicates leak across splits: take the most rows per band that keep recall."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            best = (bands, rows)
    return best


class NearDupIndex:
    """Streaming near-duplicate finder: `match(key, text)` returns the earlier keys whose estimated Jaccard
    similarity with `text` is at least `threshold`, then remembers `text` under `key`."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, seed: int = 1):
        from datasketch import MinHashLSH

        if not 0 < threshold <= 1:
            from inkwell.errors import InkwellError

            raise InkwellError(
                f"near-duplicate threshold {threshold} must be in (0, 1]", field="threshold", hint="e.g. 0.8"
            )
        self.threshold = threshold
        self.num_perm = num_perm
        self.seed = seed
        self.lsh = MinHashLSH(num_perm=num_perm, params=lsh_params(threshold, num_perm))
        self.signatures: dict[int, bytes] = {}
        from datasketch import MinHash

        template = MinHash(num_perm=num_perm, seed=seed)
        self._permutations, self._scheme = template.permutations, template.scheme

    def minhash(self, text: str):
        from datasketch import MinHash

        grams = shingles(text)
        if not grams:
            return None
        # The permutations depend only on (num_perm, seed): computing them once instead of per row, and hashing
        # shingles with CRC-32 instead of the default SHA-1, makes signatures about 5x faster. CRC-32 is fine
        # here: datasketch mixes every input hash (murmur finaliser) before its random affine permutations, and
        # CRC-32 has no collisions among inputs of 4 bytes or less (most shingles).
        mh = MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            hashfunc=zlib.crc32,
            permutations=self._permutations,
            scheme=self._scheme,
        )
        mh.update_batch([g.encode("utf-8") for g in grams])
        return mh

    @staticmethod
    def _bbit(mh) -> bytes:
        return (np.asarray(mh.hashvalues) & 0xFF).astype(np.uint8).tobytes()

    def similarity(self, a: bytes, b: bytes) -> float:
        """Jaccard estimate from two 8-bit signatures: P(equal) = J + (1 - J) / 256."""
        equal = np.count_nonzero(np.frombuffer(a, np.uint8) == np.frombuffer(b, np.uint8)) / self.num_perm
        return max(0.0, (equal - 1 / 256) / (1 - 1 / 256))

    def query(self, text: str, mh=None) -> list[int]:
        mh = mh if mh is not None else self.minhash(text)
        if mh is None:
            return []
        sig = self._bbit(mh)
        return [k for k in self.lsh.query(mh) if self.similarity(sig, self.signatures[k]) >= self.threshold]

    def add(self, key: int, text: str, mh=None) -> None:
        mh = mh if mh is not None else self.minhash(text)
        if mh is None or key in self.signatures:
            return
        self.lsh.insert(key, mh, check_duplication=False)
        self.signatures[key] = self._bbit(mh)

    def match(self, key: int, text: str) -> list[int]:
        mh = self.minhash(text)
        found = self.query(text, mh)
        self.add(key, text, mh)
        return found
