"""Writing content from a template: render the prompt, generate, and (for structured templates) parse and
validate the JSON, retrying with the validation error before giving up. Used by `write`, `batch` and the server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inkwell.errors import InkwellError
from inkwell.generate.engine import Engine, GenerationResult, OnDelta
from inkwell.generate.settings import GenerationSettings
from inkwell.prompts.render import RenderedPrompt, build_prompt
from inkwell.prompts.template import ContentTemplate, Example

DEFAULT_JSON_RETRIES = 2


class StructuredOutputError(InkwellError):
    """The model did not produce JSON matching the template's schema within the allowed retries."""


@dataclass
class ContentResult:
    text: str
    data: Any  # the parsed JSON for structured templates, else None
    generation: GenerationResult
    rendered: RenderedPrompt
    settings: GenerationSettings
    attempts: int = 1
    warnings: list[str] = field(default_factory=list)
    moderation: dict | None = None  # what output moderation decided, where it acted (write, batch)
    moderation_audit_id: int | None = None  # that decision's row in the store's moderation audit
    extra: dict = field(default_factory=dict)  # rides into the record's JSON and the store (e.g. citations)


# Keeps the best of one prompt's candidates: (engine, template, rendered prompt, candidates) -> the kept ones.
Choose = Callable[[Any, ContentTemplate, RenderedPrompt, list[ContentResult]], list[ContentResult]]


def template_settings(template: ContentTemplate, overrides: dict | None, stop: list[str]) -> GenerationSettings:
    """Template defaults, then the user's overrides; the template's completion stops are added."""
    settings = GenerationSettings.build(template.decoding, overrides)
    settings.stop = list(dict.fromkeys([*settings.stop, *stop]))
    return settings


def structured_settings(
    engine: Engine, template: ContentTemplate, settings: GenerationSettings, fields: dict
) -> GenerationSettings:
    """A structured template decodes under its schema's grammar (for these fields: `output_counts`) where the
    engine can (every local engine, and servers that take response_format), so its JSON parses on the first try;
    the setting `grammar: {}` turns that off."""
    schema = template.schema_for(fields)
    if not schema or settings.grammar is not None or not engine.capabilities.grammar:
        return settings
    import dataclasses

    from inkwell.generate.grammar import strict_schema

    return dataclasses.replace(settings, grammar={"json_schema": strict_schema(schema)})


def render_for(
    engine: Engine, template: ContentTemplate, fields: dict, shots: list[Example] | None, max_new_tokens: int
) -> RenderedPrompt:
    budget = engine.loaded.context_length - max_new_tokens
    return build_prompt(
        template, fields, chat=engine.loaded.chat, shots=shots, count_tokens=engine.count_tokens, budget=budget
    )


def extract_json(text: str) -> Any:
    """The first JSON object or array in the text (models like to wrap it in prose or ``` fences)."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start, char in enumerate(candidate):
            if char in "{[":
                try:
                    value, _ = decoder.raw_decode(candidate[start:])
                    return value
                except json.JSONDecodeError:
                    continue
    raise ValueError("no JSON object found in the output")


def validate_output(text: str, schema: dict) -> tuple[Any, str | None]:
    """(parsed value, None) when valid, else (None, a one-line reason)."""
    import jsonschema

    try:
        value = extract_json(text)
    except ValueError as exc:
        return None, str(exc)
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(root)"
        return None, f"at {where}: {exc.message}"
    return value, None


def prepare(
    engine: Engine,
    template: ContentTemplate,
    fields: dict,
    *,
    shots: list[Example] | None = None,
    overrides: dict | None = None,
) -> tuple[RenderedPrompt, GenerationSettings]:
    """Check the fields and settings and render the prompt within the model's context."""
    probe = GenerationSettings.build(template.decoding, overrides)
    rendered = render_for(engine, template, fields, shots, probe.max_new_tokens)
    return rendered, template_settings(template, overrides, rendered.stop)


def write_many(
    engine: Engine,
    template: ContentTemplate,
    rendered: list[RenderedPrompt],
    settings: GenerationSettings,
    *,
    on_delta: OnDelta | None = None,
    json_retries: int = DEFAULT_JSON_RETRIES,
    choose: Choose | None = None,
) -> list[list[ContentResult] | InkwellError]:
    """Generate for many rendered prompts in one engine call. Per prompt: its results, or the error that
    made it fail (a structured template whose output never validated). `choose(engine, template, rendered,
    candidates)` keeps the best of each prompt's candidates (best-of-n, compose/bestof.py) before their JSON is
    checked."""
    per_prompt = [structured_settings(engine, template, settings, r.fields) for r in rendered]
    results = _generate_grouped(engine, rendered, per_prompt, on_delta)
    grouped: list[list[ContentResult] | InkwellError] = [[] for _ in rendered]
    for result in results:
        item = ContentResult(
            result.text,
            None,
            result,
            rendered[result.prompt_index],
            per_prompt[result.prompt_index],
            warnings=list(rendered[result.prompt_index].warnings),
        )
        bucket = grouped[result.prompt_index]
        if isinstance(bucket, InkwellError):
            continue
        if template.output_schema and choose is None:
            try:
                item = _ensure_structured(engine, template, item, json_retries)
            except StructuredOutputError as exc:
                grouped[result.prompt_index] = exc
                continue
        bucket.append(item)
    if choose is not None:
        grouped = [_chosen(engine, template, choose, r, bucket, json_retries) for r, bucket in zip(rendered, grouped)]
    return grouped


def _generate_grouped(
    engine: Engine, rendered: list[RenderedPrompt], per_prompt: list[GenerationSettings], on_delta: OnDelta | None
) -> list[GenerationResult]:
    """One engine call per distinct settings (prompts whose schemas differ decode under different grammars), with
    prompt and stream indices mapped back to the whole list's."""
    groups: dict[str, list[int]] = {}
    for index, settings in enumerate(per_prompt):
        groups.setdefault(json.dumps(settings.to_dict(), sort_keys=True, default=str), []).append(index)
    if len(groups) == 1:
        return engine.generate([r.prompt for r in rendered], per_prompt[0], on_delta=on_delta)
    results: list[GenerationResult] = []
    for indices in groups.values():
        settings = per_prompt[indices[0]]
        n = settings.num_return_sequences

        def delta(local: int, text: str, indices=indices, n=n) -> None:
            assert on_delta is not None
            on_delta(indices[local // n] * n + local % n, text)

        for result in engine.generate([rendered[i].prompt for i in indices], settings, delta if on_delta else None):
            result.prompt_index = indices[result.prompt_index]
            results.append(result)
    return sorted(results, key=lambda r: (r.prompt_index, r.sample_index))


def _chosen(
    engine: Engine,
    template: ContentTemplate,
    choose: Choose,
    rendered: RenderedPrompt,
    candidates: list[ContentResult] | InkwellError,
    retries: int,
) -> list[ContentResult] | InkwellError:
    """The candidates `choose` keeps, each structured one validated (and retried) as without a chooser."""
    if isinstance(candidates, InkwellError):
        return candidates
    kept = choose(engine, template, rendered, candidates)
    if not template.output_schema:
        return kept
    checked = []
    for item in kept:
        try:
            fixed = _ensure_structured(engine, template, item, retries)
        except StructuredOutputError as exc:
            return exc
        fixed.extra = {**item.extra, **fixed.extra}  # a retried answer keeps the chooser's scores
        checked.append(fixed)
    return checked


def write(
    engine: Engine,
    template: ContentTemplate,
    fields: dict,
    *,
    shots: list[Example] | None = None,
    overrides: dict | None = None,
    on_delta: OnDelta | None = None,
    json_retries: int = DEFAULT_JSON_RETRIES,
    choose: Choose | None = None,
) -> list[ContentResult]:
    """Write content for one set of fields: `num_return_sequences` results (those `choose` keeps), or an
    InkwellError."""
    rendered, settings = prepare(engine, template, fields, shots=shots, overrides=overrides)
    (outcome,) = write_many(
        engine, template, [rendered], settings, on_delta=on_delta, json_retries=json_retries, choose=choose
    )
    if isinstance(outcome, InkwellError):
        raise outcome
    return outcome


def _checked(item: ContentResult, schema: dict) -> tuple[Any, str | None]:
    value, problem = validate_output(item.text, schema)
    if problem is not None and item.generation.finish_reason == "length":  # say why, not what a fragment looks like
        problem = f"the output was cut off at max_new_tokens ({item.settings.max_new_tokens}) before the JSON closed"
    return value, problem


def _ensure_structured(engine: Engine, template: ContentTemplate, item: ContentResult, retries: int) -> ContentResult:
    import copy

    schema = template.schema_for(item.rendered.fields)
    assert schema is not None  # callers check: only structured templates come here
    value, problem = _checked(item, schema)
    attempts = 1
    prompt = item.rendered.prompt
    while problem is not None and attempts <= retries:
        correction = (
            f"That answer was not valid: {problem}. Reply again with only a JSON value that matches this "
            f"JSON Schema:\n{json.dumps(schema)}"
        )
        if isinstance(prompt, list):
            prompt = [*prompt, {"role": "assistant", "content": item.text}, {"role": "user", "content": correction}]
        else:
            prompt = f"{prompt}{item.text}\n\n{correction}\n"
        settings = copy.deepcopy(item.settings)
        settings.num_return_sequences = 1
        if settings.seed is not None:
            settings.seed += attempts * 1000
        generation = engine.generate([prompt], settings)[0]
        item = ContentResult(
            generation.text, None, generation, item.rendered, item.settings, attempts + 1, item.warnings
        )
        value, problem = _checked(item, schema)
        attempts += 1
    if problem is not None:
        raise StructuredOutputError(
            f"template '{template.name}': the model's output was not valid JSON for the template's schema after "
            f"{attempts} attempts ({problem}). Last output: {item.text[:200]!r}",
            field="output",
            hint="raise --max-new-tokens or --json-retries, lower --temperature, or use a larger model",
        )
    item.data = value
    item.attempts = attempts
    return item
