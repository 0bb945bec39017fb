"""An encoder-decoder (a tiny random T5 folder) on the torch engine: detected from its config, generated with
transformers' `generate` (batched greedy rows equal one-by-one rows and `generate` itself; seeded samples repeat;
beams and stops), declared capabilities, a clear refusal from the native and ONNX engines, the CLI, and `eval`
(reference perplexity given the prompt)."""

from __future__ import annotations

import json

import pytest
import torch

from inkwell.errors import InkwellError
from inkwell.generate.builder import EngineSpec, open_engine
from inkwell.generate.settings import GenerationSettings

PROMPTS = ["The quick brown fox", "Write a product", "Poems, stories, headlines and news articles, ads"]


def greedy(**kw) -> GenerationSettings:
    return GenerationSettings(temperature=0, repetition_penalty=1.0, **kw)


@pytest.fixture(scope="module")
def t5_engine(tiny_t5_model):
    return open_engine(EngineSpec(str(tiny_t5_model), backend="auto", dtype="fp32", device="cpu", batch_size=4))


def test_the_folder_loads_as_seq2seq_and_declares_what_it_can(t5_engine, tiny_t5_model, tiny_chat_model):
    from inkwell.models.load import architecture_of

    assert architecture_of(tiny_t5_model) == "seq2seq" and architecture_of(tiny_chat_model) == "decoder"
    assert t5_engine.loaded.seq2seq and t5_engine.loaded.chat is False and t5_engine.loaded.context_length == 512
    assert type(t5_engine.model).__name__ == "T5ForConditionalGeneration"
    caps = t5_engine.capabilities
    assert caps.beams and caps.streaming and caps.local
    assert not caps.continuous_batching and not caps.scoring and not caps.adapters


def test_greedy_rows_equal_transformers_generate_batched_or_not(t5_engine):
    settings = greedy(max_new_tokens=6)
    batched = t5_engine.generate(PROMPTS, settings)
    one_by_one = [t5_engine.generate([p], settings)[0] for p in PROMPTS]
    assert [r.text for r in batched] == [r.text for r in one_by_one]
    for prompt, result in zip(PROMPTS, batched):
        ids = torch.tensor([t5_engine.encode(prompt)])
        with torch.inference_mode():
            out = t5_engine.model.generate(input_ids=ids, max_new_tokens=6, do_sample=False)
        tokens = out[0][1:].tolist()  # the decoder's start token first
        assert result.text == t5_engine.tokenizer.decode(tokens, skip_special_tokens=True)
        assert result.text  # the model writes something (tests/conftest.py says why a random T5 needs help)
        assert result.prompt_tokens == len(ids[0]) and result.completion_tokens == 6
        assert result.finish_reason == "length"


def test_seeded_samples_repeat_and_differ_by_sample(t5_engine):
    settings = GenerationSettings(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=8, seed=7, num_return_sequences=2)
    first = [r.text for r in t5_engine.generate(PROMPTS[:1], settings)]
    assert first == [r.text for r in t5_engine.generate(PROMPTS[:1], settings)]
    assert first[0] != first[1]


def test_beams_stops_and_streaming(t5_engine):
    beams = t5_engine.generate(PROMPTS[:1], greedy(num_beams=3, num_return_sequences=2, max_new_tokens=6))
    assert len(beams) == 2 and all(r.completion_tokens <= 6 for r in beams)

    plain = t5_engine.generate(PROMPTS[1:2], greedy(max_new_tokens=8))[0].text
    stop = plain[2:4]
    seen: list[tuple[int, str]] = []
    [stopped] = t5_engine.generate(
        PROMPTS[1:2], greedy(max_new_tokens=8, stop=[stop]), on_delta=lambda *a: seen.append(a)
    )
    assert stopped.text == plain[: plain.find(stop)] and stopped.finish_reason == "stop"
    assert "".join(text for _, text in seen) == stopped.text


@pytest.mark.parametrize("backend", ["native", "onnx"])
def test_the_fast_engines_refuse_a_seq2seq_model_naming_the_flag(tiny_t5_model, backend):
    with pytest.raises(InkwellError, match=f"the {backend} engine runs decoder-only models") as info:
        open_engine(EngineSpec(str(tiny_t5_model), backend=backend, device="cpu"))
    assert info.value.field == "engine" and "--engine torch" in info.value.hint


def test_generate_prints_the_answer_not_the_prompt(tiny_t5_model, capsys):
    from inkwell.cli import main

    main(["generate", "--model", str(tiny_t5_model), "The quick brown fox", "-t", "0", "--max-new-tokens", "5"])
    printed = capsys.readouterr().out
    assert printed.strip() and "The quick brown fox" not in printed
    with pytest.raises(SystemExit) as info:
        main(["generate", "--model", str(tiny_t5_model), "--engine", "native", "hi"])
    assert info.value.code == 2 and "use --engine torch" in capsys.readouterr().err


def test_write_runs_a_template_on_a_seq2seq_model(tiny_t5_model, capsys):
    from inkwell.cli import main

    main(
        [
            "write",
            "product-description",
            "--set",
            "product=bamboo water bottle",
            "--model",
            str(tiny_t5_model),
            "-t",
            "0",
            "--max-new-tokens",
            "6",
            "--json",
            "--no-log",
        ]
    )
    record = json.loads(capsys.readouterr().out)
    assert record["text"].strip() and record["model"] == str(tiny_t5_model)


def test_reference_likelihood_is_the_models_own_loss(t5_engine):
    """eval's perplexity on a seq2seq model: the reference scored by the decoder after the prompt went to the
    encoder, the same number as the model's loss with the reference as labels."""
    from inkwell.evaluate.perplexity import reference_nll

    prompt = t5_engine.encode("The quick brown fox")
    target = t5_engine.tokenizer(" jumps over the lazy dog.", add_special_tokens=False)["input_ids"]
    nll, tokens = reference_nll(t5_engine, prompt, target)
    with torch.no_grad():
        loss = t5_engine.model(input_ids=torch.tensor([prompt]), labels=torch.tensor([target])).loss
    assert tokens == len(target) and nll == pytest.approx(float(loss) * len(target), rel=1e-5)


def test_eval_compares_a_seq2seq_system(tiny_t5_model, tiny_base_model, tmp_path, capsys):
    from inkwell.cli import main

    data = tmp_path / "test.jsonl"
    rows = [
        {"id": "a", "prompt": "Write a product description.", "reference": "A light bamboo bottle."},
        {"id": "b", "prompt": "The quick brown fox", "reference": "jumps over the lazy dog."},
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["eval", "--data", str(data), "--out", str(tmp_path / "out"), "--metrics", "length,perplexity,chrf"]
    argv += ["--dtype", "fp32", "--device", "cpu", "--max-new-tokens", "6", "--bootstrap", "50", "--json"]
    main([*argv, "--system", f"t5={tiny_t5_model}", "--system", f"llama={tiny_base_model}"])
    report = json.loads(capsys.readouterr().out)
    assert report["systems"]["t5"] == {"generated": 2, "cached": 0, "failed": 0}
    perplexity = report["scores"]["t5"]["perplexity"]
    assert 1.0 < perplexity < float("inf")
    texts = [
        json.loads(line)["text"] for line in (tmp_path / "out" / "generations" / "t5.jsonl").read_text().splitlines()
    ]
    assert all(texts)
