"""Model-free measures of a long piece: its length against the target (LongWriter's S_l), how much of the plan
it covers, how much it repeats itself, and how varied its wording is. The draft stage reranks candidates with
them, the revise stage uses the sentence splitter, and benchmarks/bench_longform.py reports them.

Words are counted as a reader counts them: English words, and for Chinese each Han character (as
LongBench-Write counts Chinese length).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_HAN}]|[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_HAN_CHAR = re.compile(rf"[{_HAN}]")
# a sentence ends at . ! ? (followed by a space or the end) or at 。！？ (Chinese needs no space)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|(?<=[。！？])[”’」』）]*")


def tokens(text: str) -> list[str]:
    """Words (lower-cased) and single Han characters, in order."""
    return [t.lower() for t in _TOKEN.findall(text or "")]


def word_count(text: str) -> int:
    return len(tokens(text))


def is_chinese(text: str) -> bool:
    han = len(_HAN_CHAR.findall(text or ""))
    return han > 0 and han >= 0.3 * max(1, word_count(text))


def sentences(text: str) -> list[str]:
    """The text's sentences, whitespace-trimmed, in order (paragraph breaks end a sentence too)."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n", text or ""):
        out.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s and s.strip())
    return out


def length_score(words: int, target: int) -> float:
    """LongWriter's S_l (0-100): 100 at the target; a shortfall costs more than an overshoot.
    S_l = 100·(1 − (l'/l − 1)/3) when longer than asked, 100·(1 − (l/l' − 1)/2) when shorter, floored at 0."""
    if target <= 0:
        raise ValueError("target must be positive")
    if words <= 0:
        return 0.0
    ratio = words / target
    score = 1 - (ratio - 1) / 3 if ratio > 1 else 1 - (1 / ratio - 1) / 2
    return round(100 * max(0.0, score), 2)


def ngrams(items: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]


def repeated_ngram_rate(text: str, n: int = 4) -> float:
    """Share of the text's n-grams that already occurred earlier in it (0 = never repeats, →1 = loops)."""
    grams = ngrams(tokens(text), n)
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


def overlap_with(text: str, earlier: str, n: int = 4) -> float:
    """Share of `text`'s n-grams that occur in `earlier` (repetition of what was already written)."""
    grams = ngrams(tokens(text), n)
    if not grams:
        return 0.0
    before = set(ngrams(tokens(earlier), n))
    return sum(g in before for g in grams) / len(grams)


def distinct_n(text: str, n: int = 2) -> float:
    """Distinct-n: unique n-grams over all n-grams (higher = more varied wording)."""
    grams = ngrams(tokens(text), n)
    return len(set(grams)) / len(grams) if grams else 0.0


def lexical_similarity(a: str, b: str) -> float:
    """Recall of `a`'s content units in `b`: words of 3+ letters, or Han character bigrams (Chinese has no
    spaces and the bundled embedder is English-only, so Chinese coverage is lexical)."""
    units_a, units_b = _units(a), _units(b)
    if not units_a:
        return 0.0
    return sum(min(c, units_b[u]) for u, c in units_a.items()) / sum(units_a.values())


def _units(text: str) -> Counter:
    toks = tokens(text)
    words = [t for t in toks if not _HAN_CHAR.fullmatch(t) and len(t) >= 3 and t not in _STOP]
    han = [t for t in toks if _HAN_CHAR.fullmatch(t)]
    return Counter(words) + Counter(a + b for a, b in zip(han, han[1:], strict=False))


def junk_share(text: str) -> float:
    """Share of characters that are neither letters, digits, spaces nor common punctuation, plus runs of
    capitals (a small model's degenerate output): 0 for ordinary prose."""
    if not text:
        return 1.0
    odd = sum(
        1 for ch in text if not (ch.isalnum() or ch.isspace() or ch in ".,;:!?'\"()-–—’“”‘，。！？；：、（）《》")
    )
    shouting = sum(len(m) for m in re.findall(r"\b[A-Z]{4,}(?:\s+[A-Z]{2,}){2,}\b", text))
    return min(1.0, (odd + shouting) / len(text))


def coverage(text: str, points: Sequence[str], similar=None, threshold: float = 0.45) -> float:
    """Share of the planned points the text covers. A point is covered when some sentence of the text is close
    to it: by embedding cosine (`similar(points, sentences)` -> matrix) where given and the text is not Chinese,
    else by lexical recall of the point's content words in the text (threshold 0.5)."""
    points = [p for p in points if p.strip()]
    if not points:
        return 1.0
    found = sentences(text)
    if not found:
        return 0.0
    if similar is not None and not is_chinese(text + " ".join(points)):
        matrix = similar(points, found)
        return sum(1 for row in matrix if max(row) >= threshold) / len(points)
    return sum(1 for p in points if lexical_similarity(p, text) >= 0.5) / len(points)


def entropy_bits(text: str) -> float:
    """Unigram entropy of the text's tokens (bits); a looping text has little."""
    counts = Counter(tokens(text))
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


_STOP = set(
    "the and for are but not you all any can had her was one our out day get has him his how man new now old see "
    "two way who boy did its let put say she too use that with have this will your from they know want been good "
    "much some time very when come here just like long make many more only over such take than them well were what "
    "into also each which their there about would these other could after first where those being should while".split()
)
