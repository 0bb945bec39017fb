"""Fixtures for the studio's browser tests: a real server (tiny random model, two API keys, one LoRA
adapter) and Debian's headless Chromium driven by Playwright (helpers in studio_helpers.py).

Playwright never downloads a browser here: it launches /usr/bin/chromium (`make test` installs it); without
it, or without Playwright, the tests skip and say why."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "serve"))  # serve_helpers, as the server tests import it
from serve_helpers import build_lora, hooked_loader, start_server  # noqa: E402
from studio_helpers import ALICE, BOB, CHROMIUM, CHROMIUM_ARGS, VIEWPORT  # noqa: E402

# Each forward pass of the test model sleeps this long, so a stream lasts long enough (~0.3 s for 16 tokens)
# for the page to show text before the end, and the tests can see it grow.
FORWARD_DELAY = 0.02


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; `make test` installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def studio(tiny_chat_model, tmp_path_factory):
    """The studio's server: keys for Alice and Bob, the base model and the adapter `alpha`."""
    tmp = tmp_path_factory.mktemp("studio-browser")
    lora = build_lora(tiny_chat_model, tmp / "lora-alpha", seed=1)
    server = start_server(
        tiny_chat_model,
        tmp,
        api_keys=[ALICE, BOB],
        adapters={"alpha": str(lora)},
        loader=hooked_loader(delay=FORWARD_DELAY),
        max_concurrency=8,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (empty sessionStorage) at 1280x800; fails the test on any uncaught page error."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"
