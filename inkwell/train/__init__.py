"""Training: one self-contained recipe per stage (pretrain.py, sft.py) over shared components
(config, data, collate, methods, loop, outputs). Entry point:

    inkwell train CONFIG.yaml [key=value ...]
"""

from __future__ import annotations

import importlib
from pathlib import Path

# A plain dict: stage -> the module whose `run(config)` trains it. DPO and classify will join here.
RECIPES = {"pretrain": "inkwell.train.pretrain", "sft": "inkwell.train.sft"}


def train(config_path: str | Path, overrides: list[str] | None = None, **options):
    """Load + validate the config (no model yet), then run its stage's recipe. Returns a TrainedRun."""
    from inkwell.train.config import load_config

    config = load_config(config_path, overrides)
    recipe = importlib.import_module(RECIPES[config.stage])
    return recipe.run(config, **options)
