"""The jobs behind `inkwell write`, `generate`, `batch` and `classify`: check a request before any model loads,
generate, moderate, and log every generation as a `GenerationRecord`. Printing is the CLI's; engines come in
ready-made (the CLI makes them in one place)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.generate import batch as batch_jobs
from inkwell.generate.content import DEFAULT_JSON_RETRIES, Choose
from inkwell.generate.content import write as write_content
from inkwell.generate.engine import OnDelta
from inkwell.generate.moderation import batch_hooks, moderate_versions
from inkwell.generate.record import GenerationRecord
from inkwell.generate.settings import GenerationSettings
from inkwell.prompts.library import get_template
from inkwell.prompts.render import load_shots
from inkwell.prompts.template import ContentTemplate, Example


@dataclass
class TemplateJob:
    """A checked template request, ready for an engine."""

    template: ContentTemplate
    overrides: dict  # decoding settings the user gave
    shots: list[Example] | None = None
    fields: dict = field(default_factory=dict)  # as screened by moderation (redactions applied)
    guard: Any = None  # a safety.Guard, or None without moderation


@dataclass
class Outcome:
    """What a write job made: the records shown and logged, the versions moderation held back, and warnings
    for the user, in the order they arose."""

    records: list[GenerationRecord]
    blocked: list = field(default_factory=list)  # safety.ModerationResult of each blocked version
    warnings: list[str] = field(default_factory=list)


def prepare_write(
    name: str | None,
    template_file: Path | None,
    fields: dict,
    *,
    shots: Path | None,
    overrides: dict,
    guard: Any = None,
) -> TemplateJob:
    """Check the template, fields, settings and shots, and screen the fields (a blocked field raises
    ModerationBlocked naming the category), all before a model loads."""
    template = get_template(name, template_file)
    template.resolve_fields(fields)
    fields = guard.screen_input(fields) if guard is not None else fields
    GenerationSettings.build(template.decoding, overrides)
    return TemplateJob(template, overrides, load_shots(shots, template) if shots else None, fields, guard)


def write_job(
    engine,
    job: TemplateJob,
    *,
    on_delta: OnDelta | None = None,
    json_retries: int = DEFAULT_JSON_RETRIES,
    store: Any = None,
    annotate: Callable[[Any], None] | None = None,
    choose: Choose | None = None,
) -> Outcome:
    """`inkwell write`: write the versions, moderate each, log the ones kept (linked to their audit rows).
    `annotate(item)` sees each kept ContentResult before it becomes a record (e.g. compose's citations);
    `choose` keeps the best of each version's candidates (--best-of, compose/bestof.py)."""
    results = write_content(
        engine,
        job.template,
        job.fields,
        shots=job.shots,
        overrides=job.overrides,
        on_delta=on_delta,
        json_retries=json_retries,
        choose=choose,
    )
    warnings = list(results[0].warnings)
    kept, blocked = moderate_versions(job.guard, results, warnings) if job.guard is not None else (results, [])
    records = []
    for item in kept:
        if annotate is not None:
            annotate(item)
        record = GenerationRecord.of_content(engine, item, template=job.template.name, source="write")
        if store is not None:
            generation_id = store.log_record(record)
            if job.guard is not None:
                job.guard.link(item.moderation_audit_id, generation_id)
        records.append(record)
    return Outcome(records, blocked, warnings)


def generate_job(
    engine,
    prompt: str,
    settings: GenerationSettings,
    *,
    chat: bool = False,
    system: str | None = None,
    on_delta: OnDelta | None = None,
    store: Any = None,
) -> list[GenerationRecord]:
    """`inkwell generate`: a raw prompt, as plain text to continue or as a chat message (with a system one)."""
    request: Any = prompt
    if chat:
        request = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    results = engine.generate([request], settings, on_delta=on_delta)
    records = [GenerationRecord.of(engine, r, source="generate", prompt=request, settings=settings) for r in results]
    for record in records if store is not None else []:
        store.log_record(record)
    return records


def prepare_batch(
    name: str | None, template_file: Path | None, input: Path, *, shots: Path | None, overrides: dict, guard: Any = None
) -> TemplateJob:
    """Check the template, settings, input file and shots before a model loads."""
    template = get_template(name, template_file)
    GenerationSettings.build(template.decoding, overrides)
    if not input.exists():
        raise InkwellError(f"input file not found: {input}", field="input")
    return TemplateJob(template, overrides, load_shots(shots, template) if shots else None, guard=guard)


def batch_job(
    engine,
    job: TemplateJob,
    input: Path,
    output: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    store: Any = None,
    say: Callable[[str], None],
    grounding: Any = None,
    choose: Choose | None = None,
) -> batch_jobs.BatchReport:
    """`inkwell batch`: the template over every row (generate/batch.py), each finished row logged. Bad rows
    are reported (`say`) and skipped; with moderation, blocked input rows are not run and blocked outputs
    become failed rows naming the category. `grounding` (compose.grounded.RowGrounding): each row written from
    its own retrieved passages; it gives the template to run and wraps the row hooks. `choose`: each row's
    best candidates kept (--best-of)."""

    def log(row, item, batch_id: str) -> None:
        if store is not None:
            store.log_record(
                GenerationRecord.of_content(
                    engine, item, template=job.template.name, source="batch", batch_id=batch_id, row_id=row.id
                )
            )

    def bad(row, reason: str) -> None:
        say(f"skipped {input}:{row.line} (id {row.id}): {reason}")

    hooks = batch_hooks(job.guard, say) if job.guard is not None else {}
    template = job.template
    if grounding is not None:  # compose's knowledge grounding: its template, its hooks around moderation's
        template, hooks = grounding.template, grounding.hooks(hooks)
    return batch_jobs.run_batch(
        engine,
        template,
        input,
        output,
        resume=resume,
        shots=job.shots,
        overrides=job.overrides,
        progress=progress,
        on_result=log,
        on_error=bad,
        choose=choose,
        **hooks,
    )


def batch_summary(report: batch_jobs.BatchReport) -> dict:
    """What `inkwell batch --json` prints."""
    return {
        "output": str(report.output),
        "rows": report.total,
        "written": report.written,
        "already_done": report.skipped_done,
        "failed": len(report.failed),
        "completion_tokens": report.tokens,
        "seconds": round(report.seconds, 2),
        "items_per_s": round(report.written / report.seconds, 3) if report.seconds else None,
    }


def classify_job(model: Path, texts: list[str], input: Path | None = None, device: str = "auto") -> list[dict]:
    """`inkwell classify`: each text (and each `text` of the JSONL rows in `input`) with its label and the
    label's probability, from a trained `stage: classify` run."""
    items = list(texts)
    if input is not None:
        from inkwell.data.rows import read_jsonl

        for row in read_jsonl(input, progress=False):
            if row.error or row.record is None:
                raise InkwellError(f"{row.where}: {row.error}", field="input", hint='each line: {"text": "..."}')
            if not isinstance(row.record.get("text"), str):
                raise InkwellError(
                    f"{row.where}: field 'text': must be a string", field="input", hint='each line: {"text": "..."}'
                )
            items.append(row.record["text"])
    if not items:
        raise InkwellError(
            "nothing to classify",
            field="texts",
            hint='inkwell classify --model RUN "some text"  or  --input rows.jsonl',
        )
    from inkwell.generate.classify import Classifier

    results = Classifier.load(model, device=device).predict(items)
    return [{"text": text, **result} for text, result in zip(items, results)]
