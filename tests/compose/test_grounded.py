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
    found.style = grounded.PromptStyle(passages=5)  # five asked for: the 1024-token context holds fewer
    fitted = found.apply(tiny_engine, job)
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
    assert item.extra["citations"][0]["number"] == 1 and item.extra["citations"][0]["how"] == "model"
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


def test_default_style_puts_two_passages_right_before_the_question(shop_kb, tiny_engine):
    job = prepare_write(
        "customer-service-reply", None, {"message": "My mug arrived broken."}, shots=None,
        overrides={"max_new_tokens": 4},
    )  # fmt: skip
    found = grounded.ground_write("shop", job)
    assert found.retrieved == 5
    fitted = found.apply(tiny_engine, job)
    assert len(found.passages) == grounded.PromptStyle().passages == 2 and found.dropped == 0
    user = grounded.build_prompt(fitted.template, fitted.fields, chat=True).prompt[-1]["content"]
    # the template's request, then the passages, the question again and the citation rule
    assert user.index("Customer message:") < user.index("[1]") < user.index("Question: My mug arrived broken.")
    assert user.endswith("say that you do not know.")
    example = grounded.PromptStyle(passages=1, example=True)
    block = grounded.knowledge_block(found.passages[:1], "我的杯子坏了", example)
    assert block.startswith("一个引用段落的回答示例") and "问题：我的杯子坏了" in block and "[2]" in block


def content_item(text: str, data=None):
    from inkwell.generate.content import ContentResult
    from inkwell.generate.rows import GenerationResult
    from inkwell.generate.settings import GenerationSettings
    from inkwell.prompts.render import RenderedPrompt

    return ContentResult(
        text,
        data,
        GenerationResult(text, 3, 5, "stop", 0.0, 0, 0, None),
        RenderedPrompt([{"role": "user", "content": "p"}], {"message": "m", grounded.KNOWLEDGE_FIELD: "..."}, 0),
        GenerationSettings(),
    )


BROKEN = passage(1, "If an item arrives broken, send us a photo of it. We ship a replacement at no cost.")
RETURNS = passage(2, "You can return any item within 30 days of delivery. Refunds take 5 business days.")


def shop_grounding(**more) -> grounded.Grounding:
    return grounded.Grounding("shop", "My mug arrived broken.", [BROKEN, RETURNS], 0.3, 0.8, **more)


def test_annotate_attributes_uncited_sentences_and_lists_unsupported_ones():
    item = content_item("We ship a replacement at no cost. Our founder loves jazz music and sailing.")
    grounded.annotate(item, shop_grounding())
    assert item.text == "We ship a replacement at no cost [1]. Our founder loves jazz music and sailing."
    (cited,) = item.extra["citations"]
    assert (cited["number"], cited["how"], cited["source"]) == (1, "attributed", "/docs/1.md")
    support = item.extra["support"]
    assert (support["supported"], support["attributed"]) == (1, 1)
    assert [u["text"] for u in support["unsupported"]] == ["Our founder loves jazz music and sailing."]
    assert "quote" not in item.extra  # a passage supports part of it: nothing to offer
    structured = content_item('{"reply": "We ship a replacement at no cost."}', data={"reply": "..."})
    grounded.annotate(structured, shop_grounding())
    assert structured.text.endswith('cost."}') and "support" not in structured.extra  # JSON is left alone


def test_quote_is_offered_or_replaces_a_reply_no_passage_supports():
    offered = content_item("Our founder loves jazz music and sailing.")
    grounded.annotate(offered, shop_grounding(quote="offer"))
    assert offered.text == "Our founder loves jazz music and sailing." and offered.extra["citations"] == []
    assert offered.extra["quote"]["text"] == BROKEN.text + " [1]" and offered.extra["quote"]["passage"] == 1
    replaced = content_item("Our founder loves jazz music and sailing.")
    grounded.annotate(replaced, shop_grounding())  # the default: a reply no passage supports is replaced
    assert replaced.text == BROKEN.text + " [1]"
    assert replaced.extra["model_text"] == "Our founder loves jazz music and sailing."
    assert [(c["number"], c["how"]) for c in replaced.extra["citations"]] == [(1, "quoted")]
    with pytest.raises(InkwellError, match="quote must be one of offer, replace"):
        shop_grounding(quote="always")


def test_best_of_keeps_the_candidate_with_the_most_supported_sentences(tiny_engine):
    grounding = shop_grounding()
    choose = grounding.best_of(3)  # generate.content's `choose`, as `write --kb --best-of 3` passes it
    texts = [
        "Our founder loves jazz.",  # nothing supported
        "We ship a replacement at no cost. Refunds take 5 business days.",  # two sentences supported
        "We ship a replacement at no cost.",  # one
        "We ship a replacement at no cost.",  # second version: ties with the next two, the first written wins
        "Refunds take 5 business days.",
        "Hello, we like sailing.",
    ]
    candidates = [content_item(t) for t in texts]
    kept = choose(tiny_engine, None, None, candidates)  # 6 candidates, 3 per version: the best 2
    assert [texts.index(k.text) for k in kept] == [1, 2]
    assert kept[0].extra["best_of"]["supported"] == 2 and kept[0].extra["best_of"]["rank"] == 1
    assert [c["supported"] for c in kept[0].extra["best_of"]["candidates"]] == [0, 2, 1, 1, 1, 0]
    assert kept[0].text == texts[1]  # the texts are untouched: annotate adds the citations to the kept ones
    grounding.annotate(kept[0])
    assert kept[0].text == "We ship a replacement at no cost [1]. Refunds take 5 business days [2]."
    ties = [content_item("Our founder loves jazz."), content_item("We like sailing boats.")]
    assert choose(tiny_engine, None, None, ties) == [ties[0]]  # ties: the model's own order
    with pytest.raises(InkwellError, match="best-of must be a whole number between 1 and 16"):
        grounding.best_of(0)


def test_write_kb_best_of_chooses_by_support(shop_kb, tiny_engine):
    """The whole path on the tiny model: candidates written together, one kept, attributed, notes said."""
    notes: list[str] = []
    job = prepare_write(
        "customer-service-reply", None, {"message": "My mug arrived broken."}, shots=None,
        overrides={"max_new_tokens": 4, "seed": 3, "num_return_sequences": 2},
    )  # fmt: skip
    found = grounded.ground_write("shop", job, notes.append)
    fitted = found.apply(tiny_engine, job)
    (record,) = write_job(tiny_engine, fitted, annotate=found.annotate, choose=found.best_of(2)).records
    assert record.extra["best_of"]["n"] == 2 and len(record.extra["best_of"]["candidates"]) == 2
    assert "support" in record.extra and record.extra["grounding"]["kb"] == "shop"
    assert all(c["how"] in ("model", "attributed", "quoted") for c in record.extra["citations"])
    assert any(n.startswith("knowledge: 5 passages from 'shop'") for n in notes)
