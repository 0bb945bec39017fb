"""Post-hoc attribution of a grounded reply (compose/attribution.py): each uncited sentence goes to the passage
holding most of its content words, the model's own citations are kept, unsupported sentences are listed, and a
quote of the best passage is offered. Pure text: no model, no index."""

from __future__ import annotations

import numpy as np

from inkwell.compose.attribution import MIN_LEXICAL, MIN_SUPPORT, attribute, cited_numbers, quote, sentences
from inkwell.knowledge import Passage

QUERY = "My mug arrived broken. What can you do?"


def passage(n: int, text: str, heading: str = "") -> Passage:
    return Passage(text, f"/docs/{n}.md", 100 * n, 100 * n + len(text), heading, "ab" * 32, 0.1, f"abab:{n}", 0.5)


RETURNS = passage(
    1,
    "You can return any item within 30 days of delivery. Refunds reach your card within 5 business days after "
    "the parcel arrives.",
    "Returns and refunds > Returning an item",
)
BROKEN = passage(
    2,
    "If an item arrives broken, send us a photo of it. We ship a replacement at no cost, and you do not need to "
    "send the broken item back.",
    "Returns and refunds > Broken items",
)
ZH = passage(
    3, "如果商品在运输中损坏，请给我们发一张照片！我们会免费寄出替换品，您不需要寄回损坏的商品。", "退货政策 > 商品损坏"
)


def test_english_sentences_are_attributed_to_the_passage_they_come_from():
    text = (
        "Thank you for writing! We will ship a replacement at no cost. Refunds reach your card within 5 business "
        "days. Our founder loves jazz music and sailing.\n\nBest wishes,\nSam"
    )
    found = attribute(text, [RETURNS, BROKEN], QUERY)
    assert found.text == (
        "Thank you for writing! We will ship a replacement at no cost [2]. Refunds reach your card within 5 business "
        "days [1]. Our founder loves jazz music and sailing.\n\nBest wishes,\nSam"
    )
    assert [(s.passage, s.how) for s in found.sentences] == [(2, "attributed"), (1, "attributed"), (None, None)]
    assert found.skipped == 3  # the thanks, the closing and the signature state nothing
    (unsupported,) = found.unsupported
    assert unsupported.text == "Our founder loves jazz music and sailing."
    assert found.text[unsupported.start : unsupported.end] == unsupported.text  # offsets in the cited text
    assert all(found.text[s.start : s.end] == s.text for s in found.sentences)
    summary = found.to_json()
    assert (summary["checked"], summary["supported"], summary["attributed"], summary["model"]) == (3, 2, 2, 0)
    assert summary["unsupported"] == [{"start": unsupported.start, "end": unsupported.end, "text": unsupported.text}]
    assert summary["thresholds"] == {"min_lexical": MIN_LEXICAL}  # no embedder given: words alone


def test_a_sentence_that_only_shares_the_question_words_is_not_attributed():
    found = attribute("Your mug arrived broken, you say.", [BROKEN], QUERY)
    assert found.text == "Your mug arrived broken, you say." and found.sentences == [] and found.skipped == 1
    weak = attribute("We ship pianos across the ocean every morning.", [BROKEN], QUERY)
    assert weak.sentences[0].passage is None and 0 < weak.sentences[0].score < MIN_SUPPORT  # "ship" alone is not enough


def test_english_needs_the_meaning_too_when_an_embedder_is_given():
    def embed(texts):  # a stand-in for MiniLM: sentences about jazz point one way, the rest the other
        return np.array([[1.0, 0.0] if "jazz" in t else [0.0, 1.0] for t in texts])

    text = "We ship a replacement at no cost, with jazz."  # 3 of its 4 content words are in the passage
    assert attribute(text, [BROKEN], QUERY).sentences[0].how == "attributed"  # words alone: 0.75 >= MIN_LEXICAL
    found = attribute(text, [BROKEN], QUERY, embed=embed)
    (sentence,) = found.sentences
    assert sentence.passage is None and sentence.score == 0.75 and sentence.similarity == 0.0
    close = attribute("We ship a replacement at no cost.", [BROKEN], QUERY, embed=embed)
    assert close.sentences[0].how == "attributed" and close.sentences[0].similarity == 1.0
    assert set(close.to_json()["thresholds"]) == {"min_support", "min_similarity", "min_lexical"}
    chinese = attribute("我们会免费寄出替换品。", [ZH], "我的杯子坏了", embed=embed)  # MiniLM is English-only
    assert chinese.sentences[0].how == "attributed" and chinese.sentences[0].similarity is None


def test_the_models_own_citations_are_kept_and_marked_model():
    text = "We ship a replacement at no cost. [1] You can return any item within 30 days of delivery."
    assert sentences(text)[0] == (0, len("We ship a replacement at no cost. [1]"))  # a trailing [n] joins its sentence
    found = attribute(text, [RETURNS, BROKEN], QUERY)
    assert found.text.startswith("We ship a replacement at no cost. [1] You can")  # left as the model wrote it
    assert [(s.passage, s.how) for s in found.sentences] == [(1, "model"), (1, "attributed")]
    assert found.text.endswith("within 30 days of delivery [1].")
    assert cited_numbers(found.text) == [1, 1]


def test_chinese_sentences_are_attributed_by_character_bigrams():
    text = "您好！我们会免费寄出替换品。我们的老板喜欢爵士乐。"
    found = attribute(text, [ZH], "我的杯子坏了怎么办？")
    assert found.text == "您好！我们会免费寄出替换品[1]。我们的老板喜欢爵士乐。"
    assert [(s.text, s.how) for s in found.sentences] == [
        ("我们会免费寄出替换品[1]。", "attributed"),
        ("我们的老板喜欢爵士乐。", None),
    ]


def test_quote_takes_the_key_sentences_of_the_best_passage():
    heading_first = passage(
        4, "Broken items\n\nWhat if it breaks? " + BROKEN.text, "Returns and refunds > Broken items"
    )
    offered = quote([heading_first, RETURNS], QUERY)
    assert offered is not None and offered.passage == 1
    # the heading and the question are never quoted; the best sentence and the one after it are
    assert offered.text == BROKEN.text + " [1]"
    assert heading_first.text[offered.start - heading_first.start : offered.end - heading_first.start] == BROKEN.text
    assert offered.source == "/docs/4.md"
    zh = quote([ZH], "商品损坏了怎么办？")
    assert zh is not None and zh.text.startswith("如果商品在运输中损坏") and zh.text.endswith("[1]")
    assert quote([], QUERY) is None
