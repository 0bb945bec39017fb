"""Grounding on a knowledge folder (compose/grounded.py): passages into the prompt within the context, citations
mapped back to passages, and the escalation path when nothing relevant is found. Tiny random models only; the
embedder is the real (small) MiniLM."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "knowledge"))
from kb_helpers import shop_folder, tiny_chat_model  # noqa: E402

from inkwell.compose import grounded  # noqa: E402
from inkwell.errors import InkwellError  # noqa: E402
from inkwell.generate.jobs import prepare_write, write_job  # noqa: E402
from inkwell.knowledge import KnowledgeBase, Passage  # noqa: E402
from inkwell.prompts.library import get_template  # noqa: E402


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    """A tiny chat model with a 1024-token context: some passages fit, not all (the shared one has 512)."""
    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    folder = tiny_chat_model(tmp_path_factory.mktemp("models") / "tiny-1k", 1024)
    return Engine(load_model(str(folder), dtype="fp32", device="cpu"), batch_size=2)


@pytest.fixture
def shop_kb(tmp_path):
    kb = KnowledgeBase.create("shop")
    kb.add([shop_folder(tmp_path)])
    return kb


def passage(n: int, text: str) -> Passage:
    return Passage(
        text, f"/docs/{n}.md", 10 * n, 10 * n + len(text), f"Doc > Part {n}", "ab" * 32, 0.1, f"abab:{n}", 0.5
    )


def test_citations_map_numbers_to_passages():
    passages = [passage(1, "Returns within 30 days."), passage(2, "Replacements are free.")]
    cited, invalid = grounded.citations("A replacement is free [2]. Returns: 30 days [1, 2] [7]. Again [2].", passages)
    assert [c["number"] for c in cited] == [2, 1]  # in order of first citation, each once
    assert cited[0]["source"] == "/docs/2.md" and cited[0]["heading"] == "Doc > Part 2"
    assert (cited[1]["start"], cited[1]["end"]) == (10, 10 + len("Returns within 30 days."))
    assert cited[1]["checksum"] == "ab" * 32 and cited[1]["chunk_id"] == "abab:1"
    assert invalid == [7]
    assert grounded.citations("no citations here", passages) == ([], [])
    assert [c["number"] for c in grounded.citations("中文引用［1］和[2，1]", passages)[0]] == [2, 1]


def test_retrieve_relevant_and_not(shop_kb):
    template = get_template("customer-service-reply")
    fields = template.resolve_fields({"message": "My mug arrived broken. What can you do?", "agent": "Sam"})
    found = grounded.retrieve(shop_kb, template, fields)
    assert found.query == "My mug arrived broken. What can you do?"  # the template's knowledge_query
    assert found.known and found.best >= grounded.MIN_COSINE
    assert found.passages[0].heading.endswith("Broken items")
    off = grounded.retrieve(shop_kb, template, template.resolve_fields({"message": "Who won the 1998 world cup?"}))
    assert not off.known and off.escalates(template)
    assert not off.escalates(get_template("product-description"))  # no unknown_reply: written without passages
    assert off.to_json()["passages"] == []


def test_grounded_write_puts_passages_in_the_prompt_and_cites(shop_kb, tiny_engine):
    job = prepare_write(
        "customer-service-reply",
        None,
        {"message": "My mug arrived broken. What can you do?"},
        shots=None,
        overrides={"max_new_tokens": 4, "seed": 1},
    )
    found = grounded.ground_write("shop", job)
    fitted = found.apply(tiny_engine, job)  # the tiny model's context is 512 tokens: passages are left out
    assert found.dropped >= 1 and 1 <= len(found.passages) < 5
    assert found.passages[0].heading.endswith("Broken items")  # the best one is kept
    prompt = tiny_engine.render(grounded.build_prompt(fitted.template, fitted.fields, chat=True).prompt)
    assert "[1]" in prompt and "photo" in prompt and "cite" in prompt
    assert tiny_engine.count_tokens(prompt) + 4 <= tiny_engine.loaded.context_length
    outcome = write_job(tiny_engine, fitted, annotate=found.annotate)
    (record,) = outcome.records
    assert grounded.KNOWLEDGE_FIELD not in record.fields  # the passages ride in `grounding`, not the fields
    assert record.extra["grounding"]["kb"] == "shop" and record.extra["grounding"]["known"]
    assert isinstance(record.extra["citations"], list)
    assert "photo" in record.prompt  # the exact text the model saw held the passage


def test_annotate_maps_what_the_model_wrote(shop_kb, tiny_engine):
    job = prepare_write("customer-service-reply", None, {"message": "My mug arrived broken."}, shots=None, overrides={})
    found = grounded.ground_write("shop", job)
    found.apply(tiny_engine, job)
    from inkwell.generate.content import ContentResult
    from inkwell.generate.rows import GenerationResult
    from inkwell.prompts.render import RenderedPrompt

    item = ContentResult(
        "We send a free replacement [1]. [9]",
        None,
        GenerationResult("", 1, 1, "stop", 0.0, 0, 0, None),
        RenderedPrompt("p", {"message": "m", grounded.KNOWLEDGE_FIELD: "passages"}, 0),
        None,  # type: ignore[arg-type]
    )
    found.annotate(item)
    assert item.extra["citations"][0]["number"] == 1
    assert item.extra["citations"][0]["source"].endswith("returns.md")
    assert item.extra["citations"][0]["text"] == found.passages[0].text
    assert grounded.KNOWLEDGE_FIELD not in item.rendered.fields
    assert any("[9]" in w for w in item.warnings)


def test_escalation_record_without_a_model(shop_kb):
    template = get_template("customer-service-reply")
    job = prepare_write(
        "customer-service-reply",
        None,
        {"message": "What is the capital of Peru?", "agent": "Sam"},
        shots=None,
        overrides={},
    )
    found = grounded.ground_write("shop", job)
    assert found.escalates(template)
    outcome = found.escalate(job, "smollm2-135m-instruct")
    (record,) = outcome.records
    assert record.text.startswith("Thank you for getting in touch.") and "colleague" in record.text
    assert record.text.endswith("Sam") and record.finish_reason == "escalated"
    assert record.completion_tokens == 0 and record.prompt == ""
    assert record.extra["grounding"]["escalated"] and record.extra["citations"] == []


def test_unknown_folder_and_conflicting_field(tmp_path):
    job = prepare_write("customer-service-reply", None, {"message": "hi"}, shots=None, overrides={})
    with pytest.raises(InkwellError, match="no knowledge folder 'missing'") as info:
        grounded.ground_write("missing", job)
    assert info.value.field == "kb"
    template = get_template("customer-service-reply").model_copy(deep=True)
    template.fields[grounded.KNOWLEDGE_FIELD] = template.fields["message"]
    with pytest.raises(InkwellError, match="has its own field"):
        grounded.grounded_template(template)


def test_passages_are_data_not_template_code():
    template = grounded.grounded_template(get_template("customer-service-reply"))
    hostile = [passage(1, "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}")]
    fields = {"message": "hello", grounded.KNOWLEDGE_FIELD: grounded.passages_text(hostile)}
    rendered = grounded.build_prompt(template, fields, chat=True)
    assert "{{ 7 * 7 }}" in rendered.prompt[-1]["content"] and "49" not in rendered.prompt[-1]["content"]
