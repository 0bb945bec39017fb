"""The `inkwell` command line: the whole tree of commands as two plain tables, and `main`.

A command parses its flags, calls one function in a lifecycle folder (generate/, data/, train/, evaluate/,
safety/, models/, prompts/, serve/, store/) and prints; heavy imports (torch, transformers, fastapi) happen
inside the commands, so `inkwell --help` answers at once. docs/cli.md says where a new command goes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from inkwell.cli import data, evaluate, feedback, kb, longform, models, serve, style, train, write
from inkwell.errors import InkwellError

# Command name -> function, in the order `inkwell --help` lists them.
COMMANDS: dict[str, Callable] = {
    "write": write.write,
    "write-long": longform.write_long,  # also `inkwell write long` (see main)
    "generate": write.generate,
    "batch": write.batch,
    "history": models.history,
    "eval": evaluate.eval_,
    "score": evaluate.score,
    "rate": evaluate.rate,
    "train": train.train,
    "moderate": models.moderate,
    "serve": serve.serve,
    "studio": serve.studio,
    "classify": train.classify,
    "export": models.export,
    "rank": style.rank,
}

# Group name -> (help, its commands).
GROUPS: dict[str, tuple[str, dict[str, Callable]]] = {
    "models": (
        "Embedded and local models.",
        {
            "list": models.models_list,
            "info": models.models_info,
            "pull": models.models_pull,
        },
    ),
    "templates": ("Content templates.", {"list": models.templates_list, "show": models.templates_show}),
    "data": (
        "Prepare training data: ingest, clean, redact, augment, split, stats, sample.",
        {
            "ingest": data.ingest,
            "clean": data.clean,
            "redact": data.redact,
            "augment": data.augment,
            "split": data.split,
            "stats": data.stats,
            "sample": data.sample,
        },
    ),
    "feedback": feedback.GROUP,
    "kb": kb.GROUP,
    "style": style.GROUP,
}


def build_app() -> typer.Typer:
    """The typer application of the two tables."""
    app = typer.Typer(
        name="inkwell",
        help="AI content creation on small pretrained language models (offline, CPU first).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name, command in COMMANDS.items():
        app.command(name)(command)
    for group, (help, commands) in GROUPS.items():
        sub = typer.Typer(help=help, no_args_is_help=True)
        for name, command in commands.items():
            sub.command(name)(command)
        app.add_typer(sub, name=group)
    return app


app = build_app()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print one clear message (no traceback) and exit with status 2."""
    import click

    # Newer typer vendors click: its Exit/Abort/usage errors are typer's own classes, not click's, and in
    # non-standalone mode it *returns* the code of typer.Exit (and of Ctrl-C, as 130) instead of raising.
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["write", "long"]:  # `write` takes a template name; `write long` is its long-form sibling
        args[:2] = ["write-long"]
    try:
        code = app(args=args, standalone_mode=False)
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
