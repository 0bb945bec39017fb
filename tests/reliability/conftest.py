"""Fixtures for the reliability battery (helpers in reliability_helpers.py): the figures each test measures,
printed at the end of the session (`pytest -m reliability -s` shows them; docs/reliability.md collects them)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def figures():
    """figures[name] = text: a measured figure, printed once at the end of the session."""
    found: dict[str, str] = {}
    yield found
    if found:
        print("\n\nreliability figures:")
        for name, value in found.items():
            print(f"  {name}: {value}")
