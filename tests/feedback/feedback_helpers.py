"""Helpers of the feedback tests (importable: tests/feedback is on sys.path while its tests run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EMAIL = "jane.doe@example.com"


def new_piece(data, engine, owner: str, template: str, fields: dict, *, variants: int = 1, seed: int = 0) -> int:
    """A piece as the studio makes one: the template rendered for this engine, `variants` drafts by the model."""
    from inkwell.generate.content import prepare
    from inkwell.prompts.library import get_template

    rendered, settings = prepare(engine, get_template(template), fields, overrides={"max_new_tokens": 12})
    piece = data.new_piece(
        owner,
        template=template,
        fields=rendered.fields,
        system="base",
        settings=settings.to_dict(),
        request=rendered.prompt,
        prompt=engine.render(rendered.prompt),
    )
    for k in range(variants):
        settings.seed = seed * 100 + k
        (result,) = engine.generate([rendered.prompt], settings)
        # a random tiny model may write nothing: every draft must be a distinct, non-empty text
        data.add_variant(owner, piece, system="base", text=f"draft {piece}.{k}: {result.text.strip()}")
    return piece


@dataclass
class Session:
    data: object
    ids: dict[str, int] = field(default_factory=dict)  # name -> piece id
    comparisons: dict[str, int] = field(default_factory=dict)


def write_config(path: Path, stage: str, model: Path, data_file: Path) -> Path:
    """A small training config over an exported file (the shape of the shipped feedback recipes)."""
    import yaml

    from inkwell.feedback.jobs import fill_recipe

    recipe = fill_recipe(stage, model=str(model), output=path.parent / f"{stage}-out", train=str(data_file))
    path.write_text(f"# inkwell train {path}\n" + yaml.safe_dump(recipe), encoding="utf-8")
    return path


def finished_job(data, owner: str, runs: Path, *, win_rate: float = 1.0) -> int:
    """A job whose run folder looks as a finished child leaves it (no training: for the CLI and poll tests)."""
    import json

    run = runs / owner / "20250101-000000-sft"
    run.mkdir(parents=True)
    (run / "adapter_config.json").write_text("{}")
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.0}\n{"step": 3, "lo')
    report = {
        "heldout_count": 1,
        "compared_with": "base",
        "systems": {"base": {"perplexity": 9.0, "rouge_l": 0.1}, "new": {"perplexity": 6.0, "rouge_l": 0.2}},
        "win_rate": win_rate,
        "heldout": [],
    }
    (run / "report.json").write_text(json.dumps(report))
    (run / "job-status.json").write_text('{"status": "finished"}')
    return data.new_job(owner, stage="sft", base="base", run_path=str(run), data={"rows": {"train": 3}})
