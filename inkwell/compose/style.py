"""Style profiles: learn a writer's style from samples, put their closest exemplars into a prompt as few-shot
examples, and score how close a text comes to the style.

    profile = learn_profile("ada", ["samples/"])      # >= 5 texts: files, a folder, or JSONL with `text`
    save_profile(profile)                            # INKWELL_HOME/styles/ada.json
    style_match(["a draft ..."], profile)[0].score   # 0..1: about P(same writer) against a random other writer

A profile holds measurable traits (sentence length, lexical richness, punctuation, favoured words, formality),
exemplars chosen for diversity, and the two halves of the style-match score, as in authorship verification:
the writer's character 1-4-gram profile (sublinear term frequencies, cosine) and their mean sentence embedding
(all-MiniLM-L6-v2, cosine). The two similarities go through a logistic calibration fitted on real writers
(CALIBRATION; benchmarks/bench_style.py refits it). The embedder is an English model: for Chinese the score is
the character n-grams alone, and so is exemplar choice (docs/personal.md).
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError

MIN_SAMPLES = 5  # fewer texts say more about their topics than about a style
NGRAM_ORDERS = (1, 4)  # character n-grams 1..4, the usual range in authorship attribution
PROFILE_NGRAMS = 4000  # n-grams kept in a profile: the rest carry almost no weight and bloat the file
EXEMPLARS = 8  # exemplars kept in a profile, chosen for diversity
SHOTS = 3  # exemplars put into a prompt: enough to show a voice, few enough for a 135M model's attention
MAX_EXEMPLAR_CHARS = 1200  # longer samples make poor few-shot examples (they crowd out the request)
DIVERSITY = 0.7  # exemplar choice: weight of "unlike those already chosen" against "typical of the writer"
SAMPLE_SUFFIXES = (".txt", ".md")  # one sample per file; .jsonl/.json files hold rows with `text`
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")

# score = sigmoid(bias + w_ngram * ngram cosine + w_embedding * embedding cosine), per language. Fitted by
# `python benchmarks/bench_style.py` (logistic regression, balanced classes) on same-writer vs other-writer
# pairs of Debian fortunes writers *not* used in its accuracy table (English), and tang300/song100 poets other
# than the two it measures (Chinese). 0.5 means "as likely this writer as a random other one".
CALIBRATION: dict[str, tuple[float, float, float]] = {
    "en": (-4.8, 3.74, 10.29),
    "zh": (-0.89, 3.65, 0.0),
}

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves one also may might must
    shall us let like get got make made say said ever never much many well even still yet upon every""".split()
)
# Words that say little about what a text is about (topic_of skips them; they may still be favoured words).
GENERIC = frozenset(
    """always usually really often sometimes nothing something everything anything thing things know think tell
    find want come going good great first last little long time take takes makes give gives keep seem seems
    look looks people person without within another whether though although exactly merely simply quite rather
    since because best better worse worst least less more most""".split()
)
ZH_COMMON = frozenset(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里"
)
CONTRACTION = re.compile(r"\b\w+'(?:t|s|re|ve|ll|d|m)\b", re.I)
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|\n\s*\n")
ZH_SENTENCE_END = re.compile(r"[。！？；!?;\n]+")
PUNCTUATION = {"en": ",;:!?-—()\"'…", "zh": "，。、；：！？“”‘’《》（）—…"}
PERSONAL = frozenset("i me my mine we us our ours you your yours".split())


# ---------------------------------------------------------------- samples


@dataclass
class Sample:
    """One text of the writer, with what it is about when the samples say so (JSONL `topic` or `title`)."""

    text: str
    topic: str = ""
    source: str = ""


def read_samples(paths: Sequence[str | Path]) -> list[Sample]:
    """Samples from files (one text per .txt/.md file), folders (their .txt/.md/.jsonl files, sorted) and
    JSONL/JSON files of rows with a `text` field (and optionally `topic` or `title`)."""
    from inkwell.data.formats import read_jsonl
    from inkwell.files import read_text

    samples: list[Sample] = []
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            raise InkwellError(f"samples not found: {path}", field="samples")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            suffix = file.suffix.lower()
            if suffix in (".jsonl", ".json"):
                for row in read_jsonl(file, field="samples", what="samples file"):
                    text = (row.record or {}).get("text")
                    if not isinstance(text, str):
                        raise InkwellError(f"{row.where}: each row needs a string field 'text'", field="samples")
                    topic = row.record.get("topic") or row.record.get("title") or ""  # type: ignore[union-attr]
                    if text.strip():
                        samples.append(Sample(text.strip(), str(topic), row.where))
            elif suffix in SAMPLE_SUFFIXES or not path.is_dir():
                text = read_text(file, field="samples", what="sample")
                if text.strip():
                    samples.append(Sample(text.strip(), "", str(file)))
    return samples


# ---------------------------------------------------------------- traits


def language_of(texts: Iterable[str]) -> str:
    """zh when the samples are Chinese, else en (the embedder and the word-based traits are English)."""
    from inkwell.data.text import detect_language

    return "zh" if detect_language("\n".join(texts)[:20000]) == "zh" else "en"


def _clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def _mattr(tokens: list[str], window: int = 50) -> float:
    """Moving-average type-token ratio: lexical richness that does not fall with text length as plain TTR does."""
    if not tokens:
        return 0.0
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    counts = Counter(tokens[:window])
    total = len(counts)
    for i in range(window, len(tokens)):
        counts[tokens[i]] += 1
        old = tokens[i - window]
        counts[old] -= 1
        if not counts[old]:
            del counts[old]
        total += len(counts)
    return total / window / (len(tokens) - window + 1)


def _favoured(per_sample: list[list[str]], drop: frozenset, keep: int = 12) -> list[str]:
    """Words (or characters) the writer returns to: found in the most samples, then most often; common function
    words dropped. Without a reference corpus this is "what this writer keeps using", not "unusual words"."""
    spread: Counter = Counter()
    count: Counter = Counter()
    for tokens in per_sample:
        spread.update(set(tokens))
        count.update(tokens)
    ranked = sorted((t for t in count if t not in drop and spread[t] >= 2), key=lambda t: (-spread[t], -count[t], t))
    return ranked[:keep]


def traits_of(texts: Sequence[str], language: str | None = None) -> dict[str, Any]:
    """Measurable traits of a set of texts. English: words per sentence (mean, sd), word length, lexical richness
    (MATTR over 50 words), punctuation marks per 100 words, favoured words, contractions and first/second-person
    words per 100 words, and a formality estimate 0..1 (the mean of four parts: long words, no contractions,
    impersonal, few exclamations). Chinese: characters per sentence and per clause, richness over characters,
    punctuation per 100 characters, favoured characters and two-character words; formality is not estimated."""
    language = language or language_of(texts)
    if language == "zh":
        return _traits_zh(texts)
    sentences = [s for text in texts for s in SENTENCE_END.split(text) if WORD.search(s)]
    lengths = [len(WORD.findall(s)) for s in sentences]
    per_sample = [[w.lower() for w in WORD.findall(text)] for text in texts]
    words = [w for tokens in per_sample for w in tokens]
    n = max(len(words), 1)
    joined = "\n".join(texts)
    per100 = {mark: round(100 * joined.count(mark) / n, 2) for mark in PUNCTUATION["en"] if joined.count(mark)}
    contractions = 100 * len(CONTRACTION.findall(joined)) / n
    personal = 100 * sum(w in PERSONAL for w in words) / n
    word_length = sum(len(w) for w in words) / n
    exclaiming = sum(s.rstrip("\"'”’) ").endswith("!") for s in sentences) / max(len(sentences), 1)
    parts = [
        _clamp((word_length - 3.8) / 1.6),  # 3.8 letters (chatty) .. 5.4 (academic)
        1 - _clamp(contractions / 5),  # 5 contractions per 100 words reads as speech
        1 - _clamp(personal / 10),  # 10 I/you/we per 100 words reads as a letter or a chat
        1 - _clamp(exclaiming * 3),  # a third of sentences shouting: informal
    ]
    return {
        "language": "en",
        "samples": len(texts),
        "words": len(words),
        "sentences": len(sentences),
        "words_per_sentence": round(statistics.fmean(lengths), 2) if lengths else 0.0,
        "words_per_sentence_sd": round(statistics.pstdev(lengths), 2) if lengths else 0.0,
        "word_length": round(word_length, 2),
        "lexical_richness": round(_mattr(words), 3),
        "punctuation_per_100_words": per100,
        "favoured_words": _favoured(per_sample, STOPWORDS | {w for w in words if len(w) < 3}),
        "contractions_per_100_words": round(contractions, 2),
        "personal_per_100_words": round(personal, 2),
        "questions": round(sum(s.rstrip("\"'”’) ").endswith("?") for s in sentences) / max(len(sentences), 1), 3),
        "exclamations": round(exclaiming, 3),
        "formality": round(sum(parts) / len(parts), 3),
    }


def _traits_zh(texts: Sequence[str]) -> dict[str, Any]:
    sentences = [s for text in texts for s in ZH_SENTENCE_END.split(text) if HAN.search(s)]
    clauses = [c for s in sentences for c in re.split(r"[，、,：:]", s) if HAN.search(c)]
    per_sample = [HAN.findall(text) for text in texts]
    chars = [c for cs in per_sample for c in cs]
    n = max(len(chars), 1)
    joined = "\n".join(texts)
    bigrams = [[a + b for a, b in zip(cs, cs[1:])] for cs in per_sample]
    lengths = [len(HAN.findall(s)) for s in sentences]
    return {
        "language": "zh",
        "samples": len(texts),
        "characters": len(chars),
        "sentences": len(sentences),
        "chars_per_sentence": round(statistics.fmean(lengths), 2) if lengths else 0.0,
        "chars_per_sentence_sd": round(statistics.pstdev(lengths), 2) if lengths else 0.0,
        "chars_per_clause": round(statistics.fmean(len(HAN.findall(c)) for c in clauses), 2) if clauses else 0.0,
        "lexical_richness": round(_mattr(chars), 3),
        "punctuation_per_100_chars": {
            mark: round(100 * joined.count(mark) / n, 2) for mark in PUNCTUATION["zh"] if joined.count(mark)
        },
        "favoured_characters": _favoured(per_sample, ZH_COMMON),
        "favoured_words": _favoured(bigrams, frozenset()),
        "formality": None,  # no estimate for Chinese (docs/personal.md)
    }


# ---------------------------------------------------------------- the two similarities


def ngram_counts(text: str) -> Counter:
    """Character n-grams (NGRAM_ORDERS) of the lower-cased text, whitespace runs as one space, padded."""
    padded = " " + " ".join(text.lower().split()) + " "
    counts: Counter = Counter()
    low, high = NGRAM_ORDERS
    for n in range(low, high + 1):
        counts.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    return counts


def ngram_vector(text: str) -> dict[str, float]:
    """Sublinear term frequencies (1 + log tf) of the text's n-grams, unit length."""
    weights = {gram: 1.0 + math.log(count) for gram, count in ngram_counts(text).items()}
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {gram: w / norm for gram, w in weights.items()}


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(gram, 0.0) for gram, w in a.items())


def _unit(total: Counter | dict[str, float], keep: int | None = None) -> dict[str, float]:
    items = Counter(total).most_common(keep)
    norm = math.sqrt(sum(w * w for _, w in items)) or 1.0
    return {gram: w / norm for gram, w in items}


def _embed(texts: Sequence[str]) -> Any:
    from inkwell.models.embedder import embed

    return embed(list(texts))


def _mean_unit(vectors: Any) -> Any:
    import numpy as np

    mean = np.asarray(vectors, dtype=np.float32).mean(0)
    return mean / (float(np.linalg.norm(mean)) or 1.0)


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, value))))


# ---------------------------------------------------------------- the profile


@dataclass
class StyleProfile:
    """A writer's style, stored as INKWELL_HOME/styles/NAME.json."""

    name: str
    language: str  # en | zh
    traits: dict[str, Any]
    exemplars: list[dict[str, str]]  # {"text", "topic"}, chosen for diversity
    ngrams: dict[str, float]  # the writer's character n-gram profile (unit length)
    embedding: list[float] | None  # the writer's mean sentence embedding (unit length); None for Chinese
    own_scores: dict[str, float] = field(default_factory=dict)  # the writer's own samples, each held out in turn
    sources: list[str] = field(default_factory=list)
    samples: int = 0
    adapter: str | None = None  # a LoRA trained on the samples (`style learn --train`)
    adapter_model: str | None = None  # the base model that adapter belongs to
    created: float = 0.0
    version: int = 1

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str) -> StyleProfile:
        try:
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except TypeError as exc:
            raise InkwellError(f"{where} is not a style profile ({exc})", field="style") from None


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InkwellError(
            f"style name '{name}' is not valid: use letters, digits, '-' and '_' (at most 64)", field="style"
        )
    return name


def styles_dir() -> Path:
    from inkwell.home import inkwell_home

    return inkwell_home() / "styles"


def profile_path(name: str) -> Path:
    return styles_dir() / f"{check_name(name)}.json"


def save_profile(profile: StyleProfile) -> Path:
    """Write the profile atomically (a reader never sees half a file)."""
    from inkwell.home import atomic_write

    path = profile_path(profile.name)
    with atomic_write(path) as handle:
        json.dump(profile.to_json(), handle, ensure_ascii=False, indent=1)
    return path


def load_profile(name: str) -> StyleProfile:
    """The stored profile, or an InkwellError naming the style (unknown, or not a readable profile)."""
    path = profile_path(name)
    if not path.is_file():
        known = list_profiles()
        listing = ", ".join(p["name"] for p in known) if known else "none yet"
        raise InkwellError(
            f"unknown style '{name}' (known: {listing}); learn one with: inkwell style learn {name} SAMPLES...",
            field="style",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InkwellError(f"style '{name}': {path} cannot be read ({exc})", field="style") from None
    if not isinstance(data, dict):
        raise InkwellError(f"style '{name}': {path} is not a style profile", field="style")
    profile = StyleProfile.from_json(data, str(path))
    if not profile.ngrams:
        raise InkwellError(f"style '{name}' is empty ({path} has no n-gram profile): learn it again", field="style")
    return profile


def list_profiles() -> list[dict[str, Any]]:
    """Name, language, samples, adapter and creation time of each stored profile (unreadable files skipped)."""
    folder = styles_dir()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "ngrams" in data:
            keys = ("name", "language", "samples", "adapter", "created")
            out.append({k: data.get(k) for k in keys})
    return out


def learn_profile(
    name: str,
    paths: Sequence[str | Path] | None = None,
    *,
    samples: Sequence[Sample] | None = None,
    exemplars=EXEMPLARS,
) -> StyleProfile:
    """A profile from at least MIN_SAMPLES texts (files/folders/JSONL in `paths`, or `samples`)."""
    check_name(name)
    given = list(samples) if samples is not None else read_samples(paths or [])
    where = ", ".join(str(p) for p in paths) if paths else "the samples given"
    if len(given) < MIN_SAMPLES:
        raise InkwellError(
            f"style '{name}' needs at least {MIN_SAMPLES} samples; {where} gave {len(given)}", field="samples"
        )
    texts = [s.text for s in given]
    language = language_of(texts)
    vectors = [ngram_vector(t) for t in texts]
    total: Counter = Counter()
    for v in vectors:
        total.update(v)
    embeddings = _embed(texts) if language == "en" else None
    center = _mean_unit(embeddings) if embeddings is not None else None
    chosen = choose_exemplars(texts, vectors, embeddings, exemplars)
    profile = StyleProfile(
        name=name,
        language=language,
        traits=traits_of(texts, language),
        exemplars=[
            {"text": given[i].text, "topic": given[i].topic or topic_of(given[i].text, language)} for i in chosen
        ],
        ngrams={g: round(w, 6) for g, w in _unit(total, PROFILE_NGRAMS).items()},
        embedding=[round(float(x), 6) for x in center] if center is not None else None,
        sources=sorted({s.source.rsplit(":", 1)[0] for s in given if s.source}),
        samples=len(given),
        created=time.time(),
    )
    profile.own_scores = _own_scores(profile, vectors, total, embeddings)
    return profile


def _own_scores(profile: StyleProfile, vectors: list[dict], total: Counter, embeddings: Any) -> dict[str, float]:
    """Each sample scored against the profile of the other samples: what "sounds like this writer" scores.
    Leave-one-out in closed form: cos(v, T - v) = (v.T - 1) / |T - v|, with |T - v|^2 = |T|^2 - 2 v.T + 1."""
    import numpy as np

    squared = sum(w * w for w in total.values())
    summed = np.asarray(embeddings, dtype=np.float32).sum(0) if embeddings is not None else None
    scores = []
    for i, v in enumerate(vectors):
        dot = sum(w * total[g] for g, w in v.items())
        ngram = (dot - 1.0) / (math.sqrt(max(squared - 2 * dot + 1.0, 1e-12)))
        meaning = None
        if summed is not None:
            other = summed - embeddings[i]
            meaning = float(embeddings[i] @ other) / (float(np.linalg.norm(other)) or 1.0)
        scores.append(calibrated(ngram, meaning, profile.language))
    return {
        "median": round(statistics.median(scores), 3),
        "low": round(sorted(scores)[len(scores) // 10], 3),  # the 10th percentile
    }


def topic_of(text: str, language: str) -> str:
    """What a sample is about, for its few-shot example's request: a short Chinese first line (a title), else its
    first characters; English: its three most used content words, in the order they appear."""
    if language == "zh":
        first = text.strip().splitlines()[0].strip("《》 ")
        return first if len(first) <= 12 and "\n" in text.strip() else "".join(HAN.findall(text))[:8]
    words = [w.lower() for w in WORD.findall(text)]
    counts = Counter(w for w in words if w not in STOPWORDS and w not in GENERIC and len(w) > 3 and "'" not in w)
    top = set(sorted(counts, key=lambda w: (-counts[w], -len(w)))[:3])  # the most used, longer words first
    picked = list(dict.fromkeys(w for w in words if w in top))
    if not picked:
        return " ".join(text.split()[:6])
    return picked[0] if len(picked) == 1 else ", ".join(picked[:-1]) + " and " + picked[-1]


def choose_exemplars(texts: Sequence[str], vectors: list[dict], embeddings: Any, keep: int = EXEMPLARS) -> list[int]:
    """Indices of `keep` samples, typical of the writer yet unlike each other (maximal marginal relevance over
    embeddings, or over n-gram vectors when there are none): the most central sample first, then each next one
    maximising (1 - DIVERSITY) * closeness to the centre - DIVERSITY * closeness to the nearest one chosen.
    Samples longer than MAX_EXEMPLAR_CHARS are used only when there are not enough shorter ones."""
    import numpy as np

    if embeddings is not None:
        matrix = np.asarray(embeddings, dtype=np.float32)
    else:
        grams = sorted({g for v in vectors for g in v})
        column = {g: j for j, g in enumerate(grams)}
        matrix = np.zeros((len(vectors), len(grams)), dtype=np.float32)
        for i, v in enumerate(vectors):
            for g, w in v.items():
                matrix[i, column[g]] = w
    pairwise = matrix @ matrix.T
    central = matrix @ _mean_unit(matrix)
    order = [i for i in range(len(texts)) if len(texts[i]) <= MAX_EXEMPLAR_CHARS]
    pool = order if len(order) >= keep else list(range(len(texts)))
    chosen = [max(pool, key=lambda i: central[i])]
    while len(chosen) < min(keep, len(pool)):
        rest = [i for i in pool if i not in chosen]
        chosen.append(
            max(rest, key=lambda i: (1 - DIVERSITY) * central[i] - DIVERSITY * max(pairwise[i, j] for j in chosen))
        )
    return chosen


# ---------------------------------------------------------------- the score


@dataclass
class StyleMatch:
    """How close a text comes to a profile: `score` 0..1 (calibrated), and the two similarities behind it."""

    score: float
    ngram: float
    embedding: float | None

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def calibrated(ngram: float, embedding: float | None, language: str) -> float:
    bias, w_ngram, w_embedding = CALIBRATION.get(language, CALIBRATION["en"])
    return _sigmoid(bias + w_ngram * ngram + w_embedding * (embedding or 0.0))


def style_match(texts: Sequence[str], profile: StyleProfile, embeddings: Any = None) -> list[StyleMatch]:
    """The style-match score of each text against the profile (an empty text scores 0). `embeddings`: the
    texts' embeddings when the caller has them (scoring one text against many profiles embeds it once)."""
    meanings: list[float | None] = [None] * len(texts)
    if profile.embedding is not None and texts:
        import numpy as np

        vectors = embeddings if embeddings is not None else _embed([t if t.strip() else " " for t in texts])
        meanings = [float(x) for x in np.asarray(vectors) @ np.asarray(profile.embedding, dtype=np.float32)]
    out = []
    for text, meaning in zip(texts, meanings):
        if not text.strip():
            out.append(StyleMatch(0.0, 0.0, meaning))
            continue
        ngram = cosine(ngram_vector(text), profile.ngrams)
        out.append(StyleMatch(calibrated(ngram, meaning, profile.language), ngram, meaning))
    return out


def nearest_style(texts: Sequence[str], profiles: Sequence[StyleProfile]) -> list[tuple[str, list[float]]]:
    """Per text: the profile it matches best (authorship attribution) and its score against each profile."""
    embeddings = _embed([t if t.strip() else " " for t in texts]) if any(p.embedding for p in profiles) else None
    table = [style_match(texts, p, embeddings if p.embedding is not None else None) for p in profiles]
    out = []
    for i in range(len(texts)):
        scores = [row[i].score for row in table]
        out.append((profiles[max(range(len(profiles)), key=scores.__getitem__)].name, scores))
    return out


# ---------------------------------------------------------------- exemplars in a prompt


def best_exemplars(profile: StyleProfile, request: str, k: int = SHOTS) -> list[dict[str, str]]:
    """The k exemplars closest to the request (embeddings for English, character n-grams for Chinese)."""
    exemplars = profile.exemplars
    if len(exemplars) <= k or not request.strip():
        return exemplars[:k]
    if profile.embedding is not None:
        vectors = _embed([request] + [e["text"] for e in exemplars])
        closeness = [float(x) for x in vectors[1:] @ vectors[0]]
    else:
        query = ngram_vector(request)
        closeness = [cosine(query, ngram_vector(e["text"])) for e in exemplars]
    ranked = sorted(range(len(exemplars)), key=lambda i: -closeness[i])[:k]
    return [exemplars[i] for i in sorted(ranked)]  # in the profile's order: the most typical first


def style_shots(profile: StyleProfile, template: Any, fields: dict) -> list:
    """The best-matching exemplars as few-shot examples of the template: each is the request with the template's
    main free-text field (`topic`, else its first required free-text field) set to the exemplar's topic, and
    the exemplar as the output. They reach the prompt as --shots do (prompts/render.py)."""
    from inkwell.prompts.template import Example

    main = next(
        (
            name
            for name, spec in template.fields.items()
            if name == "topic" or (spec.required and spec.type == "str" and not spec.choices)
        ),
        None,
    )
    request = " ".join(str(v) for k, v in fields.items() if isinstance(v, str) and template.fields[k].choices is None)
    shots = []
    for exemplar in best_exemplars(profile, request):
        shot_fields = dict(fields)
        if main is not None:
            shot_fields[main] = exemplar.get("topic") or topic_of(exemplar["text"], profile.language)
        shots.append(Example(fields=shot_fields, output=exemplar["text"]))
    return shots


def style_steps(
    name: str, prepare: Callable, write: Callable, adapter: str | None, model: str | None, say: Callable[[str], None]
) -> tuple[Callable, Callable, str | None]:
    """`inkwell write --style NAME`: (prepare, write, adapter) wrapping generate.jobs' prepare_write and write_job
    (or their --data versions). prepare adds the profile's best-matching exemplars to the job's shots (after any
    --shots); write scores each version (record.extra["style"], which --json prints) and says the score on
    standard error; the adapter is the profile's LoRA when it has one for this model and --adapter is not given."""
    from inkwell.generate.jobs import TemplateJob

    profile = load_profile(name)

    def styled_prepare(*args: Any, **kwargs: Any) -> Any:
        job = prepare(*args, **kwargs)
        inner = job if isinstance(job, TemplateJob) else job.job  # a --data FactsJob wraps its TemplateJob
        inner.shots = [*(inner.shots or []), *style_shots(profile, inner.template, inner.fields)]
        return job

    def styled_write(engine: Any, job: Any, **kwargs: Any) -> Any:
        outcome = write(engine, job, **kwargs)
        matches = style_match([record.text for record in outcome.records], profile)
        for index, (record, match) in enumerate(zip(outcome.records, matches)):
            record.extra["style"] = {"name": profile.name, **match.to_json()}
            version = f" (version {index + 1})" if len(outcome.records) > 1 else ""
            say(f"style '{profile.name}' match{version}: {describe(match, profile)}")
        return outcome

    return styled_prepare, styled_write, style_adapter(profile, adapter, model, say)


def describe(match: StyleMatch, profile: StyleProfile) -> str:
    """One line: the score, its two parts, and what the writer's own samples score."""
    parts = f"n-grams {match.ngram:.2f}" + (f", meaning {match.embedding:.2f}" if match.embedding is not None else "")
    own = profile.own_scores.get("median")
    return f"{match.score:.2f} ({parts})" + (f"; the writer's own samples: {own:.2f}" if own is not None else "")


def style_adapter(profile: StyleProfile, adapter: str | None, model: str | None, say: Callable[[str], None]):
    """The adapter to write with: --adapter when given, else the profile's LoRA when it fits the model."""
    if adapter is not None or profile.adapter is None:
        return adapter
    if model is not None and model != profile.adapter_model:
        say(f"note: style '{profile.name}' has a LoRA for {profile.adapter_model}, not {model}: exemplars only")
        return None
    if not Path(profile.adapter).is_dir():
        say(f"warning: style '{profile.name}': its LoRA folder {profile.adapter} is missing; exemplars only")
        return None
    return profile.adapter


# ---------------------------------------------------------------- a LoRA per style (`style learn --train`)

LORA_STEPS = 60  # about five minutes on two CPU cores for SmolLM2-135M (8 rows a step)
# configs/smollm2-lora-sft.yaml's method and settings; no validation split (the samples are few), no checkpoints
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
LORA_TRAINING = {
    "batch_size": 4,
    "grad_accum": 2,
    "lr": 2e-4,
    "schedule": "cosine",
    "warmup_ratio": 0.1,
    "max_grad_norm": 1.0,
    "max_length": 384,
    "seed": 42,
    "progress": True,
}


def training_rows(samples: Sequence[Sample], language: str) -> list[dict]:
    """SFT rows from the samples: a neutral request naming the text's topic, and the text as the answer."""
    rows = []
    for sample in samples:
        topic = sample.topic or topic_of(sample.text, language)
        ask = f"写一段关于「{topic}」的文字。" if language == "zh" else f"Write a short piece about {topic}."
        rows.append({"messages": [{"role": "user", "content": ask}, {"role": "assistant", "content": sample.text}]})
    return rows


def train_style_lora(
    profile: StyleProfile,
    samples: Sequence[Sample],
    *,
    steps: int = LORA_STEPS,
    model: str = "smollm2-135m-instruct",
    say: Callable[[str], None] = print,
) -> StyleProfile:
    """Fit a LoRA on the samples with the SFT recipe (LORA, LORA_TRAINING; the rows as chat messages) into INKWELL_HOME/styles/NAME/lora, and record it in the profile (not saved here)."""
    import yaml

    from inkwell.home import atomic_write
    from inkwell.train import train

    folder = styles_dir() / profile.name
    rows = folder / "train.jsonl"
    with atomic_write(rows) as handle:
        for row in training_rows(samples, profile.language):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    config = {
        "stage": "sft",
        "model": model,
        "output": str(folder / "lora"),
        "data": {"train": str(rows), "format": "messages"},
        "method": "lora",
        "lora": LORA,
        "training": {**LORA_TRAINING, "max_steps": steps},
    }
    path = folder / "lora.yaml"
    with atomic_write(path) as handle:
        handle.write(f"# inkwell train {path}\n# the LoRA of style '{profile.name}' (inkwell style learn --train)\n")
        yaml.safe_dump(config, handle, sort_keys=False, allow_unicode=True)
    run = train(path, say=say)
    profile.adapter, profile.adapter_model = str(run.out), model
    return profile
