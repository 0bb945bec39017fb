"""`inkwell feedback`: the studio's feedback loop from the terminal - export rows, train from feedback, follow and
promote jobs, and the blind-comparison leaderboard (inkwell/feedback/)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from inkwell.cli.common import JsonOut, ModelOpt, print_json, say
from inkwell.errors import InkwellError

UserOpt = Annotated[
    str,
    typer.Option("--user", help="Whose feedback: an API key's id, or 'local' (the studio without API keys)."),
]
JobArg = Annotated[int, typer.Argument(help="The job's id (see `inkwell feedback jobs`).")]
POLL_SECONDS = 2.0  # how often `train` looks at a running job


def _studio() -> Any:
    from inkwell.store import Store
    from inkwell.store.studio import StudioData

    return StudioData(Store())


def _runs_dir() -> Path:
    """Where feedback runs go: the studio's folder, so the server and the CLI see the same runs."""
    from inkwell.home import inkwell_home

    return inkwell_home() / "studio" / "runs"


def parse_since(value: str | None) -> float | None:
    """YYYY-MM-DD (local midnight) or unix seconds -> unix seconds."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%d").timestamp()
    except ValueError:
        raise InkwellError(
            f"--since '{value}' is not a date: use YYYY-MM-DD (e.g. 2025-01-31) or unix seconds", field="since"
        ) from None


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


# ---------------------------------------------------------------- export


def export(
    sft: Annotated[Path | None, typer.Option("--sft", help="Write SFT rows (the creators' final texts) here.")] = None,
    dpo: Annotated[Path | None, typer.Option("--dpo", help="Write DPO rows (chosen over rejected) here.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only feedback from this day on (YYYY-MM-DD).")] = None,
    template: Annotated[str | None, typer.Option("--template", help="Only pieces of this template.")] = None,
    user: UserOpt = "local",
    no_redact: Annotated[
        bool, typer.Option("--no-redact", help="Keep e-mails, phones, cards, secrets as written (default: redacted).")
    ] = False,
    as_json: JsonOut = False,
):
    """Turn feedback into training rows: accepted and edited pieces (SFT); edits over originals, picked over
    other variants, blind-comparison winners over losers (DPO). Train them with `inkwell train`.

    Example: inkwell feedback export --sft sft.jsonl --dpo dpo.jsonl --since 2025-01-01
    """
    from inkwell.feedback.export import export_rows, write_jsonl

    if sft is None and dpo is None:
        raise InkwellError("nothing to write", field="sft", hint="give --sft PATH, --dpo PATH or both")
    after = parse_since(since)
    rows = export_rows(_studio(), user, since=after, template=template, redact=not no_redact)
    written = {}
    for kind, path in (("sft", sft), ("dpo", dpo)):
        if path is not None:
            written[kind] = {"path": str(path), "rows": write_jsonl(path, getattr(rows, kind))}
    if as_json:
        print_json({"written": written, "counts": rows.counts})
        return
    c = rows.counts
    for kind, info in written.items():
        typer.echo(f"{kind}: {info['rows']} rows -> {info['path']}")
    typer.echo(
        f"from {c['pieces']} pieces ({c['rejected']} rejected) and {c['comparisons']} judged comparisons: "
        f"sft {c['sft']}, dpo {c['edit']} edit + {c['variant']} variant + {c['comparison']} comparison"
        + ("" if not no_redact else "; PII NOT redacted")
    )


# ---------------------------------------------------------------- train and follow


def train(
    stage: Annotated[
        str,
        typer.Option(
            "--stage",
            help="sft (learn the final texts) or dpo (prefer them over the drafts) [default: sft, which lowered "
            "held-out perplexity most in benchmarks/bench_feedback_loop.py].",
        ),
    ] = "",
    base: Annotated[
        str, typer.Option("--base", help="The system the new adapter is graded against: base, or an adapter name.")
    ] = "base",
    user: UserOpt = "local",
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after N optimizer steps.")] = None,
    template: Annotated[str | None, typer.Option("--template", help="Only pieces of this template.")] = None,
    model: ModelOpt = None,
    detach: Annotated[bool, typer.Option("--detach", help="Start the job and return; do not follow it.")] = False,
):
    """Train a LoRA on your feedback in the background, grade it on held-out pieces, and say how to promote it.

    Example: inkwell feedback train --stage sft --max-steps 40
    """
    from inkwell.feedback.jobs import DEFAULT_STAGE, start_job
    from inkwell.models.registry import DEFAULT_MODEL

    data = _studio()
    job = start_job(
        data,
        user,
        stage=stage or DEFAULT_STAGE,
        base_model=model or DEFAULT_MODEL,
        base_system=base,
        runs_dir=_runs_dir(),
        max_steps=max_steps,
        template=template,
    )
    rows = job["data"]["rows"]
    say(
        f"job {job['id']}: {job['stage']} on {job['data']['base_model']}, {rows['train']} rows, "
        f"{len(job['data']['heldout_ids'])} held-out piece(s) -> {job['run_path']}"
    )
    if detach:
        say(f"following: inkwell feedback jobs --user {user}   (log: {job['run_path']}/job.log)")
        return
    try:
        job = follow(data, job["id"])
    except KeyboardInterrupt:
        say(f"stopped following; job {job['id']} goes on in the background (inkwell feedback jobs --user {user})")
        raise typer.Exit(130) from None
    show_result(job, user)
    if job["status"] == "failed":
        raise typer.Exit(1)


def follow(data: Any, job_id: int, interval: float = POLL_SECONDS) -> dict:
    """Print each new step's loss until the job ends; returns the ended job."""
    from inkwell.feedback.jobs import poll_job

    shown = 0
    while True:
        job = poll_job(data, job_id)
        for point in job["metrics"][shown:]:
            say(f"step {point['step']:>4}  loss {point['loss']:.4f}")
        shown = len(job["metrics"])
        if job["status"] != "running":
            return job
        time.sleep(interval)


def show_result(job: dict, user: str) -> None:
    if job["status"] == "failed":
        say(f"job {job['id']} failed: {job['error']}")
        return
    report = job.get("report") or {}
    systems = report.get("systems") or {}
    base, new = systems.get("base") or {}, systems.get("new") or {}
    typer.echo(f"job {job['id']} {job['status']}: adapter {job['adapter']}")
    typer.echo(
        f"held-out pieces: {report.get('heldout_count', 0)} (compared with {report.get('compared_with', 'base')})"
    )
    typer.echo(f"perplexity of the creator's texts: {_fmt(base.get('perplexity'))} -> {_fmt(new.get('perplexity'))}")
    typer.echo(
        f"ROUGE-L of greedy drafts:         {_fmt(base.get('rouge_l'), '.3f')} -> {_fmt(new.get('rouge_l'), '.3f')}"
    )
    typer.echo(f"win rate of the new adapter (ROUGE-L, ties half): {_fmt(report.get('win_rate'), '.0%')}")
    if report.get("eval_report"):
        typer.echo(f"the inkwell eval report: {report['eval_report']}")
    if job["status"] == "finished":
        typer.echo(f"promote: inkwell feedback promote {job['id']} --user {user}")
        typer.echo(f"discard: inkwell feedback promote {job['id']} --discard --user {user}")


# ---------------------------------------------------------------- jobs, promote, cancel


def jobs(user: UserOpt = "local", as_json: JsonOut = False):
    """Training jobs from feedback, newest first, brought up to date."""
    from inkwell.feedback.jobs import poll_job

    data = _studio()
    found = [poll_job(data, job["id"]) for job in data.jobs(user)]
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo(f"no training jobs for {user} (start one: inkwell feedback train --user {user})")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("id", "status", "stage", "started", "rows", "steps", "perplexity", "win rate"):
        table.add_column(column, no_wrap=True)
    for job in found:
        report = job.get("report") or {}
        systems = report.get("systems") or {}
        table.add_row(
            str(job["id"]),
            job["status"],
            job["stage"],
            datetime.datetime.fromtimestamp(job["created_at"]).strftime("%m-%d %H:%M"),
            str(job["data"].get("rows", {}).get("train", "-")),
            str(job["metrics"][-1]["step"]) if job["metrics"] else "-",
            f"{_fmt(systems['base']['perplexity'], '.1f')}→{_fmt(systems['new']['perplexity'], '.1f')}"
            if systems
            else "-",
            _fmt(report.get("win_rate"), ".0%"),
        )
    Console().print(table)
    for job in found:  # below the table: paths and errors are too long for a column
        typer.echo(f"{job['id']}: " + (f"failed: {job['error']}" if job["error"] else job["run"]))


def promote(
    job_id: JobArg,
    discard: Annotated[bool, typer.Option("--discard", help="Record that this job's adapter is not wanted.")] = False,
    user: UserOpt = "local",
):
    """Make a finished job's adapter the creator's default system (served as fb-JOB), or discard it."""
    from inkwell.feedback.jobs import poll_job, system_name

    data = _studio()
    data.job(user, job_id)  # another creator's job is not found
    job = poll_job(data, job_id)
    if job["status"] != "finished":
        raise InkwellError(
            f"training job {job_id} is {job['status']}; only a finished job can be promoted or discarded",
            field="job",
            hint="see inkwell feedback jobs",
        )
    name = system_name(job_id)
    if not discard:
        if not job["adapter"]:
            raise InkwellError(f"training job {job_id} left no adapter in {job['run']}", field="job")
        data.register_adapter(user, name, job["adapter"], job_id)
    result = data.decide(user, job_id, "discard" if discard else "promote", name)
    if discard:
        typer.echo(f"discarded job {job_id}")
    else:
        typer.echo(f"promoted job {job_id}: {name} is now {user}'s default system (was {result['previous'] or 'base'})")


def cancel(job_id: JobArg, user: UserOpt = "local"):
    """Stop a running training job."""
    from inkwell.feedback.jobs import cancel_job

    data = _studio()
    data.job(user, job_id)
    job = cancel_job(data, job_id)
    typer.echo(f"job {job_id}: {job['status']} ({job['error']})")


# ---------------------------------------------------------------- leaderboard


def leaderboard(
    user: UserOpt = "local",
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Resamples for the 95% intervals.")] = 200,
    as_json: JsonOut = False,
):
    """Systems ranked by blind comparisons (Bradley-Terry, Elo-like scale, bootstrap 95% intervals)."""
    from inkwell.feedback.leaderboard import leaderboard as rank

    rows = rank(_studio().comparisons(user, pending=False), bootstrap=bootstrap)
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"no judged comparisons for {user} yet (compare systems in the studio: inkwell studio)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("rank", "system", "rating", "95% interval", "wins", "losses", "ties", "n")
    for place, row in enumerate(rows, start=1):
        table.add_row(
            str(place),
            row["system"],
            f"{row['rating']:.0f}",
            f"{row['low']:.0f} - {row['high']:.0f}",
            *(str(row[k]) for k in ("wins", "losses", "ties", "n")),
        )
    Console().print(table)


# The group as inkwell/cli/__init__.py registers it: (help, command name -> function).
GROUP = (
    "The studio's feedback loop: export rows, train from feedback, jobs, promote, leaderboard.",
    {
        "export": export,
        "train": train,
        "jobs": jobs,
        "promote": promote,
        "cancel": cancel,
        "leaderboard": leaderboard,
    },
)
