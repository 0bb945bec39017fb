"""Reader matching: rank candidate pieces for a reader's interests (a few liked texts and/or keywords), with the
reasons each piece ranks where it does.

    reader = load_reader("ada.json")           # {"keywords": [...], "liked": [...], "classifier": RUN, "labels": [...]}
    ranked = rank_candidates(reader, read_candidates("candidates.jsonl"))
    ranked[0].score, ranked[0].reasons         # 0..1, ["topic 'food' (0.41)", "like liked #2 (0.38)", ...]

The score is embedding similarity (all-MiniLM-L6-v2): the best keyword match and the closeness to the liked
texts' centre, averaged when the reader gives both. With a classifier trained by the `classify` stage, the
probability of the reader's labels is mixed in (CLASSIFIER_WEIGHT). The embedder is English; Chinese readers
and pieces are compared by character n-grams instead (compose/style.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.compose.style import GENERIC, STOPWORDS, WORD, cosine, language_of, ngram_vector
from inkwell.errors import InkwellError

KEYWORD_WORDS = 4  # a line of a .txt reader profile with at most this many words is a keyword, else a liked text
CLASSIFIER_WEIGHT = 0.5  # share of the classifier's probability in the score, when the reader names one
TOPIC_THRESHOLD = 0.25  # a keyword counts as a matched topic from this cosine on (unrelated text: about 0 to 0.15)
SHARED_WORDS = 3  # words shared with the liked texts, listed as a reason


@dataclass
class Reader:
    """A reader's interests. `labels`: the classifier labels the reader likes (default: those the classifier
    gives their liked texts and keywords)."""

    keywords: list[str] = field(default_factory=list)
    liked: list[str] = field(default_factory=list)
    classifier: str | None = None
    labels: list[str] = field(default_factory=list)
    source: str = "reader"


@dataclass
class Candidate:
    id: str
    text: str


@dataclass
class Ranked:
    id: str
    text: str
    score: float
    reasons: list[str]
    parts: dict[str, float]

    def to_json(self) -> dict:
        return {"id": self.id, "score": round(self.score, 4), "reasons": self.reasons, "parts": self.parts}


def _strings(value: Any, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InkwellError(f"{where}: '{key}' must be a list of strings", field="reader")
    return [v.strip() for v in value if v.strip()]


def load_reader(path: str | Path, classifier: str | None = None) -> Reader:
    """A reader profile: a .json object {keywords, liked, classifier, labels}, a .jsonl file of liked texts
    (`text`) or keywords (`keyword`), or a .txt file with one interest per line (a short line is a keyword,
    a longer one a liked text). An empty profile is an InkwellError naming the file."""
    from inkwell.files import read_text

    path = Path(path).expanduser()
    where = str(path)
    text = read_text(path, field="reader", what="reader profile")
    reader = Reader(source=where)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InkwellError(f"{where}: not JSON ({exc})", field="reader") from None
        if not isinstance(data, dict):
            raise InkwellError(f"{where}: a reader profile is a JSON object (keywords, liked)", field="reader")
        reader.keywords = _strings(data.get("keywords"), where, "keywords")
        reader.liked = _strings(data.get("liked"), where, "liked")
        reader.labels = _strings(data.get("labels"), where, "labels")
        named = data.get("classifier")
        reader.classifier = str(Path(named).expanduser()) if isinstance(named, str) and named.strip() else None
    elif path.suffix.lower() == ".jsonl":
        from inkwell.data.formats import read_jsonl

        for row in read_jsonl(path, field="reader", what="reader profile"):
            record = row.record or {}
            reader.liked += _strings(record.get("text"), row.where, "text")
            reader.keywords += _strings(record.get("keyword"), row.where, "keyword")
    else:
        for line in (line.strip() for line in text.splitlines()):
            if line and not line.startswith("#"):
                (reader.keywords if len(line.split()) <= KEYWORD_WORDS else reader.liked).append(line)
    reader.classifier = classifier or reader.classifier
    if not reader.keywords and not reader.liked:
        raise InkwellError(
            f'reader profile {where} is empty: give keywords or liked texts (e.g. {{"keywords": ["food"]}})',
            field="reader",
        )
    return reader


def read_candidates(path: str | Path) -> list[Candidate]:
    """Candidate pieces: JSONL rows with `text` (and `id`; else the line number)."""
    from inkwell.data.formats import read_jsonl

    out = []
    for row in read_jsonl(path, field="candidates", what="candidates file"):
        record = row.record or {}
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InkwellError(f"{row.where}: each candidate needs a non-empty string 'text'", field="candidates")
        out.append(Candidate(str(record.get("id", row.line)), text))
    if not out:
        raise InkwellError(f"candidates file {path} holds no candidates", field="candidates")
    return out


def _similarities(reader: Reader, texts: Sequence[str]) -> tuple[Any, Any]:
    """(keyword x text, liked x text) cosine matrices, by embeddings, or character n-grams for Chinese."""
    import numpy as np

    queries = reader.keywords + reader.liked
    if language_of([*queries, *texts[:50]]) == "zh":
        left = [ngram_vector(q) for q in queries]
        right = [ngram_vector(t) for t in texts]
        matrix = np.array([[cosine(a, b) for b in right] for a in left], dtype=np.float32).reshape(len(left), -1)
    else:
        from inkwell.models.embedder import embed

        vectors = embed([*queries, *texts])
        matrix = vectors[: len(queries)] @ vectors[len(queries) :].T
    return matrix[: len(reader.keywords)], matrix[len(reader.keywords) :]


def _shared_words(text: str, liked_words: Counter) -> list[str]:
    words = {w.lower() for w in WORD.findall(text)}
    shared = [w for w in words if w in liked_words and w not in STOPWORDS | GENERIC and len(w) > 3 and "'" not in w]
    return sorted(shared, key=lambda w: (-liked_words[w], w))[:SHARED_WORDS]


def rank_candidates(reader: Reader, candidates: Sequence[Candidate], classify: Any = None) -> list[Ranked]:
    """The candidates, best first, each with its score (0..1), reasons and the parts of the score. `classify`:
    a function texts -> [{"probabilities": {label: p}}] (default: the reader's classifier, when it names one)."""
    import numpy as np

    texts = [c.text for c in candidates]
    by_keyword, by_liked = _similarities(reader, texts)
    parts: dict[str, Any] = {}
    if len(reader.keywords):
        parts["keywords"] = by_keyword.max(0)
    if len(reader.liked):
        parts["liked"] = by_liked.mean(0)  # closeness to the liked texts' centre, up to the liked texts' spread
    similarity = np.mean([np.clip(v, 0.0, 1.0) for v in parts.values()], axis=0)
    scores = similarity
    labels: list[str] = []
    if classify is None and reader.classifier:
        from inkwell.generate.classify import Classifier

        classify = Classifier.load(reader.classifier).predict
    if classify is not None:
        labels = reader.labels or sorted({r["label"] for r in classify(reader.keywords + reader.liked)})
        probabilities = [sum(r["probabilities"].get(label, 0.0) for label in labels) for r in classify(texts)]
        parts["classifier"] = np.array(probabilities, dtype=np.float32)
        scores = (1 - CLASSIFIER_WEIGHT) * similarity + CLASSIFIER_WEIGHT * parts["classifier"]
    liked_words = Counter(w.lower() for text in reader.liked for w in WORD.findall(text))
    ranked = []
    for j, candidate in enumerate(candidates):
        reasons = [
            f"topic '{reader.keywords[i]}' ({by_keyword[i, j]:.2f})"
            for i in np.argsort(-by_keyword[:, j])
            if by_keyword[i, j] >= TOPIC_THRESHOLD
        ][:3]
        if len(reader.liked):
            best = int(np.argmax(by_liked[:, j]))
            reasons.append(f"close to liked #{best + 1} ({by_liked[best, j]:.2f}): {_snippet(reader.liked[best])}")
            shared = _shared_words(candidate.text, liked_words)
            if shared:
                reasons.append("shared words: " + ", ".join(shared))
        if "classifier" in parts:
            reasons.append(f"classifier: {'/'.join(labels)} {parts['classifier'][j]:.2f}")
        ranked.append(
            Ranked(
                candidate.id,
                candidate.text,
                float(scores[j]),
                reasons,
                {name: round(float(values[j]), 4) for name, values in parts.items()},
            )
        )
    return sorted(ranked, key=lambda r: -r.score)


def _snippet(text: str, width: int = 40) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


def ndcg_at(relevance: Sequence[float], k: int = 5) -> float:
    """NDCG@k of a ranked list of relevance grades (1 = the best ordering of these grades)."""
    import math

    def dcg(grades: Sequence[float]) -> float:
        return sum(g / math.log2(i + 2) for i, g in enumerate(grades[:k]))

    ideal = dcg(sorted(relevance, reverse=True))
    return dcg(relevance) / ideal if ideal else 0.0
