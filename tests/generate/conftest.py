"""Fixtures shared by the fast-path engine tests (ONNX, native)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One model cache per test module (built ONNX models, the compiled native decoder), outside the per-test
    INKWELL_HOME, so a module builds each thing once."""
    folder = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INKWELL_MODEL_CACHE", str(folder))
        yield folder
