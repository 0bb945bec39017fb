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
EngineOpt = Annotated[str, typer.Option("--engine", envvar="INKWELL_ENGINE", help="auto | native | onnx | torch (auto on CPU: native for a llama GGUF, else ONNX where it applies, else torch).")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="ONNX fast path weights: auto | int4 | int8 | fp32 (auto: int4 where the model's 4-bit GGUF grid is kept exactly, else int8).")]
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
BackendOpt = Annotated[str, typer.Option("--backend", help="local, or openai: any OpenAI-compatible server (inkwell serve, vLLM, TGI, llama.cpp); --model then names the served model.")]
BaseUrlOpt = Annotated[Optional[str], typer.Option("--base-url", help="With --backend openai: the server, e.g. http://127.0.0.1:8000/v1.")]
RemoteKeyOpt = Annotated[Optional[str], typer.Option("--api-key", envvar="INKWELL_API_KEY", help="With --backend openai: the server's API key.")]


DECODING_FLAGS = ("max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty",
                  "no_repeat_ngram_size", "num_beams", "stop", "seed")


def _overrides(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None and v != []}


def _decoding(flags: dict, n: int | None = None) -> dict:
    """The decoding flags the user actually gave (from a command's locals()), as settings overrides."""
    picked = _overrides(**{k: flags.get(k) for k in DECODING_FLAGS})
    if n is not None and n != 1:
        picked["num_return_sequences"] = n
    return picked


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _engine(model, adapter, dtype, device, batch_size: int = 16, backend: str = "local", base_url=None, api_key=None,
            engine: str = "torch", precision: str = "auto", bulk: bool = False):
    if backend != "local":
        return _remote_engine(backend, base_url, api_key, model, adapter, batch_size)
    from inkwell.generate.runtime import open_engine

    return open_engine(model, adapter=adapter, dtype=dtype, device=device, batch_size=batch_size, engine=engine,
                       precision=precision, progress=_say, bulk=bulk)


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
    from inkwell.generate.content import write as write_content
    from inkwell.prompts.library import get_template
    from inkwell.prompts.render import load_shots

    tpl = get_template(template, template_file)
    fields = _parse_sets(set_)
    tpl.resolve_fields(fields)  # fail on field errors before loading a model
    guard = _guard(policy, no_moderation, "write", no_log)
    fields = guard.screen_input(fields) if guard else fields  # blocked input: error naming the category, exit 2
    overrides = _decoding(locals(), n)
    from inkwell.generate.settings import GenerationSettings

    GenerationSettings.build(tpl.decoding, overrides)  # validate settings before loading a model
    examples = load_shots(shots, tpl) if shots else None
    engine = _engine(model, adapter, dtype, device, backend=backend, base_url=base_url, api_key=api_key,
                     engine=engine, precision=precision)
    # With moderation on, output is checked before anyone sees it, so it is not streamed.
    streaming = (sys.stdout.isatty() if stream is None else stream) and not as_json and n == 1 and guard is None
    if stream and guard is not None:
        _say("note: output is moderated before it is shown, so it is not streamed (--no-moderation streams)")
    on_delta = (lambda _i, text: (sys.stdout.write(text), sys.stdout.flush())) if streaming else None
    results = write_content(engine, tpl, fields, shots=examples, overrides=overrides, on_delta=on_delta, json_retries=json_retries)
    for warning in results[0].warnings:
        _say(f"warning: {warning}")
    results, blocked = _moderate_results(guard, results, as_json)
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
        if getattr(item, "moderation", None):
            record["moderation"] = item.moderation
        records.append(record)
        if store:
            generation_id = store.log_generation(
                source="write", model=engine.loaded.name, adapter=engine.loaded.adapter, template=tpl.name,
                fields=item.rendered.fields, settings=item.settings.to_dict(), prompt=engine.render(item.rendered.prompt),
                output=item.text, prompt_tokens=item.generation.prompt_tokens,
                completion_tokens=item.generation.completion_tokens, latency_s=item.generation.latency_s,
                finish_reason=item.generation.finish_reason,
            )
            _link_audit(guard, item, generation_id)
    if as_json:
        _print_json(records[0] if len(records) == 1 else records)
    elif streaming:
        typer.echo()
    else:
        for i, record in enumerate(records):
            if len(records) > 1:
                typer.echo(f"--- version {i + 1} ---")
            typer.echo(json.dumps(record["data"], ensure_ascii=False, indent=2) if "data" in record else record["text"])
    _blocked_exit(blocked)  # some versions were blocked: say which category, exit 3


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
    engine: EngineOpt = "auto",
    precision: PrecisionOpt = "auto",
    no_log: NoLog = False,
    as_json: JsonOut = False,
):
    """Generate from a raw prompt (no template)."""
    from inkwell.generate.settings import GenerationSettings

    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise InkwellError("the prompt is empty", field="prompt")
    settings = GenerationSettings.build(_decoding(locals(), n))
    engine = _engine(model, adapter, dtype, device, engine=engine, precision=precision)
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
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows decoding at once; finished rows make room for the next at once.")] = 16,
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
    from inkwell.generate.batch import run_batch
    from inkwell.generate.settings import GenerationSettings
    from inkwell.prompts.library import get_template
    from inkwell.prompts.render import load_shots

    tpl = get_template(template, template_file)
    overrides = _decoding(locals(), n)
    GenerationSettings.build(tpl.decoding, overrides)
    if not input.exists():
        raise InkwellError(f"input file not found: {input}", field="input")
    examples = load_shots(shots, tpl) if shots else None
    # bulk work under auto: the native engine where it runs, else torch (the ONNX path's static batches of
    # <= 32 rows lose at 64 rows; docs/generation.md has the figures)
    engine = _engine(model, adapter, dtype, device, batch_size=batch_size, backend=backend, base_url=base_url,
                     api_key=api_key, engine=engine, precision=precision, bulk=True)
    scheduler = None
    from inkwell.generate.engine import Engine

    # Engines with continuous batching (torch, native): rows are fed to a running batch as places free up (see
    # generate/batch.py). The ONNX fast path runs its own static batches of similar-length rows.
    if type(engine) is Engine or hasattr(engine, "continuous_batch"):
        from inkwell.generate.scheduler import ScheduledEngine, Scheduler

        scheduler = Scheduler(engine).start()
        engine = ScheduledEngine(scheduler)
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

    guard = _guard(policy, no_moderation, "batch", no_log)
    # Moderation: blocked input rows are reported and not run; blocked outputs become failed rows naming
    # the category; redactions are what is written.
    hooks = _batch_moderation(guard) if guard is not None else {}
    try:
        report = run_batch(engine, tpl, input, output, resume=resume, shots=examples, overrides=overrides,
                           progress=progress, on_result=log, on_error=bad, **hooks)
    finally:
        if scheduler is not None:
            scheduler.close()
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


# ---------------------------------------------------------------- evaluation (eval / score / rate)


@app.command("eval")
def eval_(
    data: Annotated[Path, typer.Option("--data", "-d", help="Eval rows (JSONL): template fields or `prompt`, a reference column, optional `id`.")] = ...,
    system: Annotated[list[str], typer.Option("--system", help="NAME=MODEL\\[:ADAPTER]\\[@shots.jsonl] (repeat for each system to compare).")] = ...,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: generations cache, report.json/.md/.html, plots.")] = ...,
    template: Annotated[Optional[str], typer.Option("--template", help="Render each row through this template.")] = None,
    template_file: Annotated[Optional[Path], typer.Option("--template-file")] = None,
    metrics: Annotated[Optional[list[str]], typer.Option("--metrics", help="Comma-separated metric names [default: bleu,chrf,rouge,semantic,perplexity,length,distinct,self_bleu,repetition].")] = None,
    ref_field: Annotated[str, typer.Option("--ref-field", help="The reference column.")] = "reference",
    lang: Annotated[str, typer.Option("--lang", help="auto | en | zh (BLEU/ROUGE tokenisation).")] = "auto",
    corpus: Annotated[Optional[list[Path]], typer.Option("--corpus", help="Training corpus for the memorisation metric (JSONL or text; repeatable).")] = None,
    copy_threshold: Annotated[int, typer.Option("--copy-threshold", min=1, help="Tokens copied in a row that count as memorised.")] = 12,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the intervals (0: none).")] = 1000,
    examples: Annotated[int, typer.Option("--examples", min=0, help="Examples shown side by side in report.md/.html.")] = 100,
    json_retries: Annotated[int, typer.Option("--json-retries", min=0, help="Retries for structured templates (0: score the raw output).")] = 0,
    max_new_tokens: MaxNew = None,
    min_new_tokens: MinNew = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="[default: 0, greedy]")] = None,
    top_p: TopP = None,
    top_k: TopK = None,
    repetition_penalty: RepPen = None,
    no_repeat_ngram_size: NoRepeat = None,
    num_beams: Beams = None,
    stop: Stop = None,
    seed: Seed = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    backend: Annotated[str, typer.Option("--backend", help="local, or openai: generate on an OpenAI-compatible server (inkwell serve, vLLM, ...); each system's MODEL is then the served model name, and perplexity is skipped.")] = "local",
    base_url: BaseUrlOpt = None,
    api_key: RemoteKeyOpt = None,
    as_json: JsonOut = False,
):
    """Compare systems on the same rows: generate (cached in OUT), score, and write reports.

    Example: inkwell eval --data test.jsonl --template product-description --system base=smollm2-135m-instruct@shots.jsonl --system tuned=smollm2-135m-instruct:runs/lora --out eval/
    """
    from inkwell.evaluate.data import parse_system
    from inkwell.evaluate.runner import EvalConfig, parse_remote_system, run_eval

    parse = parse_remote_system if backend == "openai" else parse_system
    config = EvalConfig(
        data=data, systems=[parse(s) for s in system], out=out, template=template, template_file=template_file,
        metrics=metrics, ref_field=ref_field, lang=lang, corpus=corpus, copy_threshold=copy_threshold,
        batch_size=batch_size, resamples=bootstrap, report_examples=examples, json_retries=json_retries,
        dtype=dtype, device=device, backend=backend, base_url=base_url, api_key=api_key,
        overrides=_decoding(locals()),
    )
    report = run_eval(config, say=_say)
    summary = {
        "out": str(out), "rows": report["rows"],
        "reports": [str(out / name) for name in ("report.json", "report.md", "report.html")],
        "systems": {s["name"]: {"generated": s["generated"], "cached": s["cached"], "failed": s["failed"]} for s in report["systems"]},
        "scores": {name: {k: v["value"] for k, v in values.items()} for name, values in report["scores"].items()},
    }
    if as_json:
        _print_json(summary)
        return
    from inkwell.evaluate.report import metric_rows, fmt_cell

    names = [s["name"] for s in report["systems"]]
    typer.echo(f"{'metric':<22}" + "".join(f"{n:>28}" for n in names))
    for metric in metric_rows(report):
        typer.echo(f"{metric:<22}" + "".join(f"{fmt_cell(report['scores'][n].get(metric)):>28}" for n in names))
    _say(f"reports: {out / 'report.html'} (also report.md, report.json)")


@app.command()
def score(
    pred: Annotated[Path, typer.Option("--pred", "-p", help="Predictions (JSONL, one {\"text\": ...} per line).")] = ...,
    ref: Annotated[Optional[Path], typer.Option("--ref", "-r", help="References (JSONL with `text`), paired by line.")] = None,
    metrics: Annotated[Optional[list[str]], typer.Option("--metrics", help="Comma-separated [default: bleu,chrf,rouge,length,distinct,self_bleu,repetition].")] = None,
    lang: Annotated[str, typer.Option("--lang", help="auto | en | zh")] = "auto",
    corpus: Annotated[Optional[list[Path]], typer.Option("--corpus", help="Training corpus for memorisation.")] = None,
    schema: Annotated[Optional[Path], typer.Option("--schema", help="JSON Schema file for the json metric.")] = None,
    copy_threshold: Annotated[int, typer.Option("--copy-threshold", min=1)] = 12,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Resamples for the intervals in the table (not with --json).")] = 1000,
    as_json: JsonOut = False,
):
    """Score existing outputs (from any tool) without loading a model.

    Example: inkwell score --pred preds.jsonl --ref refs.jsonl --metrics bleu,chrf,rouge --json
    """
    from inkwell.evaluate.runner import score_files

    flat, detail = score_files(pred, ref, metrics=metrics, lang=lang, corpus=corpus, schema=schema,
                               copy_threshold=copy_threshold, resamples=0 if as_json else bootstrap)
    if as_json:
        typer.echo(json.dumps(flat, ensure_ascii=False))
        return
    from inkwell.evaluate.report import fmt_cell

    for name, entry in detail.items():
        typer.echo(f"{name:<22} {fmt_cell(entry)}")
    if "confusion_matrix" in flat:
        typer.echo("confusion matrix (rows: reference, columns: predicted " + ", ".join(flat["confusion_matrix"]["columns"]) + ")")
        for label, counts in zip(flat["confusion_matrix"]["labels"], flat["confusion_matrix"]["matrix"]):
            typer.echo(f"  {label:<20} " + " ".join(f"{c:>5}" for c in counts))


@app.command()
def rate(
    dir: Annotated[Path, typer.Argument(help="An `inkwell eval` output folder.")],
    rater: Annotated[Optional[str], typer.Option("--rater", help="Your name (ratings are kept per rater).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="Rate at most this many outputs now.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Shuffle seed for the (blind) order.")] = 0,
    show_reference: Annotated[bool, typer.Option("--show-reference", help="Also show the reference output.")] = False,
):
    """Rate outputs 1-5, blind (system names hidden, order shuffled); reports then include rating means."""
    from inkwell.evaluate.rate import StopRating, run_session

    def ask(message: str) -> str:
        try:
            return str(typer.prompt(message))
        except (EOFError, KeyboardInterrupt) as exc:
            raise StopRating() from exc
        except Exception as exc:  # click/typer Abort (end of input or Ctrl-C)
            if type(exc).__name__ == "Abort":
                raise StopRating() from exc
            raise

    session = run_session(dir, ask=ask, show=typer.echo, rater=rater, limit=limit, seed=seed, show_reference=show_reference)
    _say(f"rated {session.rated}, skipped {session.skipped}, {session.remaining} left"
         + ("; reports updated" if session.rated else ""))


# ---------------------------------------------------------------- train


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see configs/).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. training.lr=1e-4 lora.r=16.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate the config and read the data files, then stop (no model is loaded).")] = False,
    as_json: JsonOut = False,
):
    """Train a model: pretrain, sft, dpo (preference pairs) or classify, with full/freeze/lora/adalora/ia3/prefix/prompt.

    Example: inkwell train configs/smollm2-lora-sft.yaml training.lr=1e-4 lora.r=16
    Several GPUs: accelerate launch -m inkwell train CONFIG.yaml (or torchrun --nproc_per_node N -m inkwell train ...)
    """
    from inkwell.train.config import load_config

    cfg = load_config(config, overrides)  # every key checked before anything heavy is imported
    if check:
        from inkwell.train import check_data

        report = check_data(cfg)  # each stage's own row reader
        _say(report.summary())
        _say(f"{config}: config and data are valid ({cfg.stage}, {cfg.method})")
        return
    from inkwell.train import RECIPES

    import importlib

    run = importlib.import_module(RECIPES[cfg.stage]).run(cfg, say=_say)
    if not run.card:  # other processes of a multi-process run: the main process reports
        return
    if as_json:
        _print_json({"output": str(run.out), **run.metrics})
    else:
        metrics = run.metrics
        val = f", val loss {metrics['val_loss']:.4f}" if metrics.get("val_loss") is not None else ""
        _say(f"done: {metrics['steps']} steps, train loss {metrics['train_loss']:.4f}{val} ({metrics['stopped']}) -> {run.out}")


# ---------------------------------------------------------------- data preparation (inkwell/data) and moderation (inkwell/safety)

data_app = typer.Typer(help="Prepare training data: ingest, clean, redact, augment, split, stats, sample.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on standard error.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file (written atomically).")]
NearDupOpt = Annotated[float, typer.Option("--near-dup-threshold", help="MinHash Jaccard similarity that counts as a near duplicate; 0 turns it off.")]
PolicyOpt = Annotated[Optional[str], typer.Option("--policy", help="Moderation policy: YAML file or name [default: INKWELL_HOME/policy.yaml, else the shipped default].")]
NoModerationOpt = Annotated[bool, typer.Option("--no-moderation", help="Do not moderate inputs and outputs.")]


def _list_problems(problems: list[tuple[str, str]] | list[str], total: int | None = None, limit: int = 50) -> None:
    """Print `file:line: reason` lines to standard error, at most `limit` of them."""
    for item in problems[:limit]:
        _say(f"  {item[0]}: {item[1]}" if isinstance(item, tuple) else f"  {item}")
    total = len(problems) if total is None else total
    if total > limit:
        _say(f"  ... and {total - limit} more")


def _near(threshold: float) -> float | None:
    if threshold < 0 or threshold > 1:
        raise InkwellError(f"--near-dup-threshold {threshold} must be between 0 (off) and 1", field="near-dup-threshold")
    return threshold or None


@data_app.command("ingest")
def data_ingest(
    sources: Annotated[list[Path], typer.Argument(help=".txt/.md files or folders, .csv/.tsv or .jsonl files.")],
    out: OutOpt = ...,
    schema: Annotated[str, typer.Option("--schema", help="auto | text | text/label | prompt/completion | alpaca | messages.")] = "auto",
    map_: Annotated[Optional[list[str]], typer.Option("--map", help="CSV column for a field: field=column (repeatable), e.g. --map text=body --map label=category.")] = None,
    unit: Annotated[str, typer.Option("--unit", help="Text files: one row per file, or per blank-line separated paragraph.")] = "file",
    delimiter: Annotated[Optional[str], typer.Option("--delimiter", help="CSV delimiter [default: ',' (.tsv: tab)].")] = None,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Collect rows from files into one JSONL; report the schema and every invalid row (file:line: reason)."""
    from inkwell.data.ingest import ingest, parse_column_map

    report = ingest(sources, out, schema=schema, column_map=parse_column_map(map_), unit=unit, delimiter=delimiter, progress=progress)
    if as_json:
        _print_json(report.to_dict())
    else:
        seen = ", ".join(f"{k} {v}" for k, v in report.schemas_seen.most_common())
        _say(f"schema: {report.schema or 'none'}" + (f" (rows seen: {seen})" if seen else ""))
        if report.invalid_count:
            _say(f"{report.invalid_count} invalid rows skipped:")
            _list_problems(report.invalid, report.invalid_count)
        _say(f"wrote {report.written} rows from {report.files} file(s) to {report.output}")
    if not report.written:
        raise typer.Exit(1)


@data_app.command("clean")
def data_clean(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    out: OutOpt = ...,
    min_chars: Annotated[int, typer.Option("--min-chars", help="Drop rows with less text.")] = 1,
    max_chars: Annotated[Optional[int], typer.Option("--max-chars", help="Drop rows with more text.")] = None,
    lang: Annotated[Optional[list[str]], typer.Option("--lang", help="Keep only these languages (zh, en, ja, ko, other; repeatable).")] = None,
    nfkc: Annotated[bool, typer.Option("--nfkc/--no-nfkc", help="Unicode NFKC normalisation.")] = True,
    markup: Annotated[bool, typer.Option("--strip-markup/--keep-markup", help="Remove HTML and Markdown markup.")] = True,
    whitespace: Annotated[bool, typer.Option("--whitespace/--no-whitespace", help="Normalise spaces and blank lines.")] = True,
    dedup: Annotated[bool, typer.Option("--dedup/--no-dedup", help="Remove exact duplicates.")] = True,
    near_dup_threshold: NearDupOpt = 0.7,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Normalise text and drop short/long, wrong-language and duplicate rows; prints what each step did."""
    from inkwell.data.clean import STEPS, CleanConfig, clean_file

    languages = [x.strip() for item in lang or [] for x in item.split(",") if x.strip()] or None
    config = CleanConfig(nfkc=nfkc, markup=markup, whitespace=whitespace, min_chars=min_chars, max_chars=max_chars,
                         languages=languages, exact_dedup=dedup, near_dup_threshold=_near(near_dup_threshold))
    report = clean_file(input, out, config, progress=progress)
    if as_json:
        _print_json(report.to_dict())
        return
    for step in STEPS:
        changed, removed = report.changed.get(step, 0), report.removed.get(step, 0)
        what = f"changed {changed}" if step in ("nfkc", "markup", "whitespace") else f"removed {removed}"
        _say(f"  {step:<11} {what}")
    if report.removed.get("invalid"):
        _say(f"  {'invalid':<11} removed {report.removed['invalid']}")
    _say(f"kept {report.rows_out} of {report.rows_in} rows -> {out}")


@data_app.command("redact")
def data_redact(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    out: OutOpt = ...,
    mode: Annotated[str, typer.Option("--mode", help="placeholder ([EMAIL]) | mask (same length, *) | hash (salted SHA-256 token).")] = "placeholder",
    types: Annotated[Optional[list[str]], typer.Option("--type", help="Only these PII types (repeatable or comma-separated) [default: all].")] = None,
    salt: Annotated[Optional[str], typer.Option("--salt", help="Salt for --mode hash [default: INKWELL_REDACT_SALT, else INKWELL_HOME/redact-salt].")] = None,
    progress: ProgressOpt = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print an object of type -> count.")] = False,
):
    """Replace personal data and secrets in every row; prints how many of each type were found."""
    from inkwell.data.redact import redact_file

    chosen = [x.strip() for item in types or [] for x in item.split(",") if x.strip()] or None
    report = redact_file(input, out, types=chosen, mode=mode, salt=salt, progress=progress)
    counts = report.to_dict()
    if chosen:
        counts = {t: counts[t] for t in chosen}
    if report.invalid:
        _say(f"{len(report.invalid)} invalid rows dropped:")
        _list_problems(report.invalid)
    if as_json:
        _print_json(counts)
        return
    for kind, count in counts.items():
        typer.echo(f"{kind:<15} {count}")
    _say(f"redacted {sum(counts.values())} items in {report.rows_changed} of {report.rows} rows -> {out}")


@data_app.command("augment")
def data_augment(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    out: OutOpt = ...,
    method: Annotated[str, typer.Option("--method", help="synonym (WordNet, offline) | paraphrase | back-translate (need --model).")] = "synonym",
    n: Annotated[int, typer.Option("--n", help="Variants per row.")] = 1,
    rate: Annotated[float, typer.Option("--rate", help="synonym: share of eligible words to replace.")] = 0.15,
    seed: Seed = 0,
    keep_original: Annotated[bool, typer.Option("--keep-original/--only-augmented", help="Also write the original rows.")] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", help="LM methods: rows rewritten together.")] = 16,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="LM methods: longest rewrite.")] = 256,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Add augmented rows (marked `augmented` so evaluation can leave them out)."""
    from inkwell.data.augment import augment_file

    engine = None
    if method != "synonym":
        if not model:
            raise InkwellError(f"--method {method} needs --model", field="model", hint="e.g. --model smollm2-135m-instruct")
        engine = _engine(model, adapter, dtype, device, batch_size=batch_size)
    report = augment_file(input, out, method=method, n=n, rate=rate, seed=seed or 0, keep_original=keep_original,
                          engine=engine, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=progress)
    if as_json:
        _print_json(report.to_dict())
        return
    if report.invalid:
        _say(f"{len(report.invalid)} invalid rows skipped:")
        _list_problems(report.invalid)
    for reason, count in report.skipped.items():
        _say(f"  no variant for {count} rows: {reason}")
    _say(f"wrote {report.written} rows ({report.augmented} augmented) -> {out}")


@data_app.command("split")
def data_split(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Folder for train.jsonl, val.jsonl, test.jsonl.")] = Path("."),
    ratios: Annotated[str, typer.Option("--ratios", help="train,val,test shares.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same split.")] = 13,
    label_field: Annotated[str, typer.Option("--label-field", help="Stratify by this key ('' for none).")] = "label",
    near_dup_threshold: NearDupOpt = 0.7,
    keep_augmented_eval: Annotated[bool, typer.Option("--keep-augmented-eval", help="Also put augmented rows in val/test.")] = False,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Split into train/val/test: seeded, stratified by label, near duplicates kept in the same split."""
    from inkwell.data.split import split_file

    report = split_file(input, out_dir, ratios=ratios, seed=seed, label_field=label_field or None,
                        near_dup_threshold=_near(near_dup_threshold), keep_augmented_eval=keep_augmented_eval, progress=progress)
    if as_json:
        _print_json(report.to_dict())
        return
    if report.invalid:
        _say(f"{len(report.invalid)} invalid rows skipped:")
        _list_problems(report.invalid)
    for name, count in report.counts.items():
        labels = report.labels.get(name)
        _say(f"  {name:<5} {count:>7} rows -> {report.files[name]}" + (f"  {labels}" if labels else ""))
    _say(f"{report.rows} rows in {report.groups} groups ({report.grouped_rows} rows share a group with a duplicate or their source)")


@data_app.command("stats")
def data_stats(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a token-length histogram PNG here.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Count tokens with this model's tokenizer (name or folder) [default: model-free estimate].")] = None,
    near_dup_threshold: NearDupOpt = 0.7,
    pii: Annotated[bool, typer.Option("--pii/--no-pii", help="Count personal data by type.")] = True,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Rows, schemas, languages, token lengths, duplicates, PII counts."""
    from inkwell.data.stats import stats_file

    count_tokens = None
    if tokenizer:
        from transformers import AutoTokenizer

        from inkwell.models.load import resolve

        folder, _card = resolve(tokenizer, progress=_say)
        tok = AutoTokenizer.from_pretrained(str(folder))
        count_tokens = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    stats = stats_file(input, plot=plot, count_tokens=count_tokens, tokenizer_name=tokenizer or "approx",
                       near_dup_threshold=_near(near_dup_threshold), pii=pii, progress=progress)
    data = stats.to_dict()
    if as_json:
        _print_json(data)
        return
    typer.echo(f"rows        {data['rows']}" + (f" (+{data['invalid']} invalid)" if data["invalid"] else ""))
    typer.echo(f"schemas     {data['schemas']}")
    typer.echo(f"languages   {data['languages']}")
    typer.echo(f"tokens      {data['tokens']}")
    typer.echo(f"duplicates  exact {data['duplicates']['exact']}, near {data['duplicates']['near']}")
    if pii:
        typer.echo(f"pii         {({k: v for k, v in data['pii'].items() if v}) or 'none'} in {data['rows_with_pii']} rows")
    if data["labels"]:
        typer.echo(f"labels      {data['labels']}")
    if data["augmented"]:
        typer.echo(f"augmented   {data['augmented']}")
    if data["plot"]:
        _say(f"histogram -> {data['plot']}")


@data_app.command("sample")
def data_sample(
    name: Annotated[str, typer.Argument(help="fortunes | song100 | tang300 | chinese | fortune-topics | fortune-preferences")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output JSONL [default: NAME.jsonl].")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="At most this many rows.")] = None,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Real text from Debian packages (fortunes, fortunes-zh) as JSONL rows."""
    from inkwell.data.sample import write_sample

    out = out or Path(f"{name}.jsonl")
    count = write_sample(name, out, limit=limit, progress=progress)
    if as_json:
        _print_json({"sample": name, "rows": count, "output": str(out)})
    else:
        _say(f"wrote {count} rows of '{name}' to {out}")


@app.command()
def moderate(
    text: Annotated[Optional[str], typer.Argument(help="The text to check ('-' reads standard input).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Check this file's whole text instead.")] = None,
    policy: PolicyOpt = None,
    direction: Annotated[str, typer.Option("--direction", help="input (user text) | output (model text) | any (every category).")] = "input",
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit with status 3 when the text is blocked.")] = False,
    no_log: NoLog = False,
    as_json: JsonOut = False,
):
    """Check a text against the moderation policy: action, categories and findings (logged to the audit table)."""
    from inkwell.safety import Guard, load_policy

    if file is not None:
        if not file.is_file():
            raise InkwellError(f"file not found: {file}", field="file")
        text = file.read_text(encoding="utf-8")
    elif text == "-":
        text = sys.stdin.read()
    if text is None:
        raise InkwellError("nothing to moderate", field="text", hint='inkwell moderate "some text"  or  --file FILE')
    guard = Guard(load_policy(policy), source="moderate", store=_store(no_log))
    result, _ = guard.check(text, direction)
    if as_json:
        _print_json(result.to_dict())
    else:
        typer.echo(f"action: {result.action}" + (f" ({result.describe()})" if result.categories else ""))
        for finding in result.findings:
            typer.echo(f"  {finding.category}/{finding.type} [{finding.start}:{finding.end}] {finding.text!r}")
        if result.action == "redact":
            typer.echo(f"redacted: {result.text}")
    if exit_code and result.blocked:
        raise typer.Exit(3)


def _guard(policy: str | None, no_moderation: bool, source: str, no_log: bool):
    """The moderation guard for write/batch (None with --no-moderation)."""
    if no_moderation:
        return None
    from inkwell.safety import Guard, load_policy

    return Guard(load_policy(policy), source=source, store=_store(no_log))


def _moderate_results(guard, results: list, as_json: bool) -> tuple[list, list]:
    """Moderate each written version: redact in place, warn on flag, hold back blocked ones. When every version
    is blocked, say so (naming the category) and exit with status 3."""
    if guard is None:
        return results, []
    from inkwell.safety.guard import decision_summary, redact_value

    kept, blocked = [], []
    for item in results:
        decision, audit_id = guard.check(item.text, "output")
        item.moderation_audit_id = audit_id
        if decision.blocked:
            blocked.append(decision)
            continue
        if decision.action == "redact":
            item.text = decision.text
            if item.data is not None:
                item.data = redact_value(item.data, guard.policy)
        if decision.action == "flag":
            _say(f"warning: {decision.describe()}")
        if decision.action != "allow":
            item.moderation = decision_summary(decision)
        kept.append(item)
    if blocked and not kept:
        _blocked_exit(blocked, as_json)
    return kept, blocked


def _blocked_exit(blocked: list, as_json: bool = False) -> None:
    if not blocked:
        return
    from inkwell.safety.guard import decision_summary

    for decision in blocked:
        _say(f"blocked: {decision.describe()}; the text was not shown")
    if as_json:
        first = blocked[0]
        _print_json({"error": first.describe(), "category": (first.blocking_categories or first.categories)[0],
                     "moderation": decision_summary(first)})
    raise typer.Exit(3)


def _link_audit(guard, item, generation_id: int | None) -> None:
    if guard is not None:
        guard.link(getattr(item, "moderation_audit_id", None), generation_id)


def _batch_moderation(guard) -> dict:
    """run_batch hooks: screen each row's fields before it runs, and each output record before it is written."""
    from inkwell.safety.guard import decision_summary, redact_value

    def screen_input(row) -> dict:
        return guard.screen_input(row.fields or {})  # raises ModerationBlocked naming the field and category

    def screen_output(record: dict) -> dict:
        decision, _ = guard.check(record["text"], "output")
        if decision.blocked:
            reason = decision.describe()
            _say(f"blocked output for id {record['id']}: {reason}")
            record = {k: v for k, v in record.items() if k not in ("text", "data")}
            return {**record, "error": reason, "moderation": decision_summary(decision)}
        if decision.action == "redact":
            record = {**record, "text": decision.text}
            if "data" in record:
                record["data"] = redact_value(record["data"], guard.policy)
        if decision.action != "allow":
            record = {**record, "moderation": decision_summary(decision)}
        return record

    return {"screen_input": screen_input, "screen_output": screen_output}


# ---------------------------------------------------------------- serve (and the remote backend)


def _remote_engine(backend, base_url, api_key, model, adapter, batch_size):
    """An engine that sends generations to an OpenAI-compatible server (scale-out)."""
    if backend != "openai":
        raise InkwellError(f"unknown backend '{backend}'", field="backend", hint="use local or openai")
    if not base_url:
        raise InkwellError("--backend openai needs --base-url", field="base-url", hint="e.g. --base-url http://127.0.0.1:8000/v1")
    if adapter:
        raise InkwellError("--adapter applies to local models only", field="adapter",
                           hint="with --backend openai, name the served adapter with --model")
    from inkwell.generate.remote import RemoteEngine

    engine = RemoteEngine(base_url, model, api_key, batch_size=batch_size)
    if engine.approximate_counts:
        _say(f"note: no local tokenizer for '{engine.loaded.name}': prompt token counts are approximate")
    return engine


@app.command()
def serve(
    model: ModelOpt = None,
    adapter: Annotated[Optional[list[str]], typer.Option("--adapter", help="NAME=PATH: serve a LoRA adapter as model NAME (repeatable; not merged, base loaded once).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    api_key: Annotated[Optional[list[str]], typer.Option("--api-key", envvar="INKWELL_API_KEY", help="An accepted API key (repeatable); kept only as a hash.")] = None,
    api_keys_file: Annotated[Optional[Path], typer.Option("--api-keys-file", help="One key per line: `ID KEY`, `ID sha256:HEX` or `KEY`.")] = None,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, help="Requests running or waiting at once; more get 429.")] = 64,
    rate_limit: Annotated[Optional[str], typer.Option("--rate-limit", help="Requests per minute per key (per address without keys), e.g. 60/min.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Most rows in one engine batch.")] = 16,
    window_ms: Annotated[float, typer.Option("--batch-window-ms", min=0, help="How long a batch's first request waits for others.")] = 20.0,
    batching: Annotated[str, typer.Option("--batching", help="continuous: requests join a running batch between decode steps; window: each batch runs to its end.")] = "continuous",
    step_tokens: Annotated[int, typer.Option("--step-tokens", min=1, help="Token budget of one decode step: one per running row, the rest for chunks of joining prompts.")] = 256,
    max_queue: Annotated[int, typer.Option("--max-queue", min=1, help="Rows waiting for a place in a batch; more get 429 (queue_full) with Retry-After.")] = 256,
    max_tokens_limit: Annotated[Optional[int], typer.Option("--max-tokens-limit", min=1, help="Most max_tokens a request may ask (default: the context length).")] = None,
    drain_timeout: Annotated[float, typer.Option("--drain-timeout", min=0, help="On SIGTERM, seconds in-flight requests get to finish.")] = 30.0,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    engine: Annotated[str, typer.Option("--engine", help="torch | native | auto (native: the CPU engine on a llama GGUF, no --adapter; auto: native where it applies, else torch).")] = "torch",
    no_log: NoLog = False,
    policy: PolicyOpt = None,
    no_moderation: NoModerationOpt = False,
):
    """Serve an OpenAI-compatible HTTP API: completions, chat (streaming), content templates, /metrics.

    Example: inkwell serve --model smollm2-135m-instruct --adapter support=runs/lora --api-key sk-local-123
    """
    from inkwell.serve.server import run_server
    from inkwell.serve.state import ServeConfig

    if batching not in ("continuous", "window"):
        raise InkwellError(f"unknown --batching '{batching}'", field="batching", hint="use continuous or window")
    if engine not in ("torch", "native", "auto"):
        raise InkwellError(f"unknown --engine '{engine}' for serve", field="engine", hint="use torch, native or auto")
    adapters: dict[str, str] = {}
    for pair in adapter or []:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InkwellError(f"--adapter expects NAME=PATH, got '{pair}'", field="adapter", hint="--adapter support=runs/lora")
        if name.strip() in adapters:
            raise InkwellError(f"two adapters are named '{name.strip()}'", field="adapter")
        adapters[name.strip()] = path.strip()
    config = ServeConfig(
        model=model, adapters=adapters, dtype=dtype, device=device, engine=engine, host=host, port=port,
        api_keys=list(api_key or []),
        api_keys_file=str(api_keys_file) if api_keys_file else None, max_concurrency=max_concurrency,
        rate_limit=rate_limit, batch_size=batch_size, window_ms=window_ms, continuous_batching=batching == "continuous",
        step_tokens=step_tokens, max_queue=max_queue,
        max_tokens_limit=max_tokens_limit,
        drain_timeout_s=drain_timeout, log_generations=not no_log,
        moderation=not no_moderation, policy=policy,
    )
    run_server(config, say=_say)


# ---------------------------------------------------------------- classify (a trained `stage: classify` run)


@app.command()
def classify(
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify ('-' reads one text from standard input).")] = None,
    model: Annotated[Path, typer.Option("--model", "-m", help="Output folder of `inkwell train` with stage: classify.")] = ...,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="JSONL rows with a \"text\" field to classify instead.")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOut = False,
):
    """Label texts with a trained classifier: the label and its probability per text.

    Example: inkwell classify --model runs/smollm2-classify "Cheese -- milk's leap toward immortality."
    """
    items = [sys.stdin.read() if text == "-" else text for text in texts or []]
    if input is not None:
        from inkwell.data.rows import read_jsonl

        for row in read_jsonl(input, progress=False):
            if row.error:
                raise InkwellError(f"{row.where}: {row.error}", field="input", hint='each line: {"text": "..."}')
            if not isinstance(row.record.get("text"), str):
                raise InkwellError(f"{row.where}: field 'text': must be a string", field="input",
                                   hint='each line: {"text": "..."}')
            items.append(row.record["text"])
    if not items:
        raise InkwellError("nothing to classify", field="texts", hint='inkwell classify --model RUN "some text"  or  --input rows.jsonl')
    from inkwell.generate.classify import Classifier

    results = Classifier.load(model, device=device).predict(items)
    if as_json:
        _print_json([{"text": text, **result} for text, result in zip(items, results)])
        return
    for text, result in zip(items, results):
        preview = " ".join(text.split())
        typer.echo(f"{result['label']}\t{result['probability']:.3f}\t{preview[:70] + ('...' if len(preview) > 70 else '')}")


# ---------------------------------------------------------------- export (inkwell/models/export.py)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="A run folder from `inkwell train` (or a PEFT adapter / HF model folder).")],
    to: Annotated[Path, typer.Option("--to", help="Output folder; or a FILE.gguf with --gguf. Written atomically.")],
    merge: Annotated[bool, typer.Option("--merge", help="Full Hugging Face weights (adapter merged in): inkwell write --model DIR.")] = False,
    gguf: Annotated[Optional[str], typer.Option("--gguf", metavar="f16|q8_0|q4_1|q4_0", help="Write a GGUF file for llama.cpp (q8_0: 8-bit, about half the size; q4_1/q4_0: 4-bit matrices, which Inkwell's native CPU engine runs fastest).")] = None,
    quantize: Annotated[Optional[str], typer.Option("--quantize", metavar="int8|int4", help="Write an ONNX model for the fast CPU path (int8: within 1% perplexity; int4: smaller, less accurate).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --to if it exists.")] = False,
    as_json: JsonOut = False,
):
    """Export a trained run: merged full weights (--merge) and/or a GGUF file (--gguf f16|q8_0).

    Example: inkwell export runs/smollm2-lora-sft --merge --gguf q8_0 --to exports/smollm2-ads
    """
    from inkwell.models.export import export_model

    result = export_model(run, to, merge=merge, gguf=gguf, quantize=quantize, force=force, say=_say)
    if as_json:
        _print_json(result)
        return
    if result["merged"]:
        _say(f"full weights ({result['what']}) -> {result['merged']['path']} ({result['merged']['bytes'] / 1e6:.1f} MB)")
        _say(f"  use: inkwell write --model {result['merged']['path']}")
    if result["gguf"]:
        g = result["gguf"]
        _say(f"GGUF {g['type']} -> {g['path']} ({g['bytes'] / 1e6:.1f} MB, {g['tensors']} tensors; metadata from {g['model_metadata']})")
        _say(f"  use: inkwell write --model {g['path']}   (or llama.cpp: llama-cli -m {g['path']})")
    if result.get("quantized"):
        q = result["quantized"]
        _say(f"ONNX {q['precision']} -> {q['path']} ({q['bytes'] / 1e6:.1f} MB)")
        _say(f"  use: inkwell write --model {q['path']}   (perplexity change: inkwell eval with this folder as a system)")
    _say(f"done in {result['seconds']:.1f} s")


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print one clear message (no traceback) and exit with status 2."""
    import click

    # Newer typer vendors click: its Exit/Abort/usage errors are typer's own classes, not click's, and in
    # non-standalone mode it *returns* the code of typer.Exit (and of Ctrl-C, as 130) instead of raising.
    try:
        code = app(args=argv, standalone_mode=False)
    except InkwellError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except (click.ClickException, getattr(typer, "TyperException", click.ClickException)) as exc:
        exc.show() if hasattr(exc, "show") else typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        if code == 130:
            typer.echo("interrupted", err=True)
        sys.exit(code)
