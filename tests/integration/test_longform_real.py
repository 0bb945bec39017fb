"""`write long` on the embedded SmolLM2 (native engine, as `inkwell write long` runs it): a short 3-section
article, with the real MiniLM embedder for memory and reranking. The model's prose is not judged here; what
the pipeline promises is: three sections near their budgets, on the topic, no loops, every stage's file."""

from __future__ import annotations

import pytest

from inkwell.compose.longform import DraftOptions, LongRequest, checks, write_long


@pytest.fixture(scope="module")
def native_smollm2():
    from inkwell.generate.builder import EngineSpec, open_engine

    engine = open_engine(EngineSpec("smollm2-135m-instruct", backend="native"))
    yield engine
    engine.close()


@pytest.mark.slow
def test_a_short_article_in_three_sections(native_smollm2, tmp_path):
    request = LongRequest("article", "how tides work", words=360, sections=3, options=DraftOptions(candidates=2))
    piece = write_long(native_smollm2, request, tmp_path / "piece")

    assert [s["title"] for s in piece["sections"]][0] == "Introduction"
    assert [s["title"] for s in piece["sections"]][-1] == "Conclusion"
    assert piece["measures"]["length_score"] >= 50, piece["measures"]  # within a factor of 2 of the target
    assert piece["measures"]["repeated_4gram_rate"] < 0.05
    text = (tmp_path / "piece" / "piece.md").read_text()
    assert "tide" in text.lower() and text.count("\n## ") == 3
    for section in piece["sections"]:
        chosen = section["provenance"]["candidates"][section["provenance"]["chosen"]]
        assert chosen["checks"]["topic"] > 0  # at least part of the chosen candidate is about tides
        assert checks.word_count(section["text"]) > 0
