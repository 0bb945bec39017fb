"""The checks added for Chinese forms and translation (compose/checks.py): the `form` check of a 绝句 / 律诗, a
translation's facts, length and language, and a Chinese sign-off line."""

from __future__ import annotations

import pytest

from inkwell.compose.checks import CHECKS, check_output
from inkwell.prompts.library import get_template

JUEJU = {"topic": "秋雨", "form": "jueju", "language": "zh"}
LUSHI = {"topic": "月夜", "form": "lushi", "language": "zh"}


def result(template: str, fields: dict, text: str, check: str):
    return check_output(get_template(template), fields, text).results[check]


@pytest.mark.parametrize(
    "fields, text",
    [
        (JUEJU, "秋雨落寒窗，孤灯照夜长。\n风吹黄叶去，独坐思故乡。"),  # four lines of five, on two lines
        (JUEJU, "秋雨落寒窗\n孤灯照夜长\n风吹黄叶去\n独坐思故乡"),  # one line each, no punctuation
        (JUEJU, "秋雨潇潇落寒窗，孤灯一盏照夜长。西风吹得黄叶去，独坐空堂思故乡。"),  # four of seven
        (LUSHI, "月出东山上，清光照四邻。疏林栖倦鸟，小径少行人。\n露冷侵衣袖，风轻拂客巾。遥知千里外，亦有望乡人。"),
    ],
)
def test_regular_verse_passes_the_form_check(fields, text):
    found = result("poem", fields, text, "form")
    assert found.passed is True, found.detail
    assert result("poem", fields, text, "length").passed is True


@pytest.mark.parametrize(
    "fields, text, why",
    [
        (JUEJU, "秋雨落寒窗，孤灯照夜长。", "2 lines"),  # half a 绝句
        (JUEJU, "秋雨落寒窗，孤灯照夜长。风吹黄叶去，独坐思故乡。明朝雨又来，", "5 lines"),
        (JUEJU, "秋雨落寒窗，孤灯照夜长久久。风吹黄叶去，独坐思故乡。", "5/7"),  # five and seven mixed
        (JUEJU, "秋天的雨一直下，我在窗前想家。", "2 lines"),  # prose, not verse
        (JUEJU, "秋雨落寒窗，孤灯照夜长。风吹yellow叶，独坐思故乡。", "not all Chinese"),
        (LUSHI, "秋雨落寒窗，孤灯照夜长。风吹黄叶去，独坐思故乡。", "4 lines"),  # a 绝句 where a 律诗 was asked
    ],
)
def test_irregular_verse_fails_the_form_check(fields, text, why):
    found = result("poem", fields, text, "form")
    assert found.passed is False and why in found.detail, found.detail


def test_the_form_check_applies_to_chinese_regulated_verse_only():
    assert "form" in CHECKS
    assert result("poem", {"topic": "rain", "form": "haiku"}, "rain on the roof", "form").passed is None
    assert result("poem", {"topic": "雨", "form": "free", "language": "zh"}, "雨\n下了\n一夜", "form").passed is None
    assert result("poem", {"topic": "rain", "form": "jueju"}, "rain", "form").passed is None  # English: free verse
    assert result("headline", {"text": "x"}, "x", "form").passed is None


def test_a_regulated_poem_is_sized_in_characters():
    # the length check of a 绝句 is its size (20-28 characters), the form check its lines
    short = result("poem", JUEJU, "秋雨落寒窗，孤灯照夜长。", "length")
    assert short.passed is False and "10 characters" in short.detail


TRANSLATE_ZH = {"text": "The library is closed until 3 June for repairs.", "mode": "translate", "language": "zh"}
TRANSLATE_EN = {"text": "图书馆因维修闭馆到6月3日，周三重新开放。", "mode": "translate", "language": "en"}


def test_a_good_translation_passes():
    verdict = check_output(get_template("rewrite"), TRANSLATE_ZH, "图书馆因维修闭馆至6月3日。")
    assert verdict.passed, {c: verdict.results[c].detail for c in verdict.failed}
    verdict = check_output(
        get_template("rewrite"),
        TRANSLATE_EN,
        "The library is closed for repairs until 3 June and reopens on Wednesday.",
    )
    assert verdict.passed, {c: verdict.results[c].detail for c in verdict.failed}


def test_a_translation_in_the_wrong_language_fails():
    untranslated = check_output(get_template("rewrite"), TRANSLATE_ZH, TRANSLATE_ZH["text"])
    assert "language" in untranslated.failed


def test_a_translation_keeps_the_numbers():
    found = result("rewrite", TRANSLATE_ZH, "图书馆因维修暂时闭馆。", "facts")
    assert found.passed is False and "3 June" in found.detail
    assert result("rewrite", TRANSLATE_ZH, "图书馆因维修闭馆至6月3日。", "facts").passed is True


def test_a_translation_is_sized_by_the_two_languages():
    # 9 English words: 7 to 30 Chinese characters
    assert result("rewrite", TRANSLATE_ZH, "图书馆闭馆。", "length").passed is False
    assert result("rewrite", TRANSLATE_ZH, "图书馆因维修闭馆至6月3日。", "length").passed is True
    long = "图书馆因维修闭馆至6月3日。" * 4
    assert result("rewrite", TRANSLATE_ZH, long, "length").passed is False


def test_a_translated_weekday_or_name_is_not_invented():
    text = "The library is closed for repairs until 3 June and reopens on Wednesday."
    assert result("rewrite", TRANSLATE_EN, text, "invented").passed is True
    assert result("rewrite", TRANSLATE_EN, text.replace("3 June", "5 June"), "invented").passed is False


def test_a_chinese_sign_off_may_end_without_a_stop():
    fields = {"message": "快递还没到。", "resolution": "明天送达", "agent": "小林", "language": "zh"}
    reply = "您好，感谢您的耐心等待。您的快递明天送达，给您带来不便，十分抱歉。\n\n客服部小林"
    assert result("customer-service-reply", fields, reply, "length").passed is True
    cut = "您好，感谢您的耐心等待。您的快递明天送达，给您带来不便，我们会继续跟进并且"
    assert result("customer-service-reply", fields, cut, "length").passed is False
