"""Ensembles (`--systems`): several systems share a request's candidates (the count is shared, not multiplied),
each result names the model that wrote it, sample k keeps its seed whichever system writes it, a grammar holds
for every system, best-of ranks the pooled candidates, and bad ensembles are one-line errors."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run

from inkwell.errors import InkwellError
from inkwell.generate.builder import EngineSpec, open_engine
from inkwell.generate.ensemble import EnsembleEngine, parse_systems
from inkwell.generate.settings import GenerationSettings

PROMPTS = [[{"role": "user", "content": "A headline about the library."}], [{"role": "user", "content": "Poems"}]]


@pytest.fixture(scope="module")
def pair(tiny_chat_model, second_chat_model):
    spec = EngineSpec(systems=[str(tiny_chat_model), str(second_chat_model)], dtype="fp32", device="cpu")
    return open_engine(spec)


def test_the_systems_share_the_samples_and_each_result_names_its_model(pair, tiny_chat_model, second_chat_model):
    assert isinstance(pair, EnsembleEngine)
    settings = GenerationSettings(num_return_sequences=3, max_new_tokens=8, seed=11, temperature=0.9)
    results = pair.generate(PROMPTS, settings)
    assert [(r.prompt_index, r.sample_index) for r in results] == [(p, s) for p in (0, 1) for s in (0, 1, 2)]
    names = [r.model for r in results[:3]]
    assert names == [str(tiny_chat_model), str(tiny_chat_model), str(second_chat_model)]  # 3 shared as 2 + 1
    assert [r.seed for r in results[:3]] == [11, 12, 13]  # sample k keeps seed + k whichever system writes it
    # the same sample from the member alone is the same text: the ensemble only routes
    alone = open_engine(EngineSpec(str(second_chat_model), dtype="fp32", device="cpu"))
    (solo,) = alone.generate(PROMPTS[:1], GenerationSettings(max_new_tokens=8, seed=13, temperature=0.9))
    assert solo.text == results[2].text


def test_a_grammar_holds_for_every_system(pair):
    settings = GenerationSettings(num_return_sequences=4, max_new_tokens=8, seed=1, grammar={"choices": ["up", "down"]})
    results = pair.generate(PROMPTS, settings)
    assert len({r.model for r in results}) == 2 and all(r.text in ("up", "down") for r in results)
    assert pair.capabilities.grammar and not pair.capabilities.scoring and not pair.capabilities.streaming


def test_bad_ensembles_are_one_line_errors(tiny_chat_model, tiny_base_model):
    with pytest.raises(InkwellError) as info:
        open_engine(EngineSpec(systems=[str(tiny_chat_model), str(tiny_base_model)], dtype="fp32", device="cpu"))
    assert info.value.field == "systems" and "chat" in str(info.value)
    for bad in ("one-model", ",", "a,b,c,d,e,f,g,h,i"):
        with pytest.raises(InkwellError) as info:
            parse_systems(bad)
        assert info.value.field == "systems"
    assert parse_systems("m, m:runs/x ,:runs/y") == [("m", None), ("m", "runs/x"), (None, "runs/y")]
    with pytest.raises(InkwellError) as info:
        open_engine(EngineSpec("m", systems=["a", "b"]))
    assert info.value.field == "systems"


def test_write_with_systems_ranks_the_pooled_candidates(capsys, tiny_chat_model, second_chat_model):
    systems = f"{tiny_chat_model},{second_chat_model}"
    text = "text=The Riverside library will stay open until 9 pm on weekdays from 1 March."
    fast = ["--dtype", "fp32", "--device", "cpu", "--max-new-tokens", "6", "--seed", "4"]
    argv = ["write", "headline", "--systems", systems, "--set", text, "--best-of", "4", "--json", *fast]
    record = json.loads(run(capsys, argv)[0])
    assert len(record["best_of"]["candidates"]) == 4 and record["model"] in (
        str(tiny_chat_model),
        str(second_chat_model),
    )
    (row,) = json.loads(run(capsys, ["history", "--json"])[0])
    assert row["model"] == record["model"]
    _, err = run(capsys, [*argv[: -len(fast) - 2], "--best-of", "1", *fast], exit_code=2)
    assert "--best-of" in err and "Traceback" not in err
