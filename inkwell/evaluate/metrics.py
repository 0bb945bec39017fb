"""Metric functions: predictions (and references) in, numbers out.

Two layers. The plain functions (`corpus_bleu`, `rouge`, `distinct_n`, `self_bleu_scores`, ...) take lists of
strings and return numbers; use them from Python. The registry `METRICS` maps a metric name (what
`--metrics` accepts) to a function `(predictions, references, ctx) -> list[Score]`: a Score carries the value,
its scale, per-example values for the side-by-side tables, and the per-example sufficient statistics the
bootstrap needs for a confidence interval (see `stats`).

Scales follow the libraries: BLEU and chrF 0-100 (sacrebleu), ROUGE F-measures 0-1 (rouge-score).
Nothing here loads a generation model; perplexity arrives precomputed in `ctx.nll` (see `perplexity`).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inkwell.errors import InkwellError
from inkwell.evaluate.stats import Reduce, mean_reduce, ratio_reduce
from inkwell.evaluate.text import CJKRougeTokenizer, ngrams, word_tokens

DEFAULT_COPY_THRESHOLD = 12  # tokens copied in a row that count as memorised
DEFAULT_REPEAT_N = 3
OTHER_LABEL = "(other)"


@dataclass
class Score:
    """One number a metric produces, with what the report and the bootstrap need to know about it."""

    name: str
    value: float
    scale: str  # "0-100" | "0-1" | "cosine" | "tokens" | "ratio" | "ppl"
    higher_is_better: bool | None = None
    stats: np.ndarray | None = None  # n x k per-example sufficient statistics (None: no interval)
    reduce: Reduce | None = None  # column sums (+ n) -> the value
    per_example: list[float] | None = None  # shown beside each example
    extra: dict | None = None  # e.g. a confusion matrix
    note: str = ""


@dataclass
class MetricContext:
    """What some metrics need beyond predictions and references."""

    lang: str = "en"  # "en" | "zh": BLEU tokenizer, ROUGE tokenizer
    keywords: list[list[str]] | None = None  # required terms per example
    schema: dict | None = None  # JSON Schema for structured outputs
    corpus_index: Any = None  # memorisation.CorpusIndex
    copy_threshold: int = DEFAULT_COPY_THRESHOLD
    repeat_n: int = DEFAULT_REPEAT_N
    nll: list[tuple[float, int]] | None = None  # per example (sum of NLL, scored tokens), from a model
    embedder: Any = None  # a loaded SentenceTransformer (else loaded on first use)


MetricFn = Callable[[Sequence[str], Sequence[str] | None, MetricContext], list[Score]]


# ---------------------------------------------------------------- BLEU / chrF (sacrebleu)


def _bleu_metric(lang: str, sentence: bool = False):
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize="zh" if lang == "zh" else "13a", effective_order=sentence)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str], lang: str = "en") -> float:
    """sacrebleu corpus BLEU (0-100), its `zh` tokenizer for Chinese, 13a otherwise."""
    return float(_bleu_metric(lang).corpus_score(list(predictions), [list(references)]).score)


def corpus_chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu chrF (0-100); character n-grams, so it needs no tokenizer for Chinese."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().corpus_score(list(predictions), [list(references)]).score)


def _sacrebleu_scores(name: str, metric, sentence_metric, preds, refs) -> Score:
    # Per-sentence sufficient statistics summed = the corpus score (what sacrebleu's own paired bootstrap
    # does), so resampling rows needs no re-tokenising.
    stats = np.asarray(metric._extract_corpus_statistics(list(preds), [list(refs)]), dtype=np.float64)
    value = float(metric._compute_score_from_stats(stats.sum(0).tolist()).score) if len(stats) else 0.0
    per_example = [float(sentence_metric._compute_score_from_stats(row.tolist()).score) for row in stats]
    reduce = lambda sums, n: float(metric._compute_score_from_stats(sums.tolist()).score)  # noqa: E731
    return Score(name, value, "0-100", True, stats=stats, reduce=reduce, per_example=per_example)


def _bleu(preds, refs, ctx: MetricContext) -> list[Score]:
    score = _sacrebleu_scores("bleu", _bleu_metric(ctx.lang), _bleu_metric(ctx.lang, sentence=True), preds, refs)
    return [score]


def _chrf(preds, refs, ctx: MetricContext) -> list[Score]:
    from sacrebleu.metrics import CHRF

    return [_sacrebleu_scores("chrf", CHRF(), CHRF(), preds, refs)]


# ---------------------------------------------------------------- ROUGE (rouge-score)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge_per_example(
    predictions: Sequence[str], references: Sequence[str], lang: str = "en"
) -> dict[str, list[float]]:
    """rouge-score F-measures per example (0-1). English: rouge-score's own tokenizer, no stemming (its
    defaults). Chinese: one token per character, because the default tokenizer drops all CJK text."""
    from rouge_score import rouge_scorer

    tokenizer = CJKRougeTokenizer() if lang == "zh" else None
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False, tokenizer=tokenizer)
    out: dict[str, list[float]] = {k: [] for k in ROUGE_TYPES}
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for key in ROUGE_TYPES:
            out[key].append(float(scores[key].fmeasure))
    return out


def rouge(predictions: Sequence[str], references: Sequence[str], lang: str = "en") -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure over the examples (0-1)."""
    per = rouge_per_example(predictions, references, lang)
    return {k: float(np.mean(v)) if v else 0.0 for k, v in per.items()}


def _mean_score(name: str, values: Sequence[float], scale: str, higher: bool | None, note: str = "") -> Score:
    arr = np.asarray(values, dtype=np.float64)
    value = float(arr.mean()) if len(arr) else float("nan")
    return Score(
        name,
        value,
        scale,
        higher,
        stats=arr[:, None],
        reduce=mean_reduce,
        per_example=[float(v) for v in arr],
        note=note,
    )


def _rouge(preds, refs, ctx: MetricContext) -> list[Score]:
    per = rouge_per_example(preds, refs, ctx.lang)
    return [_mean_score(key, per[key], "0-1", True) for key in ROUGE_TYPES]


# ---------------------------------------------------------------- diversity and repetition


def distinct_n(predictions: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / all n-grams over all outputs together (0-1)."""
    counts: Counter = Counter()
    for text in predictions:
        counts.update(ngrams(word_tokens(text), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def _distinct(preds, refs, ctx: MetricContext) -> list[Score]:
    # A set statistic over the whole output set: resampling with replacement duplicates outputs and biases
    # it down, so it gets no bootstrap interval.
    note = "corpus-level set statistic: no bootstrap interval"
    return [Score(f"distinct{n}", distinct_n(preds, n), "0-1", True, note=note) for n in (1, 2)]


def repeated_ngram_rate(text: str, n: int = DEFAULT_REPEAT_N) -> float:
    """Share of an output's n-grams that repeat an n-gram already seen in the same output (0 = no loops)."""
    grams = ngrams(word_tokens(text), n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def _repetition(preds, refs, ctx: MetricContext) -> list[Score]:
    values = [repeated_ngram_rate(p, ctx.repeat_n) for p in preds]
    return [_mean_score("repeated_ngram_rate", values, "0-1", False, note=f"n = {ctx.repeat_n}")]


def self_bleu_scores(predictions: Sequence[str], lang: str = "en") -> list[float]:
    """Self-BLEU (Zhu et al. 2018): each output's sentence BLEU (sacrebleu's, exp smoothing) against all the
    other outputs as references; high means the outputs look alike.

    Hand-written counting, because calling sacrebleu once per output with n-1 references re-extracts every
    reference's n-grams each time (O(n^2)); here each n-gram's two largest counts across outputs give its
    clipping count for every hypothesis at once. The BLEU formula itself is sacrebleu's `compute_bleu`."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    metric = _bleu_metric(lang)
    if len(predictions) < 2:
        return []
    grams, lengths = [], []
    for text in predictions:
        counter, length = extract_all_word_ngrams(metric._preprocess_segment(text), 1, 4)
        grams.append(counter)
        lengths.append(length)
    top: dict[tuple, list] = {}  # n-gram -> [best count, owner, second best count]
    for owner, counter in enumerate(grams):
        for gram, count in counter.items():
            entry = top.get(gram)
            if entry is None:
                top[gram] = [count, owner, 0]
            elif count > entry[0]:
                entry[2], entry[0], entry[1] = entry[0], count, owner
            elif count > entry[2]:
                entry[2] = count
    length_counts = Counter(lengths)
    scores = []
    for index, counter in enumerate(grams):
        correct, total = [0] * 4, [0] * 4
        for gram, count in counter.items():
            best, owner, second = top[gram]
            limit = second if owner == index else best
            order = len(gram) - 1
            total[order] += count
            correct[order] += min(count, limit)
        hyp_len = lengths[index]
        others = length_counts.copy()
        others[hyp_len] -= 1
        ref_len = min(
            (length for length, c in others.items() if c > 0), key=lambda length: (abs(hyp_len - length), length)
        )
        score = BLEU.compute_bleu(correct, total, hyp_len, ref_len, smooth_method="exp", effective_order=True)
        scores.append(float(score.score))
    return scores


def self_bleu(predictions: Sequence[str], lang: str = "en") -> float:
    scores = self_bleu_scores(predictions, lang)
    return float(np.mean(scores)) if scores else float("nan")


def _self_bleu(preds, refs, ctx: MetricContext) -> list[Score]:
    values = self_bleu_scores(preds, ctx.lang)
    if not values:
        return [Score("self_bleu", float("nan"), "0-100", False, note="needs at least two outputs")]
    return [_mean_score("self_bleu", values, "0-100", False)]


# ---------------------------------------------------------------- length


def length_stats(predictions: Sequence[str]) -> dict[str, float]:
    """Output length in word tokens (CJK: characters): mean, median, std, min, max."""
    lengths = np.asarray([len(word_tokens(p)) for p in predictions], dtype=np.float64)
    if not len(lengths):
        return {}
    return {
        "mean": float(lengths.mean()),
        "median": float(np.median(lengths)),
        "std": float(lengths.std()),
        "min": float(lengths.min()),
        "max": float(lengths.max()),
    }


def _length(preds, refs, ctx: MetricContext) -> list[Score]:
    lengths = [len(word_tokens(p)) for p in preds]
    summary = length_stats(preds)
    scores = [_mean_score("length_mean", lengths, "tokens", None)]
    scores += [Score(f"length_{k}", v, "tokens", None) for k, v in summary.items() if k != "mean"]
    if refs is not None:
        ref_lengths = [len(word_tokens(r)) for r in refs]
        stats = np.asarray([lengths, ref_lengths], dtype=np.float64).T
        total_ref = stats[:, 1].sum()
        value = float(stats[:, 0].sum() / total_ref) if total_ref else float("nan")
        per = [p / r if r else float("nan") for p, r in zip(lengths, ref_lengths)]
        scores.append(
            Score(
                "length_ratio",
                value,
                "ratio",
                None,
                stats=stats,
                reduce=ratio_reduce,
                per_example=per,
                note="output tokens / reference tokens",
            )
        )
    return scores


# ---------------------------------------------------------------- keywords, JSON, classification


def keyword_coverage(text: str, keywords: Sequence[str]) -> float:
    """Share of the required terms found in the text (case-insensitive substring match; 1.0 if none)."""
    terms = [k for k in (str(k).strip() for k in keywords) if k]
    if not terms:
        return 1.0
    folded = text.casefold()
    return sum(term.casefold() in folded for term in terms) / len(terms)


def _keywords(preds, refs, ctx: MetricContext) -> list[Score]:
    if ctx.keywords is None:
        raise InkwellError(
            "metric 'keywords' needs the required terms: a 'keywords' column (a list or "
            "comma-separated text) in the data",
            field="keywords",
        )
    values = [keyword_coverage(p, k) for p, k in zip(preds, ctx.keywords)]
    return [_mean_score("keyword_coverage", values, "0-1", True)]


def json_validity(text: str, schema: dict | None = None) -> tuple[bool, bool | None]:
    """(the output holds a JSON value, it matches the schema [None without one]). The JSON is found the way
    structured templates find it: fenced or embedded in prose is accepted."""
    from inkwell.generate.content import extract_json, validate_output

    try:
        extract_json(text)
    except ValueError:
        return False, (False if schema is not None else None)
    if schema is None:
        return True, None
    _value, problem = validate_output(text, schema)
    return True, problem is None


def _json(preds, refs, ctx: MetricContext) -> list[Score]:
    checks = [json_validity(p, ctx.schema) for p in preds]
    scores = [_mean_score("json_valid", [float(c[0]) for c in checks], "0-1", True)]
    if ctx.schema is not None:
        scores.append(_mean_score("schema_valid", [float(bool(c[1])) for c in checks], "0-1", True))
    return scores


def normalise_label(text: str) -> str:
    return " ".join(text.strip().strip(".!。！\"'`").casefold().split())


def predicted_label(prediction: str, labels: Sequence[str]) -> str:
    """The label a free-text prediction names: an exact (normalised) match, else the only label that appears
    in it as a word, else OTHER_LABEL."""
    import re

    norm = normalise_label(prediction)
    if norm in labels:
        return norm
    found = [label for label in labels if re.search(rf"(?<!\w){re.escape(label)}(?!\w)", norm)]
    return found[0] if len(found) == 1 else OTHER_LABEL


def _prf(matrix: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """(accuracy, macro precision, recall, F1) from a confusion matrix whose first k rows/columns are the
    reference labels (the last column may be OTHER_LABEL); zero_division=0 like scikit-learn."""
    tp = np.diag(matrix)[:k]
    predicted = matrix[:, :k].sum(0)
    actual = matrix[:k, :].sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1e-12), 0.0)
        recall = np.where(actual > 0, tp / np.maximum(actual, 1e-12), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    total = matrix.sum()
    accuracy = float(tp.sum() / total) if total else float("nan")
    return accuracy, float(precision.mean()), float(recall.mean()), float(f1.mean())


def classification_report(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro precision / recall / F1 (scikit-learn) over the reference labels, and the
    confusion matrix (rows: reference, columns: predicted; a last column for unrecognised answers)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = sorted({normalise_label(r) for r in references})
    y_true = [normalise_label(r) for r in references]
    y_pred = [predicted_label(p, labels) for p in predictions]
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    columns = labels + [OTHER_LABEL]
    matrix = confusion_matrix(y_true, y_pred, labels=columns)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "labels": labels,
        "columns": columns,
        "confusion_matrix": matrix[: len(labels)].tolist(),
        "y_true": y_true,
        "y_pred": y_pred,
    }


def _classification(preds, refs, ctx: MetricContext) -> list[Score]:
    report = classification_report(preds, refs)
    columns, k = report["columns"], len(report["labels"])
    width = len(columns)
    index = {label: i for i, label in enumerate(columns)}
    stats = np.zeros((len(preds), width * width))  # one-hot confusion cell per example: sums to the matrix
    for row, (t, p) in enumerate(zip(report["y_true"], report["y_pred"])):
        stats[row, index[t] * width + index[p]] = 1
    extra = {"labels": report["labels"], "columns": columns, "confusion_matrix": report["confusion_matrix"]}
    correct = [float(t == p) for t, p in zip(report["y_true"], report["y_pred"])]
    scores = []
    for position, name in enumerate(("accuracy", "precision", "recall", "f1")):
        reduce = lambda sums, n, position=position: _prf(sums.reshape(width, width), k)[position]  # noqa: E731
        scores.append(
            Score(
                name,
                report[name],
                "0-1",
                True,
                stats=stats,
                reduce=reduce,
                per_example=correct if name == "accuracy" else None,
                extra=extra if name == "accuracy" else None,
                note="" if name == "accuracy" else "macro average over the reference labels",
            )
        )
    return scores


# ---------------------------------------------------------------- model- and corpus-based


def _perplexity(preds, refs, ctx: MetricContext) -> list[Score]:
    if ctx.nll is None:
        raise InkwellError(
            "metric 'perplexity' needs a model to score the references",
            field="metrics",
            hint="use `inkwell eval` (it scores each system's model), or leave perplexity out",
        )
    stats = np.asarray(ctx.nll, dtype=np.float64).reshape(-1, 2)
    total_nll, tokens = stats[:, 0].sum(), stats[:, 1].sum()
    value = float(np.exp(total_nll / tokens)) if tokens else float("nan")
    per = [float(np.exp(a / b)) if b else float("nan") for a, b in stats]
    reduce = lambda sums, n: float(np.exp(sums[0] / sums[1])) if sums[1] else float("nan")  # noqa: E731
    return [
        Score(
            "perplexity",
            value,
            "ppl",
            False,
            stats=stats,
            reduce=reduce,
            per_example=per,
            note="token-weighted, of the reference given the prompt, in the system's own tokens "
            "(compare systems that share a tokenizer)",
        )
    ]


def _semantic(preds, refs, ctx: MetricContext) -> list[Score]:
    from inkwell.models.embedder import similarity

    values = similarity(preds, refs, model=ctx.embedder)
    note = "all-MiniLM-L6-v2 cosine; an English model" + (": unreliable on Chinese" if ctx.lang == "zh" else "")
    return [_mean_score("semantic_similarity", values, "cosine", True, note=note)]


def _memorisation(preds, refs, ctx: MetricContext) -> list[Score]:
    if ctx.corpus_index is None:
        raise InkwellError(
            "metric 'memorisation' needs the training corpus",
            field="corpus",
            hint="pass --corpus FILE (JSONL with a text field, or plain text)",
        )
    spans = ctx.corpus_index.longest_spans(preds)
    lengths = [float(s.length) for s in spans]
    copied = [float(s.length >= ctx.copy_threshold) for s in spans]
    note = f"spans in word tokens (CJK: characters), case-folded; memorised = copies >= {ctx.copy_threshold} in a row"
    return [
        Score("copied_span_max", float(max(lengths)) if lengths else 0.0, "tokens", False),
        _mean_score("copied_span_mean", lengths, "tokens", False),
        _mean_score("memorised_share", copied, "0-1", False, note=note),
    ]


# ---------------------------------------------------------------- the registry

METRICS: dict[str, MetricFn] = {
    "bleu": _bleu,
    "chrf": _chrf,
    "rouge": _rouge,
    "semantic": _semantic,
    "perplexity": _perplexity,
    "length": _length,
    "distinct": _distinct,
    "self_bleu": _self_bleu,
    "repetition": _repetition,
    "keywords": _keywords,
    "json": _json,
    "classification": _classification,
    "memorisation": _memorisation,
}
NEEDS_REFERENCES = {"bleu", "chrf", "rouge", "semantic", "perplexity", "classification"}
ALIASES = {
    "rouge1": "rouge",
    "rouge2": "rouge",
    "rougel": "rouge",
    "rouge-l": "rouge",
    "sacrebleu": "bleu",
    "distinct1": "distinct",
    "distinct2": "distinct",
    "distinct-n": "distinct",
    "self-bleu": "self_bleu",
    "selfbleu": "self_bleu",
    "ppl": "perplexity",
    "semantic_similarity": "semantic",
    "similarity": "semantic",
    "keyword_coverage": "keywords",
    "json_valid": "json",
    "schema": "json",
    "accuracy": "classification",
    "f1": "classification",
    "memorization": "memorisation",
    "copy": "memorisation",
    "repeated_ngram_rate": "repetition",
    "lengths": "length",
}
DEFAULT_SCORE_METRICS = ["bleu", "chrf", "rouge", "length", "distinct", "self_bleu", "repetition"]
DEFAULT_EVAL_METRICS = [
    "bleu",
    "chrf",
    "rouge",
    "semantic",
    "perplexity",
    "length",
    "distinct",
    "self_bleu",
    "repetition",
]


def resolve_metrics(names: Sequence[str] | str | None, default: Sequence[str] = DEFAULT_SCORE_METRICS) -> list[str]:
    """Registry names from what the user typed (comma lists, aliases); unknown names are an error."""
    if isinstance(names, str):
        names = [names]
    wanted: list[str] = []
    for chunk in names or []:
        for raw in str(chunk).split(","):
            name = raw.strip().lower().replace(" ", "")
            if not name:
                continue
            key = name if name in METRICS else ALIASES.get(name, ALIASES.get(name.replace("-", "_")))
            if key is None and name.replace("-", "_") in METRICS:
                key = name.replace("-", "_")
            if key is None:
                close = difflib.get_close_matches(name, list(METRICS) + list(ALIASES), n=1)
                hint = (f"did you mean '{close[0]}'? " if close else "") + f"known metrics: {', '.join(METRICS)}"
                raise InkwellError(f"unknown metric '{raw.strip()}'", field="metrics", hint=hint)
            if key not in wanted:
                wanted.append(key)
    return wanted or list(default)


def compute_metrics(
    names: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[str] | None,
    ctx: MetricContext | None = None,
) -> list[Score]:
    """Run the named registry metrics; checks that reference metrics have references of the same length."""
    ctx = ctx or MetricContext()
    if references is not None and len(references) != len(predictions):
        raise InkwellError(f"{len(predictions)} predictions but {len(references)} references: they pair one to one")
    scores: list[Score] = []
    for name in names:
        if name in NEEDS_REFERENCES and references is None:
            raise InkwellError(
                f"metric '{name}' compares against references", field="metrics", hint="pass --ref refs.jsonl"
            )
        scores.extend(METRICS[name](list(predictions), None if references is None else list(references), ctx))
    return scores
