"""Re-packing a 4-bit GGUF's grid into the ONNX int4 model without loss (inkwell/models/onnx_exact.py).

The tiny random model's weights are snapped to Q4_1 blocks (linear layers) and Q8_0 blocks (the tied embedding),
as a model de-quantised from a GGUF is; the int4 build must then hold them exactly, and its logits must be far
closer to the torch model's than the model builder's own int4 rounding of the same weights."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from inkwell.generate.settings import GenerationSettings
from inkwell.models.onnx_exact import grid4, grid8


def q4_1(weight: np.ndarray) -> np.ndarray:
    """llama.cpp's Q4_1 round trip: per block of 32, d = (max - min) / 15 and m = min, both stored as fp16."""
    n, k = weight.shape
    b = weight.reshape(n, k // 32, 32).astype(np.float32)
    low, high = b.min(-1, keepdims=True), b.max(-1, keepdims=True)
    d = ((high - low) / 15).astype(np.float16).astype(np.float32)
    m = low.astype(np.float16).astype(np.float32)
    q = np.clip(np.rint((b - m) / np.where(d == 0, 1, d)), 0, 15)
    return (d * q + m).reshape(n, k)


def q8_0(weight: np.ndarray) -> np.ndarray:
    n, k = weight.shape
    b = weight.reshape(n, k // 32, 32).astype(np.float32)
    d = (np.abs(b).max(-1, keepdims=True) / 127).astype(np.float16).astype(np.float32)
    return (d * np.clip(np.rint(b / np.where(d == 0, 1, d)), -127, 127)).reshape(n, k)


def test_grid4_recovers_q4_1_blocks_and_rejects_other_weights():
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.05, (48, 96)).astype(np.float32)
    snapped = q4_1(weight)
    q, d, m = grid4(snapped)
    assert q.max() <= 15 and q.shape == (48, 3, 32)
    assert np.array_equal((d[..., None] * q + m[..., None]).reshape(48, 96), snapped)
    assert grid4(weight) is None  # float weights are not on a 4-bit grid
    assert grid4(snapped[:, :80]) is None  # not whole blocks of 32


def test_grid8_recovers_q8_0_blocks_and_rejects_4bit_affine_ones():
    rng = np.random.default_rng(1)
    weight = rng.normal(0, 0.05, (40, 64)).astype(np.float32)
    snapped = q8_0(weight)
    q, d = grid8(snapped)
    assert np.array_equal((d[..., None] * q).reshape(40, 64), snapped)
    assert grid8(weight) is None


@pytest.fixture(scope="module")
def gridded_model(tiny_chat_model, tmp_path_factory):
    """The tiny chat model with its weights on GGUF grids, as the embedded models are after de-quantisation."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("gridded")
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model, dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("_proj.weight"):
                param.copy_(torch.from_numpy(q4_1(param.numpy())))
            elif name.endswith("embed_tokens.weight"):
                param.copy_(torch.from_numpy(q8_0(param.numpy())))
    model.save_pretrained(folder)
    for item in tiny_chat_model.iterdir():
        if not (folder / item.name).exists() and item.is_file():
            shutil.copy(item, folder / item.name)
    return folder, model


def _logits_error(folder, model, ids) -> float:
    import torch

    from inkwell.generate.builder import EngineSpec, open_engine

    engine = open_engine(EngineSpec(str(folder), backend="onnx", precision="int4"))
    ours = engine.window_logits(ids)
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].numpy()
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max()), engine


def test_int4_holds_a_gguf_grid_exactly_and_auto_picks_it(gridded_model, tmp_path, monkeypatch):
    from inkwell.models import onnx

    folder, model = gridded_model
    monkeypatch.setenv("INKWELL_MODEL_CACHE", str(tmp_path / "exact"))
    built = onnx.build_onnx(str(folder), precision="auto")
    card = onnx.read_onnx_card(built)
    assert card["precision"] == "int4"  # auto: the weights sit on a 4-bit grid
    layers = model.config.num_hidden_layers
    # per layer: the fused qkv, o, gate, up and down projections; the tied embedding / head as exact 8-bit
    assert card["int4_exact"] == {"exact": 5 * layers, "kept": 0, "head": "int8-exact"}
    ids = list(range(3, 40))
    exact, engine = _logits_error(folder, model, ids)

    # the model builder's own int4 rounding of the same weights, for comparison
    monkeypatch.setenv("INKWELL_MODEL_CACHE", str(tmp_path / "rounded"))
    monkeypatch.setattr(onnx, "repack", lambda target, source: {"exact": 0, "kept": 5 * layers, "head": "kept"})
    rounded, _ = _logits_error(folder, model, ids)
    # what is left is the int8 activations inside the matmuls; re-quantising the grid is several times worse
    print(f"max logit error: exact grid {exact:.4f}, re-rounded {rounded:.4f}")
    assert exact < 0.02 and exact * 3 < rounded, (exact, rounded)
    result = engine.generate(["The quick brown fox"], GenerationSettings(temperature=0, max_new_tokens=8))[0]
    assert result.completion_tokens > 0


def test_auto_picks_int8_for_weights_off_any_grid(tiny_chat_model):
    from inkwell.models.onnx import auto_precision

    assert auto_precision(tiny_chat_model, None) == "int8"
