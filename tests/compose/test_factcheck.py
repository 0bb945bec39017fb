"""The number checker on tiny inputs: what it reads as a number (units, percentages, dates, Chinese numerals,
written numbers and ordinals), the rounding it allows, directions, names, and the marked output. No model."""

from __future__ import annotations

import pytest

from inkwell.compose.factcheck import Evidence, check_text, name_spans, zh_number


def evidence(**more) -> Evidence:
    base = dict(
        values=[
            (171.48, "close.last"),
            (-9.94, "close.change"),
            (-5.4968, "close.pct_change"),
            (1234.0, "sales[North]"),
            (0.123, "share[North]"),
            (31250.0, "visitors[Museum]"),
            (12.0, "goals[total]"),
            (2024.0, "date[2024-03-05]"),
        ],
        signed={"close.change", "close.pct_change"},
        days={(2024, 3, 5): "date[2024-03-05]"},
        names=["AAPL", "North", "region", "Real Madrid", "北京", "上海"],
        rank_limit=4,
    )
    return Evidence(**(base | more))


def spans(text: str, **more) -> list[tuple[str, str, bool]]:
    return [(s.text, s.kind, s.supported) for s in check_text(text, evidence(**more)).spans]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("closed at 171.48", ("171.48", "number", True)),
        ("closed at 171.5", ("171.5", "number", True)),  # rounded to the precision written
        ("closed at 171", ("171", "number", True)),  # 171.48 to the nearest whole number
        ("closed at 172", ("172", "number", False)),
        ("closed at 171.4", ("171.4", "number", False)),
        ("closed at $171.48", ("$171.48", "number", True)),
        ("sales of 1,234 units", ("1,234 units", "number", True)),
        ("sales of 1234", ("1234", "number", True)),
        ("about 1,200 sold", ("1,200", "number", True)),  # two significant digits and zeros: rounded
        ("about 1,000 sold", ("1,000", "number", False)),  # one significant digit: taken as exact
        ("31.3 thousand visitors", ("31.3 thousand", "number", True)),
        ("31k visitors", ("31k", "number", True)),
        ("a share of 12.3%", ("12.3%", "percent", True)),  # the data holds the fraction 0.123
        ("a share of 12%", ("12%", "percent", True)),
        ("a share of 12.3 percent", ("12.3 percent", "percent", True)),
        ("a share of 13%", ("13%", "percent", False)),
        ("down 5.5%", ("5.5%", "percent", True)),
        ("up 5.5%", ("5.5%", "percent", False)),  # the change was a fall
        ("fell 9.94 points", ("9.94 points", "number", True)),
        ("a change of -9.94", ("-9.94", "number", True)),
        ("a change of +9.94", ("+9.94", "number", False)),
        ("scored 12 goals", ("12 goals", "number", True)),
        ("ran 12 km", ("12 km", "number", True)),
        ("ran 13 km", ("13 km", "number", False)),
    ],
)
def test_numbers_units_percentages_rounding(text, expected):
    assert spans(text) == [expected]


def test_a_level_after_a_direction_word_is_not_a_change():
    # "fell to 171.48" states a level: the sign of the change does not apply
    assert spans("It fell to 171.48.") == [("171.48", "number", True)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("on 2024-03-05", ("2024-03-05", "date", True)),
        ("on 2024-03-06", ("2024-03-06", "date", False)),
        ("on March 5, 2024", ("March 5, 2024", "date", True)),
        ("on 5 March 2024", ("5 March 2024", "date", True)),
        ("on March 5", ("March 5", "date", True)),  # no year: any year of the data
        ("on March 6", ("March 6", "date", False)),
        ("in March 2024", ("March 2024", "date", True)),
        ("in April 2024", ("April 2024", "date", False)),
        ("于2024年3月5日", ("2024年3月5日", "date", True)),
        ("于3月5日", ("3月5日", "date", True)),
        ("于3月6日", ("3月6日", "date", False)),
        ("in 2024", ("2024", "number", True)),  # a year of the data's dates
    ],
)
def test_dates(text, expected):
    assert spans(text) == [expected]


@pytest.mark.parametrize(
    "text, value",
    [
        ("十二", 12),
        ("三百零五", 305),
        ("一千二百三十四", 1234),
        ("3万", 30000),
        ("1.5亿", 150000000),
        ("三点五", 3.5),
        ("二〇二四", 2024),
        ("一亿二千万", 120000000),
        ("两千", 2000),
        ("十", 10),
    ],
)
def test_chinese_numerals(text, value):
    assert zh_number(text) == value


@pytest.mark.parametrize("text", ["万", "万一", "", "abc"])
def test_not_chinese_numerals(text):
    assert zh_number(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("销售额为一千二百三十四", ("一千二百三十四", "number", True)),
        ("游客约3.1万人", ("3.1万", "number", True)),  # 31,250 to one decimal of 万
        ("游客约3万人", ("3万", "number", True)),  # rounded to 万
        ("游客约4万人", ("4万", "number", False)),
        ("占百分之十二点三", ("百分之十二点三", "percent", True)),
        ("占百分之12", ("百分之12", "percent", True)),
        ("占12.3%", ("12.3%", "percent", True)),
        ("下跌了5.5%", ("5.5%", "percent", True)),
        ("上涨了5.5%", ("5.5%", "percent", False)),
        ("排名第三", ("第三", "ordinal", True)),
        ("排名第九", ("第九", "ordinal", False)),
        ("进了十二个球", ("十二", "number", True)),
    ],
)
def test_chinese_numbers_in_text(text, expected):
    assert [s for s in spans(text) if s[1] != "name"] == [expected]


def test_chinese_words_with_numerals_are_not_numbers():
    assert spans("一些城市一起统一了万物") == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("the third region", ("third", "ordinal", True)),
        ("the ninth region", ("ninth", "ordinal", False)),  # only 4 rows to rank
        ("came 2nd", ("2nd", "ordinal", True)),
        ("twelve goals", ("twelve", "number", True)),
        ("seven goals", ("seven", "number", False)),
    ],
)
def test_written_numbers_and_ordinals(text, expected):
    assert spans(text) == [expected]


def test_places_of_an_inline_ranking_are_ordinals():
    assert spans("Ranking: 1. North (1,234), 2. AAPL, 9. AAPL") == [
        ("1", "ordinal", True),
        ("North", "name", True),
        ("1,234", "number", True),
        ("2", "ordinal", True),
        ("AAPL", "name", True),
        ("9", "ordinal", False),  # 4 rows: there is no ninth place
        ("AAPL", "name", True),
    ]
    assert spans("it won 40. China") == [("40", "number", False)]


def test_one_is_not_read_as_a_number():
    assert spans("one of the best") == []


def test_numbers_of_the_users_input_are_supported():
    assert spans("The 2023 review counts 7 teams.", inputs=["2023 review of 7 teams"]) == [
        ("2023", "number", True),
        ("7", "number", True),
    ]
    assert spans("The 2023 review.")[0] == ("2023", "number", False)


def test_codes_and_list_numbers_are_not_numbers():
    assert spans("Sales in Q3 and H2O") == [("Q3", "name", False), ("H2O", "name", False)]
    assert spans("1. AAPL led\n2) AAPL again") == [("AAPL", "name", True), ("AAPL", "name", True)]


# ------------------------------------------------------------------ names


def test_names_not_at_the_start_of_a_sentence():
    found = [
        (s.text, s.supported)
        for s in check_text("Shares of AAPL rose while Apple and Real Madrid did not.", evidence()).spans
    ]
    assert found == [("AAPL", True), ("Apple", False), ("Real Madrid", True)]


def test_a_capital_that_starts_a_sentence_is_not_a_name():
    assert [s.text for s in name_spans("Revenue rose. Meanwhile it fell.\n- Overall North led.")] == ["North"]


def test_months_and_weekdays_are_not_names():
    assert [s.text for s in name_spans("It peaked on a Monday in March and fell in May.")] == []


def test_a_multiword_run_at_the_start_keeps_its_name():
    assert [(s.text, s.supported) for s in check_text("North Region led.", evidence()).spans] == [
        ("North Region", True)  # every word is a table name or column
    ]


def test_names_in_the_users_fields_are_supported():
    assert spans("Figures for Acme Corp are in.", inputs=["Acme Corp quarterly"]) == [("Acme Corp", "name", True)]


def test_chinese_entities_are_found_verbatim():
    found = [(s.text, s.kind, s.supported) for s in check_text("北京和上海的游客约3万人", evidence()).spans]
    assert found == [("北京", "name", True), ("上海", "name", True), ("3万", "number", True)]


# ------------------------------------------------------------------ the result


def test_spans_carry_offsets_kind_and_fact():
    text = "AAPL closed at 171.5, down 5.5%, on 2024-03-05."
    check = check_text(text, evidence())
    for span in check.spans:
        assert text[span.start : span.end] == span.text
    facts = {s.text: s.fact for s in check.spans}
    assert facts == {
        "AAPL": "entity",
        "171.5": "close.last",
        "5.5%": "close.pct_change",
        "2024-03-05": "date[2024-03-05]",
    }
    assert check.to_json()["numbers"] == 3 and check.to_json()["unsupported"] == 0


def test_marked_output():
    check = check_text("Apple closed at 171.5, up 7% on 2024-03-09.", evidence())
    assert check.marked() == "Apple closed at 171.5, up ⟦7%⟧ on ⟦2024-03-09⟧."  # a first word is not read as a name
    check = check_text("Shares of Apple closed at 171.5, up 7% on 2024-03-09.", evidence())
    assert check.marked() == "Shares of ⟦Apple⟧ closed at 171.5, up ⟦7%⟧ on ⟦2024-03-09⟧."
    assert [s.text for s in check.unsupported] == ["Apple", "7%", "2024-03-09"]
    spans_json = check.to_json()["spans"]
    assert spans_json[0] == {"start": 10, "end": 15, "text": "Apple", "kind": "name", "supported": False, "fact": None}
