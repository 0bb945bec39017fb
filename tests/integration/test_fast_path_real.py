"""The ONNX fast path on the real SmolLM2: the quality guards of the fast-inference work.

- full precision (fp32 ONNX): greedy output equals plain HF `generate` token for token on a fixed prompt set;
- quantised (int8; int4, the embedded model's default, which keeps its GGUF's 4-bit grid exactly): perplexity on
  a fixed text within 3% of the full-precision model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from quality_helpers import assert_perplexity_within_3_percent, fixed_text

pytest.importorskip("onnxruntime_genai")

PROMPTS = [
    "Write a product description for a bamboo water bottle.",
    "Write a short ad for a solar phone charger.",
    "Write a tweet about organic green tea.",
    "Write a customer review of a fountain pen.",
    "Write a haiku about autumn rain.",
    "Summarise in one sentence: the city council approved a new bike lane on Main Street.",
]


def test_fp32_onnx_greedy_equals_hf_generate(smollm2):
    import torch

    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.settings import GenerationSettings

    fast = open_engine(EngineSpec("smollm2-135m-instruct", backend="onnx", precision="fp32"))
    messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    settings = GenerationSettings(max_new_tokens=48, temperature=0, repetition_penalty=1.0)
    ours = [r.text for r in fast.generate(messages, settings)]
    tokenizer, model = smollm2.tokenizer, smollm2.model
    for prompt, text in zip(messages, ours):
        ids = torch.tensor([smollm2.encode(prompt)])
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=48, do_sample=False, pad_token_id=smollm2.pad_id)
        assert text == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantised_perplexity_within_3_percent_of_full_precision(smollm2, precision):
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.models.onnx import build_onnx, read_onnx_card

    fast = open_engine(EngineSpec("smollm2-135m-instruct", backend="onnx", precision=precision))
    if precision == "int4":  # every matmul re-packed from the Q4_1 GGUF, the head from its Q8_0 embedding
        card = read_onnx_card(build_onnx("smollm2-135m-instruct", precision="int4"))
        assert card["int4_exact"] == {"exact": 150, "kept": 0, "head": "int8-exact"}
    assert_perplexity_within_3_percent(smollm2, fast, fixed_text(), precision)


def test_auto_precision_is_int4_for_the_embedded_model():
    from inkwell.models.onnx import build_onnx, read_onnx_card

    assert read_onnx_card(build_onnx("smollm2-135m-instruct", precision="auto"))["precision"] == "int4"


SONG100 = Path("/usr/share/games/fortunes/song100")


def test_gemma3_runs_on_the_fast_path_within_3_percent(gemma3):
    """Gemma-3 (sliding-window attention, per-layer-type RoPE): auto picks the ONNX path at int8 (its Q4_K_M
    GGUF is mostly Q5_0 / Q6_K / Q8_0 blocks, no 4-bit grid); perplexity on Song ci within 3% of fp32;
    prompts of different lengths in one call (the runtime's sliding-window attention refuses right-padded
    rows) give what each gives alone."""
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.onnx_engine import OnnxEngine
    from inkwell.generate.settings import GenerationSettings
    from inkwell.models.onnx import read_onnx_card

    if not SONG100.exists():
        pytest.skip("needs Debian's fortunes-zh (apt-get install fortunes-zh) for the Song ci text")
    fast = open_engine(EngineSpec("gemma3-270m", device="cpu"))
    assert isinstance(fast, OnnxEngine) and read_onnx_card(fast.onnx_dir)["precision"] == "int8"
    # ~1000 tokens: scoring a 262k vocabulary on this path is slow
    text = "\n".join(SONG100.read_text(encoding="utf-8").split("\n%\n")[:10])
    assert_perplexity_within_3_percent(gemma3, fast, text, "gemma3 int8")
    prompts = ["秋风", "Once upon a time", "床前明月光，疑是地上霜。"]
    settings = GenerationSettings(max_new_tokens=16, temperature=0, repetition_penalty=1.0)
    together = [r.text for r in fast.generate(prompts, settings)]
    assert together == [fast.generate([p], settings)[0].text for p in prompts]
    assert all(together)
