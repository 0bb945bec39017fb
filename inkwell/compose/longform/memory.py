"""What the writer remembers while drafting section after section (RecurrentGPT's two memories):

- short-term: a rolling summary, one or two sentences per finished section, most recent last. It is
  extractive (the sentences of each section closest to the section as a whole, by embedding): a 135M model
  asked to summarise drifts and invents, and picking the section's own sentences costs one embedding call;
- long-term: every earlier paragraph, retrieved by embedding similarity to the section about to be written
  (its title and points), so what section 2 said about a term is in front of the model at section 9.

Both are sized by the draft stage to the model's window (`fit` below drops the least relevant first).
Chinese text is compared lexically (character bigrams): the bundled embedder is English-only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from inkwell.compose.longform.checks import is_chinese, lexical_similarity, sentences

Similar = Callable[[Sequence[str], Sequence[str]], np.ndarray]  # (a, b) -> cosine matrix [len(a), len(b)]


def embedding_similar(embed: Callable[[Sequence[str]], np.ndarray]) -> Similar:
    """Cosine similarity through an embedder that returns unit vectors (models.embedder.embed)."""

    def similar(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        if not a or not b:
            return np.zeros((len(a), len(b)), dtype=np.float32)
        vectors = embed(list(a) + list(b))
        return vectors[: len(a)] @ vectors[len(a) :].T

    return similar


def lexical_similar(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Symmetric lexical overlap (mean of both recalls): the measure for Chinese and for tests."""
    return np.array(
        [[(lexical_similarity(x, y) + lexical_similarity(y, x)) / 2 for y in b] for x in a], dtype=np.float32
    ).reshape(len(a), len(b))


def similar_for(texts: str, similar: Similar | None) -> Similar:
    return similar if similar is not None and not is_chinese(texts) else lexical_similar


@dataclass
class Passage:
    section: int  # the section it was written in (0-based)
    text: str


@dataclass
class Memory:
    summaries: list[str] = field(default_factory=list)  # one per finished section
    passages: list[Passage] = field(default_factory=list)

    def remember(self, section: int, text: str, similar: Similar | None) -> None:
        """A finished section: its summary sentences and its paragraphs."""
        self.summaries.append(summarize(text, similar))
        for paragraph in paragraphs(text):
            self.passages.append(Passage(section, paragraph))

    def recall(self, query: str, k: int, similar: Similar | None, skip_sections: set[int]) -> list[Passage]:
        """The k earlier passages closest to the query, most relevant first (sections in `skip_sections` left
        out: the summary already holds the latest one)."""
        pool = [p for p in self.passages if p.section not in skip_sections]
        if not pool or k <= 0:
            return []
        measure = similar_for(query, similar)
        scores = measure([query], [p.text for p in pool])[0]
        return [pool[i] for i in np.argsort(-scores, kind="stable")[:k]]  # most relevant first


def paragraphs(text: str, max_sentences: int = 3) -> list[str]:
    """A section cut into passages of up to `max_sentences` sentences (paragraph breaks respected)."""
    out: list[str] = []
    for block in [b for b in text.split("\n\n") if b.strip()]:
        found = sentences(block)
        for i in range(0, len(found), max_sentences):
            out.append(" ".join(found[i : i + max_sentences]) if not is_chinese(block) else "".join(found[i : i + 3]))
    return out


def summarize(text: str, similar: Similar | None, keep: int = 2) -> str:
    """The `keep` sentences most central to the text (highest mean similarity to its other sentences), in
    their original order."""
    found = sentences(text)
    if len(found) <= keep:
        return " ".join(found)
    measure = similar_for(text, similar)
    matrix = measure(found, found)
    centrality = (matrix.sum(1) - np.diag(matrix)) / (len(found) - 1)
    chosen = sorted(np.argsort(-centrality, kind="stable")[:keep])
    joiner = "" if is_chinese(text) else " "
    return joiner.join(found[i] for i in chosen)


def fit(
    build: Callable[[list[str], list[Passage]], str],
    summaries: list[str],
    passages: list[Passage],
    count: Callable[[str], int],
    budget: int,
) -> tuple[str, list[str], list[Passage]]:
    """The largest memory whose prompt fits `budget` tokens: recalled passages go first (least relevant, i.e.
    last in recall order, first), then the oldest summaries. Returns the prompt and what it kept."""
    summaries, passages = list(summaries), list(passages)
    prompt = build(summaries, passages)
    while count(prompt) > budget and (passages or summaries):
        if passages:
            passages.pop()
        else:
            summaries.pop(0)
        prompt = build(summaries, passages)
    return prompt, summaries, passages
