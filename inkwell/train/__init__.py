"""Training: one self-contained recipe per stage (pretrain.py, sft.py, dpo.py, classify.py) over shared
components (config, data, collate, methods, loop, outputs). Entry point:

    inkwell train CONFIG.yaml [key=value ...]
"""

from __future__ import annotations

import importlib
from pathlib import Path

# A plain dict: stage -> the module whose `run(config)` trains it.
RECIPES = {
    "pretrain": "inkwell.train.pretrain",
    "sft": "inkwell.train.sft",
    "dpo": "inkwell.train.dpo",
    "classify": "inkwell.train.classify",
}


def train(config_path: str | Path, overrides: list[str] | None = None, **options):
    """Load + validate the config (no model yet), then run its stage's recipe. Returns a TrainedRun."""
    from inkwell.train.config import load_config

    config = load_config(config_path, overrides)
    recipe = importlib.import_module(RECIPES[config.stage])
    return recipe.run(config, **options)


def check_data(config, on_error: str | None = None):
    """Read and check every data row of a config as its stage will (no tokenizer, no model). Returns the
    DataReport (files, kept rows, problems); bad files and, with on_error=error, bad rows raise InkwellError."""
    from inkwell.train.data import DataReport, expand, read_rows

    config_dir = config._source.parent if config._source else None
    report = DataReport(on_error=on_error or config.data.on_error)
    for key, specs in (("data.train", config.data.train), ("data.val", config.data.val)):
        if not specs:
            continue
        files = expand(specs, config_dir, key)
        if config.stage == "dpo":
            from inkwell.train.dpo import read_pairs

            read_pairs(files, report, key)
        elif config.stage == "classify":
            from inkwell.train.classify import read_examples

            read_examples(files, report, key)
        else:
            allowed = ("text",) if config.stage == "pretrain" else None
            read_rows(files, config.data.format, report, getattr(config.data, "template", None), config_dir, allowed)
    return report
