"""Cutting a document into passages to retrieve and cite: first at its headings, then at sentence ends, packed
to about 150-250 words (300-400 Chinese characters) each, every chunk keeping its heading path and its
character offsets in the extracted text.

    chunks = chunk_document(doc)          # doc.text[c.start:c.end] == c.text; c.heading = "Ch. 8 > 8.1 dpkg"

A chunk never crosses a heading, so a citation names exactly one section; a section shorter than the target
stays one (short) chunk rather than being glued to its neighbour.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from inkwell.knowledge.ingest import Document, Heading

MIN_WORDS, MAX_WORDS = 150, 250  # a passage: enough context to answer from, small enough to cite precisely
CJK_CHARS_PER_WORD = 1.6  # 400 Chinese characters count as 250 words (300-400 chars ~ 150-250 words)
HEADING_SEPARATOR = " > "

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_HAN_CHAR = re.compile(f"[{_HAN}]")
_LATIN_WORD = re.compile(f"[^\\s{_HAN}]+")
# A sentence ends at . ! ? (then space), at 。！？ (closing quotes may follow), or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|(?<=[。！？])[”」』）)\"']*\s*|\n\s*\n")


@dataclass
class Chunk:
    text: str
    start: int  # character offsets in the document's extracted text
    end: int
    heading: str  # the heading path, outermost first ("" before the first heading)
    ordinal: int  # position in the document (0-based)


def size(text: str) -> float:
    """Length in words, Chinese characters counted at CJK_CHARS_PER_WORD per word."""
    han = len(_HAN_CHAR.findall(text))
    return len(_LATIN_WORD.findall(text)) + han / CJK_CHARS_PER_WORD


def has_cjk(text: str) -> bool:
    return _HAN_CHAR.search(text) is not None


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence of text[start:end], whitespace trimmed, as offsets into `text`."""
    end = len(text) if end is None else end
    spans = []
    position = start
    for match in _SENTENCE_END.finditer(text, start, end):
        spans.append((position, match.start() + len(match.group(0).rstrip())))  # closing quotes stay with it
        position = match.end()
    spans.append((position, end))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def _hard_split(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """A 'sentence' longer than a chunk (a table, a list without full stops): cut at spaces (or characters)."""
    pieces = []
    while size(text[a:b]) > MAX_WORDS:
        cut = a
        for match in re.finditer(r"\s+|(?<=[" + _HAN + "])", text[a:b]):
            if size(text[a : a + match.start()]) > MAX_WORDS * 0.8:
                break
            cut = a + match.start()
        if cut <= a:
            cut = a + max(1, int(MAX_WORDS * CJK_CHARS_PER_WORD))
        pieces.append((a, cut))
        a = cut
        while a < b and text[a].isspace():
            a += 1
    if b > a:
        pieces.append((a, b))
    return pieces


def _sections(doc: Document) -> list[tuple[int, int, str, Heading | None]]:
    """(start, end, heading path, heading) of each stretch between headings."""
    out: list[tuple[int, int, str, Heading | None]] = []
    stack: list[Heading] = []
    headings = sorted(doc.headings, key=lambda h: h.start)
    bounds = [h.start for h in headings] + [len(doc.text)]
    if not headings or headings[0].start > 0:
        out.append((0, bounds[0], "", None))
    for heading, end in zip(headings, bounds[1:]):
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        out.append((heading.start, end, HEADING_SEPARATOR.join(h.title for h in stack), heading))
    return out


def chunk_document(doc: Document) -> list[Chunk]:
    """The document's chunks, in order. A section holding only its heading (a chapter title right before its
    first subsection) gives no chunk."""
    text = doc.text
    chunks: list[Chunk] = []
    for start, end, path, heading in _sections(doc):
        spans = [piece for a, b in sentence_spans(text, start, end) for piece in _hard_split(text, a, b)]
        if not spans:
            continue
        if heading is not None and not re.search(r"\w", text[start:end].replace(heading.title, "", 1)):
            continue  # the heading alone (its `#` marks aside): nothing to cite
        for a, b in _pack(text, spans):
            chunks.append(Chunk(text[a:b], a, b, path, len(chunks)))
    return chunks


def _pack(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentences into chunks of even size: as many chunks as MAX_WORDS requires, each filled to its share."""
    sizes = [size(text[a:b]) for a, b in spans]
    total = sum(sizes)
    count = max(1, math.ceil(total / MAX_WORDS))
    share = total / count
    out: list[tuple[int, int]] = []
    first, filled = 0, 0.0
    for i, weight in enumerate(sizes):
        if i > first and filled + weight > MAX_WORDS:  # the next sentence would overflow: close before it
            out.append((spans[first][0], spans[i - 1][1]))
            first, filled = i, 0.0
        filled += weight
        if filled >= share and i + 1 < len(spans):
            out.append((spans[first][0], spans[i][1]))
            first, filled = i + 1, 0.0
    if first < len(spans):
        out.append((spans[first][0], spans[-1][1]))
    return out
