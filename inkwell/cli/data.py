"""`inkwell data ...`: preparing training data (`inkwell.data`): ingest, clean, redact, augment, split, stats,
sample. Each command reads JSONL, writes atomically, and lists every bad row as `file:line: reason`."""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from inkwell.cli.common import (
    AdapterOpt,
    DeviceOpt,
    DtypeOpt,
    EngineOptions,
    JsonOut,
    ModelOpt,
    decoding_option,
    open_engine_for,
    print_json,
    say,
)
from inkwell.errors import InkwellError

ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on standard error.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file (written atomically).")]
NearDupOpt = Annotated[
    float,
    typer.Option(
        "--near-dup-threshold", help="MinHash Jaccard similarity that counts as a near duplicate; 0 turns it off."
    ),
]
RewriteLength = decoding_option("max_new_tokens", help="LM methods: longest rewrite.")
Seed = decoding_option("seed")


def _list_problems(problems: list[tuple[str, str]] | list[str], total: int | None = None, limit: int = 50) -> None:
    """Print `file:line: reason` lines to standard error, at most `limit` of them."""
    for item in problems[:limit]:
        say(f"  {item[0]}: {item[1]}" if isinstance(item, tuple) else f"  {item}")
    total = len(problems) if total is None else total
    if total > limit:
        say(f"  ... and {total - limit} more")


def _near(threshold: float) -> float | None:
    if threshold < 0 or threshold > 1:
        raise InkwellError(
            f"--near-dup-threshold {threshold} must be between 0 (off) and 1", field="near-dup-threshold"
        )
    return threshold or None


def _split_list(values: list[str] | None) -> list[str] | None:
    """Repeatable, comma-separated values (`--lang zh,en --lang ja`) as one list; None when none given."""
    return [x.strip() for item in values or [] for x in item.split(",") if x.strip()] or None


def ingest(
    sources: Annotated[list[Path], typer.Argument(help=".txt/.md files or folders, .csv/.tsv or .jsonl files.")],
    out: OutOpt = ...,
    schema: Annotated[
        str, typer.Option("--schema", help="auto | text | text/label | prompt/completion | alpaca | messages.")
    ] = "auto",
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="CSV column for a field: field=column (repeatable), e.g. --map text=body --map label=category.",
        ),
    ] = None,
    unit: Annotated[
        str, typer.Option("--unit", help="Text files: one row per file, or per blank-line separated paragraph.")
    ] = "file",
    delimiter: Annotated[
        str | None, typer.Option("--delimiter", help="CSV delimiter [default: ',' (.tsv: tab)].")
    ] = None,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Collect rows from files into one JSONL; report the schema and every invalid row (file:line: reason)."""
    from inkwell.data.ingest import ingest as ingest_files
    from inkwell.data.ingest import parse_column_map

    report = ingest_files(
        sources,
        out,
        schema=schema,
        column_map=parse_column_map(map_),
        unit=unit,
        delimiter=delimiter,
        progress=progress,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        seen = ", ".join(f"{k} {v}" for k, v in report.schemas_seen.most_common())
        say(f"schema: {report.schema or 'none'}" + (f" (rows seen: {seen})" if seen else ""))
        if report.invalid_count:
            say(f"{report.invalid_count} invalid rows skipped:")
            _list_problems(report.invalid, report.invalid_count)
        say(f"wrote {report.written} rows from {report.files} file(s) to {report.output}")
    if not report.written:
        raise typer.Exit(1)


def clean(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    out: OutOpt = ...,
    min_chars: Annotated[int, typer.Option("--min-chars", help="Drop rows with less text.")] = 1,
    max_chars: Annotated[int | None, typer.Option("--max-chars", help="Drop rows with more text.")] = None,
    lang: Annotated[
        list[str] | None, typer.Option("--lang", help="Keep only these languages (zh, en, ja, ko, other; repeatable).")
    ] = None,
    nfkc: Annotated[bool, typer.Option("--nfkc/--no-nfkc", help="Unicode NFKC normalisation.")] = True,
    markup: Annotated[
        bool, typer.Option("--strip-markup/--keep-markup", help="Remove HTML and Markdown markup.")
    ] = True,
    whitespace: Annotated[
        bool, typer.Option("--whitespace/--no-whitespace", help="Normalise spaces and blank lines.")
    ] = True,
    dedup: Annotated[bool, typer.Option("--dedup/--no-dedup", help="Remove exact duplicates.")] = True,
    near_dup_threshold: NearDupOpt = 0.7,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Normalise text and drop short/long, wrong-language and duplicate rows; prints what each step did."""
    from inkwell.data.clean import STEPS, CleanConfig, clean_file

    config = CleanConfig(
        nfkc=nfkc,
        markup=markup,
        whitespace=whitespace,
        min_chars=min_chars,
        max_chars=max_chars,
        languages=_split_list(lang),
        exact_dedup=dedup,
        near_dup_threshold=_near(near_dup_threshold),
    )
    report = clean_file(input, out, config, progress=progress)
    if as_json:
        print_json(report.to_dict())
        return
    for step in STEPS:
        changed, removed = report.changed.get(step, 0), report.removed.get(step, 0)
        what = f"changed {changed}" if step in ("nfkc", "markup", "whitespace") else f"removed {removed}"
        say(f"  {step:<11} {what}")
    if report.removed.get("invalid"):
        say(f"  {'invalid':<11} removed {report.removed['invalid']}")
    say(f"kept {report.rows_out} of {report.rows_in} rows -> {out}")


def redact(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    out: OutOpt = ...,
    mode: Annotated[
        str, typer.Option("--mode", help="placeholder ([EMAIL]) | mask (same length, *) | hash (salted SHA-256 token).")
    ] = "placeholder",
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only these PII types (repeatable or comma-separated) [default: all]."),
    ] = None,
    salt: Annotated[
        str | None,
        typer.Option(
            "--salt", help="Salt for --mode hash [default: INKWELL_REDACT_SALT, else INKWELL_HOME/redact-salt]."
        ),
    ] = None,
    progress: ProgressOpt = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print an object of type -> count.")] = False,
):
    """Replace personal data and secrets in every row; prints how many of each type were found."""
    from inkwell.data.redact import redact_file

    chosen = _split_list(types)
    report = redact_file(input, out, types=chosen, mode=mode, salt=salt, progress=progress)
    counts = report.to_dict()
    if chosen:
        counts = {t: counts[t] for t in chosen}
    if report.invalid:
        say(f"{len(report.invalid)} invalid rows dropped:")
        _list_problems(report.invalid)
    if as_json:
        print_json(counts)
        return
    for kind, count in counts.items():
        typer.echo(f"{kind:<15} {count}")
    say(f"redacted {sum(counts.values())} items in {report.rows_changed} of {report.rows} rows -> {out}")


def augment(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    out: OutOpt = ...,
    method: Annotated[
        str, typer.Option("--method", help="synonym (WordNet, offline) | paraphrase | back-translate (need --model).")
    ] = "synonym",
    n: Annotated[int, typer.Option("--n", help="Variants per row.")] = 1,
    rate: Annotated[float, typer.Option("--rate", help="synonym: share of eligible words to replace.")] = 0.15,
    seed: Seed = 0,
    keep_original: Annotated[
        bool, typer.Option("--keep-original/--only-augmented", help="Also write the original rows.")
    ] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", help="LM methods: rows rewritten together.")] = 16,
    max_new_tokens: RewriteLength = 256,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Add augmented rows (marked `augmented` so evaluation can leave them out)."""
    from inkwell.data.augment import augment_file

    if method != "synonym" and not model:
        raise InkwellError(f"--method {method} needs --model", field="model", hint="e.g. --model smollm2-135m-instruct")
    options = EngineOptions(model, adapter, dtype, device, engine="torch", batch_size=batch_size)
    with open_engine_for(options) if method != "synonym" else nullcontext() as engine:
        rewrite = None
        if engine is not None:
            from inkwell.generate.rewrite import lm_rewrite

            rewrite = partial(lm_rewrite, engine, max_new_tokens=max_new_tokens)
        report = augment_file(
            input,
            out,
            method=method,
            n=n,
            rate=rate,
            seed=seed or 0,
            keep_original=keep_original,
            rewrite=rewrite,
            batch_size=batch_size,
            progress=progress,
        )
    if as_json:
        print_json(report.to_dict())
        return
    if report.invalid:
        say(f"{len(report.invalid)} invalid rows skipped:")
        _list_problems(report.invalid)
    for reason, count in report.skipped.items():
        say(f"  no variant for {count} rows: {reason}")
    say(f"wrote {report.written} rows ({report.augmented} augmented) -> {out}")


def split(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    out_dir: Annotated[
        Path, typer.Option("--out-dir", "-o", help="Folder for train.jsonl, val.jsonl, test.jsonl.")
    ] = Path("."),
    ratios: Annotated[str, typer.Option("--ratios", help="train,val,test shares.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same split.")] = 13,
    label_field: Annotated[str, typer.Option("--label-field", help="Stratify by this key ('' for none).")] = "label",
    near_dup_threshold: NearDupOpt = 0.7,
    keep_augmented_eval: Annotated[
        bool, typer.Option("--keep-augmented-eval", help="Also put augmented rows in val/test.")
    ] = False,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Split into train/val/test: seeded, stratified by label, near duplicates kept in the same split."""
    from inkwell.data.split import split_file

    report = split_file(
        input,
        out_dir,
        ratios=ratios,
        seed=seed,
        label_field=label_field or None,
        near_dup_threshold=_near(near_dup_threshold),
        keep_augmented_eval=keep_augmented_eval,
        progress=progress,
    )
    if as_json:
        print_json(report.to_dict())
        return
    if report.invalid:
        say(f"{len(report.invalid)} invalid rows skipped:")
        _list_problems(report.invalid)
    for name, count in report.counts.items():
        labels = report.labels.get(name)
        say(f"  {name:<5} {count:>7} rows -> {report.files[name]}" + (f"  {labels}" if labels else ""))
    say(
        f"{report.rows} rows in {report.groups} groups ({report.grouped_rows} rows share a group with a duplicate or their source)"
    )


def stats(
    input: Annotated[Path, typer.Argument(help="JSONL file.")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a token-length histogram PNG here.")] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            help="Count tokens with this model's tokenizer (name or folder) [default: model-free estimate].",
        ),
    ] = None,
    near_dup_threshold: NearDupOpt = 0.7,
    pii: Annotated[bool, typer.Option("--pii/--no-pii", help="Count personal data by type.")] = True,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Rows, schemas, languages, token lengths, duplicates, PII counts."""
    from inkwell.data.stats import stats_file

    count_tokens = None
    if tokenizer:
        from inkwell.models.tokens import token_counter

        count_tokens = token_counter(tokenizer, progress=say)
    data = stats_file(
        input,
        plot=plot,
        count_tokens=count_tokens,
        tokenizer_name=tokenizer or "approx",
        near_dup_threshold=_near(near_dup_threshold),
        pii=pii,
        progress=progress,
    ).to_dict()
    if as_json:
        print_json(data)
        return
    typer.echo(f"rows        {data['rows']}" + (f" (+{data['invalid']} invalid)" if data["invalid"] else ""))
    typer.echo(f"schemas     {data['schemas']}")
    typer.echo(f"languages   {data['languages']}")
    typer.echo(f"tokens      {data['tokens']}")
    typer.echo(f"duplicates  exact {data['duplicates']['exact']}, near {data['duplicates']['near']}")
    if pii:
        typer.echo(
            f"pii         {({k: v for k, v in data['pii'].items() if v}) or 'none'} in {data['rows_with_pii']} rows"
        )
    if data["labels"]:
        typer.echo(f"labels      {data['labels']}")
    if data["augmented"]:
        typer.echo(f"augmented   {data['augmented']}")
    if data["plot"]:
        say(f"histogram -> {data['plot']}")


def sample(
    name: Annotated[
        str, typer.Argument(help="fortunes | song100 | tang300 | chinese | fortune-topics | fortune-preferences")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output JSONL [default: NAME.jsonl].")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many rows.")] = None,
    progress: ProgressOpt = True,
    as_json: JsonOut = False,
):
    """Real text from Debian packages (fortunes, fortunes-zh) as JSONL rows."""
    from inkwell.data.sample import write_sample

    out = out or Path(f"{name}.jsonl")
    count = write_sample(name, out, limit=limit, progress=progress)
    if as_json:
        print_json({"sample": name, "rows": count, "output": str(out)})
    else:
        say(f"wrote {count} rows of '{name}' to {out}")
