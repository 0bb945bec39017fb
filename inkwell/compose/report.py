"""`inkwell write report --data table.csv`: the table's derived facts fill the template's `facts` field, each
version is checked number by number (compose/factcheck.py), a version with an unsupported number or name is
rewritten with a new seed up to `retries` times, the one with the fewest unsupported spans is kept, and what
is still unsupported is marked for the user.

    prepare, write = facts_steps(Path("sales.csv"), retries=2)   # the same two steps as prepare_write/write_job
    job = prepare("report", None, {"title": "Sales"}, shots=None, overrides={})
    outcome = write(engine, job, store=None)
    outcome.records[0].extra["fact_check"]    # {"numbers", "numbers_supported", "unsupported", "spans", ...}
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inkwell.compose.factcheck import Evidence, FactCheck, check_text
from inkwell.compose.facts import FactSheet, facts_from_rows, read_facts
from inkwell.errors import InkwellError
from inkwell.generate.content import DEFAULT_JSON_RETRIES, ContentResult
from inkwell.generate.content import write as write_content
from inkwell.generate.jobs import Outcome, TemplateJob, prepare_write
from inkwell.generate.record import GenerationRecord

DEFAULT_FACT_RETRIES = 2  # rewrites of a version with an unsupported number: each costs a full generation
RETRY_TEMPERATURE = 0.7  # a greedy version rewritten greedily would come out the same: rewrites then sample
RETRY_SEED_STEP = 1000  # rewrite k of version v uses seed + k * 1000 + v


@dataclass
class FactsJob:
    """A template request with the table it is written from."""

    job: TemplateJob
    sheet: FactSheet
    retries: int = DEFAULT_FACT_RETRIES


@dataclass
class Checked:
    """One version after the check: the kept candidate, its check, and every candidate's number of unsupported
    spans in the order they were written (the first is plain generation)."""

    item: ContentResult
    check: FactCheck
    first: FactCheck
    unsupported_per_attempt: list[int]


def facts_steps(data: Path | list[dict], retries: int = DEFAULT_FACT_RETRIES) -> tuple[Callable, Callable]:
    """`inkwell write --data`: (prepare, write) with the signatures of generate.jobs' prepare_write and write_job,
    reading the table and checking the text on the way."""
    if retries < 0:
        raise InkwellError(f"--fact-retries must be 0 or more, got {retries}", field="fact-retries")

    def prepare(name, template_file, fields, *, shots=None, overrides=None, guard=None) -> FactsJob:
        return prepare_report(
            data, name, template_file, fields, shots=shots, overrides=overrides, guard=guard, retries=retries
        )

    return prepare, write_report


def prepare_report(
    data: Path | list[dict],
    name: str | None,
    template_file: Path | None,
    fields: dict,
    *,
    shots: Path | None = None,
    overrides: dict | None = None,
    guard: Any = None,
    retries: int = DEFAULT_FACT_RETRIES,
) -> FactsJob:
    """Read the table and derive its facts, put them in the template's `facts` field, and check the request
    as `prepare_write` does, all before a model loads."""
    from inkwell.prompts.library import get_template

    fields, sheet = table_fields(get_template(name, template_file), fields, data)
    job = prepare_write(name, template_file, fields, shots=shots, overrides=overrides or {}, guard=guard)
    return FactsJob(job, sheet, retries)


def table_fields(template, fields: dict, data: Path | list[dict]) -> tuple[dict, FactSheet]:
    """The fields with the table's facts as `facts`, and the table's FactSheet. InkwellError (field `data`) for
    a template without a `facts` field, facts given twice, or a bad table."""
    if "facts" not in template.fields:
        raise InkwellError(
            f"template '{template.name}' takes no facts table (data); templates that do: report, data-brief",
            field="data",
            hint="inkwell write report --data table.csv",
        )
    if fields.get("facts"):
        raise InkwellError("give the facts either as a table (data) or as the field facts, not both", field="facts")
    sheet = facts_from_rows(data) if isinstance(data, list) else read_facts(data)
    return {**fields, "facts": sheet.block()}, sheet


def write_report(
    engine,
    job: FactsJob,
    *,
    on_delta=None,
    json_retries: int = DEFAULT_JSON_RETRIES,
    store: Any = None,
    source: str = "write",
) -> Outcome:
    """Write, check, rewrite, keep the best, moderate, log. `on_delta` is not used: a version may be replaced
    after it is written, so nothing is streamed. Each record's `extra` carries `facts` (the facts shown to the
    model) and `fact_check` (the spans, counts, attempts and the marked text), which `--json` prints."""
    from inkwell.generate.moderation import moderate_versions

    del on_delta  # see the docstring
    tjob = job.job
    fitted = fit_facts(engine, tjob.template, tjob.fields, job.sheet, tjob.overrides)
    evidence = job.sheet.evidence(tjob.fields)
    versions = write_checked(engine, tjob, evidence, job.retries, json_retries=json_retries)
    items = [v.item for v in versions]
    warnings = ([fitted] if fitted else []) + list(items[0].warnings)
    kept, blocked = moderate_versions(tjob.guard, items, warnings) if tjob.guard is not None else (items, [])
    attempts = {id(v.item): v.unsupported_per_attempt for v in versions}
    records = []
    for index, item in enumerate(kept):
        check = check_text(item.text, evidence)  # again: moderation may have redacted the text
        record = GenerationRecord.of_content(engine, item, template=tjob.template.name, source=source)
        record.extra["facts"] = job.sheet.to_json()
        record.extra["fact_check"] = check_json(check, attempts[id(item)])
        if check.unsupported:
            listed = ", ".join(repr(s.text) for s in check.unsupported[:5])
            warnings.append(
                f"version {index + 1}: {len(check.unsupported)} number(s) or name(s) not found in {job.sheet.source} "
                f"after {len(attempts[id(item)])} attempt(s): {listed} (marked ⟦…⟧ in the text; in --json, the "
                "spans with supported=false)"
            )
        if store is not None:
            generation_id = store.log_record(record)
            if tjob.guard is not None:
                tjob.guard.link(item.moderation_audit_id, generation_id)
        records.append(record)
    return Outcome(records, blocked, warnings)


def check_json(check: FactCheck, unsupported_per_attempt: list[int]) -> dict:
    """`fact_check` as `--json` and the server print it."""
    return {
        **check.to_json(),
        "attempts": len(unsupported_per_attempt),
        "unsupported_per_attempt": unsupported_per_attempt,
        "marked_text": check.marked(),
    }


def fit_facts(engine, template, fields: dict, sheet: FactSheet, overrides: dict | None) -> str | None:
    """Drop the least important facts from `fields["facts"]` until the prompt (without few-shot examples) fits
    the model's context with room for max_new_tokens; a warning saying how many were dropped, or None. The check
    still uses every fact."""
    from inkwell.generate.settings import GenerationSettings
    from inkwell.prompts.render import build_prompt

    budget = engine.loaded.context_length - GenerationSettings.build(template.decoding, overrides).max_new_tokens
    before = len(sheet.shown())
    while len(sheet.shown()) > 1:
        prompt = build_prompt(template, fields, chat=engine.loaded.chat, shots=[]).prompt
        if engine.count_tokens(prompt) <= budget:
            break
        sheet.max_chars = int(sheet.max_chars * 0.8)
        fields["facts"] = sheet.block()
    dropped = before - len(sheet.shown())
    if not dropped:
        return None
    return (
        f"{dropped} of {before} facts left out of the prompt to fit the model's context ({budget} tokens for a prompt)"
    )


def write_checked(
    engine, job: TemplateJob, evidence: Evidence, retries: int, *, json_retries: int = DEFAULT_JSON_RETRIES
) -> list[Checked]:
    """Each version written, checked, and rewritten (new seed each time) while it has unsupported spans, up to
    `retries` times; the candidate with the fewest unsupported spans is kept (on a tie, the one with more supported
    numbers, then the earliest)."""
    first = write_content(
        engine, job.template, job.fields, shots=job.shots, overrides=job.overrides, json_retries=json_retries
    )
    versions = []
    for v, item in enumerate(first):
        check = first_check = check_text(item.text, evidence)
        counts = [len(check.unsupported)]
        best = (item, check)
        for attempt in range(1, retries + 1):
            if not best[1].unsupported:
                break
            again = _rewrite(engine, job, item, attempt, v, json_retries)
            again_check = check_text(again.text, evidence)
            counts.append(len(again_check.unsupported))
            if _rank(again_check) < _rank(best[1]):
                best = (again, again_check)
        best[0].attempts = len(counts)
        versions.append(Checked(best[0], best[1], first_check, counts))
    return versions


def _rank(check: FactCheck) -> tuple[int, int]:
    """Fewer unsupported spans first; on a tie, more supported numbers (a text that says nothing is not better)."""
    return len(check.unsupported), -sum(s.supported for s in check.numbers)


def _rewrite(engine, job: TemplateJob, item: ContentResult, attempt: int, version: int, json_retries: int):
    """Version `version` written again with its own seed (sampling, if it was greedy)."""
    settings = item.settings
    overrides = copy.deepcopy(job.overrides)
    overrides["num_return_sequences"] = 1
    overrides["seed"] = (settings.seed or 0) + attempt * RETRY_SEED_STEP + version
    if settings.greedy:
        overrides["temperature"] = RETRY_TEMPERATURE
    (again,) = write_content(
        engine, job.template, job.fields, shots=job.shots, overrides=overrides, json_retries=json_retries
    )
    return again
