"""Grammar-constrained decoding on every engine (torch, native, ONNX, the scheduler's continuous batch): the output
always parses under schemas with nesting, enums, arrays and numbers; regex and choices; a grammar that allows
everything changes nothing; rows with different grammars share a batch; bad grammars are one-line errors."""

from __future__ import annotations

import json

import jsonschema
import pytest

from inkwell.errors import InkwellError
from inkwell.generate.grammar import from_openai, openai_fields, strict_schema
from inkwell.generate.native import unavailable_here
from inkwell.generate.settings import GenerationSettings

SCHEMA = {
    "type": "object",
    "required": ["name", "kind", "price", "tags", "size"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "kind": {"enum": ["book", "pen", "lamp"]},
        "price": {"type": "number", "minimum": 0, "maximum": 999, "multipleOf": 0.25},  # (bounded digits)
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "minItems": 1, "maxItems": 3},
        "size": {
            "type": "object",
            "required": ["w", "h"],
            "properties": {
                "w": {"type": "integer", "minimum": 1, "maximum": 99},
                "h": {"type": "integer", "maximum": 9},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
PROMPTS = ["The product, as JSON:", [{"role": "user", "content": "Describe a lamp."}]]
EVERYTHING = {"lark": "start: /(?s:.*)/"}  # any text at all


def _sampled(**kw) -> GenerationSettings:
    return GenerationSettings(**{"max_new_tokens": 120, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 3, **kw})


@pytest.fixture(scope="module")
def native(tiny_chat_model, tmp_path_factory, cache):
    if unavailable_here() is not None:
        pytest.skip(str(unavailable_here()))
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.models.gguf_write import write_gguf

    path = tmp_path_factory.mktemp("ggufs") / "tiny-q8_0.gguf"
    write_gguf(tiny_chat_model, path, "q8_0")
    return open_engine(EngineSpec(str(path), batch_size=4))


@pytest.fixture(scope="module")
def onnx(tiny_chat_model, cache):
    from inkwell.generate.builder import EngineSpec, open_engine

    return open_engine(EngineSpec(str(tiny_chat_model), backend="onnx", precision="fp32", batch_size=4))


@pytest.fixture(params=["torch", "native", "onnx"])
def engine(request, tiny_engine):
    if request.param == "torch":
        return tiny_engine
    return request.getfixturevalue(request.param)


def test_every_engine_writes_json_valid_under_a_nested_schema(engine):
    results = engine.generate(PROMPTS, _sampled(grammar={"json_schema": SCHEMA}, num_return_sequences=3))
    assert len(results) == 6
    for result in results:
        assert result.finish_reason == "stop", result.text  # the grammar closed the object: no cut-off JSON
        jsonschema.validate(json.loads(result.text), SCHEMA)


def test_every_engine_keeps_to_a_regex_and_to_choices(engine):
    import re

    for result in engine.generate(PROMPTS, _sampled(grammar={"regex": "[A-Z][a-z]{2,6}-[0-9]{2}"})):
        assert re.fullmatch("[A-Z][a-z]{2,6}-[0-9]{2}", result.text), result.text
    choices = ["positive", "negative", "neutral", "强烈推荐"]
    results = engine.generate(PROMPTS, _sampled(grammar={"choices": choices}, num_return_sequences=4))
    assert all(r.text in choices and r.finish_reason == "stop" for r in results)


def test_a_grammar_that_allows_everything_equals_unconstrained_greedy(engine):
    greedy = dict(max_new_tokens=24, temperature=0, repetition_penalty=1.0)
    free = engine.generate(PROMPTS, GenerationSettings(**greedy))
    held = engine.generate(PROMPTS, GenerationSettings(**greedy, grammar=EVERYTHING))
    assert [r.text for r in held] == [r.text for r in free]
    assert any(r.completion_tokens > 5 for r in free)


def test_the_grammar_changes_what_greedy_decoding_writes(tiny_engine):
    greedy = dict(max_new_tokens=120, temperature=0, repetition_penalty=1.0)
    free = tiny_engine.generate(PROMPTS[:1], GenerationSettings(**greedy))[0].text
    held = tiny_engine.generate(PROMPTS[:1], GenerationSettings(**greedy, grammar={"json_schema": SCHEMA}))[0].text
    with pytest.raises(json.JSONDecodeError):
        json.loads(free)  # a random model does not write JSON by itself
    jsonschema.validate(json.loads(held), SCHEMA)


def test_a_complete_match_ends_the_row_even_below_min_new_tokens(engine):
    settings = _sampled(grammar={"choices": ["yes", "no"]}, min_new_tokens=20)
    for result in engine.generate(PROMPTS, settings):
        assert result.text in ("yes", "no") and result.finish_reason == "stop"


def test_rows_with_different_grammars_or_none_share_a_continuous_batch(tiny_engine):
    from inkwell.generate.scheduler import GenerationJob, Scheduler

    scheduler = Scheduler(tiny_engine, max_batch_rows=8)  # not started: the three jobs wait together
    jobs = [
        GenerationJob(PROMPTS, _sampled(grammar={"json_schema": SCHEMA})),
        GenerationJob(PROMPTS, _sampled(grammar={"choices": ["red", "green"]})),
        GenerationJob(PROMPTS, _sampled(max_new_tokens=30)),
    ]
    for job in jobs:
        scheduler.submit(job)
    scheduler.start()
    try:
        schema_rows, choice_rows, free_rows = (job.wait(timeout=120) for job in jobs)
    finally:
        scheduler.close()
    assert scheduler.continuous and scheduler.batches == 1  # one continuous batch held all six rows
    for result in schema_rows:
        jsonschema.validate(json.loads(result.text), SCHEMA)
    assert all(r.text in ("red", "green") for r in choice_rows)
    assert any(r.completion_tokens > 5 and r.text not in ("red", "green") for r in free_rows)


def test_bad_grammars_are_one_line_errors_naming_the_field_and_schema_path():
    with pytest.raises(InkwellError) as info:
        GenerationSettings(grammar={"json_schema": {"type": "object", "properties": {"a": {"type": "strin"}}}})
    assert info.value.field == "grammar.json_schema" and "properties/a/type" in str(info.value)
    with pytest.raises(InkwellError) as info:
        GenerationSettings(grammar={"regex": "(unclosed"})
    assert info.value.field == "grammar.regex" and "unclosed" in str(info.value).splitlines()[0]
    for bad in ({"choices": []}, {"choices": ["a", ""]}, {"xml": "<a/>"}, {"regex": "a", "choices": ["a"]}, "json"):
        with pytest.raises(InkwellError):
            GenerationSettings(grammar=bad)
    with pytest.raises(InkwellError) as info:
        GenerationSettings(grammar={"choices": ["a", "b"]}, num_beams=2, num_return_sequences=1)
    assert info.value.field == "num_beams"
    assert GenerationSettings(grammar={}).grammar == {}  # explicitly none (a structured template's grammar off)


def test_strict_schema_closes_objects_that_do_not_say_otherwise():
    schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}}
    strict = strict_schema(schema)
    assert strict["additionalProperties"] is False and strict["properties"]["a"]["additionalProperties"] is False
    assert strict_schema({"type": "object", "additionalProperties": True})["additionalProperties"] is True


def test_the_openai_wire_fields_round_trip():
    for spec in (
        {"json_schema": SCHEMA},
        {"json": True},
        {"regex": "a+"},
        {"choices": ["x", "y"]},
        {"lark": "start: 'a'"},
    ):
        fields = openai_fields(spec)
        assert from_openai(fields.get("response_format"), fields.get("structured_outputs")) == spec
    assert from_openai({"type": "text"}, None) is None
    for bad in ({"type": "xml"}, {"type": "json_schema", "json_schema": {}}):
        with pytest.raises(InkwellError) as info:
            from_openai(bad, None)
        assert info.value.field == "response_format"
    with pytest.raises(InkwellError):
        from_openai(None, {"regex": "a", "choice": ["a"]})
