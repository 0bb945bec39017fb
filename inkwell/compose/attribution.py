"""Which retrieved passage supports each sentence of a grounded reply. A small model rarely writes the `[n]` it was
asked for, so citations are also added after the fact, the way retrieval systems do when the generator does
not cite: the model's own citations are kept (`how: "model"`), every other sentence is attributed to the passage
holding most of its content words (character bigrams for Chinese) when that share is high enough and, in
English, the sentence is close in meaning to one of the passage's (MiniLM) (`how: "attributed"`, `[n]` inserted
at the sentence's end); the rest are listed as unsupported. For a reply that no passage supports, `quote` offers
the best passage's key sentences instead.

    result = attribute("Debian was started by Ian Murdock in 1993.", passages, query="Who started Debian?",
                       embed=inkwell.models.embedder.embed)
    result.text            # "Debian was started by Ian Murdock in 1993 [1]."
    result.sentences       # [SentenceSupport(start=0, end=48, passage=1, how="attributed", score=1.0, ...)]
    quote(passages, query)   # Quote(text="Debian was created by Ian Murdock in 1993. ... [1]", passage=1, ...)

Content words are the query words of knowledge search (inkwell.knowledge.segment: stopwords out, Chinese as
character bigrams), plural `s` folded. Words of the question itself and words of courtesy do not count as
support: a sentence that only repeats the question ("You asked about Debian's release cycle") or thanks the
customer has nothing to attribute, and is not listed as unsupported either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inkwell.knowledge import Passage
from inkwell.knowledge.chunk import has_cjk, sentence_spans
from inkwell.knowledge.segment import query_terms

# Calibrated on the Debian FAQ (benchmarks/bench_knowledge.py; docs/grounding.md): 63 sentences that SmolLM2 and
# gemma3-270m wrote with passages and that share at least 40% of their words with one, labelled by hand
# (benchmarks/data/attribution-labels.jsonl). English, words and MiniLM together: at 0.5 / 0.75, 4 attributed,
# all 4 right (2 of the 6 right ones missed); words alone at 0.5: 18 attributed, 5 right. Chinese (gemma mostly
# answers in English: shared URLs and paths) words alone at 0.6: 16 attributed, 4 right.
MIN_SUPPORT = 0.5  # share of a sentence's content words found in the passage, with the meaning check (English)
MIN_SIMILARITY = 0.75  # MiniLM cosine of the sentence and the passage's closest sentence (English)
MIN_LEXICAL = 0.6  # the share needed where no meaning check applies (Chinese; no embedder given)
MIN_TERMS = 2  # a sentence with fewer new content words (greetings, a signature, the question repeated) or a
# question is not a claim: it is neither attributed nor listed as unsupported
# Words of courtesy state no fact: "Thank you for writing", "I hope this helps", "您好" are neither attributed
# nor unsupported (a customer-service reply is full of them). Folded like every content word (see terms).
COURTESY_WORDS = frozenset(
    """thank thanks hope hoping glad happy pleased sorry apologise apologize apologies best regards wishes sincerely
    dear hi hello welcome contact contacting reaching touch assist assistance help helps helpful feel free let
    know please kindly 谢谢 感谢 抱歉 您好 你好 希望 帮助 联系 祝您""".split()
)
QUOTE_SENTENCES = 2  # the quote fallback: the best sentence of the best passage and the one after it

Embed = Callable[[Sequence[str]], Any]  # texts -> unit-length vectors (inkwell.models.embedder.embed)
CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,，;]\s*\d{1,3})*)\]")  # [1], [1, 3], [2，4]
_LEADING_CITATIONS = re.compile(r"(?:\s*\[\d{1,3}(?:\s*[,，;]\s*\d{1,3})*\])+")
_TRAILING = "。．.!！?？…:：;；\"'”’)）」』"  # a citation goes before a sentence's closing punctuation


def cited_numbers(text: str) -> list[int]:
    """The numbers of every `[n]` (also `[1, 3]`) in the text, in order, repeats kept."""
    return [int(n) for m in CITATION.finditer(text) for n in re.split(r"\s*[,，;]\s*", m.group(1))]


def terms(text: str) -> set[str]:
    """A text's content words as support is counted: knowledge search's query words (stopwords out, Chinese as
    character bigrams), citations and one-character words (a list's "1.") left out, a plural `s` folded
    (packages = package)."""
    return {_fold(word) for word in query_terms(CITATION.sub(" ", text), "bigram") if len(word) > 1}


def _fold(word: str) -> str:
    if len(word) > 4 and word.isascii() and word.isalpha():
        if word.endswith("ies"):
            return word[:-3] + "y"
        if word.endswith("s") and not word.endswith("ss"):
            return word[:-1]
    return word


_COURTESY = frozenset(map(_fold, COURTESY_WORDS))


def is_question(sentence: str) -> bool:
    """A question states nothing to support (the model repeating a FAQ's heading, "Any other questions?")."""
    return CITATION.sub("", sentence).rstrip(" *_\"'”’)）").endswith(("?", "？"))


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
    similarity: float | None = None  # cosine with the passage's closest sentence (English, with `embed`)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "passage": self.passage,
            "how": self.how,
            "score": round(self.score, 3),
            "similarity": None if self.similarity is None else round(self.similarity, 3),
        }


@dataclass
class Attribution:
    """A reply with citations added, and what supports each of its sentences."""

    text: str
    sentences: list[SentenceSupport] = field(default_factory=list)
    skipped: int = 0  # sentences with nothing to check: fewer than MIN_TERMS content words beyond the question
    thresholds: dict[str, float] = field(default_factory=dict)  # what `attribute` decided with

    @property
    def supported(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if s.passage is not None]

    @property
    def unsupported(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if s.passage is None]

    def to_json(self) -> dict[str, Any]:
        """What `--json` and the store carry as `support`."""
        return {
            "checked": len(self.sentences),
            "supported": len(self.supported),
            "model": sum(s.how == "model" for s in self.sentences),
            "attributed": sum(s.how == "attributed" for s in self.sentences),
            "skipped": self.skipped,
            "thresholds": self.thresholds,
            "unsupported": [{"start": s.start, "end": s.end, "text": s.text} for s in self.unsupported],
            "sentences": [s.to_json() for s in self.sentences],
        }


def attribute(
    text: str,
    passages: Sequence[Passage],
    query: str = "",
    *,
    embed: Embed | None = None,
    min_support: float = MIN_SUPPORT,
    min_similarity: float = MIN_SIMILARITY,
    min_lexical: float = MIN_LEXICAL,
) -> Attribution:
    """The text with `[n]` inserted after each sentence that passage n supports (see the module docstring); the
    model's own citations are kept as written and marked `model`.

    A sentence goes to the passage holding the largest share of its content words when that share reaches
    `min_lexical`; or, with `embed` (inkwell.models.embedder.embed) and both in English, when it reaches
    `min_support` and the sentence is close in meaning to a sentence of the passage (cosine >= min_similarity):
    shared words alone would attribute "Please go ahead and ask about donating money to Debian" to a passage
    about donations."""
    asked = terms(query)
    bags = [terms(p.text) | terms(p.heading.split(" > ")[-1]) for p in passages]
    similar = _Similarity(passages, embed) if embed is not None else None
    found: list[tuple[int, int, int | None, str | None, float, float | None]] = []
    skipped = 0
    for a, b in sentences(text):
        sentence = text[a:b]
        new = terms(sentence) - asked - _COURTESY
        scores = [len(new & bag) / len(new) if new else 0.0 for bag in bags]
        cited = [n for n in cited_numbers(sentence) if 1 <= n <= len(passages)]
        if cited:
            found.append((a, b, cited[0], "model", scores[cited[0] - 1] if scores else 0.0, None))
            continue
        if len(new) < MIN_TERMS or is_question(sentence):
            skipped += 1
            continue
        ranked = sorted(range(len(bags)), key=lambda i: -scores[i])
        best, closeness = None, None
        for i in ranked:
            if scores[i] < min(min_support, min_lexical):
                break
            if len(new & bags[i]) < MIN_TERMS:
                continue
            closeness = similar(sentence, i) if similar is not None and scores[i] >= min_support else None
            if (closeness is not None and closeness >= min_similarity) or (
                closeness is None and scores[i] >= min_lexical
            ):
                best = i
                break
        if best is not None:
            found.append((a, b, best + 1, "attributed", scores[best], closeness))
        else:
            found.append((a, b, None, None, scores[ranked[0]] if ranked else 0.0, closeness))
    result = _with_citations(text, found, skipped)
    result.thresholds = {"min_support": min_support, "min_similarity": min_similarity, "min_lexical": min_lexical}
    if embed is None:
        del result.thresholds["min_support"], result.thresholds["min_similarity"]
    return result


class _Similarity:
    """Cosine of a sentence and the closest sentence of a passage, English only (MiniLM is an English model:
    None for Chinese, where the lexical share decides alone). Passage sentences are embedded once, when needed."""

    def __init__(self, passages: Sequence[Passage], embed: Embed):
        self.passages, self.embed = passages, embed
        self.cache: dict[int, Any] = {}

    def __call__(self, sentence: str, index: int) -> float | None:
        passage = self.passages[index]
        if has_cjk(sentence) or has_cjk(passage.text):
            return None
        if index not in self.cache:
            self.cache[index] = self.embed([passage.text[a:b] for a, b in sentences(passage.text)] or [passage.text])
        vector = self.embed([CITATION.sub("", sentence)])[0]
        return float((self.cache[index] @ vector).max())


def _with_citations(text: str, found: list, skipped: int) -> Attribution:
    """Insert `[n]` before the closing punctuation of each attributed sentence; offsets moved to match."""
    pieces: list[str] = []
    out: list[SentenceSupport] = []
    position = shift = 0
    for a, b, number, how, score, closeness in found:
        start = a + shift
        if how == "attributed":
            at = b
            while at > a and text[at - 1] in _TRAILING:
                at -= 1
            tag = f"[{number}]" if has_cjk(text[at - 1 : at]) else f" [{number}]"
            pieces += [text[position:at], tag]
            position = at
            shift += len(tag)
        out.append(SentenceSupport(start, b + shift, "", number, how, score, closeness))
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
    query's content words (the first of equals) and the `count - 1` after it; questions (a FAQ's headings) and
    the heading at the top of the passage are never quoted. None without passages.

    On the Debian FAQ's 50 questions per language (hybrid search, benchmarks/data), two sentences held the exact
    answer phrase for 18 (English) and 15 (Chinese); one sentence for 15 and 14; the best sentence of the first
    two passages (instead of the first) for 21 and 13, so the simpler rule stays."""
    if not passages:
        return None
    passage = passages[0]
    found = key_sentences(passage, query, count)
    if found is None:
        return None
    a, b, body = found
    tag = "[1]" if has_cjk(body) else " [1]"
    return Quote(body + tag, 1, passage.source, passage.start + a, passage.start + b, passage.heading)


def key_sentences(passage: Passage, query: str, count: int = QUOTE_SENTENCES) -> tuple[int, int, str] | None:
    """(start, end, text) of a passage's key sentences: the one holding most of the query's content words (the
    first of equals) and the `count - 1` after it, never a question or the passage's heading (also as a Markdown
    `## heading` line); offsets in the passage's text. None when the passage has no other sentence."""
    asked = terms(query)
    spans = [
        (a, b)
        for a, b in sentences(passage.text)
        if not is_question(passage.text[a:b]) and passage.text[a:b].strip(" #=-\t") not in passage.heading
    ]
    if not spans:
        return None
    shares = [len(terms(passage.text[a:b]) & asked) for a, b in spans]
    first = shares.index(max(shares))
    picked = spans[first : first + count]
    a, b = picked[0][0], picked[-1][1]
    body = ("" if has_cjk(passage.text[a:b]) else " ").join(passage.text[x:y].strip() for x, y in picked)
    return a, b, body
