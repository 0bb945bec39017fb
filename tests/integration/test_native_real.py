"""The native engine on the real SmolLM2 (its Q4_1 GGUF): the default CPU path for it, and the quantised-path
quality guard of the fast-inference work - perplexity on a fixed text within 3% of the full-precision model."""

from __future__ import annotations

import pytest
from quality_helpers import assert_perplexity_within_3_percent, fixed_text

from inkwell.generate.native import unavailable_here

pytestmark = pytest.mark.skipif(unavailable_here() is not None, reason=str(unavailable_here()))


@pytest.fixture(scope="module")
def native():
    from inkwell.generate.builder import EngineSpec, open_engine

    return open_engine(EngineSpec("smollm2-135m-instruct"))  # auto on the CPU


def test_auto_runs_the_embedded_model_on_the_native_engine(native):
    assert type(native).__name__ == "NativeEngine"
    assert native.loaded.dtype == "native-Q4_1"


def test_native_perplexity_within_3_percent_of_full_precision(smollm2, native):
    assert_perplexity_within_3_percent(smollm2, native, fixed_text(), "native Q4_1")


def test_native_greedy_opens_as_the_full_precision_model_does(smollm2, native):
    """Not token for token (8-bit activations, as in llama.cpp) but the same opening words on plain prompts."""
    from inkwell.generate.settings import GenerationSettings

    prompts = [
        [{"role": "user", "content": p}]
        for p in (
            "Write a product description for a bamboo water bottle.",
            "Write a haiku about autumn rain.",
            "Write a short ad for a solar phone charger.",
            "Write a customer review of a fountain pen.",
            "Summarise in one sentence: the city council approved a new bike lane on Main Street.",
        )
    ]
    settings = GenerationSettings(max_new_tokens=24, temperature=0, repetition_penalty=1.0)
    ours = [r.text for r in native.generate(prompts, settings)]
    theirs = [r.text for r in smollm2.generate(prompts, settings)]
    assert all(len(t.split()) > 5 for t in ours)
    same_start = sum(a.split()[:4] == b.split()[:4] for a, b in zip(ours, theirs))
    print(f"same first 4 words: {same_start} of {len(prompts)}")
    assert same_start >= 4, list(zip(ours, theirs))
