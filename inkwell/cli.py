"""The `inkwell` command line. Each command is a thin function over the lifecycle folders; heavy imports
(torch, transformers) happen inside the commands so `inkwell --help` answers at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from inkwell.errors import InkwellError

app = typer.Typer(
    name="inkwell",
    help="AI content creation on small pretrained language models (offline, CPU first).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Embedded and local models.", no_args_is_help=True)
templates_app = typer.Typer(help="Content templates.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(templates_app, name="templates")

# ---------------------------------------------------------------- shared options

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Registry name, HF folder or .gguf file [default: smollm2-135m-instruct].")]
AdapterOpt = Annotated[Optional[str], typer.Option("--adapter", help="PEFT adapter folder to apply on the model.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto | fp32 | bf16 | fp16 (auto: bf16 on GPUs and CPUs with fast bf16, else fp32).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")]
MaxNew = Annotated[Optional[int], typer.Option("--max-new-tokens", help="Most tokens to generate.")]
MinNew = Annotated[Optional[int], typer.Option("--min-new-tokens", help="Fewest tokens to generate.")]
Temp = Annotated[Optional[float], typer.Option("--temperature", "-t", help="0 = greedy.")]
TopP = Annotated[Optional[float], typer.Option("--top-p")]
TopK = Annotated[Optional[int], typer.Option("--top-k", help="0 disables.")]
RepPen = Annotated[Optional[float], typer.Option("--repetition-penalty", help="1.0 disables.")]
NoRepeat = Annotated[Optional[int], typer.Option("--no-repeat-ngram-size")]
Beams = Annotated[Optional[int], typer.Option("--num-beams")]
Stop = Annotated[Optional[list[str]], typer.Option("--stop", help="Stop sequence (repeatable).")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Same seed, same text.")]
NoLog = Annotated[bool, typer.Option("--no-log", help="Do not record this in the history database.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for other tools.")]


def _overrides(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None and v != []}


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _engine(model, adapter, dtype, device, batch_size: int = 16):
    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    loaded = load_model(model, adapter=adapter, dtype=dtype, device=device, progress=_say)
    return Engine(loaded, batch_size=batch_size)


def _parse_sets(pairs: list[str] | None) -> dict:
    fields: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InkwellError(f"--set expects field=value, got '{pair}'", field="set", hint='--set product="bamboo water bottle"')
        key, value = pair.split("=", 1)
        fields[key.strip()] = value
    return fields


def _store(no_log: bool):
    if no_log:
        return None
    from inkwell.store import Store

    return Store()


def _print_json(value) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


# ---------------------------------------------------------------- write / generate / batch


@app.command()
def write(
    template: Annotated[Optional[str], typer.Argument(help="Template name (see `inkwell templates list`).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Template field: name=value (repeatable).")] = None,
    template_file: Annotated[Optional[Path], typer.Option("--template-file", help="A template YAML file to use instead of a name.")] = None,
    shots: Annotated[Optional[Path], typer.Option("--shots", help="Few-shot examples (JSONL: fields + output).")] = None,
    n: Annotated[int, typer.Option("--n", help="How many versions to write.")] = 1,
    stream: Annotated[Optional[bool], typer.Option("--stream/--no-stream", help="Print text as it is written [default: on a terminal].")] = None,
    json_retries: Annotated[int, typer.Option("--json-retries", help="Retries when a structured template's JSON is invalid.")] = 2,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    max_new_tokens: MaxNew = None,
    min_new_tokens: MinNew = None,
    temperature: Temp = None,
    top_p: TopP = None,
    top_k: TopK = None,
    repetition_penalty: RepPen = None,
    no_repeat_ngram_size: NoRepeat = None,
    num_beams: Beams = None,
    stop: Stop = None,
    seed: Seed = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    no_log: NoLog = False,
    as_json: JsonOut = False,
):
    """Write content from a template: the main job.

    Example: inkwell write product-description --set product="bamboo water bottle"
    """
    from inkwell.generate.content import write as write_content
    from inkwell.prompts.library import get_template
    from inkwell.prompts.render import load_shots

    tpl = get_template(template, template_file)
    fields = _parse_sets(set_)
    tpl.resolve_fields(fields)  # fail on field errors before loading a model
    overrides = _overrides(
        max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, temperature=temperature, top_p=top_p,
        top_k=top_k, repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
        num_beams=num_beams, stop=stop, seed=seed, num_return_sequences=n if n != 1 else None,
    )
    from inkwell.generate.settings import GenerationSettings

    GenerationSettings.build(tpl.decoding, overrides)  # validate settings before loading a model
    examples = load_shots(shots, tpl) if shots else None
    engine = _engine(model, adapter, dtype, device)
    streaming = (sys.stdout.isatty() if stream is None else stream) and not as_json and n == 1
    on_delta = (lambda _i, text: (sys.stdout.write(text), sys.stdout.flush())) if streaming else None
    results = write_content(engine, tpl, fields, shots=examples, overrides=overrides, on_delta=on_delta, json_retries=json_retries)
    for warning in results[0].warnings:
        _say(f"warning: {warning}")
    store = _store(no_log)
    records = []
    for item in results:
        record = {
            "text": item.text,
            "model": engine.loaded.name,
            "adapter": engine.loaded.adapter,
            "template": tpl.name,
            "fields": item.rendered.fields,
            "settings": item.settings.to_dict(),
            "usage": {"prompt_tokens": item.generation.prompt_tokens, "completion_tokens": item.generation.completion_tokens},
            "latency_s": item.generation.latency_s,
            "finish_reason": item.generation.finish_reason,
        }
        if item.data is not None:
            record["data"] = item.data
        records.append(record)
        if store:
            store.log_generation(
                source="write", model=engine.loaded.name, adapter=engine.loaded.adapter, template=tpl.name,
                fields=item.rendered.fields, settings=item.settings.to_dict(), prompt=engine.render(item.rendered.prompt),
                output=item.text, prompt_tokens=item.generation.prompt_tokens,
                completion_tokens=item.generation.completion_tokens, latency_s=item.generation.latency_s,
                finish_reason=item.generation.finish_reason,
            )
    if as_json:
        _print_json(records[0] if len(records) == 1 else records)
    elif streaming:
        typer.echo()
    else:
        for i, record in enumerate(records):
            if len(records) > 1:
                typer.echo(f"--- version {i + 1} ---")
            typer.echo(json.dumps(record["data"], ensure_ascii=False, indent=2) if "data" in record else record["text"])


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt text ('-' reads standard input).")],
    chat: Annotated[bool, typer.Option("--chat/--completion", help="Send as a chat message (instruct models) or as plain text to continue.")] = False,
    system: Annotated[Optional[str], typer.Option("--system", help="System message (with --chat).")] = None,
    n: Annotated[int, typer.Option("--n")] = 1,
    stream: Annotated[Optional[bool], typer.Option("--stream/--no-stream")] = None,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    max_new_tokens: MaxNew = None,
    min_new_tokens: MinNew = None,
    temperature: Temp = None,
    top_p: TopP = None,
    top_k: TopK = None,
    repetition_penalty: RepPen = None,
    no_repeat_ngram_size: NoRepeat = None,
    num_beams: Beams = None,
    stop: Stop = None,
    seed: Seed = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    no_log: NoLog = False,
    as_json: JsonOut = False,
):
    """Generate from a raw prompt (no template)."""
    from inkwell.generate.settings import GenerationSettings

    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise InkwellError("the prompt is empty", field="prompt")
    settings = GenerationSettings.build(_overrides(
        max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, temperature=temperature, top_p=top_p,
        top_k=top_k, repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
        num_beams=num_beams, stop=stop, seed=seed, num_return_sequences=n,
    ))
    engine = _engine(model, adapter, dtype, device)
    request = prompt
    if chat:
        request = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    streaming = (sys.stdout.isatty() if stream is None else stream) and not as_json and n == 1
    if streaming and not chat:
        sys.stdout.write(prompt)
    on_delta = (lambda _i, text: (sys.stdout.write(text), sys.stdout.flush())) if streaming else None
    results = engine.generate([request], settings, on_delta=on_delta)
    store = _store(no_log)
    records = []
    for r in results:
        records.append({
            "text": r.text, "model": engine.loaded.name, "adapter": engine.loaded.adapter, "template": None,
            "fields": None, "settings": settings.to_dict(),
            "usage": {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens},
            "latency_s": r.latency_s, "finish_reason": r.finish_reason,
        })
        if store:
            store.log_generation(
                source="generate", model=engine.loaded.name, adapter=engine.loaded.adapter, settings=settings.to_dict(),
                prompt=engine.render(request), output=r.text, prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens, latency_s=r.latency_s, finish_reason=r.finish_reason,
            )
    if as_json:
        _print_json(records[0] if len(records) == 1 else records)
    elif streaming:
        typer.echo()
    else:
        for i, record in enumerate(records):
            if len(records) > 1:
                typer.echo(f"--- version {i + 1} ---")
            typer.echo(record["text"] if chat else prompt + record["text"])


@app.command()
def batch(
    template: Annotated[Optional[str], typer.Argument(help="Template name.")] = None,
    input: Annotated[Path, typer.Option("--input", "-i", help="Rows: .csv (header = field names) or .jsonl; an `id` column keys the output.")] = ...,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .jsonl, one line per input row.")] = ...,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows generated together.")] = 16,
    resume: Annotated[bool, typer.Option("--resume", help="Skip rows whose id is already in the output.")] = False,
    template_file: Annotated[Optional[Path], typer.Option("--template-file")] = None,
    shots: Annotated[Optional[Path], typer.Option("--shots")] = None,
    n: Annotated[int, typer.Option("--n", help="Versions per row.")] = 1,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    max_new_tokens: MaxNew = None,
    min_new_tokens: MinNew = None,
    temperature: Temp = None,
    top_p: TopP = None,
    top_k: TopK = None,
    repetition_penalty: RepPen = None,
    no_repeat_ngram_size: NoRepeat = None,
    num_beams: Beams = None,
    stop: Stop = None,
    seed: Seed = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    no_log: NoLog = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    as_json: JsonOut = False,
):
    """Run a template over every row of a CSV/JSONL file; resumable."""
    from inkwell.generate.batch import run_batch
    from inkwell.generate.settings import GenerationSettings
    from inkwell.prompts.library import get_template
    from inkwell.prompts.render import load_shots

    tpl = get_template(template, template_file)
    overrides = _overrides(
        max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, temperature=temperature, top_p=top_p,
        top_k=top_k, repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
        num_beams=num_beams, stop=stop, seed=seed, num_return_sequences=n if n != 1 else None,
    )
    GenerationSettings.build(tpl.decoding, overrides)
    if not input.exists():
        raise InkwellError(f"input file not found: {input}", field="input")
    examples = load_shots(shots, tpl) if shots else None
    engine = _engine(model, adapter, dtype, device, batch_size=batch_size)
    store = _store(no_log)

    def log(row, item, batch_id):
        if store:
            store.log_generation(
                source="batch", model=engine.loaded.name, adapter=engine.loaded.adapter, template=tpl.name,
                fields=item.rendered.fields, settings=item.settings.to_dict(), prompt=engine.render(item.rendered.prompt),
                output=item.text, prompt_tokens=item.generation.prompt_tokens,
                completion_tokens=item.generation.completion_tokens, latency_s=item.generation.latency_s,
                finish_reason=item.generation.finish_reason, batch_id=batch_id, row_id=row.id,
            )

    def bad(row, reason):
        _say(f"skipped {input}:{row.line} (id {row.id}): {reason}")

    report = run_batch(engine, tpl, input, output, resume=resume, shots=examples, overrides=overrides,
                       progress=progress, on_result=log, on_error=bad)
    summary = {
        "output": str(report.output), "rows": report.total, "written": report.written,
        "already_done": report.skipped_done, "failed": len(report.failed),
        "completion_tokens": report.tokens, "seconds": round(report.seconds, 2),
        "items_per_s": round(report.written / report.seconds, 3) if report.seconds else None,
    }
    if as_json:
        _print_json(summary)
    else:
        _say(f"wrote {report.written} rows to {report.output} ({report.skipped_done} already done, "
             f"{len(report.failed)} failed) in {report.seconds:.1f}s")
    if report.failed and not report.written and not report.skipped_done:
        raise typer.Exit(1)


# ---------------------------------------------------------------- history


@app.command()
def history(
    search: Annotated[Optional[str], typer.Option("--search", "-q", help="Text to look for in prompts and outputs.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    as_json: JsonOut = False,
):
    """Show logged generations, newest first."""
    from inkwell.store import Store

    rows = Store().history(search=search, limit=limit)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _say("no generations logged yet" + (f" matching '{search}'" if search else ""))
        return
    import datetime

    for row in rows:
        when = datetime.datetime.fromtimestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M")
        label = row["template"] or "raw prompt"
        typer.echo(f"#{row['id']}  {when}  {row['model']}  {label}  ({row['completion_tokens']} tokens, {row['latency_s']:.1f}s)")
        preview = row["output"].strip().replace("\n", " ")
        typer.echo(f"    {preview[:160]}{'…' if len(preview) > 160 else ''}")


# ---------------------------------------------------------------- models


@models_app.command("list")
def models_list(as_json: JsonOut = False):
    """Embedded models (and whether their cache is prepared) plus converted local GGUF files."""
    from inkwell.models.catalog import list_models

    items = list_models()
    if as_json:
        _print_json(items)
        return
    for item in items:
        status = "ready" if item.get("prepared") else "not prepared (inkwell models pull NAME)"
        typer.echo(f"{item['name']:<26} {item.get('kind', ''):<6} {item.get('parameters', ''):<6} {','.join(item.get('languages', [])):<18} {status}")


@models_app.command("info")
def models_info(name: Annotated[str, typer.Argument()], as_json: Annotated[bool, typer.Option("--json")] = True):
    """Everything known about one model."""
    from inkwell.models.catalog import model_info

    _print_json(model_info(name))


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Embedded model name.")],
    force: Annotated[bool, typer.Option("--force", help="Prepare again even if cached.")] = False,
):
    """Prepare an embedded model: de-quantise its GGUF once into the safetensors cache."""
    from inkwell.models.load import embedded_cache_dir, is_prepared, pull

    if is_prepared(embedded_cache_dir(name)) and not force:
        _say(f"{name} is ready at {embedded_cache_dir(name)}")
        return
    folder = pull(name, progress=_say, force=force)
    _say(f"{name} is ready at {folder}")


# ---------------------------------------------------------------- templates


@templates_app.command("list")
def templates_list(as_json: JsonOut = False):
    """All templates: built-in and your own (INKWELL_HOME/templates)."""
    from inkwell.prompts.library import all_templates

    items = [
        {"name": t.name, "description": t.description, "languages": t.languages,
         "fields": list(t.fields), "required": [k for k, v in t.fields.items() if v.required],
         "structured": t.output_schema is not None, "source": t.source}
        for t in all_templates().values()
    ]
    if as_json:
        _print_json(items)
        return
    for item in items:
        typer.echo(f"{item['name']:<24} {','.join(item['languages']):<6} {item['description']}")


@templates_app.command("show")
def templates_show(name: Annotated[str, typer.Argument()]):
    """Print a template's YAML definition."""
    from inkwell.prompts.library import get_template

    template = get_template(name)
    typer.echo(f"# {template.source}")
    typer.echo(Path(template.source).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print one clear message (no traceback) and exit with status 2."""
    import click

    try:
        app(args=argv, standalone_mode=False)
    except InkwellError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
