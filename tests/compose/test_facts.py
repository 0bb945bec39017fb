"""Derived facts on tiny tables: time series (wide and long), cross-sections, formatting as the table writes
numbers, the prompt block's cap, what the checker accepts, and bad tables. No model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inkwell.compose.factcheck import check_text
from inkwell.compose.facts import MAX_COLUMNS, MAX_ROWS, facts_from_rows, parse_number, read_facts
from inkwell.errors import InkwellError

EXAMPLES = Path(__file__).parents[2] / "examples" / "data"


def facts_of(sheet) -> dict[str, str]:
    return {f.id: f.text for f in sheet.facts}


def test_wide_time_series():
    rows = [
        {"date": "2024-03-01", "AAPL": "180.00", "MSFT": "400.50"},
        {"date": "2024-03-04", "AAPL": "175.10", "MSFT": "410.00"},
        {"date": "2024-03-02", "AAPL": "190.25", "MSFT": "405.00"},  # out of order: sorted by date
    ]
    sheet = facts_from_rows(rows)
    assert sheet.order == "date" and sheet.measures == ["AAPL", "MSFT"] and sheet.labels == []
    facts = facts_of(sheet)
    assert facts["rows"] == "Rows: 3, date from 2024-03-01 to 2024-03-04"
    assert facts["AAPL.first"] == "AAPL on 2024-03-01 (first): 180.00"
    assert facts["AAPL.last"] == "AAPL on 2024-03-04 (last): 175.10"
    assert facts["AAPL.change"] == "AAPL change from 2024-03-01 to 2024-03-04: -4.90 (-2.7%)"
    assert facts["AAPL.max"] == "highest AAPL: 190.25 on 2024-03-02"
    assert facts["AAPL.min"] == "lowest AAPL: 175.10 on 2024-03-04"
    assert facts["AAPL.mean"] == "average AAPL: 181.78"
    assert facts["MSFT.change"] == "MSFT change from 2024-03-01 to 2024-03-04: +9.50 (+2.4%)"
    assert facts["measures.rank_change"] == "ranking by change: 1. MSFT (+2.4%), 2. AAPL (-2.7%)"
    assert facts["row[2024-03-02]"] == "2024-03-02: AAPL 190.25, MSFT 405.00"


def test_long_time_series_groups_by_label():
    rows = [
        {"state": s, "year": y, "population": p}
        for s, y, p in [("A", 2010, 100), ("A", 2020, 150), ("B", 2010, 200), ("B", 2020, 180)]
    ]
    sheet = facts_from_rows(rows)
    assert sheet.order == "year" and sheet.measures == ["population"] and sheet.labels == ["state"]
    facts = facts_of(sheet)
    assert facts["groups"] == "state: A, B"
    assert facts["population[A].change"] == "A population change from 2010 to 2020: +50 (+50.0%)"
    assert facts["population[B].change"] == "B population change from 2010 to 2020: -20 (-10.0%)"
    assert facts["population[A].last"] == "A population in 2020 (last): 150"
    assert facts["population.rank_change"] == "ranking by change: 1. A (+50.0%), 2. B (-10.0%)"


def test_cross_section_with_ties_shares_and_formats():
    rows = [
        {"region": "North", "sales": "$1,200.50", "margin": "12.5%"},
        {"region": "South", "sales": "$800.00", "margin": "9%"},
        {"region": "East", "sales": "$1,200.50", "margin": "15.0%"},
    ]
    sheet = facts_from_rows(rows)
    assert sheet.order is None and sheet.entities == ["North", "South", "East"]
    facts = facts_of(sheet)
    assert facts["sales.max"] == "highest sales: North and East ($1,200.50)"
    assert facts["sales.total"] == "total sales: $3,201.00"
    assert facts["sales.mean"] == "average sales: $1,067.00"
    assert facts["sales.rank"] == "ranking by sales: 1. North ($1,200.50), 2. East ($1,200.50), 3. South ($800.00)"
    assert facts["sales.share[South]"] == "South share of total sales: 25.0%"
    assert facts["margin.max"] == "highest margin: East (15.0%)"
    assert "margin.total" not in facts and "margin.share[North]" not in facts  # percentages are not summed
    assert facts["row[North]"] == "North: sales $1,200.50, margin 12.5%"


def test_id_column_names_rows_only_when_nothing_else_does():
    sheet = facts_from_rows([{"id": "a1", "team": "Reds", "goals": 3}, {"id": "a2", "team": "Blues", "goals": 1}])
    assert sheet.labels == ["team", "id"]
    assert facts_of(sheet)["goals.max"] == "highest goals: Reds (3)"


def test_match_statistics_shape():
    rows = [
        {"statistic": "possession", "Home": "58%", "Away": "42%"},
        {"statistic": "shots", "Home": 14, "Away": 9},
    ]
    sheet = facts_from_rows(rows)
    assert sheet.measures == ["Home", "Away"] and "Home" in sheet.evidence().names
    check = check_text("Home had 58% of the ball and 14 shots; Away managed 9.", sheet.evidence())
    assert [s.text for s in check.unsupported] == []


@pytest.mark.parametrize(
    "cell, value, decimals, percent, currency",
    [
        ("1,234.50", 1234.5, 2, False, ""),
        ("-3.2", -3.2, 1, False, ""),
        ("12.5%", 12.5, 1, True, ""),
        ("€7", 7.0, 0, False, "€"),
        (".5", 0.5, 1, False, ""),
    ],
)
def test_parse_number(cell, value, decimals, percent, currency):
    parsed = parse_number(cell)
    assert parsed is not None
    number, column = parsed
    assert (number, column.decimals, column.percent, column.currency) == (value, decimals, percent, currency)


@pytest.mark.parametrize("cell", ["North", "12 apples", "1.2.3", "", "12,34"])
def test_parse_number_refuses(cell):
    assert parse_number(cell) is None


def test_block_is_capped_by_priority_and_evidence_keeps_everything():
    rows = [{"city": f"City {i}", "visitors": 1000 + i * 37, "rain_mm": 20 + i} for i in range(40)]
    sheet = facts_from_rows(rows, max_chars=300)
    block = sheet.block()
    assert len(block) <= 300 and block.startswith("- Rows: 40 (city)")
    shown = {f.id for f in sheet.shown()}
    assert "visitors.max" in shown and "rain_mm.mean" not in shown  # the first measure comes first
    # the checker accepts every cell and derived value, shown or not
    assert check_text("Rain averaged 39.5 mm; City 7 had 27 mm.", sheet.evidence()).unsupported == []


def test_evidence_takes_the_users_fields_but_not_the_facts_block():
    sheet = facts_from_rows([{"team": "Reds", "goals": 3}, {"team": "Blues", "goals": 1}])
    evidence = sheet.evidence({"title": "Cup final 2019", "facts": "- 77 goals", "tags": ["Derby"]})
    check = check_text("In the Cup final of 2019 the Reds scored 3, a Derby record, not 77.", evidence)
    assert [s.text for s in check.unsupported] == ["77"]


def test_the_real_examples_read():
    medals = read_facts(EXAMPLES / "paris-2024-medals.csv")
    assert facts_of(medals)["gold.max"] == "highest gold: United States and China (40)"
    assert facts_of(medals)["total.total"] == "total total: 583"
    census = read_facts(EXAMPLES / "us-state-population-census.csv")
    assert census.order == "year"
    assert (
        facts_of(census)["population[Texas].change"] == "Texas population change from 2010 to 2020: +3,999,944 (+15.9%)"
    )


def test_jsonl_tables(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"team": t, "goals": g}) for t, g in [("Reds", 3), ("Blues", 1)]) + "\n")
    assert read_facts(path).measures == ["goals"]


# ------------------------------------------------------------------ bad tables: errors naming the file


def error_of(path) -> InkwellError:
    with pytest.raises(InkwellError) as info:
        read_facts(path)
    assert info.value.field == "data"
    return info.value


def test_a_table_without_numbers(tmp_path):
    path = tmp_path / "names.csv"
    path.write_text("name,city\nAda,London\n")
    message = str(error_of(path))
    assert str(path) in message and "no numeric column" in message and "name, city" in message


def test_an_empty_table(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("region,sales\n")
    assert f"{path}: the table is empty" in str(error_of(path))
    (tmp_path / "blank.csv").write_text("")
    assert "no header row" in str(error_of(tmp_path / "blank.csv"))


def test_a_table_too_large(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("n,v\n" + "".join(f"{i},{i}\n" for i in range(MAX_ROWS + 1)))
    assert "too large" in str(error_of(path)) and str(MAX_ROWS) in str(error_of(path))
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)) + "\n" + ",".join(["1"] * (MAX_COLUMNS + 1)))
    assert "columns" in str(error_of(wide))


def test_missing_file_ragged_row_and_wrong_suffix(tmp_path):
    assert "not found" in str(error_of(tmp_path / "nope.csv"))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    assert f"{ragged}:3" in str(error_of(ragged))
    other = tmp_path / "table.xlsx"
    other.write_bytes(b"PK")
    assert ".csv" in str(error_of(other))


def test_rows_from_the_api_name_the_cell():
    with pytest.raises(InkwellError, match=r"row 2, column 'sales'"):
        facts_from_rows([{"sales": 1}, {"sales": [1, 2]}])


@pytest.mark.parametrize(
    "rows, order",
    [
        # a Chinese header: 年份 is the year, not a number to total and rank
        ([{"年份": 2020, "销量": 100}, {"年份": 2021, "销量": 120}, {"年份": 2022, "销量": 90}], "年份"),
        ([{"日期": "2021", "销量": 1}, {"日期": "2023", "销量": 2}], "日期"),
        # no telling header: plain years rising row by row
        ([{"期": 2019, "revenue": 5}, {"期": 2020, "revenue": 7}, {"期": 2021, "revenue": 6}], "期"),
    ],
)
def test_year_columns_order_the_rows(rows, order):
    sheet = facts_from_rows(rows)
    assert sheet.order == order and order not in sheet.measures
    measure = sheet.measures[0]
    first, last = rows[0], rows[-1]
    facts = facts_of(sheet)
    assert facts["rows"] == f"Rows: {len(rows)}, {order} from {first[order]} to {last[order]}"
    assert facts[f"{measure}.last"] == f"{measure} in {last[order]} (last): {last[measure]}"
    assert f"total {order}" not in sheet.block()


@pytest.mark.parametrize(
    "rows",
    [
        [{"region": "N", "price": 1900, "units": 3}, {"region": "S", "price": 1850, "units": 4}],  # falling: prices
        [{"region": "N", "price": 1900.5, "units": 3}, {"region": "S", "price": 1950.5, "units": 4}],  # not whole
        [{"person": "A", "born": 1950}, {"person": "B", "born": 1960}],  # the only number: measured
    ],
)
def test_numbers_that_only_look_like_years_are_measured(rows):
    sheet = facts_from_rows(rows)
    number = "price" if "price" in rows[0] else "born"
    assert sheet.order is None and number in sheet.measures
