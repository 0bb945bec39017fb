"""Content: template -> prompt -> generate, and structured JSON output with validation and retries.
Uses a scripted fake engine so every model answer is chosen by the test."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from inkwell.errors import InkwellError
from inkwell.generate.content import (
    StructuredOutputError,
    extract_json,
    prepare,
    template_settings,
    validate_output,
    write,
    write_many,
)
from inkwell.generate.contract import Capabilities
from inkwell.generate.engine import GenerationResult
from inkwell.prompts.template import load_template_file

QUIZ_YAML = """\
name: tiny-quiz
description: A tiny structured quiz.
fields:
  topic: {type: str, required: true}
  count: {type: int, default: 1}
system: You write quizzes as JSON.
chat: "Write {{ count }} question(s) about {{ topic }} as JSON."
completion:
  example: "Topic: {{ topic }}\\nJSON: {{ output }}"
  stop: ["\\nTopic:"]
decoding: {max_new_tokens: 40, temperature: 0.5, seed: 1}
output_schema:
  type: object
  required: [questions]
  properties:
    questions:
      type: array
      minItems: 1
      items:
        type: object
        required: [question, answer]
        properties:
          question: {type: string}
          answer: {type: string}
"""

PLAIN_YAML = """\
name: tiny-plain
description: Plain text.
fields:
  topic: {type: str, required: true}
chat: "Write about {{ topic }}."
completion:
  header: "Short texts."
  example: "Topic: {{ topic }}\\nText: {{ output }}"
  stop: ["\\nTopic:"]
decoding: {max_new_tokens: 30, temperature: 0.7}
"""

VALID = '{"questions": [{"question": "What is 2+2?", "answer": "4"}]}'


class FakeEngine:
    """Stands in for Engine: scripted outputs, records every call. No grammar: structured output is validated and
    retried (constrained decoding has its own tests in test_grammar.py)."""

    capabilities = Capabilities()

    def __init__(self, outputs, chat=True, context_length=2048, batch_size=4):
        self.outputs = list(outputs)
        self.loaded = SimpleNamespace(chat=chat, context_length=context_length, name="fake-model", adapter=None)
        self.batch_size = batch_size
        self.calls: list[tuple[list, object]] = []

    def count_tokens(self, prompt) -> int:
        if isinstance(prompt, list):
            prompt = " ".join(m["content"] for m in prompt)
        return len(prompt.split())

    def render(self, prompt):
        return prompt if isinstance(prompt, str) else json.dumps(prompt)

    def generate(self, prompts, settings, on_delta=None):
        self.calls.append((list(prompts), settings))
        results = []
        for p_index, prompt in enumerate(prompts):
            for s_index in range(settings.num_return_sequences):
                if not self.outputs:
                    raise AssertionError("the fake engine ran out of scripted outputs")
                text = self.outputs.pop(0)
                if on_delta:
                    on_delta(len(results), text)
                results.append(
                    GenerationResult(
                        text,
                        self.count_tokens(prompt),
                        len(text.split()),
                        "stop",
                        0.01,
                        p_index,
                        s_index,
                        settings.seed,
                    )
                )
        return results


@pytest.fixture
def quiz(tmp_path):
    path = tmp_path / "tiny-quiz.yaml"
    path.write_text(QUIZ_YAML, encoding="utf-8")
    return load_template_file(path)


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "tiny-plain.yaml"
    path.write_text(PLAIN_YAML, encoding="utf-8")
    return load_template_file(path)


# ------------------------------------------------------------------ extract / validate


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
        ('```\n{"a": 2}\n```', {"a": 2}),
        ('Sure! Here is the JSON:\n```json\n{"a": 3}\n```\nHope it helps.', {"a": 3}),
        ('Here you go: {"a": {"b": "c"}} -- done', {"a": {"b": "c"}}),
        ("The list is [1, 2, 3].", [1, 2, 3]),
        ('Broken {"a": then a real one {"b": 1}', {"b": 1}),
        ('{"text": "braces } and { inside strings"}', {"text": "braces } and { inside strings"}),
    ],
)
def test_extract_json(text, expected):
    assert extract_json(text) == expected


def test_extract_json_fence_wins_over_prose_json():
    assert extract_json('I considered {"x": 0} but\n```json\n{"x": 1}\n```') == {"x": 1}


@pytest.mark.parametrize("text", ["", "no json here", "{not json", "```json\n{broken\n```"])
def test_extract_json_raises_value_error_without_json(text):
    with pytest.raises(ValueError):
        extract_json(text)


def test_validate_output_reports_the_failing_path(quiz):
    value, problem = validate_output(VALID, quiz.output_schema)
    assert value == json.loads(VALID) and problem is None
    value, problem = validate_output('{"questions": [{"question": "q"}]}', quiz.output_schema)
    assert value is None
    assert "questions/0" in problem and "answer" in problem
    value, problem = validate_output("nothing", quiz.output_schema)
    assert value is None and "no JSON" in problem


# ------------------------------------------------------------------ structured output with retries


def test_invalid_then_valid_json_succeeds_on_second_attempt(quiz):
    engine = FakeEngine(["I cannot do JSON, sorry.", f"```json\n{VALID}\n```"])
    (result,) = write(engine, quiz, {"topic": "maths"})
    assert result.attempts == 2
    assert result.data == json.loads(VALID)
    assert extract_json(result.text) == json.loads(VALID)
    assert len(engine.calls) == 2
    # the retry shows the model its wrong answer and the reason, as a chat turn
    retry_prompt = engine.calls[1][0][0]
    assert isinstance(retry_prompt, list)
    assert retry_prompt[-2] == {"role": "assistant", "content": "I cannot do JSON, sorry."}
    assert retry_prompt[-1]["role"] == "user" and "not valid" in retry_prompt[-1]["content"]
    assert '"questions"' in retry_prompt[-1]["content"]  # the schema is included
    # a retry uses a different seed, so a sampled retry is not the same answer again
    assert engine.calls[1][1].seed != engine.calls[0][1].seed
    assert engine.calls[1][1].num_return_sequences == 1


def test_schema_violation_then_valid(quiz):
    engine = FakeEngine(['{"questions": []}', '{"questions": [{"question": "q"}]}', VALID])
    (result,) = write(engine, quiz, {"topic": "maths"})
    assert result.attempts == 3
    assert result.data["questions"][0]["answer"] == "4"


def test_valid_first_time_is_one_attempt(quiz):
    engine = FakeEngine([VALID])
    (result,) = write(engine, quiz, {"topic": "maths"})
    assert result.attempts == 1
    assert result.data == json.loads(VALID)
    assert len(engine.calls) == 1


@pytest.mark.parametrize("retries", [0, 1, 2, 3])
def test_always_invalid_raises_after_retries_plus_one_attempts(quiz, retries):
    engine = FakeEngine(["nope"] * 10)
    with pytest.raises(StructuredOutputError) as info:
        write(engine, quiz, {"topic": "maths"}, json_retries=retries)
    assert len(engine.calls) == retries + 1
    assert f"after {retries + 1} attempts" in str(info.value)
    assert isinstance(info.value, InkwellError)
    assert "tiny-quiz" in str(info.value)


def test_never_returns_invalid_json_in_write_many(quiz):
    # two prompts: the first always invalid, the second valid -> first is an error, second a result
    engine = FakeEngine(["bad", VALID, "still bad", "bad again"])
    rendered = []
    for topic in ("a", "b"):
        prompt, settings = prepare(engine, quiz, {"topic": topic})
        rendered.append(prompt)
    outcomes = write_many(engine, quiz, rendered, settings, json_retries=2)
    assert isinstance(outcomes[0], StructuredOutputError)
    assert isinstance(outcomes[1], list) and len(outcomes[1]) == 1
    assert outcomes[1][0].data == json.loads(VALID)
    for outcome in outcomes:
        if isinstance(outcome, list):
            for item in outcome:
                assert validate_output(item.text, quiz.output_schema)[1] is None


def test_structured_retry_on_a_completion_model_appends_text(quiz):
    engine = FakeEngine(["oops", VALID], chat=False)
    (result,) = write(engine, quiz, {"topic": "maths"})
    assert result.attempts == 2
    first, retry = engine.calls[0][0][0], engine.calls[1][0][0]
    assert isinstance(first, str) and isinstance(retry, str)
    assert retry.startswith(first + "oops")
    assert "not valid" in retry


def test_plain_template_returns_text_without_data(plain):
    engine = FakeEngine(["Some text about cats."])
    (result,) = write(engine, plain, {"topic": "cats"})
    assert result.text == "Some text about cats."
    assert result.data is None and result.attempts == 1


# ------------------------------------------------------------------ prompts, settings and fields


def test_chat_prompt_and_template_settings(plain):
    engine = FakeEngine(["x"])
    (result,) = write(engine, plain, {"topic": "cats"}, overrides={"temperature": 0.1})
    prompt, settings = engine.calls[0]
    assert prompt[0] == [{"role": "user", "content": "Write about cats."}]
    assert settings.temperature == 0.1  # user override
    assert settings.max_new_tokens == 30  # template default
    assert settings.stop == []  # chat models get no completion stops
    assert result.settings is settings


def test_completion_prompt_gets_template_stops(plain):
    engine = FakeEngine(["x"], chat=False)
    write(engine, plain, {"topic": "cats"}, overrides={"stop": ["END"]})
    prompt, settings = engine.calls[0]
    assert isinstance(prompt[0], str) and prompt[0].startswith("Short texts.")
    assert prompt[0].endswith("Topic: cats\nText:")
    assert settings.stop == ["END", "\nTopic:"]


def test_template_settings_does_not_duplicate_stops(plain):
    settings = template_settings(plain, {"stop": ["\nTopic:"]}, ["\nTopic:"])
    assert settings.stop == ["\nTopic:"]


def test_n_results_each_validated(quiz):
    engine = FakeEngine([VALID, "bad", VALID])
    results = write(engine, quiz, {"topic": "maths"}, overrides={"num_return_sequences": 2})
    assert len(results) == 2
    assert [r.attempts for r in results] == [1, 2]
    assert all(r.data == json.loads(VALID) for r in results)


def test_streaming_passes_through(plain):
    engine = FakeEngine(["streamed text"])
    seen = []
    write(engine, plain, {"topic": "cats"}, on_delta=lambda i, t: seen.append((i, t)))
    assert seen == [(0, "streamed text")]


def test_field_errors_before_generation(plain):
    engine = FakeEngine([])
    with pytest.raises(InkwellError) as info:
        write(engine, plain, {})
    assert info.value.field == "topic"
    with pytest.raises(InkwellError, match="did you mean 'topic'"):
        write(engine, plain, {"topik": "x"})
    with pytest.raises(InkwellError) as info:
        write(engine, plain, {"topic": "x"}, overrides={"temperature": -1})
    assert info.value.field == "temperature"
    assert engine.calls == []


def test_request_over_the_context_is_an_error_not_a_cut(plain):
    engine = FakeEngine([], context_length=40)
    with pytest.raises(InkwellError, match="never cuts"):
        write(engine, plain, {"topic": "word " * 50})
    assert engine.calls == []
