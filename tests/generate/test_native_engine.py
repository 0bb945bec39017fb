"""The native CPU engine on tiny random llamas written as GGUF files (Q8_0, Q4_1, Q4_0): its logits against
torch on the same de-quantised weights, batching and chunking that change nothing, the engine's features, and
where it steps aside. The real model's perplexity guard is in tests/integration/test_fast_path_real.py."""

from __future__ import annotations

import numpy as np
import pytest

from inkwell.errors import InkwellError
from inkwell.generate.native import unavailable_here
from inkwell.generate.settings import GenerationSettings

pytestmark = pytest.mark.skipif(unavailable_here() is not None, reason=str(unavailable_here()))

PROMPTS = [
    [{"role": "user", "content": "Write a product description for a bamboo water bottle."}],
    [{"role": "user", "content": "Poems"}],
    "The quick brown fox",
]
GREEDY = dict(temperature=0, repetition_penalty=1.0, max_new_tokens=20)


@pytest.fixture(scope="module")
def sharp_model(tiny_chat_model, tmp_path_factory):
    """The tiny chat llama with its query/key weights scaled up: a random model's attention is otherwise almost
    uniform, and a wrong scale, rotary layout or causal range would go unnoticed."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("models") / "tiny-sharp"
    shutil.copytree(tiny_chat_model, folder)
    weights = load_file(folder / "model.safetensors")
    for name in weights:
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            weights[name] = weights[name] * 12
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def ggufs(sharp_model, tmp_path_factory, cache):
    from inkwell.models.gguf_write import write_gguf

    folder = tmp_path_factory.mktemp("ggufs")
    out = {}
    for kind in ("q8_0", "q4_1", "q4_0", "f16"):
        out[kind] = folder / f"tiny-{kind}.gguf"
        write_gguf(sharp_model, out[kind], kind)
    return out


@pytest.fixture(scope="module")
def native(ggufs):
    from inkwell.generate.builder import EngineSpec, open_engine

    return open_engine(EngineSpec(str(ggufs["q4_1"]), batch_size=4))


def _texts(results):
    return [(r.text, r.completion_tokens, r.finish_reason) for r in results]


@pytest.mark.parametrize("pack", [True, False], ids=["interleaved", "row-wise"])
@pytest.mark.parametrize("kind", ["q8_0", "q4_1", "q4_0"])
def test_logits_match_torch_on_the_same_dequantised_weights(ggufs, kind, pack):
    import torch

    from inkwell.generate.native import Decoder
    from inkwell.models.load import load_model

    decoder = Decoder.open(ggufs[kind], pack=pack)
    assert decoder.config["blocks"] == kind.upper()
    torch_model = load_model(str(ggufs[kind]), dtype="fp32", device="cpu").model  # transformers' de-quantisation
    ids = [int(i) for i in np.random.default_rng(0).integers(0, decoder.vocab, 40)]
    decoder.reset(1, 64)
    ours = decoder.forward(ids, [0] * len(ids), range(len(ids)), range(len(ids)))
    with torch.inference_mode():
        theirs = torch_model(torch.tensor([ids])).logits[0].numpy()
    # the only difference allowed is the 8-bit activations of the integer dot products (llama.cpp's too)
    error = np.abs(ours - theirs).max() / np.abs(theirs).max()
    assert error < 0.02, f"{kind}: max logit error {error:.4f} of the largest logit"
    assert (ours.argmax(-1) == theirs.argmax(-1)).mean() > 0.9


@pytest.mark.parametrize("pack", [True, False], ids=["interleaved", "row-wise"])
def test_batched_and_chunked_entries_equal_one_row_at_a_time(ggufs, pack):
    from inkwell.generate.native import Decoder

    decoder = Decoder.open(ggufs["q4_1"], pack=pack)
    rng = np.random.default_rng(1)
    a, b = [int(i) for i in rng.integers(0, decoder.vocab, 23)], [int(i) for i in rng.integers(0, decoder.vocab, 9)]
    alone = []
    for ids in (a, b):
        decoder.reset(1, 32)
        alone.append(decoder.forward(ids, [0] * len(ids), range(len(ids)), range(len(ids))))
    decoder.reset(2, 32)
    # row b's prompt, row a's first 10 tokens, then the rest of a in a second call (its cache already filled)
    entries = [(t, 1, p) for p, t in enumerate(b)] + [(t, 0, p) for p, t in enumerate(a[:10])]
    first = decoder.forward(*zip(*entries), range(len(entries)))
    rest = decoder.forward(a[10:], [0] * 13, range(10, 23), range(13))
    np.testing.assert_allclose(first[: len(b)], alone[1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([first[len(b) :], rest]), alone[0], rtol=0, atol=1e-5)


def test_the_callers_floating_point_mode_is_left_as_it_was(ggufs):
    """The decoder flushes denormals inside its threads; numpy/torch in the calling thread must not notice."""
    from inkwell.generate.native import Decoder

    decoder = Decoder.open(ggufs["q8_0"])
    decoder.reset(1, 8)
    decoder.forward([1, 2], [0, 0], [0, 1], [1])
    tiny = np.array([1e-38], dtype=np.float32) * np.float32(0.01)  # a denormal unless flushed to zero
    assert tiny[0] != 0


def test_bad_entries_are_refused_not_read_out_of_bounds(ggufs):
    from inkwell.generate.native import Decoder

    decoder = Decoder.open(ggufs["q8_0"])
    decoder.reset(1, 8)
    with pytest.raises(ValueError, match="out of range"):
        decoder.forward([1], [0], [8], [0])  # position past the cache
    with pytest.raises(ValueError, match="out of range"):
        decoder.forward([decoder.vocab], [0], [0], [0])
    with pytest.raises(ValueError, match="out of range"):
        decoder.forward([1], [1], [0], [0])  # no such row


def test_auto_picks_the_native_engine_for_a_llama_gguf(native):
    assert type(native).__name__ == "NativeEngine"
    assert native.loaded.dtype == "native-Q4_1" and native.loaded.fast_path


def test_batched_greedy_equals_solo(native):
    settings = GenerationSettings(**GREEDY)
    together = _texts(native.generate(PROMPTS, settings))
    alone = [_texts(native.generate([p], settings))[0] for p in PROMPTS]
    assert together == alone
    assert any(r[1] > 5 for r in together)  # it really generated


def test_greedy_follows_the_logits_step_by_step(native):
    """The engine's greedy tokens are the argmax of the decoder's logits over prompt + everything so far."""
    settings = GenerationSettings(**dict(GREEDY, max_new_tokens=8, min_new_tokens=8))
    result = native.generate([PROMPTS[2]], settings)[0]
    prompt = native.encode(PROMPTS[2])
    generated = native.tokenizer(result.text, add_special_tokens=False)["input_ids"]
    decoder = native.decoder
    ids = list(prompt)
    for _ in range(3):
        decoder.reset(1, 64)
        logits = decoder.forward(ids, [0] * len(ids), range(len(ids)), [len(ids) - 1])
        ids.append(int(np.argmax(logits[0])))
    assert native.tokenizer.decode(ids[len(prompt) :]) == native.tokenizer.decode(generated[:3])


def test_min_tokens_penalty_and_seeded_sampling(native):
    settings = GenerationSettings(temperature=0, repetition_penalty=1.3, min_new_tokens=12, max_new_tokens=16)
    assert all(r.completion_tokens >= 12 for r in native.generate(PROMPTS, settings))
    sampled = GenerationSettings(temperature=1.0, top_p=0.95, top_k=0, max_new_tokens=16, seed=11)
    first = _texts(native.generate(PROMPTS[:2], sampled))
    assert first == _texts(native.generate(PROMPTS[:2], sampled))
    assert first[1] == _texts(native.generate([PROMPTS[1]], sampled, seeds=[11]))[0]
    assert first != _texts(native.generate(PROMPTS[:2], GenerationSettings(**dict(sampled.to_dict(), seed=12))))


def test_streaming_stop_sequences_and_cancellation(native):
    settings = GenerationSettings(**GREEDY)
    full = native.generate([PROMPTS[0]], settings)[0].text
    assert len(full) > 4
    stop = full[2:4]
    pieces: list[str] = []
    result = native.generate(
        [PROMPTS[0]], GenerationSettings(**GREEDY, stop=[stop]), on_delta=lambda i, text: pieces.append(text)
    )[0]
    assert result.finish_reason == "stop"
    assert stop not in result.text and full.startswith(result.text)
    assert "".join(pieces) == result.text
    calls = {"n": 0}

    def should_stop(index: int) -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    cancelled = native.generate(
        [PROMPTS[2]], GenerationSettings(**dict(GREEDY, min_new_tokens=20)), should_stop=should_stop
    )[0]
    assert cancelled.finish_reason == "cancelled" and cancelled.completion_tokens < 20


def test_beam_search_falls_back_to_torch_with_a_notice(ggufs, cache):
    from inkwell.generate.builder import EngineSpec, open_engine

    notes: list[str] = []
    engine = open_engine(EngineSpec(str(ggufs["q4_1"])), notes.append)
    result = engine.generate([PROMPTS[2]], GenerationSettings(num_beams=2, max_new_tokens=6))[0]
    assert result.completion_tokens > 0
    assert any("beam search runs on the torch engine" in n for n in notes)


def test_scoring_goes_through_the_decoder(native, ggufs):
    """Perplexity scored on the native engine matches torch on the same de-quantised weights (both windowed)."""
    from inkwell.evaluate.perplexity import ModelScorer, perplexity
    from inkwell.models.load import load_model

    text = "The quick brown fox jumps over the lazy dog. " * 8
    score = perplexity(native, native.tokenizer, [text], max_length=64)
    torch_model = load_model(str(ggufs["q4_1"]), dtype="fp32", device="cpu").model
    reference = perplexity(ModelScorer(torch_model), native.tokenizer, [text], max_length=64)
    assert score.tokens == reference.tokens > 50
    assert abs(score.perplexity / reference.perplexity - 1) < 0.02, (score.perplexity, reference.perplexity)


def test_where_the_native_engine_steps_aside(ggufs, sharp_model):
    from inkwell.generate.builder import EngineSpec, open_engine

    # an f16 GGUF: not blocks the kernel reads -> auto goes on quietly, --engine native says why
    assert type(open_engine(EngineSpec(str(ggufs["f16"]), batch_size=2))).__name__ != "NativeEngine"
    with pytest.raises(InkwellError, match="cannot read .*F16") as err:
        open_engine(EngineSpec(str(ggufs["f16"]), backend="native"))
    assert err.value.field == "engine"
    with pytest.raises(InkwellError, match="no GGUF file"):  # an HF folder
        open_engine(EngineSpec(str(sharp_model), backend="native"))
    with pytest.raises(InkwellError, match="--precision int8"):
        open_engine(EngineSpec(str(ggufs["q4_1"]), backend="native", precision="int8"))
    assert type(open_engine(EngineSpec(str(ggufs["q4_1"]), precision="int8"))).__name__ != "NativeEngine"


def test_no_compiler_is_a_one_line_note_and_the_next_path(ggufs, monkeypatch, tmp_path):
    import inkwell.generate.native as native_module
    from inkwell.generate.builder import EngineSpec, open_engine

    monkeypatch.setattr(native_module, "library_path", lambda: tmp_path / "decoder-x.so")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(native_module.shutil, "which", lambda name: None)
    with pytest.raises(native_module.NativeUnavailable) as err:
        native_module.load_library()
    assert err.value.machine
    notes: list[str] = []
    engine = open_engine(EngineSpec(str(ggufs["q4_1"]), batch_size=2), notes.append)
    assert type(engine).__name__ != "NativeEngine"
    assert any(n.startswith("note: ") and "native decoder" in n for n in notes)
    assert not list(tmp_path.glob("*.so")) and not list(tmp_path.glob(".decoder-*"))  # nothing half-built left


def test_scheduler_runs_a_continuous_batch_on_the_native_engine(native):
    """Jobs submitted together share native batches, join between steps and give what generate gives."""
    from inkwell.generate.scheduler import GenerationJob, Scheduler

    settings = GenerationSettings(**GREEDY)
    alone = [_texts(native.generate([p], settings))[0] for p in PROMPTS]
    scheduler = Scheduler(native, window_s=0.0, max_batch_rows=2).start()
    try:
        assert scheduler.continuous
        jobs = [scheduler.submit(GenerationJob([p], settings)) for p in PROMPTS]  # 3 jobs, 2 slots: one waits
        together = [_texts(job.wait(60))[0] for job in jobs]
        long = GenerationSettings(**dict(GREEDY, max_new_tokens=200, min_new_tokens=200))
        leaving = GenerationJob([PROMPTS[0]], long, on_delta=lambda i, text: leaving.cancel())  # gone after a token
        result = scheduler.submit(leaving).wait(60)[0]
    finally:
        scheduler.close()
    assert together == alone
    assert result.finish_reason == "cancelled" and result.completion_tokens < 10
