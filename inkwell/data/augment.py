"""`inkwell data augment`: more training rows from the ones you have, each marked as augmented.

Methods
  synonym         English words swapped for WordNet synonyms (offline, `inkwell.data.wordnet`)
  paraphrase      the model rewrites the text in other words (an Engine passed in by the caller)
  back-translate  the model translates to a pivot language (English <-> Chinese) and back

Only the *input side* of a row is rewritten (text; alpaca instruction and input; the prompt; user messages),
so targets stay what a person wrote. Every new row carries
    "augmented": {"method": ..., "source": <16-hex key of the source row's text>, "variant": i}
so evaluation can drop augmented rows and `split` keeps each one in the same split as its source.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.data.dedup import exact_key
from inkwell.data.rows import (
    JsonlSink,
    _get,
    _set,
    check_output,
    content_fields,
    content_text,
    detect_schema,
    read_jsonl,
)
from inkwell.data.text import detect_language
from inkwell.errors import InkwellError

METHODS = ("synonym", "paraphrase", "back-translate")

# Hand-written: nltk's stopword list needs an nltk_data download. Function words carry grammar, not meaning,
# and their WordNet "synonyms" are nonsense ("a" -> "angstrom").
STOPWORDS = frozenset(
    """
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves one two get got make made like well even
""".split()
)
_WORD = re.compile(r"(?<![\w'-])[A-Za-z]{4,}(?![\w'-])")


def source_key(record: dict, schema: str | None) -> str:
    return f"{exact_key(content_text(record, schema)):016x}"


def mark(record: dict, method: str, source: str, variant: int, **extra: Any) -> dict:
    out = dict(record)
    out.pop("id", None)  # an augmented row is a new row; do not duplicate its source's id
    out["augmented"] = {"method": method, "source": source, "variant": variant, **extra}
    return out


def _match_case(original: str, replacement: str) -> str:
    if original.isupper():
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def synonym_replace(text: str, wordnet, rng: random.Random, rate: float = 0.15) -> tuple[str, int]:
    """Replace about `rate` of the eligible words (4+ letters, not function words, with a synonym)."""
    changes = 0

    def swap(match: re.Match) -> str:
        nonlocal changes
        word = match.group()
        if word.lower() in STOPWORDS or rng.random() >= rate:
            return word
        options = wordnet.synonyms(word.lower())
        if not options:
            return word
        changes += 1
        return _match_case(word, rng.choice(options[:4]))

    return _WORD.sub(swap, text), changes


@dataclass
class AugmentReport:
    rows: int = 0
    written: int = 0
    augmented: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows without a variant
    invalid: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "written": self.written,
            "augmented": self.augmented,
            "skipped": self.skipped,
            "invalid": len(self.invalid),
        }


# ------------------------------------------------------------------ the command


def augment_file(
    inp: str | Path,
    out: str | Path,
    *,
    method: str = "synonym",
    n: int = 1,
    rate: float = 0.15,
    seed: int = 0,
    keep_original: bool = True,
    rewrite: Callable[..., list[str | None]] | None = None,
    batch_size: int = 16,
    wordnet=None,
    progress: bool = True,
) -> AugmentReport:
    if method not in METHODS:
        raise InkwellError(
            f"unknown augmentation method '{method}'", field="method", hint=f"use one of {', '.join(METHODS)}"
        )
    if n < 1:
        raise InkwellError("--n must be at least 1", field="n")
    if not 0 < rate <= 1:
        raise InkwellError(f"--rate {rate} must be in (0, 1]", field="rate")
    if method != "synonym" and rewrite is None:
        raise InkwellError(
            f"method '{method}' needs a model", field="model", hint="pass --model (or use --method synonym)"
        )
    check_output(Path(inp), Path(out))
    if method == "synonym" and wordnet is None:
        from inkwell.data.wordnet import WordNet

        wordnet = WordNet()
    report = AugmentReport()
    pending: list[tuple[dict, str | None]] = []

    def flush(sink: JsonlSink) -> None:
        """LM methods: rewrite the buffered rows' input fields in one engine call per variant."""
        if not pending:
            return
        for variant in range(n):
            jobs: list[tuple[int, tuple]] = [
                (i, path)
                for i, (rec, schema) in enumerate(pending)
                for path in content_fields(rec, schema, side="input")
                if _get(rec, path).strip()
            ]
            outputs = rewrite([_get(pending[i][0], path) for i, path in jobs], method, seed=seed + variant)
            new_rows: dict[int, dict] = {}
            failed: set[int] = set()
            for (i, path), text in zip(jobs, outputs):
                if text is None:
                    failed.add(i)
                    continue
                row = new_rows.setdefault(i, _deep(pending[i][0]))
                _set(row, path, text)
            for i, (rec, schema) in enumerate(pending):
                if i in new_rows and i not in failed:
                    sink.write(mark(new_rows[i], method, source_key(rec, schema), variant))
                    report.augmented += 1
                    report.written += 1
                else:
                    report.skip("model gave no usable rewrite")
        pending.clear()

    with JsonlSink(out) as sink:
        for raw in read_jsonl(inp, progress=progress, desc=f"augment ({method})"):
            if raw.record is None:
                report.invalid.append(f"{raw.where}: {raw.error}")
                continue
            report.rows += 1
            record, schema = raw.record, detect_schema(raw.record)
            if keep_original:
                sink.write(record)
                report.written += 1
            if isinstance(record.get("augmented"), dict):
                report.skip("already augmented")
                continue
            if not content_fields(record, schema, side="input"):
                report.skip("no input text")
                continue
            if method != "synonym":
                pending.append((record, schema))
                if len(pending) >= batch_size:
                    flush(sink)
                continue
            if detect_language(content_text(record, schema)) != "en":
                report.skip("not English (WordNet synonyms are English)")
                continue
            key = source_key(record, schema)
            made = 0
            for variant in range(n):
                rng = random.Random(f"{seed}:{key}:{variant}")  # same row + seed -> same variant, in any order
                row, changes = _deep(record), 0
                for path in content_fields(row, schema, side="input"):
                    text, count = synonym_replace(_get(row, path), wordnet, rng, rate)
                    _set(row, path, text)
                    changes += count
                if changes:
                    sink.write(mark(row, "synonym", key, variant, replaced=changes))
                    report.augmented += 1
                    report.written += 1
                    made += 1
            if not made:
                report.skip("no word with a synonym was picked")
        flush(sink)
    return report


def _deep(record: dict) -> dict:
    import json

    return json.loads(json.dumps(record))
