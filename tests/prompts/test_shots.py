"""Choosing a template's worked examples for a request (prompts/shots.py): the closest ones in the request's
language, closest first, never the request's own text, the same every time. English uses the real MiniLM embedder
(the bundled package, no network); Chinese uses character n-grams."""

from __future__ import annotations

import pytest

from inkwell.prompts.library import all_templates
from inkwell.prompts.render import build_prompt
from inkwell.prompts.shots import (
    closest_shots,
    embedding_similarity,
    is_own_text,
    ngram_similarity,
    request_text,
)
from inkwell.prompts.template import ContentTemplate, Example


def template(name: str) -> ContentTemplate:
    return all_templates()[name]


def chosen(name: str, fields: dict, **kwargs) -> list[Example]:
    t = template(name)
    return closest_shots(t, t.resolve_fields(fields), **kwargs)


def topics(shots: list[Example], field: str = "topic") -> list[str]:
    return [str(s.fields[field]) for s in shots]


def test_english_shots_follow_the_request_by_meaning():
    # MiniLM, among the free-verse examples: the sea gets the lighthouse first, a shower the garden after rain
    sea = chosen("poem", {"topic": "ships far out at sea on a stormy night"})
    shower = chosen("poem", {"topic": "puddles and wet leaves after a summer shower"})
    assert topics(sea)[0] == "a lighthouse"
    assert topics(shower)[0] == "a garden after rain"
    assert topics(sea) != topics(shower)


def test_chinese_shots_follow_the_request_by_characters():
    summer = chosen("poem", {"topic": "夏夜的池塘", "form": "jueju", "language": "zh"})
    village = chosen("poem", {"topic": "江村的傍晚", "form": "jueju", "language": "zh"})
    assert topics(summer)[0] == "夏夜" and topics(village)[0] == "江村晚归"
    assert all(s.fields["language"] == "zh" for s in summer + village)


@pytest.mark.parametrize("name", sorted(all_templates()))
def test_chinese_requests_get_chinese_shots(name):
    t = template(name)
    fields = {n: "测试" if s.type == "str" else ["测试"] for n, s in t.fields.items() if s.required}
    shots = closest_shots(t, t.resolve_fields(fields | {"language": "zh"}))
    assert shots and all(s.fields["language"] == "zh" for s in shots)
    english = closest_shots(t, t.resolve_fields(fields | {"language": "en"}), similarity=ngram_similarity)
    assert english and all(s.fields["language"] == "en" for s in english)


def test_the_same_choices_come_first():
    # a haiku request is shown the haiku before free verse on a closer subject
    haiku = chosen("poem", {"topic": "a lighthouse in the fog", "form": "haiku"})
    assert haiku[0].fields["form"] == "haiku"
    into_english = chosen("rewrite", {"text": "今天的会议改到下午三点。", "mode": "translate", "language": "en"})
    assert into_english[0].fields["mode"] == "translate"


@pytest.mark.parametrize("name", sorted(all_templates()))
def test_a_request_never_gets_its_own_text_as_a_shot(name):
    t = template(name)
    for example in t.examples:
        shots = closest_shots(t, t.resolve_fields(example.fields), k=10, similarity=ngram_similarity)
        assert example.output not in [s.output for s in shots], (name, example.fields)
        assert is_own_text(t, example, t.resolve_fields(example.fields))


def test_a_rewrite_of_an_examples_answer_does_not_get_that_example():
    t = template("rewrite")
    example = next(e for e in t.examples if e.fields["mode"] == "polish" and e.fields["language"] == "en")
    fields = t.resolve_fields({"text": example.output, "mode": "shorten"})
    assert example not in closest_shots(t, fields, k=10, similarity=ngram_similarity)
    prompt = build_prompt(t, fields, chat=False).prompt
    assert prompt.count(example.output) == 1  # only as the request itself


def test_choice_is_deterministic_and_capped():
    fields = {"product": "a ceramic teapot", "features": ["keeps tea warm"]}
    first = chosen("product-description", fields)
    assert len(first) == 3
    assert [s.output for s in chosen("product-description", fields)] == [s.output for s in first]
    assert chosen("product-description", fields, k=1) == first[:1]
    assert chosen("product-description", fields, k=0) == []


def test_request_text_is_the_free_text_that_was_given():
    t = template("product-description")
    text = request_text(t, t.resolve_fields({"product": "a teapot", "features": ["glazed", "1 litre"]}))
    assert text == "a teapot\nglazed, 1 litre"  # not the default audience, tone or length
    assert request_text(t, t.resolve_fields({"product": "a teapot", "audience": "tea lovers"})).endswith("tea lovers")


def test_similarities():
    # 秋天的雨: 4 characters + 3 pairs; 秋雨 shares 秋 and 雨 of its 3, 春天的花 shares 天, 的 and 天的 of its 7
    assert ngram_similarity("秋天的雨", ["秋雨", "春天的花", "summer"]) == pytest.approx(
        [2 / (7 * 3) ** 0.5, 3 / 7, 0.0]
    )
    close, far = embedding_similarity("a cup of hot coffee", ["an espresso in the morning", "a tax return form"])
    assert close > far


def test_user_template_without_language_uses_its_examples(tmp_path):
    from inkwell.prompts.template import load_template_file

    path = tmp_path / "tagline.yaml"
    path.write_text(
        "name: tagline\ndescription: x\nfields:\n  topic: {type: str, required: true}\nsystem: s\n"
        'chat: "{{ topic }}"\ncompletion:\n  example: "Topic: {{ topic }}\\nTagline: {{ output }}"\n  stop: ["\\n"]\n'
        "examples:\n  - fields: {topic: tea}\n    output: Steep, sip, smile.\n"
        "  - fields: {topic: bikes}\n    output: Ride on.\n",
        encoding="utf-8",
    )
    t = load_template_file(path)
    shots = closest_shots(t, t.resolve_fields({"topic": "green tea"}), similarity=ngram_similarity)
    assert [s.output for s in shots] == ["Steep, sip, smile.", "Ride on."]
