"""Engine: the lean batched decode loop against HF generate, seeds, samples, streaming, stops and limits."""

from __future__ import annotations

import pytest
import torch

from inkwell.errors import InkwellError
from inkwell.generate.engine import Engine
from inkwell.generate.settings import GenerationSettings

PROMPTS = [
    "The quick brown fox",
    "Write a product",
    "Inkwell writes content: ads, emails, reviews, travel guides",
    "Poems",
    "The quick brown fox jumps over the lazy dog. Poems, stories",
    "床前明月光",
]


def greedy(**kw) -> GenerationSettings:
    kw.setdefault("repetition_penalty", 1.0)
    return GenerationSettings(temperature=0, **kw)


def sampling(**kw) -> GenerationSettings:
    kw.setdefault("top_p", 1.0)
    kw.setdefault("top_k", 0)
    kw.setdefault("repetition_penalty", 1.0)
    return GenerationSettings(temperature=1.0, **kw)


def hf_generate(engine: Engine, prompt, **kw):
    """Reference: transformers' own generate on one unpadded prompt; returns (text, new token ids)."""
    ids = torch.tensor([engine.encode(prompt)])
    with torch.inference_mode():
        out = engine.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            pad_token_id=engine.pad_id,
            eos_token_id=sorted(engine.eos_ids),
            **kw,
        )
    new = out[0, ids.shape[1] :].tolist()
    cut = next((i for i, t in enumerate(new) if t in engine.eos_ids), None)
    new = new if cut is None else new[:cut]
    return engine.tokenizer.decode(new, skip_special_tokens=True), new


def streamed(engine, prompts, settings):
    chunks: dict[int, list[str]] = {}
    results = engine.generate(prompts, settings, on_delta=lambda i, t: chunks.setdefault(i, []).append(t))
    return results, {i: "".join(parts) for i, parts in chunks.items()}, chunks


@pytest.fixture(scope="module")
def sharp_engine(tiny_chat_model):
    """The tiny chat model with its attention/MLP outputs and final norm scaled up. The plain random model mostly
    repeats its last token and samples almost uniformly, which hides context bugs (padding leaking into attention
    leaves its outputs unchanged); this one's outputs depend on the whole context."""
    from inkwell.models.load import load_model

    loaded = load_model(str(tiny_chat_model), dtype="fp32", device="cpu")
    with torch.no_grad():
        for name, param in loaded.model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                param.mul_(10)
        loaded.model.model.norm.weight.mul_(20)
    return Engine(loaded, batch_size=4)


# ------------------------------------------------------------------ greedy == HF generate


@pytest.mark.parametrize("engine_name", ["tiny_engine", "sharp_engine"])
def test_greedy_batched_matches_hf_generate_token_for_token(request, engine_name):
    # six prompts of mixed lengths with batch_size=4: two left-padded batches, results back in prompt order
    engine = request.getfixturevalue(engine_name)
    settings = greedy(max_new_tokens=16, min_new_tokens=16)
    results = engine.generate(PROMPTS, settings)
    assert [r.prompt_index for r in results] == list(range(len(PROMPTS)))
    for prompt, result in zip(PROMPTS, results):
        text, new = hf_generate(engine, prompt, max_new_tokens=16, min_new_tokens=16, do_sample=False)
        assert result.text == text, prompt
        assert result.completion_tokens == len(new) == 16
        assert result.prompt_tokens == engine.count_tokens(prompt)
        assert result.finish_reason == "length"
        assert result.seed is None and result.sample_index == 0


def test_greedy_batched_matches_hf_on_base_model(tiny_base_engine):
    prompts = PROMPTS[:4]
    results = tiny_base_engine.generate(prompts, greedy(max_new_tokens=12, min_new_tokens=12))
    for prompt, result in zip(prompts, results):
        text, _ = hf_generate(tiny_base_engine, prompt, max_new_tokens=12, min_new_tokens=12, do_sample=False)
        assert result.text == text


@pytest.mark.parametrize("engine_name", ["tiny_engine", "sharp_engine"])
def test_repetition_penalty_matches_hf_and_changes_output(request, engine_name):
    engine = request.getfixturevalue(engine_name)
    prompts = ["Write a product", "Poems", "Write a product description"]  # mixed lengths: padded batch
    penalised = engine.generate(prompts, greedy(max_new_tokens=12, repetition_penalty=2.0))
    plain = engine.generate(prompts, greedy(max_new_tokens=12, repetition_penalty=1.0))
    for prompt, result in zip(prompts, penalised):
        text, _ = hf_generate(engine, prompt, max_new_tokens=12, do_sample=False, repetition_penalty=2.0)
        assert result.text == text, prompt
    assert any(a.text != b.text for a, b in zip(penalised, plain))


def test_no_repeat_ngram_matches_hf(sharp_engine):
    engine = sharp_engine
    prompts = PROMPTS[:4]
    results = engine.generate(prompts, greedy(max_new_tokens=12, no_repeat_ngram_size=2))
    for prompt, result in zip(prompts, results):
        text, _ = hf_generate(engine, prompt, max_new_tokens=12, do_sample=False, no_repeat_ngram_size=2)
        assert result.text == text, prompt


# ------------------------------------------------------------------ seeds and samples


def test_same_seed_same_text_different_seed_different_text(tiny_engine):
    a = tiny_engine.generate(["The quick brown fox"], sampling(max_new_tokens=24, seed=123))[0]
    b = tiny_engine.generate(["The quick brown fox"], sampling(max_new_tokens=24, seed=123))[0]
    c = tiny_engine.generate(["The quick brown fox"], sampling(max_new_tokens=24, seed=124))[0]
    assert a.text == b.text
    assert a.seed == b.seed == 123
    assert c.text != a.text


def test_seeded_sampling_with_default_warpers_is_reproducible(tiny_engine):
    settings = GenerationSettings(max_new_tokens=16, temperature=0.7, top_p=0.9, top_k=50, seed=9)
    first = [r.text for r in tiny_engine.generate(PROMPTS[:3], settings)]
    again = [r.text for r in tiny_engine.generate(PROMPTS[:3], settings)]
    assert first == again


def test_no_seed_gives_a_recorded_random_seed(tiny_engine):
    a = tiny_engine.generate(["Poems"], sampling(max_new_tokens=8))[0]
    assert isinstance(a.seed, int)
    replay = tiny_engine.generate(["Poems"], sampling(max_new_tokens=8, seed=a.seed))[0]
    assert replay.text == a.text


def test_sampling_in_a_padded_batch_equals_sampling_alone(sharp_engine):
    engine = sharp_engine
    # sampling is sensitive to the whole distribution, so this catches padding leaking into attention,
    # which the (degenerate) greedy outputs of a random tiny model can hide
    settings = sampling(max_new_tokens=16, seed=77)
    together = [r.text for r in engine.generate(PROMPTS, settings)]
    alone = [engine.generate([p], settings)[0].text for p in PROMPTS]
    assert together == alone


def test_sampling_warpers_are_applied(sharp_engine):
    # top_k=1 and a near-zero temperature both leave only the argmax: sampling must then equal greedy
    expected = [r.text for r in sharp_engine.generate(PROMPTS[:4], greedy(max_new_tokens=12))]
    top1 = GenerationSettings(max_new_tokens=12, temperature=1.0, top_k=1, top_p=1.0, repetition_penalty=1.0, seed=1)
    cold = GenerationSettings(max_new_tokens=12, temperature=0.001, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=1)
    assert [r.text for r in sharp_engine.generate(PROMPTS[:4], top1)] == expected
    assert [r.text for r in sharp_engine.generate(PROMPTS[:4], cold)] == expected
    hot = [r.text for r in sharp_engine.generate(PROMPTS[:4], sampling(max_new_tokens=12, seed=1))]
    assert hot != expected


def test_num_return_sequences_gives_indexed_distinct_samples(tiny_engine):
    settings = sampling(max_new_tokens=16, num_return_sequences=3, seed=40)
    results = tiny_engine.generate(["The quick brown fox", "Write a product"], settings)
    assert len(results) == 6
    assert [(r.prompt_index, r.sample_index) for r in results] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [r.seed for r in results] == [40, 41, 42, 40, 41, 42]
    assert len({r.text for r in results[:3]}) == 3
    # sample s of a prompt is the same text as a single run with seed base+s
    single = tiny_engine.generate(["The quick brown fox"], sampling(max_new_tokens=16, seed=41))[0]
    assert single.text == results[1].text


def test_num_return_sequences_three_single_prompt(tiny_engine):
    results = tiny_engine.generate(["Poems"], sampling(max_new_tokens=6, num_return_sequences=3, seed=1))
    assert len(results) == 3
    assert [r.prompt_index for r in results] == [0, 0, 0]
    assert [r.sample_index for r in results] == [0, 1, 2]


# ------------------------------------------------------------------ streaming and stop sequences


def test_streamed_chunks_equal_final_text_for_every_row(tiny_engine):
    settings = sampling(max_new_tokens=20, num_return_sequences=2, seed=5)
    results, joined, _ = streamed(tiny_engine, PROMPTS, settings)
    assert len(results) == 2 * len(PROMPTS)
    for index, result in enumerate(results):
        assert joined.get(index, "") == result.text, index


def test_streaming_greedy_rows_equal_text(tiny_engine):
    results, joined, chunks = streamed(tiny_engine, PROMPTS[:3], greedy(max_new_tokens=10))
    for index, result in enumerate(results):
        assert joined[index] == result.text
        assert len(chunks[index]) > 1  # really streamed, not one final chunk


def test_streaming_with_incomplete_utf8_characters(tiny_engine):
    # these prompts make the tiny model emit byte tokens that do not form whole characters
    prompts = ["Inkwell", "床前明月光"]
    results, joined, _ = streamed(tiny_engine, prompts, greedy(max_new_tokens=12, stop=["@@"]))
    assert any("\ufffd" in r.text for r in results)
    for index, result in enumerate(results):
        assert joined.get(index, "") == result.text


def _pick_stop(text: str, length: int = 2) -> str:
    """An ASCII stop string of `length` characters from inside `text`, with at least 3 characters before its first use."""
    for i in range(3, len(text) - length + 1):
        stop = text[i : i + length]
        if stop.isascii() and stop.isprintable() and text.find(stop) >= 3:
            return stop
    pytest.skip(f"no usable stop string in {text!r}")


@pytest.mark.parametrize("length", [1, 2, 4])
def test_stop_sequence_cuts_text_and_is_never_streamed(tiny_engine, length):
    prompt = "The quick brown fox"
    base = tiny_engine.generate([prompt], sampling(max_new_tokens=40, seed=11))[0].text
    stop = _pick_stop(base, length)
    results, joined, _ = streamed(tiny_engine, [prompt], sampling(max_new_tokens=40, seed=11, stop=[stop]))
    result = results[0]
    assert stop not in result.text
    assert stop not in joined[0]
    assert joined[0] == result.text
    assert result.text == base[: base.find(stop)]
    assert result.finish_reason == "stop"
    # the non-streaming path cuts at the same place
    quiet = tiny_engine.generate([prompt], sampling(max_new_tokens=40, seed=11, stop=[stop]))[0]
    assert quiet.text == result.text


def test_stop_sequences_in_a_batch_of_rows(tiny_engine):
    # every row gets its own stop (taken from its own unstopped text); rows stop at different steps
    settings = sampling(max_new_tokens=30, seed=3)
    bases = [r.text for r in tiny_engine.generate(PROMPTS, settings)]
    stops = []
    for text in bases:
        for i in range(2, len(text) - 1):
            if text[i : i + 2].isascii() and text[i : i + 2].isprintable():
                stops.append(text[i : i + 2])
                break
    assert stops
    results, joined, _ = streamed(tiny_engine, PROMPTS, sampling(max_new_tokens=30, seed=3, stop=stops))
    for index, result in enumerate(results):
        for stop in stops:
            assert stop not in result.text
            assert stop not in joined.get(index, "")
        assert joined.get(index, "") == result.text
        # the cut text is a prefix of the unstopped text
        assert bases[index].startswith(result.text)


def test_stop_that_never_occurs_changes_nothing(tiny_engine):
    plain = tiny_engine.generate(PROMPTS[:3], greedy(max_new_tokens=12))
    stopped, joined, _ = streamed(tiny_engine, PROMPTS[:3], greedy(max_new_tokens=12, stop=["@@never@@"]))
    assert [r.text for r in stopped] == [r.text for r in plain]
    assert all(r.finish_reason == "length" for r in stopped)
    assert [joined[i] for i in range(3)] == [r.text for r in plain]


def test_greedy_stop_at_first_characters(tiny_engine):
    # greedy output of this prompt repeats one short pattern; stopping on it leaves (almost) nothing
    text = tiny_engine.generate(["Write a product"], greedy(max_new_tokens=10))[0].text
    stop = text[1:3]
    result = tiny_engine.generate(["Write a product"], greedy(max_new_tokens=10, stop=[stop]))[0]
    assert stop not in result.text
    assert result.text == text[: text.find(stop)]
    assert result.finish_reason == "stop"


# ------------------------------------------------------------------ limits, eos and min_new_tokens


def test_max_new_tokens_gives_finish_reason_length(tiny_engine):
    result = tiny_engine.generate(["The quick brown fox"], greedy(max_new_tokens=5))[0]
    assert result.finish_reason == "length"
    assert result.completion_tokens == 5
    assert result.latency_s >= 0


@pytest.fixture
def eager_eos_engine(tiny_chat_model):
    """An engine whose model treats the greedy first token of PROMPTS[0] as an end-of-text token."""
    from inkwell.models.load import load_model

    loaded = load_model(str(tiny_chat_model), dtype="fp32", device="cpu")
    probe = Engine(loaded)
    with torch.inference_mode():
        logits = loaded.model(torch.tensor([probe.encode(PROMPTS[0])])).logits[0, -1]
    first = int(logits.argmax())
    loaded.model.generation_config.eos_token_id = [first, loaded.tokenizer.eos_token_id]
    engine = Engine(loaded, batch_size=4)
    assert first in engine.eos_ids
    return engine


def test_eos_stops_generation(eager_eos_engine):
    result = eager_eos_engine.generate([PROMPTS[0]], greedy(max_new_tokens=10))[0]
    assert result.finish_reason == "stop"
    assert result.completion_tokens == 0
    assert result.text == ""


def test_min_new_tokens_suppresses_eos(eager_eos_engine):
    result = eager_eos_engine.generate([PROMPTS[0]], greedy(max_new_tokens=10, min_new_tokens=4))[0]
    assert result.completion_tokens >= 4
    text, new = hf_generate(eager_eos_engine, PROMPTS[0], max_new_tokens=10, min_new_tokens=4, do_sample=False)
    assert result.text == text
    assert result.completion_tokens == len(new)


def test_min_new_tokens_in_a_batch_and_streaming(eager_eos_engine):
    prompts = [PROMPTS[0], PROMPTS[2], PROMPTS[3]]
    results, joined, _ = streamed(eager_eos_engine, prompts, greedy(max_new_tokens=8, min_new_tokens=3))
    for index, result in enumerate(results):
        assert result.completion_tokens >= 3
        assert joined.get(index, "") == result.text


def test_min_new_tokens_on_the_beam_path(eager_eos_engine):
    result = eager_eos_engine.generate([PROMPTS[0]], greedy(max_new_tokens=8, min_new_tokens=3, num_beams=2))[0]
    assert result.completion_tokens >= 3


def test_prompt_too_long_for_context_names_both_numbers(tiny_engine):
    prompt = "The quick brown fox jumps over the lazy dog. " * 60
    n = tiny_engine.count_tokens(prompt)
    assert n > tiny_engine.loaded.context_length
    with pytest.raises(InkwellError) as info:
        tiny_engine.generate([prompt], greedy(max_new_tokens=10))
    message = str(info.value)
    assert str(n) in message
    assert str(tiny_engine.loaded.context_length) in message


def test_prompt_plus_max_new_tokens_over_context(tiny_engine):
    context = tiny_engine.loaded.context_length
    with pytest.raises(InkwellError) as info:
        tiny_engine.generate(["Poems"], greedy(max_new_tokens=context))
    assert str(context) in str(info.value)
    assert info.value.field == "max_new_tokens"


def test_empty_prompt_is_an_error(tiny_engine):
    with pytest.raises(InkwellError, match="empty"):
        tiny_engine.generate([""], greedy(max_new_tokens=3))


def test_no_prompts_gives_no_results(tiny_engine):
    assert tiny_engine.generate([], greedy(max_new_tokens=3)) == []


def test_bad_batch_size(tiny_engine):
    with pytest.raises(InkwellError, match="batch size"):
        Engine(tiny_engine.loaded, batch_size=0)


# ------------------------------------------------------------------ beams


def test_beam_search_returns_text_and_matches_hf(tiny_engine):
    settings = greedy(max_new_tokens=10, num_beams=2, num_return_sequences=2)
    results, joined, _ = streamed(tiny_engine, ["The quick brown fox", "Poems"], settings)
    assert len(results) == 4
    assert [(r.prompt_index, r.sample_index) for r in results] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for index, result in enumerate(results):
        assert isinstance(result.text, str) and result.text
        assert 0 < result.completion_tokens <= 10
        assert joined[index] == result.text
    text, _ = hf_generate(tiny_engine, "The quick brown fox", max_new_tokens=10, num_beams=2, do_sample=False)
    assert results[0].text == text


def test_beam_search_with_stop(tiny_engine):
    text = tiny_engine.generate(["Write a product"], greedy(max_new_tokens=10, num_beams=2))[0].text
    stop = text[2:4]
    result = tiny_engine.generate(["Write a product"], greedy(max_new_tokens=10, num_beams=2, stop=[stop]))[0]
    assert stop not in result.text
    # HF beam search drops the beam that hit the stop string, so the best beam may simply run to the limit
    assert result.finish_reason == "stop" or result.completion_tokens == 10


# ------------------------------------------------------------------ chat


def test_chat_messages_use_the_chat_template(tiny_engine):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write a poem"}]
    rendered = tiny_engine.render(messages)
    assert "<|im_start|>system\nBe brief.<|im_end|>" in rendered
    assert "<|im_start|>user\nWrite a poem<|im_end|>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")
    assert tiny_engine.render("plain text") == "plain text"
    result = tiny_engine.generate([messages], greedy(max_new_tokens=5))[0]
    assert result.prompt_tokens == tiny_engine.count_tokens(messages)
    assert result.prompt_tokens == len(tiny_engine.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    # the chat prompt is exactly the rendered text, encoded
    text, _ = hf_generate(tiny_engine, messages, max_new_tokens=5, do_sample=False)
    assert result.text == text


def test_chat_and_text_prompts_in_one_call(tiny_engine):
    messages = [{"role": "user", "content": "Poems"}]
    both = tiny_engine.generate([messages, "Poems"], greedy(max_new_tokens=6))
    assert both[0].text == tiny_engine.generate([messages], greedy(max_new_tokens=6))[0].text
    assert both[1].text == tiny_engine.generate(["Poems"], greedy(max_new_tokens=6))[0].text


def test_chat_messages_on_a_model_without_chat_template(tiny_base_engine):
    with pytest.raises(InkwellError, match="chat template"):
        tiny_base_engine.generate([[{"role": "user", "content": "hi"}]], greedy(max_new_tokens=3))


def test_results_serialise(tiny_engine):
    data = tiny_engine.generate(["Poems"], greedy(max_new_tokens=3))[0].to_dict()
    assert set(data) >= {
        "text",
        "prompt_tokens",
        "completion_tokens",
        "finish_reason",
        "latency_s",
        "prompt_index",
        "sample_index",
        "seed",
    }


# ------------------------------------------------------------------ continuous batching inside one call


@pytest.mark.parametrize("engine_name", ["tiny_engine", "sharp_engine"])
def test_chunked_prefill_and_rows_joining_mid_way_match_hf(request, engine_name):
    # batch_size=2 and a budget of 5 tokens a step: every prompt is prefilled in chunks of 2-5 tokens, and
    # rows of different lengths join the running batch as others leave, at other positions in its cache
    base = request.getfixturevalue(engine_name)
    engine = Engine(base.loaded, batch_size=2, step_tokens=5)
    prompts = [*PROMPTS, "Poems, stories, headlines and news articles. " * 6]
    lengths = [10, 3, 14, 6, 12, 8, 11]
    rows = [(prompt, length) for prompt, length in zip(prompts, lengths)]
    jobs = [
        engine.generate([prompt], greedy(max_new_tokens=length, min_new_tokens=length))[0] for prompt, length in rows
    ]
    for (prompt, length), result in zip(rows, jobs):
        text, _ = hf_generate(base, prompt, max_new_tokens=length, min_new_tokens=length, do_sample=False)
        assert result.text == text, prompt
    together = engine.generate(prompts, greedy(max_new_tokens=9))
    assert [r.text for r in together] == [r.text for r in base.generate(prompts, greedy(max_new_tokens=9))]


def test_chunked_prefill_keeps_seeded_sampling_reproducible(sharp_engine):
    chunked = Engine(sharp_engine.loaded, batch_size=3, step_tokens=4)
    settings = sampling(max_new_tokens=10, num_return_sequences=2, seed=5)
    assert [r.text for r in chunked.generate(PROMPTS, settings)] == [
        r.text for r in sharp_engine.generate(PROMPTS, settings)
    ]


def test_bad_step_token_budget(tiny_engine):
    with pytest.raises(InkwellError, match="step token budget"):
        Engine(tiny_engine.loaded, step_tokens=0)


# ------------------------------------------------------------------ bf16 (forced on: every machine runs it)


def test_auto_dtype_on_a_bf16_cpu_loads_bf16_and_greedy_matches_hf_generate(cpu_bf16, tiny_chat_model):
    from inkwell.models.load import load_model

    loaded = load_model(str(tiny_chat_model), dtype="auto", device="cpu")
    assert loaded.dtype == "bf16" and next(loaded.model.parameters()).dtype == torch.bfloat16
    engine = Engine(loaded, batch_size=4)
    for prompt in PROMPTS[:3]:  # one prompt at a time: padding changes bf16 rounding, not the algorithm
        [result] = engine.generate([prompt], greedy(max_new_tokens=12, min_new_tokens=12))
        text, new = hf_generate(engine, prompt, max_new_tokens=12, min_new_tokens=12, do_sample=False)
        assert result.text == text and result.completion_tokens == len(new) == 12
