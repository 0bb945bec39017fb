"""`inkwell models`, `templates`, `export`, `history` and `moderate`: what is there (models, templates, logged
generations), exporting a trained run, and checking a text against the moderation policy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from inkwell.cli.common import JsonOut, NoLog, PolicyOpt, print_json, say, store_for
from inkwell.errors import InkwellError

# ---------------------------------------------------------------- models


def models_list(as_json: JsonOut = False):
    """Embedded models (and whether their cache is prepared) plus converted local GGUF files."""
    from inkwell.models.catalog import list_models

    items = list_models()
    if as_json:
        print_json(items)
        return
    for item in items:
        status = "ready" if item.get("prepared") else "not prepared (inkwell models pull NAME)"
        typer.echo(
            f"{item['name']:<26} {item.get('kind', ''):<6} {item.get('parameters', ''):<6} {','.join(item.get('languages', [])):<18} {status}"
        )


def models_info(name: Annotated[str, typer.Argument()], as_json: Annotated[bool, typer.Option("--json")] = True):
    """Everything known about one model."""
    from inkwell.models.catalog import model_info

    print_json(model_info(name))


def models_pull(
    name: Annotated[str, typer.Argument(help="Embedded model name.")],
    force: Annotated[bool, typer.Option("--force", help="Prepare again even if cached.")] = False,
):
    """Prepare an embedded model: de-quantise its GGUF once into the safetensors cache."""
    from inkwell.models.load import embedded_cache_dir, is_prepared, pull

    if is_prepared(embedded_cache_dir(name)) and not force:
        say(f"{name} is ready at {embedded_cache_dir(name)}")
        return
    folder = pull(name, progress=say, force=force)
    say(f"{name} is ready at {folder}")


# ---------------------------------------------------------------- templates


def templates_list(as_json: JsonOut = False):
    """All templates: built-in and your own (INKWELL_HOME/templates)."""
    from inkwell.prompts.listing import template_summaries

    items = template_summaries()
    if as_json:
        print_json(items)
        return
    for item in items:
        typer.echo(f"{item['name']:<24} {','.join(item['languages']):<6} {item['description']}")


def templates_show(name: Annotated[str, typer.Argument()]):
    """Print a template's YAML definition."""
    from inkwell.prompts.library import get_template

    template = get_template(name)
    typer.echo(f"# {template.source}")
    typer.echo(Path(template.source).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- export (inkwell/models/export.py)


def export(
    run: Annotated[
        Path, typer.Argument(help="A run folder from `inkwell train` (or a PEFT adapter / HF model folder).")
    ],
    to: Annotated[Path, typer.Option("--to", help="Output folder; or a FILE.gguf with --gguf. Written atomically.")],
    merge: Annotated[
        bool, typer.Option("--merge", help="Full Hugging Face weights (adapter merged in): inkwell write --model DIR.")
    ] = False,
    gguf: Annotated[
        str | None,
        typer.Option(
            "--gguf",
            metavar="f16|q8_0|q4_1|q4_0",
            help="Write a GGUF file for llama.cpp (q8_0: 8-bit, about half the size; q4_1/q4_0: 4-bit matrices, which Inkwell's native CPU engine runs fastest).",
        ),
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            metavar="int8|int4",
            help="Write an ONNX model for the fast CPU path (int8: within 1% perplexity; int4: smaller, less accurate).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --to if it exists.")] = False,
    as_json: JsonOut = False,
):
    """Export a trained run: merged full weights (--merge) and/or a GGUF file (--gguf f16|q8_0).

    Example: inkwell export runs/smollm2-lora-sft --merge --gguf q8_0 --to exports/smollm2-ads
    """
    from inkwell.models.export import export_model

    result = export_model(run, to, merge=merge, gguf=gguf, quantize=quantize, force=force, say=say)
    if as_json:
        print_json(result)
        return
    if result["merged"]:
        say(f"full weights ({result['what']}) -> {result['merged']['path']} ({result['merged']['bytes'] / 1e6:.1f} MB)")
        say(f"  use: inkwell write --model {result['merged']['path']}")
    if result["gguf"]:
        g = result["gguf"]
        say(
            f"GGUF {g['type']} -> {g['path']} ({g['bytes'] / 1e6:.1f} MB, {g['tensors']} tensors; metadata from {g['model_metadata']})"
        )
        say(f"  use: inkwell write --model {g['path']}   (or llama.cpp: llama-cli -m {g['path']})")
    if result.get("quantized"):
        q = result["quantized"]
        say(f"ONNX {q['precision']} -> {q['path']} ({q['bytes'] / 1e6:.1f} MB)")
        say(
            f"  use: inkwell write --model {q['path']}   (perplexity change: inkwell eval with this folder as a system)"
        )
    say(f"done in {result['seconds']:.1f} s")


# ---------------------------------------------------------------- history (inkwell/store)


def history(
    search: Annotated[
        str | None, typer.Option("--search", "-q", help="Text to look for in prompts and outputs.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    as_json: JsonOut = False,
):
    """Show logged generations, newest first."""
    import datetime

    from inkwell.store import Store

    rows = Store().history(search=search, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        say("no generations logged yet" + (f" matching '{search}'" if search else ""))
        return
    for row in rows:
        when = datetime.datetime.fromtimestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M")
        label = row["template"] or "raw prompt"
        typer.echo(
            f"#{row['id']}  {when}  {row['model']}  {label}  ({row['completion_tokens']} tokens, {row['latency_s']:.1f}s)"
        )
        preview = row["output"].strip().replace("\n", " ")
        typer.echo(f"    {preview[:160]}{'…' if len(preview) > 160 else ''}")


# ---------------------------------------------------------------- moderate (inkwell/safety)


def moderate(
    text: Annotated[str | None, typer.Argument(help="The text to check ('-' reads standard input).")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Check this file's whole text instead.")] = None,
    policy: PolicyOpt = None,
    direction: Annotated[
        str, typer.Option("--direction", help="input (user text) | output (model text) | any (every category).")
    ] = "input",
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit with status 3 when the text is blocked.")
    ] = False,
    no_log: NoLog = False,
    as_json: JsonOut = False,
):
    """Check a text against the moderation policy: action, categories and findings (logged to the audit table)."""
    from inkwell.safety import Guard, load_policy

    if file is not None:
        from inkwell.files import read_text

        text = read_text(file, field="file")  # not UTF-8: an error naming file:line, not a traceback
    elif text == "-":
        text = sys.stdin.read()
    if text is None:
        raise InkwellError("nothing to moderate", field="text", hint='inkwell moderate "some text"  or  --file FILE')
    result, _ = Guard(load_policy(policy), source="moderate", store=store_for(no_log)).check(text, direction)
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(f"action: {result.action}" + (f" ({result.describe()})" if result.categories else ""))
        for finding in result.findings:
            typer.echo(f"  {finding.category}/{finding.type} [{finding.start}:{finding.end}] {finding.text!r}")
        if result.action == "redact":
            typer.echo(f"redacted: {result.text}")
    if exit_code and result.blocked:
        raise typer.Exit(3)
