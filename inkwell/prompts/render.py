"""Turn a template + fields (+ few-shot examples) into the prompt a model sees, within its context.

Chat models get messages: the system message, then each example as a user/assistant pair, then the
request. Base models get one text: header, examples rendered with the template's example pattern, then
the query with an empty output slot. Without examples given, base models get the template's own examples
closest to the request (shots.py). Examples that do not fit the context are dropped (with a warning);
the user's own input is never cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import UndefinedError

from inkwell.data.formats import read_jsonl, template_fields
from inkwell.errors import InkwellError
from inkwell.prompts.shots import closest_shots
from inkwell.prompts.template import JINJA as _ENV
from inkwell.prompts.template import ContentTemplate, Example


@dataclass
class RenderedPrompt:
    prompt: str | list[dict]  # completion text, or chat messages
    fields: dict[str, Any]
    shots_used: int
    stop: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _render(text: str, values: dict[str, Any], where: str) -> str:
    try:
        return _ENV.from_string(text).render(**values).strip()
    except UndefinedError as exc:
        raise InkwellError(f"{where} uses an undefined value: {exc.message}", hint="declare it under fields:") from None


def load_shots(path: str | Path, template: ContentTemplate) -> list[Example]:
    """Read few-shot examples from JSONL: {"fields": {...}, "output": ...} or flat {field: ..., "output": ...}."""
    shots: list[Example] = []
    for raw in read_jsonl(path, on_error="raise", field="shots", what="shots file"):
        row, number = raw.record, raw.line
        if not isinstance(row.get("output"), str) or not row["output"].strip():
            raise InkwellError(f"{path}:{number}: each example needs a non-empty string 'output'", field="shots")
        fields = template_fields(row, drop=("output", "id"))
        try:
            resolved = template.resolve_fields(fields)
        except InkwellError as exc:
            raise InkwellError(f"{path}:{number}: {exc}", field="shots") from None
        shots.append(Example(fields=resolved, output=row["output"]))
    if not shots:
        raise InkwellError(f"shots file {path} holds no examples", field="shots")
    return shots


def _build(template: ContentTemplate, fields: dict[str, Any], shots: list[Example], chat: bool) -> str | list[dict]:
    if chat:
        messages: list[dict] = []
        system = _render(template.system, fields, f"template '{template.name}' system") if template.system else ""
        if system:
            messages.append({"role": "system", "content": system})
        for shot in shots:
            messages.append(
                {"role": "user", "content": _render(template.chat, shot.fields, f"template '{template.name}' chat")}
            )
            messages.append({"role": "assistant", "content": shot.output.strip()})
        messages.append({"role": "user", "content": _render(template.chat, fields, f"template '{template.name}' chat")})
        return messages
    pieces = []
    if template.completion.header:
        pieces.append(_render(template.completion.header, fields, f"template '{template.name}' completion.header"))
    where = f"template '{template.name}' completion.example"
    for shot in shots:
        pieces.append(_render(template.completion.example, {**shot.fields, "output": shot.output.strip()}, where))
    query = _render(template.completion.example, {**fields, "output": ""}, where)
    pieces.append(query)
    return template.completion.separator.join(pieces)


def build_prompt(
    template: ContentTemplate,
    fields: dict[str, Any],
    *,
    chat: bool,
    shots: list[Example] | None = None,
    count_tokens: Callable[[str | list[dict]], int] | None = None,
    budget: int | None = None,
) -> RenderedPrompt:
    """Render the prompt. `shots=None` means the template's own examples closest to the request, in its
    language (prompts/shots.py), for base models, and none for chat models; pass [] for zero-shot. With
    `count_tokens` and `budget` (context minus new tokens), examples are dropped from the end (the least
    similar) until the prompt fits."""
    resolved = template.resolve_fields(fields)
    if shots is None:
        shots = [] if chat else closest_shots(template, resolved)
    shots = [Example(fields=template.resolve_fields(s.fields), output=s.output) for s in shots]
    warnings: list[str] = []
    kept = list(shots)
    prompt = _build(template, resolved, kept, chat)
    if count_tokens is not None and budget is not None:
        size = count_tokens(prompt)
        while size > budget and kept:
            kept.pop()
            prompt = _build(template, resolved, kept, chat)
            size = count_tokens(prompt)
        if len(kept) < len(shots):
            warnings.append(
                f"dropped {len(shots) - len(kept)} of {len(shots)} few-shot examples to fit the context "
                f"({budget} tokens left for the prompt)"
            )
        if size > budget:
            raise InkwellError(
                f"the request alone is {size} tokens, over the {budget} tokens the model has for a prompt "
                "(its context minus max_new_tokens)",
                field="fields",
                hint="shorten the input text or lower --max-new-tokens; Inkwell never cuts your input silently",
            )
    stop = [] if chat else list(template.completion.stop)
    return RenderedPrompt(prompt=prompt, fields=resolved, shots_used=len(kept), stop=stop, warnings=warnings)
