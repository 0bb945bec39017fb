"""The content checks (compose/checks.py) on hand-written texts: each check with texts that pass and texts that
fail, in English and Chinese, on the built-in templates. No model."""

from __future__ import annotations

import json

import pytest

from inkwell.compose.checks import CHECKS, KeyField, Rules, check_output, common_word, derived_rules, rules_for
from inkwell.errors import InkwellError
from inkwell.prompts.library import get_template

NEWS = (
    "Main Street's bakery reopened on Monday after three weeks of flood repairs, owner Maria Lopez said, and 40 "
    "regulars queued before 7 am for the first loaves."
)
ZH_NEWS = "本市今年新建了二十座口袋公园，市民步行十分钟内就能到达一处绿地。"
QUIZ = {
    "questions": [
        {
            "question": "What is it called when water turns into vapour?",
            "options": ["Evaporation", "Condensation", "Precipitation", "Collection"],
            "answer": "Evaporation",
            "explanation": "Heat turns liquid water into vapour in the water cycle.",
        },
        {
            "question": "What forms when water vapour cools in the sky?",
            "options": ["Rivers", "Clouds", "Puddles", "Rocks"],
            "answer": "Clouds",
            "explanation": "Cooling vapour condenses into clouds.",
        },
    ]
}


def verdict(template: str, fields: dict, text: str):
    return check_output(get_template(template), fields, text)


def passed(template: str, fields: dict, text: str, check: str) -> bool | None:
    return verdict(template, fields, text).results[check].passed


def test_a_usable_headline_passes_every_check_that_applies():
    result = verdict("headline", {"text": NEWS}, "Main Street Bakery Reopens After Flood Repairs")
    assert result.passed and result.score == 1.0
    assert result.results["json"].passed is None  # not a structured template
    assert set(result.results) == set(CHECKS)


# ---------------------------------------------------------------- facts


@pytest.mark.parametrize(
    "template, fields, good, bad",
    [
        ("headline", {"text": NEWS}, "Maria Lopez reopens her bakery", "Local shop opens its doors again"),
        ("headline", {"text": NEWS}, "40 regulars queue as bakery reopens", "Bakery reopens after the flood"),
        (
            "customer-service-reply",
            {"message": "My mug arrived broken.", "resolution": "a replacement mug ships tomorrow at no cost"},
            "Sorry about that! A replacement mug will ship tomorrow at no cost to you.",
            "Sorry about that! We hope you enjoy your order and have a lovely day.",
        ),
        (
            "product-description",
            {"product": "a bamboo water bottle", "features": ["leak-proof lid", "keeps drinks cold", "plastic-free"]},
            "This bamboo bottle has a leak-proof lid and keeps your drinks cold all day.",
            "This bamboo bottle is a joy to carry on every hike you take this summer.",
        ),
        (
            "ad-copy",
            {"product": "Glowpath solar garden lights", "offer": "20% off this week"},
            "Glowpath solar garden lights: 20% off this week. Shop now.",
            "Glowpath solar garden lights light up your evenings. Shop now.",
        ),
        (
            "rewrite",
            {"text": "their going to announce the winners tomorow, so make sure your their at 5pm", "mode": "grammar"},
            "They're going to announce the winners tomorrow, so make sure you're there at 5 pm.",
            "Grammar matters: always check your spelling and punctuation before you send a message.",
        ),
        ("headline", {"text": ZH_NEWS, "language": "zh"}, "二十座口袋公园建成 市民十分钟可达绿地", "市民生活更方便了"),
        ("poem", {"topic": "秋雨", "form": "jueju", "language": "zh"}, "秋雨落寒窗", "明月照高楼"),
        (
            "story",
            {"premise": "一只小猫第一次看见雪", "characters": ["小花"], "language": "zh"},
            "小花第一次看见雪，她开心地跑出了门。",
            "太阳出来了，大家都去上学。",
        ),
    ],
)
def test_facts_needs_the_key_facts_of_the_fields(template, fields, good, bad):
    assert passed(template, fields, good, "facts") is True
    assert passed(template, fields, bad, "facts") is False


def test_facts_says_what_is_missing():
    detail = verdict("headline", {"text": NEWS}, "Bakery reopens").results["facts"].detail
    assert "Main Street" in detail and "Maria Lopez" in detail


def test_an_optional_field_left_empty_is_not_checked():
    fields = {"message": "Where is my parcel?", "resolution": ""}
    assert passed("customer-service-reply", fields, "Thanks for asking! We will look into it for you.", "facts") is None


# ---------------------------------------------------------------- length


@pytest.mark.parametrize(
    "template, fields, good, bad",
    [
        (
            "headline",
            {"text": NEWS, "max_words": 6},
            "Main Street bakery reopens",
            "Main Street bakery reopens after three long weeks",
        ),
        (
            "headline",
            {"text": NEWS},
            "Main Street bakery reopens",
            "Main Street bakery reopens\nRegulars queue at 7 am",
        ),
        (
            "headline",
            {"text": ZH_NEWS, "language": "zh", "max_words": 5},
            "口袋公园建成",
            "本市今年新建了二十座口袋公园",
        ),
        (
            "summary",
            {"text": NEWS, "sentences": 1},
            "The bakery reopened.",
            "The bakery reopened. People queued. Bread sold out.",
        ),
        (
            "product-description",
            {"product": "a mug", "words": 20},
            " ".join(["word"] * 20) + ".",
            " ".join(["word"] * 60) + ".",
        ),
        ("product-description", {"product": "a mug", "words": 40}, " ".join(["word"] * 40) + ".", "A mug."),
        ("story", {"premise": "雪", "words": 20, "language": "zh"}, "雪" * 20 + "。", "雪" * 80 + "。"),
        (
            "poem",
            {"topic": "rain", "form": "haiku"},
            "soft rain on the roof\nthe garden drinks slowly now\nevening turns to gray",
            "soft rain\non the roof",
        ),
        (
            "poem",
            {"topic": "秋雨", "form": "jueju", "language": "zh"},
            "秋雨落寒窗，孤灯照夜长。\n风吹黄叶去，独坐思故乡。",
            "秋雨落寒窗，孤灯照夜长。",
        ),
        (
            "social-post",
            {"topic": "cinnamon buns", "platform": "x"},
            "Fresh cinnamon buns at 8 am! Come early.",
            "Fresh buns! " * 30,
        ),
        (
            "data-brief",
            {"facts": "- total sales: 1,600", "points": 2},
            "- Sales hit 1,600.\n- North led.",
            "Sales hit 1,600.",
        ),
        (
            "rewrite",
            {"text": "The shop is closed on Monday for a stock take and will reopen on Tuesday.", "mode": "shorten"},
            "The shop is closed Monday for stock-taking.",
            "The shop is closed on Monday for a stock take and will reopen on Tuesday morning as usual.",
        ),
        (
            "lesson-quiz",
            {"topic": "the water cycle", "num_questions": 2},
            json.dumps(QUIZ),
            json.dumps({"questions": QUIZ["questions"][:1]}),
        ),
    ],
)
def test_length_stays_within_the_templates_bounds(template, fields, good, bad):
    assert passed(template, fields, good, "length") is True
    assert passed(template, fields, bad, "length") is False


def test_prose_cut_off_at_the_token_cap_fails_length():
    fields = {"premise": "a snail", "words": 12}
    done = "Pip the snail set off to see the sea and, at last, he heard the waves."
    assert passed("story", fields, done, "length") is True
    assert passed("story", fields, done[:-1] + "!” 🌊🐚", "length") is True  # quotes and emoji after the stop
    result = verdict("story", fields, "Pip the snail set off to see the sea and, at last, he heard the").results[
        "length"
    ]
    assert result.passed is False and "ends mid-sentence" in result.detail
    reply = "Thank you for telling us, and I am so sorry the mug arrived broken. A replacement ships tomorrow, at no cost to you.\n\nBest wishes,\nSam"
    assert passed("customer-service-reply", {"message": "My mug broke."}, reply, "length") is True
    assert (
        passed("story", {"premise": "雪", "words": 10, "language": "zh"}, "小花第一次看见了雪，她开心极了", "length")
        is False
    )


def test_a_quiz_with_the_wrong_number_of_options_fails_length():
    fields = {"topic": "the water cycle", "num_questions": 2, "num_options": 3}
    result = verdict("lesson-quiz", fields, json.dumps(QUIZ)).results["length"]
    assert result.passed is False and "3 options" in result.detail


def test_length_does_not_apply_without_a_bound():
    assert passed("social-post", {"topic": "our new menu", "platform": "instagram"}, "x " * 3000, "length") is False
    assert rules_for(get_template("poem")).words_field is None


# ---------------------------------------------------------------- language


@pytest.mark.parametrize(
    "template, fields, good, bad",
    [
        ("headline", {"text": ZH_NEWS, "language": "zh"}, "二十座口袋公园建成", "Twenty pocket parks built"),
        ("headline", {"text": NEWS}, "Main Street bakery reopens", "主街面包店重新开业"),
        (
            "story",
            {"premise": "a snail wants to see the sea", "words": 40},
            "Pip the snail wanted to see the sea, so one morning he set off. The ants laughed at him and the "
            "rabbits raced past, but he kept going until he could hear the waves.",
            "Pip el caracol quería ver el mar, así que una mañana se puso en marcha. Las hormigas se rieron "
            "mucho, los conejos corrieron rápido, pero Pip siguió caminando despacio hacia la playa lejana.",
        ),
        (
            "story",
            {"premise": "a snail", "words": 40},
            "Pip the snail set off to see the sea.",
            "Улитка Пип отправилась к морю.",
        ),
    ],
)
def test_language_is_the_one_asked_for(template, fields, good, bad):
    assert passed(template, fields, good, "language") is True
    assert passed(template, fields, bad, "language") is False


def test_chinese_with_a_latin_brand_name_is_still_chinese():
    assert passed(
        "social-post", {"topic": "新品上市", "language": "zh"}, "我们的新品 Glowpath 太阳能灯上市了！", "language"
    )


# ---------------------------------------------------------------- invented numbers and names


@pytest.mark.parametrize(
    "template, fields, good, bad, named",
    [
        (
            "headline",
            {"text": NEWS},
            "Main Street Bakery Reopens After Flood",
            "Bakery in the town of Ashwood reopens",
            "Ashwood",
        ),
        (
            "headline",
            {"text": NEWS},
            "40 regulars queue as Main Street bakery reopens",
            "400 regulars queue as bakery reopens",
            "400",
        ),
        (
            "summary",
            {"text": NEWS, "sentences": 1},
            "Maria Lopez reopened her bakery on Monday.",
            "Maria Lopez reopened her bakery on 5 June.",
            "5 June",
        ),
        (
            "customer-service-reply",
            {"message": "My mug arrived broken.", "resolution": "a replacement ships tomorrow", "agent": "Sam"},
            "Sorry your mug arrived broken. A replacement ships tomorrow.\n\nBest wishes,\nSam",
            "Sorry your mug arrived broken. A replacement ships tomorrow.\n\nBest wishes,\nSarah Jenkins",
            "Sarah Jenkins",
        ),
        ("headline", {"text": ZH_NEWS, "language": "zh"}, "二十座口袋公园建成", "三十座口袋公园建成", "三十"),
        (
            "headline",
            {"text": NEWS},
            "Main Street bakery reopens Monday",
            "Main Street bakery reopens Wednesday",
            "Wednesday",
        ),
        ("headline", {"text": ZH_NEWS, "language": "zh"}, "二十座口袋公园建成", "二十座口袋公园周三开放", "周三"),
        (
            "travel-guide",
            {"destination": "Lisbon"},
            "Ride the old tram through Alfama.",
            "Entry costs 15 euros and opens at 9 am.",
            "15 euros",
        ),
    ],
)
def test_invented_numbers_and_names_are_found(template, fields, good, bad, named):
    assert passed(template, fields, good, "invented") is True
    result = verdict(template, fields, bad).results["invented"]
    assert result.passed is False and named in result.detail


def test_creative_templates_may_invent_names():
    assert passed("story", {"premise": "a lighthouse keeper"}, "Old Ada Finch lived at Gull Point.", "invented") is None


def test_travel_guides_may_name_places_but_not_numbers():
    assert passed("travel-guide", {"destination": "Lisbon"}, "Visit the Belém Tower and eat in Alfama.", "invented")


@pytest.mark.parametrize("word", ["Bakery", "Reopens", "Went", "Children", "In-Depth", "I'm"])
def test_capitalised_ordinary_words_are_not_names(word):
    assert common_word(word) is True


@pytest.mark.parametrize("word", ["Ashwood", "Sarah"])
def test_names_are_not_ordinary_words(word):
    assert common_word(word) is False


# ---------------------------------------------------------------- JSON


def test_json_must_match_the_schema():
    fields = {"topic": "the water cycle", "num_questions": 2}
    assert passed("lesson-quiz", fields, json.dumps(QUIZ), "json") is True
    assert passed("lesson-quiz", fields, "```json\n" + json.dumps(QUIZ) + "\n```", "json") is True
    broken = json.dumps({"questions": [{"question": "Why?", "options": ["a"]}]})
    result = verdict("lesson-quiz", fields, broken).results["json"]
    assert result.passed is False and "questions/0" in result.detail
    assert passed("lesson-quiz", fields, "Question 1: What is evaporation?", "json") is False


# ---------------------------------------------------------------- leaks


@pytest.mark.parametrize(
    "text",
    [
        "<|im_start|>assistant\nMain Street bakery reopens",
        "Main Street bakery reopens<end_of_turn>",
        "Assistant: Main Street bakery reopens",
        "Main Street bakery reopens, says [Your Name]",
        "Main Street bakery reopens: write to us at [address]",
        "Accurate, use at most 12 words, and reply with the headline only",
    ],
)
def test_leaked_tokens_labels_placeholders_and_instructions_fail(text):
    assert passed("headline", {"text": NEWS}, text, "leaks") is False


def test_chinese_instructions_copied_into_the_text_fail():
    fields = {"text": ZH_NEWS, "language": "zh"}
    assert passed("headline", fields, "口袋公园建成", "leaks") is True
    assert passed("headline", fields, "准确概括内容，不超过二十四个字。只回复标题", "leaks") is False


def test_repeating_the_users_own_words_is_not_a_leak():
    assert passed("headline", {"text": NEWS}, "Owner Maria Lopez said, and 40 regulars queued before 7 am", "leaks")


# ---------------------------------------------------------------- repetition and readability


def test_repetition():
    fields = {"premise": "a snail", "words": 60}
    assert passed("story", fields, "Pip the snail set off to see the sea, slowly but surely.", "repetition") is True
    loop = "What is the correct answer to the question? " * 8
    assert passed("story", fields, loop, "repetition") is False
    lines = "The sea is blue.\nThe sea is blue.\nThe sea is blue.\nThe end."
    assert passed("story", fields, lines, "repetition") is False
    assert (
        passed("story", {"premise": "雪", "language": "zh"}, "下雪了下雪了下雪了下雪了下雪了下雪了下雪了", "repetition")
        is False
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ASDFGHJKLQWERTYUIOPZXCVBNMQWERTYUIOPASDF",
        "MAIN STREET BAKERY REOPENS TODAY AFTER THE FLOOD",
        "@@@ ### $$$ %%% ^^^",
    ],
)
def test_unreadable_texts_fail(text):
    assert passed("headline", {"text": NEWS}, text, "readable") is False


def test_an_empty_text_fails_what_needs_text_and_passes_what_looks_for_faults():
    result = verdict("headline", {"text": NEWS}, "")
    assert [result.results[c].passed for c in ("facts", "length", "language", "readable")] == [False] * 4
    assert [result.results[c].passed for c in ("invented", "leaks", "repetition")] == [True] * 3


# ---------------------------------------------------------------- rules and errors


def test_a_users_own_template_gets_derived_rules(tmp_path):
    path = tmp_path / "tagline.yaml"
    path.write_text(
        "name: tagline\ndescription: A tagline.\nfields:\n  product: {type: str, required: true}\n"
        "chat: Write a tagline for {{ product }}.\ncompletion: {example: 'Product: {{ product }}\\nTagline: {{ output }}'}\n"
    )
    template = get_template(template_file=path)
    assert derived_rules(template) == Rules((KeyField("product", "auto"),), invented=None)
    assert check_output(
        template, {"product": "a reusable coffee cup"}, "Good coffee, no waste: the reusable cup."
    ).passed
    assert not check_output(template, {"product": "a reusable coffee cup"}, "Shine bright every day.").passed


def test_unknown_checks_and_fields_are_errors():
    with pytest.raises(InkwellError, match="unknown check 'tone'"):
        check_output(get_template("headline"), {"text": NEWS}, "x", only=("tone",))
    with pytest.raises(InkwellError, match="needs the field 'text'"):
        check_output(get_template("headline"), {}, "x")
