"""`inkwell eval`, `score` and `rate`: comparing systems, scoring outputs, rating them by hand
(`inkwell.evaluate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inkwell.cli.common import (
    BaseUrlOpt,
    Decoding,
    DeviceOpt,
    DtypeOpt,
    JsonOut,
    PrecisionOpt,
    RemoteKeyOpt,
    print_json,
    say,
    settings_overrides,
    with_decoding,
)
from inkwell.cli.style import score_style


@with_decoding(temperature="[default: 0, greedy; with --suite: each template's own]")
def eval_(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", "-d", help="Eval rows (JSONL): template fields or `prompt`, a reference column, optional `id`."
        ),
    ] = None,
    system: Annotated[
        list[str],
        typer.Option("--system", help="NAME=MODEL\\[:ADAPTER]\\[@shots.jsonl] (repeat for each system to compare)."),
    ] = ...,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: generations cache, report.json/.md/.html, plots.")
    ] = ...,
    template: Annotated[str | None, typer.Option("--template", help="Render each row through this template.")] = None,
    template_file: Annotated[Path | None, typer.Option("--template-file")] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics",
            help="Comma-separated metric names [default: bleu,chrf,rouge,semantic,perplexity,length,distinct,self_bleu,repetition].",
        ),
    ] = None,
    ref_field: Annotated[str, typer.Option("--ref-field", help="The reference column.")] = "reference",
    lang: Annotated[str, typer.Option("--lang", help="auto | en | zh (BLEU/ROUGE tokenisation).")] = "auto",
    corpus: Annotated[
        list[Path] | None,
        typer.Option("--corpus", help="Training corpus for the memorisation metric (JSONL or text; repeatable)."),
    ] = None,
    copy_threshold: Annotated[
        int, typer.Option("--copy-threshold", min=1, help="Tokens copied in a row that count as memorised.")
    ] = 12,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, help="Rows generated at once (with --backend openai: on each server)."),
    ] = 8,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the intervals (0: none).")
    ] = 1000,
    examples: Annotated[
        int, typer.Option("--examples", min=0, help="Examples shown side by side in report.md/.html.")
    ] = 100,
    json_retries: Annotated[
        int, typer.Option("--json-retries", min=0, help="Retries for structured templates (0: score the raw output).")
    ] = 0,
    decoding: Decoding = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            envvar="INKWELL_ENGINE",
            help="auto | torch | native | onnx (auto: torch, so reference likelihoods are full precision; native/onnx evaluate a fast path's output).",
        ),
    ] = "auto",
    precision: PrecisionOpt = "auto",
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="local, or openai: generate on an OpenAI-compatible server (inkwell serve, vLLM, ...); each system's MODEL is then the served model name, and perplexity is skipped.",
        ),
    ] = "local",
    base_url: BaseUrlOpt = None,
    api_key: RemoteKeyOpt = None,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite",
            help="Instead of --data: a task suite scored by model-free checks, `content` (every template, en+zh; "
            "docs/quality.md) or a task file.",
        ),
    ] = None,
    best_of: Annotated[
        list[int] | None,
        typer.Option(
            "--best-of", help="With --suite: also run each system keeping the best of N candidates (repeatable)."
        ),
    ] = None,
    per_template: Annotated[
        int | None,
        typer.Option(
            "--per-template", min=1, help="With --suite: only the first K tasks of each template and language."
        ),
    ] = None,
    as_json: JsonOut = False,
):
    """Compare systems on the same rows: generate (cached in OUT), score, and write reports.

    Example: inkwell eval --data test.jsonl --template product-description --system base=smollm2-135m-instruct@shots.jsonl --system tuned=smollm2-135m-instruct:runs/lora --out eval/

    Example: inkwell eval --suite content --system smol=smollm2-135m-instruct --best-of 1 --best-of 4 --out eval-content/
    """
    if suite is not None or best_of or per_template is not None:  # the content suite (docs/quality.md)
        given = dict(data=data, template=template, engine=engine, dtype=dtype, device=device, precision=precision)
        report = _suite(suite, system, out, best_of, per_template, batch_size, bootstrap, examples, decoding, given)
        return _show_report(report, out, as_json)
    from inkwell.evaluate.data import parse_system
    from inkwell.evaluate.runner import EvalConfig, parse_remote_system, run_eval

    parse = parse_remote_system if backend == "openai" else parse_system
    config = EvalConfig(
        data=data,
        systems=[parse(s) for s in system],
        out=out,
        template=template,
        template_file=template_file,
        metrics=metrics,
        ref_field=ref_field,
        lang=lang,
        corpus=corpus,
        copy_threshold=copy_threshold,
        batch_size=batch_size,
        resamples=bootstrap,
        report_examples=examples,
        json_retries=json_retries,
        dtype=dtype,
        device=device,
        engine=engine,
        precision=precision,
        backend=backend,
        base_url=base_url,
        api_key=api_key,
        overrides=settings_overrides(decoding),
    )
    _show_report(run_eval(config, say=say), out, as_json)


def _show_report(report: dict, out: Path, as_json: bool) -> None:
    """`eval`'s answer: the summary as JSON, or the score table and where the reports are."""
    from inkwell.evaluate.report import score_table, summary

    if as_json:
        print_json(summary(report, out))
        return
    for line in score_table(report):
        typer.echo(line)
    say(f"reports: {out / 'report.html'} (also report.md, report.json)")


def _suite(suite, system, out, best_of, per_template, batch_size, bootstrap, examples, decoding, given) -> dict:
    """`eval --suite`: the flags as a SuiteConfig (evaluate/suite.py), run."""
    from inkwell.errors import InkwellError
    from inkwell.evaluate.data import parse_system
    from inkwell.evaluate.suite import SuiteConfig, run_suite

    if suite is None:
        raise InkwellError(
            "--best-of and --per-template go with --suite", field="suite", hint="e.g. --suite content --best-of 4"
        )
    for name in ("data", "template"):
        if given[name] is not None:
            raise InkwellError(f"--{name} is not used with --suite: the suite brings its own tasks", field=name)
    config = SuiteConfig(
        suite,
        [parse_system(s) for s in system],
        out,
        best_of=list(best_of or [1]),
        per_template=per_template,
        batch_size=batch_size,
        resamples=bootstrap,
        report_examples=examples,
        overrides=settings_overrides(decoding),
        engine=given["engine"],
        dtype=given["dtype"],
        device=given["device"],
        precision=given["precision"],
    )
    return run_suite(config, say=say)


def score(
    pred: Annotated[Path, typer.Option("--pred", "-p", help='Predictions (JSONL, one {"text": ...} per line).')] = ...,
    ref: Annotated[
        Path | None, typer.Option("--ref", "-r", help="References (JSONL with `text`), paired by line.")
    ] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics", help="Comma-separated [default: bleu,chrf,rouge,length,distinct,self_bleu,repetition]."
        ),
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="auto | en | zh")] = "auto",
    corpus: Annotated[list[Path] | None, typer.Option("--corpus", help="Training corpus for memorisation.")] = None,
    schema: Annotated[Path | None, typer.Option("--schema", help="JSON Schema file for the json metric.")] = None,
    copy_threshold: Annotated[int, typer.Option("--copy-threshold", min=1)] = 12,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Resamples for the intervals in the table (not with --json).")
    ] = 1000,
    style: Annotated[
        str | None, typer.Option("--style", help="Instead: how close each text comes to this style (style learn).")
    ] = None,
    as_json: JsonOut = False,
):
    """Score existing outputs (from any tool) without loading a model.

    Example: inkwell score --pred preds.jsonl --ref refs.jsonl --metrics bleu,chrf,rouge --json
    """
    from inkwell.evaluate.runner import score_files

    if style is not None:  # --style NAME: the style-match score of each text (compose/style.py)
        return score_style(pred, style, as_json)
    flat, detail = score_files(
        pred,
        ref,
        metrics=metrics,
        lang=lang,
        corpus=corpus,
        schema=schema,
        copy_threshold=copy_threshold,
        resamples=0 if as_json else bootstrap,
    )
    if as_json:
        typer.echo(json.dumps(flat, ensure_ascii=False))
        return
    from inkwell.evaluate.report import fmt_cell

    for name, entry in detail.items():
        typer.echo(f"{name:<22} {fmt_cell(entry)}")
    if "confusion_matrix" in flat:
        typer.echo(
            "confusion matrix (rows: reference, columns: predicted "
            + ", ".join(flat["confusion_matrix"]["columns"])
            + ")"
        )
        for label, counts in zip(flat["confusion_matrix"]["labels"], flat["confusion_matrix"]["matrix"]):
            typer.echo(f"  {label:<20} " + " ".join(f"{c:>5}" for c in counts))


def rate(
    dir: Annotated[Path, typer.Argument(help="An `inkwell eval` output folder.")],
    rater: Annotated[str | None, typer.Option("--rater", help="Your name (ratings are kept per rater).")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Rate at most this many outputs now.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Shuffle seed for the (blind) order.")] = 0,
    show_reference: Annotated[bool, typer.Option("--show-reference", help="Also show the reference output.")] = False,
):
    """Rate outputs 1-5, blind (system names hidden, order shuffled); reports then include rating means."""
    from inkwell.evaluate.rate import run_session

    session = run_session(
        dir, ask=_ask, show=typer.echo, rater=rater, limit=limit, seed=seed, show_reference=show_reference
    )
    say(
        f"rated {session.rated}, skipped {session.skipped}, {session.remaining} left"
        + ("; reports updated" if session.rated else "")
    )


def _ask(message: str) -> str:
    """One answer from the rater; end of input or Ctrl-C ends the session (what is rated so far is kept)."""
    from inkwell.evaluate.rate import StopRating

    try:
        return str(typer.prompt(message))
    except (EOFError, KeyboardInterrupt) as exc:
        raise StopRating() from exc
    except Exception as exc:  # click/typer Abort (end of input or Ctrl-C)
        if type(exc).__name__ == "Abort":
            raise StopRating() from exc
        raise
