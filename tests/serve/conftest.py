"""Fixtures for the server tests (helpers in serve_helpers.py)."""

from __future__ import annotations

import pytest
from serve_helpers import API_KEY, build_lora, start_server


@pytest.fixture(scope="session")
def lora_adapters(tiny_chat_model, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        name: str(build_lora(tiny_chat_model, root / f"lora-{name}", seed))
        for name, seed in (("alpha", 1), ("beta", 2))
    }


@pytest.fixture(scope="session")
def live_server(tiny_chat_model, lora_adapters, tmp_path_factory):
    """The shared server: tiny chat model, adapters alpha and beta, one API key."""
    server = start_server(
        tiny_chat_model,
        tmp_path_factory.mktemp("serve"),
        adapters=dict(lora_adapters),
        api_keys=[API_KEY],
        max_concurrency=16,
    )
    yield server
    server.stop()
