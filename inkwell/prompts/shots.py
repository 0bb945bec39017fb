"""Choosing a template's worked examples for one request: the ones in the request's language closest to it.

    shots = closest_shots(template, fields)          # at most DEFAULT_SHOTS, closest first

Small models copy the shape of what they are shown, so an example about a similar subject teaches more than one
about anything at all. Without `--shots`, `write` (and `batch`, the server and the content suite, through
`build_prompt`) shows a base model the template's examples closest to the request: English by sentence-embedding
similarity (the offline MiniLM of models/embedder.py), Chinese by character n-gram overlap (MiniLM is an English
model: on Chinese its similarities are close to noise). The request is compared by its free-text fields (topic,
product, text...), after the choices it shares with an example (form, mode, platform...): an example of the
same shape comes before one on a closer subject. Closest first, so when the prompt does not fit the model's context
the shot-fitting code of render.py drops the least similar ones (from the end). Deterministic: equal scores keep
the order of the template file. A request never gets its own text back as an example: a shot whose required
free-text field equals the request's (the poem asked for is the example's own title), or whose output is part of
the request (a rewrite of the example's answer), is left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from inkwell.prompts.template import ContentTemplate, Example

DEFAULT_SHOTS = 3  # examples shown by default: enough to show the shape, short enough for a 2k-token context
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W_]+")

# (request text, example texts) -> one similarity per example, higher is closer
Similarity = Callable[[str, Sequence[str]], list[float]]


def free_text_fields(template: ContentTemplate) -> list[str]:
    """The fields that say what a request is about: free text and lists, not choices, numbers or the language."""
    return [
        name
        for name, spec in template.fields.items()
        if spec.type in ("str", "list") and spec.choices is None and name != "language"
    ]


def _flat(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def request_text(template: ContentTemplate, fields: dict[str, Any]) -> str:
    """What a request (or an example's request) is about, as one text: its free-text field values (a default
    value says nothing about this request, so it is left out)."""
    texts = []
    for name in free_text_fields(template):
        value = fields.get(name)
        if value != template.fields[name].default and (text := _flat(value).strip()):
            texts.append(text)
    return "\n".join(texts)


def _normal(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def is_own_text(template: ContentTemplate, shot: Example, fields: dict[str, Any]) -> bool:
    """The example is the request itself: a required free-text field is the same (poem title, text to rewrite,
    product), or the example's answer is part of what the request gives (rewriting the example's output)."""
    for name in free_text_fields(template):
        if not template.fields[name].required:
            continue
        mine, theirs = _normal(_flat(fields.get(name))), _normal(_flat(shot.fields.get(name)))
        if mine and mine == theirs:
            return True
    given = _normal(request_text(template, fields))
    output = _normal(shot.output)
    return bool(output) and len(output) >= 8 and output in given


def ngram_similarity(query: str, texts: Sequence[str]) -> list[float]:
    """Cosine of the sets of character 1- and 2-grams (Han characters; other words whole). Chinese has no spaces,
    and MiniLM does not read it, so shared characters and character pairs are the measure."""

    def grams(text: str) -> set[str]:
        han = _HAN.findall(text)
        words = [w for w in _WORD.findall(text.casefold()) if not _HAN.search(w)]
        return set(han) | {a + b for a, b in zip(han, han[1:])} | set(words)

    mine = grams(query)
    scores = []
    for text in texts:
        theirs = grams(text)
        both = len(mine & theirs)
        scores.append(both / math.sqrt(len(mine) * len(theirs)) if mine and theirs else 0.0)
    return scores


@lru_cache(maxsize=512)
def _example_vector(text: str):
    """An example's embedding, kept: a template's examples are compared with every request of a batch."""
    from inkwell.models.embedder import embed

    return embed([text])[0]


def embedding_similarity(query: str, texts: Sequence[str]) -> list[float]:
    """Cosine of MiniLM sentence embeddings (unit length, so a dot product)."""
    from inkwell.models.embedder import embed

    vector = embed([query])[0]
    return [float(vector @ _example_vector(text)) for text in texts]


SIMILARITY: dict[str, Similarity] = {"en": embedding_similarity, "zh": ngram_similarity}


def language_of(template: ContentTemplate, fields: dict[str, Any]) -> str:
    return str(fields.get("language") or (template.languages[0] if template.languages else "en"))


def in_language(template: ContentTemplate, fields: dict[str, Any]) -> list[Example]:
    """The template's examples in the request's language (an example without `language` counts as the template's
    first language)."""
    language = language_of(template, fields)
    default = template.languages[0] if template.languages else "en"
    return [e for e in template.examples if str(e.fields.get("language") or default) == language]


def closest_shots(
    template: ContentTemplate,
    fields: dict[str, Any],
    k: int = DEFAULT_SHOTS,
    similarity: Similarity | None = None,
) -> list[Example]:
    """Up to `k` of the template's examples in the request's language, closest to the request first, never the
    request's own text. `fields` are resolved (defaults filled); `similarity` replaces the language's measure."""
    candidates = [e for e in in_language(template, fields) if not is_own_text(template, e, fields)]
    if len(candidates) <= 1 or k <= 0:
        return candidates[: max(k, 0)]
    query = request_text(template, fields)
    if not query:
        return candidates[:k]  # nothing to compare: the file's order
    measure = similarity or SIMILARITY.get(language_of(template, fields), ngram_similarity)
    similar = measure(query, [request_text(template, e.fields) for e in candidates])
    # The choices (form, mode, platform...) decide the shape a model copies, so an example sharing more of them
    # comes first (a haiku before free verse on a closer subject), then the closest subject; rounded, so that
    # equal scores keep the file's order on any CPU.
    choices = [n for n, spec in template.fields.items() if spec.choices is not None and n != "language"]
    shared = [sum(template.resolve_fields(e.fields)[n] == fields.get(n) for n in choices) for e in candidates]
    ranked = sorted(range(len(candidates)), key=lambda i: (-shared[i], -round(similar[i], 6), i))
    return [candidates[i] for i in ranked[:k]]
