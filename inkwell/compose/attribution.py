"""Which retrieved passage supports each sentence of a grounded reply. A small model rarely writes the `[n]` it was
asked for, so citations are also added after the fact, the way retrieval systems do when the generator does
not cite: the model's own citations are kept (`how: "model"`), every other sentence is attributed to the passage
holding most of its content words (character bigrams for Chinese) when that share reaches MIN_SUPPORT
(`how: "attributed"`, `[n]` inserted at the sentence's end), and the rest are listed as unsupported. For a reply
that no passage supports, `quote` offers the best passage's key sentences instead.

    result = attribute("Debian was started by Ian Murdock in 1993.", passages, query="Who started Debian?")
    result.text            # "Debian was started by Ian Murdock in 1993 [1]."
    result.sentences       # [SentenceSupport(start=0, end=48, passage=1, how="attributed", score=1.0)]
    quote(passages, query)   # Quote(text="Debian was created by Ian Murdock in 1993. ... [1]", passage=1, ...)

Content words are the query words of knowledge search (inkwell.knowledge.segment: stopwords out, Chinese as
character bigrams), plural `s` folded. Words of the question itself do not count as support: a sentence that
only repeats the question ("You asked about Debian's release cycle") has nothing to attribute.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inkwell.knowledge import Passage
from inkwell.knowledge.chunk import has_cjk, sentence_spans
from inkwell.knowledge.segment import query_terms

# Calibrated on the Debian FAQ (benchmarks/bench_knowledge.py, docs/grounding.md): sentences SmolLM2 wrote
# *without* the passages reach this share against the passages retrieved for the same question in 3% of cases
# (English; 9% in Chinese with gemma3-270m), so a sentence at or above it is taken to come from the passage.
MIN_SUPPORT = 0.6
MIN_TERMS = 2  # a sentence with fewer new content words (greetings, a signature, the question repeated) is not a claim
QUOTE_SENTENCES = 2  # the quote fallback: the best sentence of the best passage and the one after it

CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,，;]\s*\d{1,3})*)\]")  # [1], [1, 3], [2，4]
_LEADING_CITATIONS = re.compile(r"(?:\s*\[\d{1,3}(?:\s*[,，;]\s*\d{1,3})*\])+")
_TRAILING = "。．.!！?？…:：;；\"'”’)）」』"  # a citation goes before a sentence's closing punctuation


def cited_numbers(text: str) -> list[int]:
    """The numbers of every `[n]` (also `[1, 3]`) in the text, in order, repeats kept."""
    return [int(n) for m in CITATION.finditer(text) for n in re.split(r"\s*[,，;]\s*", m.group(1))]


def terms(text: str) -> set[str]:
    """A text's content words as support is counted: knowledge search's query words (stopwords out, Chinese as
    character bigrams), citations left out, a plural `s` folded (packages = package)."""
    return {_fold(word) for word in query_terms(CITATION.sub(" ", text), "bigram")}


def _fold(word: str) -> str:
    if len(word) > 4 and word.isascii() and word.isalpha():
        if word.endswith("ies"):
            return word[:-3] + "y"
        if word.endswith("s") and not word.endswith("ss"):
            return word[:-1]
    return word


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: lines cut at `.!?` + space and `。！？`. Citations that open a sentence
    (the model's "... in 1993. [1] It ...") are given to the sentence before them."""
    spans = [span for line in re.finditer(r"[^\n]+", text) for span in sentence_spans(text, line.start(), line.end())]
    out: list[tuple[int, int]] = []
    for a, b in spans:
        lead = _LEADING_CITATIONS.match(text, a, b)
        if lead is not None and out:
            out[-1] = (out[-1][0], lead.end())
            a = lead.end()
            while a < b and text[a].isspace():
                a += 1
            if a >= b:
                continue
        out.append((a, b))
    return out


@dataclass
class SentenceSupport:
    """One sentence of a reply and the passage supporting it (None: no passage does)."""

    start: int  # character offsets in the text with the citations inserted
    end: int
    text: str
    passage: int | None  # the passage's number in the prompt, from 1
    how: str | None  # "model": the model cited it; "attributed": added after; None: unsupported
    score: float  # share of the sentence's new content words found in that passage (best passage if unsupported)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "passage": self.passage,
            "how": self.how,
            "score": round(self.score, 3),
        }


@dataclass
class Attribution:
    """A reply with citations added, and what supports each of its sentences."""

    text: str
    sentences: list[SentenceSupport] = field(default_factory=list)
    skipped: int = 0  # sentences with nothing to check: fewer than MIN_TERMS content words beyond the question

    @property
    def supported(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if s.passage is not None]

    @property
    def unsupported(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if s.passage is None]

    def to_json(self, threshold: float = MIN_SUPPORT) -> dict[str, Any]:
        """What `--json` and the store carry as `support`."""
        return {
            "checked": len(self.sentences),
            "supported": len(self.supported),
            "model": sum(s.how == "model" for s in self.sentences),
            "attributed": sum(s.how == "attributed" for s in self.sentences),
            "skipped": self.skipped,
            "threshold": threshold,
            "unsupported": [{"start": s.start, "end": s.end, "text": s.text} for s in self.unsupported],
            "sentences": [s.to_json() for s in self.sentences],
        }


def attribute(
    text: str,
    passages: Sequence[Passage],
    query: str = "",
    *,
    threshold: float = MIN_SUPPORT,
) -> Attribution:
    """The text with `[n]` inserted after each sentence that passage n supports (see the module docstring); the
    model's own citations are kept as written and marked `model`."""
    asked = terms(query)
    bags = [terms(p.text) | terms(p.heading.split(" > ")[-1]) for p in passages]
    found: list[tuple[int, int, int | None, str | None, float]] = []
    skipped = 0
    for a, b in sentences(text):
        sentence = text[a:b]
        new = terms(sentence) - asked
        scores = [len(new & bag) / len(new) if new else 0.0 for bag in bags]
        cited = [n for n in cited_numbers(sentence) if 1 <= n <= len(passages)]
        if cited:
            found.append((a, b, cited[0], "model", scores[cited[0] - 1] if scores else 0.0))
            continue
        if len(new) < MIN_TERMS:
            skipped += 1
            continue
        best = max(range(len(bags)), key=lambda i: scores[i], default=None)
        if best is not None and scores[best] >= threshold and len(new & bags[best]) >= MIN_TERMS:
            found.append((a, b, best + 1, "attributed", scores[best]))
        else:
            found.append((a, b, None, None, scores[best] if best is not None else 0.0))
    return _with_citations(text, found, skipped)


def _with_citations(text: str, found: list, skipped: int) -> Attribution:
    """Insert `[n]` before the closing punctuation of each attributed sentence; offsets moved to match."""
    pieces: list[str] = []
    out: list[SentenceSupport] = []
    position = shift = 0
    for a, b, number, how, score in found:
        start = a + shift
        if how == "attributed":
            at = b
            while at > a and text[at - 1] in _TRAILING:
                at -= 1
            tag = f"[{number}]" if has_cjk(text[at - 1 : at]) else f" [{number}]"
            pieces += [text[position:at], tag]
            position = at
            shift += len(tag)
        out.append(SentenceSupport(start, b + shift, "", number, how, score))
    pieces.append(text[position:])
    result = "".join(pieces)
    for s in out:
        s.text = result[s.start : s.end]
    return Attribution(result, out, skipped)


# ---------------------------------------------------------------- the quote fallback


@dataclass
class Quote:
    """The key sentences of the passage that best answers the query, as a reply with its citation."""

    text: str  # the sentences, then " [n]"
    passage: int  # its number in the prompt
    source: str  # the file, and the quoted characters in its extracted text
    start: int
    end: int
    heading: str

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "passage": self.passage,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "heading": self.heading,
        }


def quote(passages: Sequence[Passage], query: str, count: int = QUOTE_SENTENCES) -> Quote | None:
    """The key sentences of the best passage (the first) as a cited reply: the sentence holding most of the
    query's content words (the first of equals) and the `count - 1` after it; questions (a FAQ's headings) are
    never quoted. None without passages. Measured on the Debian FAQ's 50 questions per language: the quote held
    the exact answer phrase for 18 (English) and 16 (Chinese); picking the best sentence over the first two
    passages instead found 15 and 14, one sentence instead of two 12 and 12."""
    if not passages:
        return None
    passage, asked = passages[0], terms(query)
    spans = [(a, b) for a, b in sentences(passage.text) if not passage.text[a:b].rstrip().endswith(("?", "？"))]
    if not spans:
        return None
    shares = [len(terms(passage.text[a:b]) & asked) for a, b in spans]
    first = shares.index(max(shares))
    picked = spans[first : first + count]
    a, b = picked[0][0], picked[-1][1]
    chinese = has_cjk(passage.text[a:b])
    body = ("" if chinese else " ").join(passage.text[x:y].strip() for x, y in picked)
    tag = "[1]" if chinese else " [1]"
    return Quote(body + tag, 1, passage.source, passage.start + a, passage.start + b, passage.heading)
