"""`inkwell style` (a writer's style profile: learn, show, list), `inkwell rank` (candidate pieces for a reader),
and the hooks `write --style` and `score --style` call (the work is in inkwell/compose/style.py and rank.py).

inkwell style learn ada samples/ --train         # >= 5 texts; --train also fits a LoRA on them
inkwell write social-post --style ada --set topic="our autumn menu"
inkwell score --pred drafts.jsonl --style ada
inkwell rank --reader reader.json candidates.jsonl
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from inkwell.cli.common import JsonOut, ModelOpt, print_json, say

NameArg = Annotated[str, typer.Argument(help="The style's name (letters, digits, '-', '_').")]
StyleOpt = Annotated[
    str | None,
    typer.Option(
        "--style",
        help="Write in this style (inkwell style learn): its closest exemplars as few-shot examples, its LoRA when "
        "it has one, and a style-match score per version.",
    ),
]


def learn(
    name: NameArg,
    samples: Annotated[
        list[Path], typer.Argument(help="At least 5 texts: .txt/.md files (one text each), folders, or JSONL rows.")
    ],
    train: Annotated[
        bool, typer.Option("--train", help="Also fit a LoRA on the samples (SFT recipe; minutes on a CPU).")
    ] = False,
    train_steps: Annotated[int, typer.Option("--train-steps", min=1, help="Optimizer steps of --train.")] = 60,
    exemplars: Annotated[int, typer.Option("--exemplars", min=1, max=32, help="Exemplars to keep.")] = 8,
    model: ModelOpt = None,
    as_json: JsonOut = False,
):
    """Learn a writer's style from samples: traits, diverse exemplars and the style-match profile.

    Example: inkwell style learn ada essays/ notes.jsonl --train
    """
    from inkwell.compose.style import learn_profile, read_samples, save_profile, train_style_lora

    texts = read_samples(samples)
    profile = learn_profile(name, samples, samples=texts, exemplars=exemplars)
    if train:
        say(f"training a LoRA on {len(texts)} samples ({train_steps} steps)...")
        train_style_lora(profile, texts, steps=train_steps, model=model or "smollm2-135m-instruct", say=say)
    path = save_profile(profile)
    if as_json:
        print_json({"path": str(path), **profile.to_json()})
        return
    typer.echo(f"learned style '{name}' from {profile.samples} samples ({profile.language}) -> {path}")
    _print_summary(profile)


def show(name: NameArg, as_json: JsonOut = False):
    """A style's traits, exemplars and LoRA."""
    from inkwell.compose.style import load_profile

    profile = load_profile(name)
    if as_json:
        print_json(profile.to_json())
        return
    typer.echo(f"style '{profile.name}': {profile.samples} samples ({profile.language})")
    _print_summary(profile)
    typer.echo("exemplars:")
    for number, exemplar in enumerate(profile.exemplars, start=1):
        flat = " ".join(exemplar["text"].split())
        typer.echo(f"  [{number}] ({exemplar['topic']}) {flat[:100]}{'…' if len(flat) > 100 else ''}")


def list_(as_json: JsonOut = False):
    """The learned styles."""
    from inkwell.compose.style import list_profiles

    rows = list_profiles()
    if as_json:
        print_json(rows)
    elif not rows:
        say("no styles yet: inkwell style learn NAME SAMPLES...")
    for row in rows if not as_json else []:
        lora = "LoRA" if row["adapter"] else "-"
        typer.echo(f"{row['name']:<24} {row['language'] or '?':<3} {row['samples'] or 0:>5} samples  {lora}")


def _print_summary(profile) -> None:
    for key, value in profile.traits.items():
        if key in ("language", "samples"):
            continue
        if isinstance(value, dict):
            value = "  ".join(f"{mark} {rate}" for mark, rate in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(value) or "-"
        typer.echo(f"  {key.replace('_', ' '):<28} {'-' if value is None else value}")
    own = profile.own_scores
    typer.echo(f"  {'own samples score':<28} median {own.get('median', '-')}, 10th percentile {own.get('low', '-')}")
    typer.echo(f"  {'LoRA':<28} {profile.adapter or '- (learn with --train)'}")


GROUP = (
    "Style profiles: learn a writer's style from samples; write and score with --style.",
    {"learn": learn, "show": show, "list": list_},
)


# ---------------------------------------------------------------- hooks of `write` and `score`


def styled(
    style: str | None, prepare: Callable, write: Callable, adapter: str | None, model: str | None
) -> tuple[Callable, Callable, str | None]:
    """`write --style`: the write steps with the style's exemplars, LoRA and score (unchanged without --style)."""
    if style is None:
        return prepare, write, adapter
    from inkwell.compose.style import style_steps

    return style_steps(style, prepare, write, adapter, model, say)


def score_style(pred: Path, style: str, as_json: bool) -> None:
    """`score --style NAME`: the style-match score of each text of --pred, and their mean."""
    from inkwell.compose.style import describe, load_profile, style_match
    from inkwell.evaluate.data import read_texts

    profile = load_profile(style)
    texts, _ = read_texts(pred, what="predictions", field_name="pred")
    matches = style_match(texts, profile)
    mean = sum(m.score for m in matches) / len(matches) if matches else 0.0
    if as_json:
        print_json({"style": profile.name, "mean": round(mean, 4), "texts": [m.to_json() for m in matches]})
        return
    for number, match in enumerate(matches, start=1):
        typer.echo(f"{number:>4}  {describe(match, profile)}")
    typer.echo(f"style '{profile.name}': mean match {mean:.2f} over {len(matches)} texts")


# ---------------------------------------------------------------- rank


def rank(
    candidates: Annotated[Path, typer.Argument(help='Candidate pieces: JSONL rows with "text" (and "id").')],
    reader: Annotated[
        Path,
        typer.Option(
            "--reader",
            help='The reader: .json {"keywords": [...], "liked": [...]}, or .txt (one keyword or liked text a line).',
        ),
    ] = ...,
    classifier: Annotated[
        Path | None, typer.Option("--classifier", help="A `stage: classify` run whose labels the reader likes.")
    ] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Show only the best N.")] = None,
    as_json: JsonOut = False,
):
    """Rank candidate pieces for a reader's interests, with a score and the reasons (matched topics).

    Example: inkwell rank --reader reader.json candidates.jsonl --top 5
    """
    from inkwell.compose.rank import load_reader, rank_candidates, read_candidates

    profile = load_reader(reader, str(classifier) if classifier else None)
    ranked = rank_candidates(profile, read_candidates(candidates))[:top]
    if as_json:
        print_json([r.to_json() for r in ranked])
        return
    for number, item in enumerate(ranked, start=1):
        flat = " ".join(item.text.split())
        typer.echo(f"{number:>3}. {item.score:.3f}  [{item.id}] {flat[:80]}{'…' if len(flat) > 80 else ''}")
        typer.echo(f"      {'; '.join(item.reasons) or 'no matched topic'}")
