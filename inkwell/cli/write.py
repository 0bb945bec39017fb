"""`inkwell write`, `generate` and `batch`: the commands that write. The work is in `inkwell.generate.jobs`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from inkwell.cli.common import (
    AdapterOpt,
    BackendOpt,
    BaseUrlOpt,
    Decoding,
    DeviceOpt,
    DtypeOpt,
    EngineOpt,
    EngineOptions,
    JsonOut,
    KbOpt,
    ModelOpt,
    NoLog,
    NoModerationOpt,
    PolicyOpt,
    PrecisionOpt,
    RemoteKeyOpt,
    SystemsOpt,
    guard_for,
    open_engine_for,
    parse_sets,
    print_json,
    say,
    settings_overrides,
    store_for,
    with_decoding,
)
from inkwell.cli.style import StyleOpt, styled
from inkwell.errors import InkwellError

BestOfOpt = Annotated[
    int,
    typer.Option(
        "--best-of",
        min=1,
        help="Write N candidates per version together and keep the one that passes most of the template's checks "
        "(then the likeliest); the scores are in --json (docs/quality.md).",
    ),
]


QuoteOpt = Annotated[
    bool,
    typer.Option(
        "--quote/--no-quote",
        help="With --kb: when no passage supports the reply, answer with the best passage's key sentences instead "
        "(--no-quote keeps the model's reply and offers them as `quote` in --json; docs/grounding.md).",
    ),
]


@with_decoding
def write(
    template: Annotated[str | None, typer.Argument(help="Template name (see `inkwell templates list`).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Template field: name=value (repeatable).")
    ] = None,
    template_file: Annotated[
        Path | None, typer.Option("--template-file", help="A template YAML file to use instead of a name.")
    ] = None,
    shots: Annotated[Path | None, typer.Option("--shots", help="Few-shot examples (JSONL: fields + output).")] = None,
    n: Annotated[int, typer.Option("--n", help="How many versions to write.")] = 1,
    stream: Annotated[
        bool | None, typer.Option("--stream/--no-stream", help="Print text as it is written [default: on a terminal].")
    ] = None,
    json_retries: Annotated[
        int, typer.Option("--json-retries", help="Retries when a structured template's JSON is invalid.")
    ] = 2,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A facts table (.csv/.tsv/.jsonl) for report and data-brief: its derived facts fill `facts`, and "
            "every number and name written is checked against them (docs/grounding.md).",
        ),
    ] = None,
    fact_retries: Annotated[
        int,
        typer.Option(
            "--fact-retries", min=0, help="With --data: rewrites (new seed each) of a version with unsupported numbers."
        ),
    ] = 2,
    kb: KbOpt = None,
    quote: QuoteOpt = True,
    style: StyleOpt = None,
    best_of: BestOfOpt = 1,
    systems: SystemsOpt = None,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    decoding: Decoding = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    precision: PrecisionOpt = "auto",
    no_log: NoLog = False,
    as_json: JsonOut = False,
    policy: PolicyOpt = None,
    no_moderation: NoModerationOpt = False,
    backend: BackendOpt = "local",
    base_url: BaseUrlOpt = None,
    api_key: RemoteKeyOpt = None,
):
    """Write content from a template: the main job.

    Example: inkwell write product-description --set product="bamboo water bottle"
    """
    prepare_write, write_job, adapter = _write_steps(data, fact_retries, style, adapter, model)  # --data, --style
    fields = parse_sets(set_)
    guard = guard_for(policy, no_moderation, "write", no_log)
    # Everything is checked (and the fields moderated: a blocked one exits 2 naming the category) before a
    # model loads.
    overrides, chosen = _best_of(settings_overrides(decoding, n), best_of, data)  # --best-of: N candidates each
    job = prepare_write(template, template_file, fields, shots=shots, overrides=overrides, guard=guard)
    grounding = _grounding(kb, data, job, quote)  # --kb: passages found (unknown folder refused) before a model loads
    if grounding is not None and chosen:  # --kb --best-of: the candidate whose sentences the passages support most
        chosen = {"choose": grounding.best_of(best_of)}
    # With moderation on, output is checked before anyone sees it, so it is not streamed.
    # --data may rewrite a version; --kb adds citations to it once written
    streaming = _streaming(stream, as_json, n * best_of) and guard is None and data is None and kb is None
    if stream and guard is not None:
        say("note: output is moderated before it is shown, so it is not streamed (--no-moderation streams)")
    options = EngineOptions(
        model, adapter, dtype, device, engine, precision, backend=backend, base_url=base_url, api_key=api_key
    )
    options.systems = _systems(systems, best_of)  # --systems: an ensemble shares the --best-of candidates
    grounded = {"annotate": grounding.annotate} if grounding is not None else {}  # citations into each record
    if grounding is not None and grounding.escalates(job.template):  # nothing relevant: the template's own reply
        outcome = grounding.escalate(job, model, store_for(no_log))
    else:
        with open_engine_for(options) as loaded:
            job = grounding.apply(loaded, job) if grounding is not None else job
            delta = _echo if streaming else None
            outcome = write_job(
                loaded, job, on_delta=delta, json_retries=json_retries, store=store_for(no_log), **grounded, **chosen
            )
    for warning in outcome.warnings:
        say(f"warning: {warning}")
    if outcome.blocked and not outcome.records:
        _blocked_exit(outcome.blocked, as_json)  # every version was blocked
    _show(outcome.records, as_json, streaming, _written_text)
    _sources(outcome.records, as_json)
    _blocked_exit(outcome.blocked)  # some versions were blocked: say which category, exit 3


@with_decoding
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt text ('-' reads standard input).")],
    chat: Annotated[
        bool,
        typer.Option(
            "--chat/--completion", help="Send as a chat message (instruct models) or as plain text to continue."
        ),
    ] = False,
    system: Annotated[str | None, typer.Option("--system", help="System message (with --chat).")] = None,
    n: Annotated[int, typer.Option("--n")] = 1,
    stream: Annotated[bool | None, typer.Option("--stream/--no-stream")] = None,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    decoding: Decoding = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    precision: PrecisionOpt = "auto",
    no_log: NoLog = False,
    as_json: JsonOut = False,
):
    """Generate from a raw prompt (no template)."""
    from inkwell.generate.jobs import generate_job
    from inkwell.generate.settings import GenerationSettings
    from inkwell.models.load import architecture_of_spec

    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise InkwellError("the prompt is empty", field="prompt")
    settings = GenerationSettings.build(settings_overrides(decoding, n))
    with open_engine_for(EngineOptions(model, adapter, dtype, device, engine, precision)) as loaded:
        streaming = _streaming(stream, as_json, n)
        continues = not chat and architecture_of_spec(model, adapter) != "seq2seq"  # T5 answers, never continues
        if streaming and continues:
            sys.stdout.write(prompt)
        records = generate_job(
            loaded,
            prompt,
            settings,
            chat=chat,
            system=system,
            on_delta=_echo if streaming else None,
            store=store_for(no_log),
        )
    _show(records, as_json, streaming, lambda r: prompt + r.text if continues else r.text)


@with_decoding
def batch(
    template: Annotated[str | None, typer.Argument(help="Template name.")] = None,
    input: Annotated[
        Path,
        typer.Option(
            "--input", "-i", help="Rows: .csv (header = field names) or .jsonl; an `id` column keys the output."
        ),
    ] = ...,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .jsonl, one line per input row.")] = ...,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="Rows decoding at once; finished rows make room for the next at once. With --backend openai: "
            "requests in flight on each server.",
        ),
    ] = 16,
    resume: Annotated[bool, typer.Option("--resume", help="Skip rows whose id is already in the output.")] = False,
    template_file: Annotated[Path | None, typer.Option("--template-file")] = None,
    shots: Annotated[Path | None, typer.Option("--shots")] = None,
    n: Annotated[int, typer.Option("--n", help="Versions per row.")] = 1,
    best_of: BestOfOpt = 1,
    systems: SystemsOpt = None,
    kb: KbOpt = None,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    decoding: Decoding = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    precision: PrecisionOpt = "auto",
    no_log: NoLog = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    as_json: JsonOut = False,
    policy: PolicyOpt = None,
    no_moderation: NoModerationOpt = False,
    backend: BackendOpt = "local",
    base_url: BaseUrlOpt = None,
    api_key: RemoteKeyOpt = None,
):
    """Run a template over every row of a CSV/JSONL file; resumable."""
    from inkwell.generate.jobs import batch_job, batch_summary, prepare_batch

    # Moderation: blocked input rows are reported and not run; blocked outputs become failed rows naming
    # the category; redactions are what is written.
    guard = guard_for(policy, no_moderation, "batch", no_log)
    overrides, chosen = _best_of(settings_overrides(decoding, n), best_of, None)  # --best-of: N candidates a row
    job = prepare_batch(template, template_file, input, shots=shots, overrides=overrides, guard=guard)
    grounding = _row_grounding(kb, job)  # --kb: each row grounded on its own passages (unknown folder: exit 2 now)
    options = EngineOptions(
        model,
        adapter,
        dtype,
        device,
        engine,
        precision,
        batch_size=batch_size,
        backend=backend,
        base_url=base_url,
        api_key=api_key,
        bulk=True,
        systems=_systems(systems, best_of),
    )
    with open_engine_for(options) as loaded:
        ground = {**chosen, "grounding": grounding.on(loaded)} if grounding is not None else chosen
        report = batch_job(
            loaded, job, input, output, resume=resume, progress=progress, store=store_for(no_log), say=say, **ground
        )
    if as_json:
        print_json(batch_summary(report))
    else:
        say(
            f"wrote {report.written} rows to {report.output} ({report.skipped_done} already done, "
            f"{len(report.failed)} failed) in {report.seconds:.1f}s"
        )
    if report.failed and not report.written and not report.skipped_done:
        raise typer.Exit(1)


def _systems(systems: str | None, best_of: int) -> str | None:
    """--systems: each system writes some of a version's --best-of candidates, so N must cover them all."""
    if systems is None:
        return None
    from inkwell.generate.ensemble import parse_systems

    count = len(parse_systems(systems))
    if best_of < count:
        raise InkwellError(
            f"--systems gives {count} systems and --best-of is {best_of}: each system writes some of the candidates",
            field="best-of",
            hint=f"add --best-of {count} (or more)",
        )
    return systems


def _best_of(overrides: dict, best_of: int, data: Path | None) -> tuple[dict, dict]:
    """--best-of N: (the overrides asking for N candidates per version, the write step's `choose` argument);
    both unchanged when N is 1. compose/bestof.py ranks the candidates."""
    if best_of == 1:
        return overrides, {}
    if data is not None:
        raise InkwellError(
            "--best-of cannot be used with --data: a table's report is already rewritten while a number is "
            "unsupported (--fact-retries)",
            field="best-of",
        )
    from inkwell.compose.bestof import best_of_settings

    wider, choose = best_of_settings(overrides, best_of)
    return wider, {"choose": choose}


def _write_steps(data: Path | None, fact_retries: int, style: str | None, adapter: str | None, model: str | None):
    """(prepare, write, adapter) of `write`: generate.jobs' prepare_write and write_job; with --data compose/report.py's
    (the table's facts in the prompt, the text checked); with --style wrapped by compose/style.py (the style's
    exemplars as shots, its LoRA as the adapter unless --adapter is given, a style-match score per version). A poem
    is checked against known poems (evaluate/known_poems.py): one that reproduces a published poem is flagged."""
    from inkwell.evaluate.known_poems import flag_known_poems
    from inkwell.generate.jobs import prepare_write, write_job

    if data is not None:
        from inkwell.compose.report import facts_steps

        prepare_write, write_job = facts_steps(data, fact_retries)
    prepare_write, write_job, adapter = styled(style, prepare_write, write_job, adapter, model)
    return prepare_write, flag_known_poems(write_job, say), adapter


# ---------------------------------------------------------------- knowledge (--kb)


def _grounding(kb: str | None, data: Path | None, job, quote: bool = True):
    """`write --kb`: the passages for the job (compose/grounded.py), or None without --kb."""
    if kb is None:
        return None
    if data is not None:
        raise InkwellError("--kb and --data cannot be used together", field="kb", hint="use one of them")
    from inkwell.compose.grounded import ground_write

    return ground_write(kb, job, say, quote="replace" if quote else "offer")


def _row_grounding(kb: str | None, job):
    """`batch --kb`: per-row grounding (compose/grounded.py), or None without --kb."""
    if kb is None:
        return None
    from inkwell.compose.grounded import RowGrounding

    return RowGrounding(kb, job, say)


def _sources(records: list, as_json: bool) -> None:
    """Under a grounded text: the passages it cites, each with its file, characters and heading."""
    if as_json:
        return
    for record in records:
        cited = record.extra.get("citations") or []
        if cited:
            typer.echo("Sources:")
        for c in cited:
            heading = f"  ({c['heading'].split(' > ')[-1]})" if c["heading"] else ""
            typer.echo(f"[{c['number']}] {c['source']}:{c['start']}-{c['end']}{heading}")


# ---------------------------------------------------------------- printing


def _streaming(stream: bool | None, as_json: bool, n: int) -> bool:
    """Print text as it is written: on a terminal unless told, never with --json or several versions."""
    return (sys.stdout.isatty() if stream is None else stream) and not as_json and n == 1


def _echo(_index: int, text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _written_text(record) -> str:
    """A version as `write` prints it: a structured template's JSON; with --data, unsupported spans marked ⟦…⟧."""
    if record.data is not None:
        return _json_text(record.data)
    return record.extra.get("fact_check", {}).get("marked_text", record.text)


def _json_text(value) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, indent=2)


def _show(records: list, as_json: bool, streaming: bool, text_of: Callable) -> None:
    """The records as --json prints them, or each version's text (the streamed text only needs its newline)."""
    if as_json:
        print_json(records[0].to_json() if len(records) == 1 else [r.to_json() for r in records])
    elif streaming:
        typer.echo()
    else:
        for i, record in enumerate(records):
            if len(records) > 1:
                typer.echo(f"--- version {i + 1} ---")
            typer.echo(text_of(record))


def _blocked_exit(blocked: list, as_json: bool = False) -> None:
    """Versions moderation blocked: say which category (and, with --json, print it), exit with status 3."""
    if not blocked:
        return
    from inkwell.safety.guard import decision_summary

    for decision in blocked:
        say(f"blocked: {decision.describe()}; the text was not shown")
    if as_json:
        first = blocked[0]
        print_json(
            {
                "error": first.describe(),
                "category": (first.blocking_categories or first.categories)[0],
                "moderation": decision_summary(first),
            }
        )
    raise typer.Exit(3)
