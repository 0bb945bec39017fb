"""The ONNX fast path on a tiny random llama: same results as the torch engine where it must be, cached builds,
clear fallbacks. Real-model speed and the int8 perplexity guard are in tests/integration/test_fast_path_real.py."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("onnxruntime_genai")

from inkwell.errors import InkwellError  # noqa: E402
from inkwell.generate.settings import GenerationSettings  # noqa: E402

PROMPTS = [
    [{"role": "user", "content": "Write a product description for a bamboo water bottle."}],
    [{"role": "user", "content": "Poems"}],
    "The quick brown fox",
    [{"role": "system", "content": "Inkwell writes content."}, {"role": "user", "content": "ads, emails, reviews"}],
]
GREEDY = dict(temperature=0, repetition_penalty=1.0, max_new_tokens=24)


@pytest.fixture(scope="module")
def onnx_fp32(tiny_chat_model, cache):
    from inkwell.generate.builder import EngineSpec, open_engine

    return open_engine(EngineSpec(str(tiny_chat_model), backend="onnx", precision="fp32", batch_size=4))


def _texts(results):
    return [(r.text, r.completion_tokens, r.finish_reason) for r in results]


def test_fp32_greedy_equals_torch_engine_token_for_token(onnx_fp32, tiny_engine):
    settings = GenerationSettings(**GREEDY)
    assert type(onnx_fp32).__name__ == "OnnxEngine"
    ours = onnx_fp32.generate(PROMPTS, settings)
    theirs = tiny_engine.generate(PROMPTS, settings)
    assert _texts(ours) == _texts(theirs)
    assert any(r.completion_tokens > 5 for r in ours)  # it really generated


def test_batched_equals_solo_with_right_padding(onnx_fp32):
    # Chat prompts contain the end-of-turn token, which is also the pad id: padding must not mask it.
    settings = GenerationSettings(**GREEDY)
    together = _texts(onnx_fp32.generate(PROMPTS, settings))
    alone = [_texts(onnx_fp32.generate([p], settings))[0] for p in PROMPTS]
    assert together == alone


def test_repetition_penalty_and_min_tokens_match_torch(onnx_fp32, tiny_engine):
    settings = GenerationSettings(temperature=0, repetition_penalty=1.3, min_new_tokens=12, max_new_tokens=20)
    ours = onnx_fp32.generate(PROMPTS, settings)
    assert _texts(ours) == _texts(tiny_engine.generate(PROMPTS, settings))
    assert all(r.completion_tokens >= 12 for r in ours)


def test_sampling_is_reproducible_per_seed_and_differs_across_seeds(onnx_fp32):
    settings = GenerationSettings(temperature=1.0, top_p=0.95, top_k=0, max_new_tokens=16, seed=11)
    first = _texts(onnx_fp32.generate(PROMPTS[:2], settings))
    assert first == _texts(onnx_fp32.generate(PROMPTS[:2], settings))
    # a prompt's seeded text does not depend on which other prompts share its batch
    assert first[1] == _texts(onnx_fp32.generate([PROMPTS[1]], settings, seeds=[11]))[0]
    other = _texts(onnx_fp32.generate(PROMPTS[:2], GenerationSettings(**dict(settings.to_dict(), seed=12))))
    assert other != first


def test_streaming_concatenates_to_the_text_and_stop_sequences_cut(onnx_fp32):
    settings = GenerationSettings(**GREEDY)
    full = onnx_fp32.generate([PROMPTS[0]], settings)[0].text
    assert len(full) > 4
    stop = full[2:4]
    pieces: list[str] = []
    result = onnx_fp32.generate(
        [PROMPTS[0]], GenerationSettings(**GREEDY, stop=[stop]), on_delta=lambda i, text: pieces.append(text)
    )[0]
    assert result.finish_reason == "stop"
    assert stop not in result.text and full.startswith(result.text)
    assert "".join(pieces) == result.text


def test_cancellation_ends_the_row(onnx_fp32):
    calls = {"n": 0}

    def should_stop(index: int) -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    result = onnx_fp32.generate([PROMPTS[0]], GenerationSettings(**GREEDY), should_stop=should_stop)[0]
    assert result.finish_reason == "cancelled" and result.completion_tokens <= 3


def test_beam_search_falls_back_to_torch_with_a_notice(tiny_chat_model, cache, tiny_engine):
    from inkwell.generate.builder import EngineSpec, open_engine

    notes: list[str] = []
    engine = open_engine(EngineSpec(str(tiny_chat_model), backend="onnx", precision="fp32"), notes.append)
    settings = GenerationSettings(num_beams=2, temperature=0, max_new_tokens=8)
    result = engine.generate([PROMPTS[0]], settings)
    assert result[0].text == tiny_engine.generate([PROMPTS[0]], settings)[0].text
    assert any("beam search runs on the torch engine" in n for n in notes)


def test_build_is_cached_and_keyed_by_precision(tiny_chat_model, cache, monkeypatch):
    from inkwell.models import onnx

    first = onnx.build_onnx(str(tiny_chat_model), precision="fp32")
    calls = []
    monkeypatch.setattr(onnx, "_run_builder", lambda *a, **k: calls.append(a))
    assert onnx.build_onnx(str(tiny_chat_model), precision="fp32") == first
    assert calls == []  # second time: straight from the cache
    assert json.loads((first / onnx.CARD).read_text())["precision"] == "fp32"
    # generation's graph computes logits at the last position only; scoring's keeps every position
    assert (first / "model.all-logits.onnx").exists()


def test_a_failed_build_is_remembered_not_retried(tiny_chat_model, tmp_path, monkeypatch):
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.models import onnx

    monkeypatch.setenv("INKWELL_MODEL_CACHE", str(tmp_path / "models"))
    calls = []

    def failing(source, *args):
        calls.append(source)
        raise onnx.FastPathUnavailable(
            f"the ONNX model builder failed for {source}: KeyError: 'x'", field="engine", hint=onnx.BUILD_FAILED_HINT
        )

    monkeypatch.setattr(onnx, "_run_builder", failing)
    for _ in range(2):
        with pytest.raises(onnx.FastPathUnavailable, match="KeyError: 'x'") as info:
            onnx.build_onnx(str(tiny_chat_model), precision="int8")
        assert "--engine torch" in str(info.value)
    assert len(calls) == 1  # the second call read the remembered failure
    assert "delete it to try again" in str(info.value)
    assert not [p for p in (tmp_path / "models" / "onnx").iterdir() if not p.name.endswith(".failed")]
    notes = []
    engine = open_engine(EngineSpec(str(tiny_chat_model), backend="auto", device="cpu"), notes.append)
    assert type(engine).__name__ == "Engine" and len(calls) == 1  # auto: quietly the torch engine
    assert any("KeyError" in n for n in notes)
    (failed,) = (tmp_path / "models" / "onnx").glob("*.failed")
    failed.unlink()  # deleting the memo tries again
    with pytest.raises(onnx.FastPathUnavailable):
        onnx.build_onnx(str(tiny_chat_model), precision="int8")
    assert len(calls) == 2


def test_int4_rounding_is_said_on_every_use_not_only_at_build(tiny_chat_model, cache):
    from inkwell.models import onnx

    for _ in range(2):  # built, then from the cache
        notes: list[str] = []
        folder = onnx.build_onnx(str(tiny_chat_model), precision="int4", progress=notes.append)
        assert [n for n in notes if "not on a 4-bit grid" in n and "--precision int8" in n], notes
    card = onnx.read_onnx_card(folder)["int4_exact"]
    assert card["exact"] == 0 and card["kept"] > 0  # random weights: nothing sits on a 4-bit grid


def test_int8_is_close_to_full_precision_on_logits(tiny_chat_model, cache, onnx_fp32):
    from inkwell.generate.builder import EngineSpec, open_engine

    int8 = open_engine(EngineSpec(str(tiny_chat_model), backend="onnx", precision="int8"))
    ids = onnx_fp32.encode(PROMPTS[0])
    full, quant = onnx_fp32.window_logits(ids), int8.window_logits(ids)
    assert full.shape == quant.shape == (len(ids), onnx_fp32.vocab)
    assert abs(full - quant).max() < 0.05 * abs(full).max()


def test_adapter_key_changes_when_the_adapter_changes(tiny_chat_model, tmp_path, cache):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from inkwell.models import onnx

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_chat_model),
        LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    key_a = onnx.source_key(tiny_chat_model, tmp_path / "a", "fp32")
    assert onnx.source_key(tiny_chat_model, tmp_path / "b", "fp32") == key_a  # same content, same key
    weights = tmp_path / "b" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    assert onnx.source_key(tiny_chat_model, tmp_path / "b", "fp32") != key_a
    assert onnx.source_key(tiny_chat_model, None, "int8") != onnx.source_key(tiny_chat_model, None, "fp32")


def test_lora_adapter_runs_merged_on_the_fast_path(tiny_chat_model, tmp_path, cache):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_chat_model),
        LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False),
    )
    model.save_pretrained(tmp_path / "lora")
    settings = GenerationSettings(**GREEDY)
    fast = open_engine(
        EngineSpec(str(tiny_chat_model), adapter=str(tmp_path / "lora"), backend="onnx", precision="fp32")
    )
    plain = Engine(load_model(str(tiny_chat_model), adapter=str(tmp_path / "lora"), dtype="fp32", device="cpu"))
    base = open_engine(EngineSpec(str(tiny_chat_model), backend="onnx", precision="fp32"))
    assert _texts(fast.generate(PROMPTS, settings)) == _texts(plain.generate(PROMPTS, settings))
    assert _texts(fast.generate(PROMPTS, settings)) != _texts(base.generate(PROMPTS, settings))


def test_prefix_adapter_is_refused_on_onnx_and_auto_falls_back(tiny_chat_model, tmp_path, cache):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from inkwell.generate.builder import EngineSpec, open_engine

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_chat_model),
        PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
    )
    model.save_pretrained(tmp_path / "prefix")
    with pytest.raises(InkwellError, match="prefix_tuning adapters"):
        open_engine(EngineSpec(str(tiny_chat_model), adapter=str(tmp_path / "prefix"), backend="onnx"))
    notes: list[str] = []
    engine = open_engine(
        EngineSpec(str(tiny_chat_model), adapter=str(tmp_path / "prefix"), backend="auto"), notes.append
    )
    assert type(engine).__name__ == "Engine"
    assert any("using the torch engine" in n for n in notes)


def test_unknown_engine_and_precision_name_the_field(tiny_chat_model, cache):
    from inkwell.generate.builder import EngineSpec, open_engine

    with pytest.raises(InkwellError) as err:
        open_engine(EngineSpec(str(tiny_chat_model), backend="tensorrt"))
    assert err.value.field == "engine"
    with pytest.raises(InkwellError) as err:
        open_engine(EngineSpec(str(tiny_chat_model), backend="onnx", precision="int3"))
    assert err.value.field == "precision"


def test_onnx_folder_is_a_model_and_scores_perplexity(tiny_chat_model, cache, onnx_fp32, tiny_engine):
    from inkwell.evaluate.perplexity import sequence_nll
    from inkwell.generate.builder import EngineSpec, open_engine

    folder = onnx_fp32.onnx_dir
    engine = open_engine(EngineSpec(str(folder)))
    assert type(engine).__name__ == "OnnxEngine" and engine.loaded.chat
    settings = GenerationSettings(**GREEDY)
    assert _texts(engine.generate(PROMPTS, settings)) == _texts(tiny_engine.generate(PROMPTS, settings))
    ids = tiny_engine.encode(PROMPTS[0])
    ours, n = sequence_nll(engine, ids, 1)
    theirs, m = sequence_nll(tiny_engine, ids, 1)
    assert n == m and ours == pytest.approx(theirs, rel=1e-4)
    with pytest.raises(InkwellError, match="torch engine cannot load it"):
        open_engine(EngineSpec(str(folder), backend="torch"))


def test_cli_write_and_batch_on_the_onnx_engine(tiny_chat_model, cache, tmp_path, capsys, monkeypatch):
    from cli_helpers import run

    monkeypatch.delenv("INKWELL_ENGINE", raising=False)  # the product default: auto
    out, err = run(
        capsys,
        [
            "generate",
            "Poems",
            "--model",
            str(tiny_chat_model),
            "--temperature",
            "0",
            "--max-new-tokens",
            "8",
            "--json",
            "--no-log",
        ],
    )
    assert json.loads(out)["usage"]["completion_tokens"] > 0
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "text": f"item {i} is new"}) + "\n" for i in range(5)))
    out, err = run(
        capsys,
        [
            "batch",
            "headline",
            "-i",
            str(rows),
            "-o",
            str(tmp_path / "out.jsonl"),
            "--model",
            str(tiny_chat_model),
            "--max-new-tokens",
            "6",
            "--no-log",
            "--json",
            "--no-moderation",
            "--engine",
            "onnx",
            "--precision",
            "fp32",
        ],
    )
    assert json.loads(out)["written"] == 5
    _, err = run(capsys, ["generate", "Poems", "--model", str(tiny_chat_model), "--engine", "tpu"], exit_code=2)
    assert "unknown engine" in err and "Traceback" not in err


def test_gemma3_sliding_window_model_matches_torch(tiny_base_model, tmp_path, cache):
    # Gemma-3 under transformers 5 keeps RoPE per layer type (full: theta 1e6, sliding: 1e4), which the
    # model builder could not read; its sliding-window attention needs a cache of a whole window and
    # refuses right-padded rows. A tiny gemma3 (window 8, one sliding + one full layer; prompts and
    # outputs longer than the window) must decode as transformers does, batched or alone.
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    folder = tmp_path / "tiny-gemma3"
    shutil.copytree(tiny_base_model, folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    base = json.loads((tiny_base_model / "config.json").read_text())
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=base["vocab_size"],
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=512,
        bos_token_id=base["bos_token_id"],
        eos_token_id=base["eos_token_id"],
        pad_token_id=base["pad_token_id"],
    )
    Gemma3ForCausalLM(config).save_pretrained(folder)
    prompts = ["The quick brown fox jumps over the lazy dog.", "Poems", "Inkwell writes content: ads, emails"]
    settings = GenerationSettings(**GREEDY)
    fast = open_engine(EngineSpec(str(folder), backend="onnx", precision="fp32", batch_size=4))
    assert type(fast).__name__ == "OnnxEngine" and fast.min_length == 8
    ours = _texts(fast.generate(prompts, settings))
    assert ours == [_texts(fast.generate([p], settings))[0] for p in prompts]
    theirs = _texts(
        Engine(load_model(str(folder), dtype="fp32", device="cpu"), batch_size=4).generate(prompts, settings)
    )
    assert ours == theirs
    assert all(tokens > 8 for _, tokens, _ in ours)  # past the window
