"""Facts tables -> text: read a table (CSV/TSV/JSONL, or rows from the API), derive the facts a writer would
state (first/last/change, highest/lowest, totals, averages, rankings, shares) with pandas, and give them to the
`report` / `data-brief` templates as their `facts` field; `inkwell/compose/factcheck.py` then checks every
number and name of the text against the same facts.

    sheet = read_facts("examples/data/paris-2024-medals.csv")
    sheet.block()            # "- Rows: 10 (country)\n- highest gold: United States and China (40)\n..."
    sheet.evidence(fields)   # what the checker accepts

The writing itself (regenerate while a number is unsupported, keep the best, mark what is left) is in
`inkwell/compose/report.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.compose.factcheck import Evidence
from inkwell.errors import InkwellError

MAX_ROWS = 1000  # a report is written from a summary; a bigger table belongs in a database, not a prompt
MAX_COLUMNS = 20
MAX_BLOCK_CHARS = 1600  # the facts block: about 700 SmolLM2 tokens (digits are one token each), well inside 2k
MAX_RANKED = 10  # names listed in one ranking line
MAX_ROW_FACTS = 15  # tables up to this many rows also list each row as a fact
# Numeric columns with these names order the rows (years, rounds) instead of being measured.
ORDER_NAMES = re.compile(r"^(year|yr|month|week|day|date|quarter|period|season|round|matchday|minute|time)s?$", re.I)
ORDER_NAMES_ZH = {"年份", "年度", "年", "月份", "月", "季度", "日期", "日", "周", "轮次", "时间"}  # the same in Chinese
# A column of plain four-digit whole numbers in this range, rising row by row, is years even without a telling
# header (2020, 2021, ...): summing or ranking them as a measure would say nothing.
YEAR_RANGE = (1800, 2100)
CELL = re.compile(
    r"^(?P<cur>[$€£¥])?\s*(?P<sign>[-+−]?)\s*(?P<num>\d{1,3}(?:,\d{3})+|\d+)?(?P<dec>\.\d+)?\s*(?P<pct>%)?$"
)
HINT = "a facts table has a header row and at least one column of numbers, e.g. region,sales / North,1200"


@dataclass
class Fact:
    """One statement derived from the table, with a stable id (`sales.max`, `close[AAPL].change`)."""

    id: str
    text: str
    values: list[float]  # the numbers it states (percentages as percent numbers: 12.5 for 12.5%)
    priority: int = 2  # lower is more important: what the prompt keeps first when the block is capped
    signed: bool = False  # a change: its sign is said with a direction ("down 3.2%")

    def to_json(self) -> dict:
        return {"id": self.id, "text": self.text}


@dataclass
class Column:
    """How a numeric column is written, so derived values are written the same way."""

    name: str
    decimals: int = 0
    percent: bool = False  # cells written as "12.5%"
    currency: str = ""

    def fmt(self, value: float, *, signed: bool = False, extra: int = 0) -> str:
        """As the table writes it: thousands separators, its decimals (+ `extra`), its currency and % sign (a
        change of a percentage, `signed`, is in percentage points: "+1.5 pts")."""
        decimals = max(self.decimals, min(self.decimals + extra, 2))
        text = f"{abs(value):,.{decimals}f}"
        sign = "-" if value < 0 and text.strip("0.,") else ("+" if signed and value > 0 else "")
        unit = (" pts" if signed else "%") if self.percent else ""
        return f"{sign}{self.currency}{text}{unit}"


@dataclass
class FactSheet:
    """A table and what Inkwell derived from it."""

    source: str  # the file, or "data" for rows sent to the server
    rows: int
    columns: list[str]
    measures: list[str]  # numeric columns that are measured
    labels: list[str]  # the entity columns (names, regions, teams)
    order: str | None  # the column that orders the rows (a date, a year), if any
    facts: list[Fact]
    entities: list[str]
    cells: list[tuple[float, str]]  # every number of the table, with an id naming its place
    days: dict[tuple[int, int, int], str] = field(default_factory=dict)
    max_chars: int = MAX_BLOCK_CHARS

    def shown(self) -> list[Fact]:
        """The facts that go in the prompt: by priority, then in order, while they fit in `max_chars`."""
        ranked = sorted(range(len(self.facts)), key=lambda i: (self.facts[i].priority, i))
        kept, size = set(), 0
        for i in ranked:
            size += len(self.facts[i].text) + 3
            if size > self.max_chars:
                break
            kept.add(i)
        return [f for i, f in enumerate(self.facts) if i in kept]

    def block(self) -> str:
        """The `facts` field of the report templates: one fact per line."""
        return "\n".join(f"- {fact.text}" for fact in self.shown())

    def evidence(self, fields: dict | None = None) -> Evidence:
        """What the checker accepts: every cell and derived value, the days, the names, and the user's other
        fields (a year in the title)."""
        given = [v for k, v in (fields or {}).items() if k != "facts" and v not in (None, "")]
        inputs = [str(x) for v in given for x in (v if isinstance(v, list) else [v])]
        values = [(v, fact.id) for fact in self.facts for v in fact.values] + list(self.cells)
        signed = {fact.id for fact in self.facts if fact.signed}
        rank_limit = max(self.rows, len(self.entities))
        names = [*self.entities, *self.columns]
        return Evidence(values, signed, dict(self.days), names, rank_limit, inputs)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "rows": self.rows,
            "columns": self.columns,
            "measures": self.measures,
            "order": self.order,
            "facts": [f.to_json() for f in self.shown()],
            "facts_derived": len(self.facts),
        }


# ---------------------------------------------------------------- reading a table


def read_facts(path: str | Path, *, max_chars: int = MAX_BLOCK_CHARS) -> FactSheet:
    """A facts table from a CSV/TSV/JSONL/.json file. Every problem is an InkwellError naming the file: missing,
    not UTF-8, a bad row (file:line), empty, too big, no numeric column."""
    from inkwell.data.formats import read_records

    path = Path(path).expanduser()
    if path.suffix.lower() not in (".csv", ".tsv", ".jsonl", ".ndjson", ".json"):
        raise InkwellError(f"{path}: a facts table must be .csv, .tsv, .jsonl or .json", field="data", hint=HINT)
    rows: list[dict] = []
    for raw in read_records(path, on_error="raise", field="data", what="data file"):
        rows.append(raw.record or {})  # on_error="raise": every row read has its record
        if len(rows) > MAX_ROWS:
            raise _too_big(str(path), f"more than {MAX_ROWS} rows")
    return facts_from_rows(rows, source=str(path), max_chars=max_chars)


def facts_from_rows(rows: list[dict], *, source: str = "data", max_chars: int = MAX_BLOCK_CHARS) -> FactSheet:
    """A facts table from row objects ({column: value}); `source` names them in errors."""
    import pandas as pd

    if not rows:
        raise InkwellError(f"{source}: the table is empty (no data rows)", field="data", hint=HINT)
    if len(rows) > MAX_ROWS:
        raise _too_big(source, f"{len(rows)} rows (at most {MAX_ROWS})")
    columns = list(dict.fromkeys(str(k) for row in rows for k in row))
    if len(columns) > MAX_COLUMNS:
        raise _too_big(source, f"{len(columns)} columns (at most {MAX_COLUMNS})")
    for i, row in enumerate(rows):
        for key, value in row.items():
            if isinstance(value, (dict, list)):
                raise InkwellError(
                    f"{source}: row {i + 1}, column '{key}': a table cell must be a number or a text, not a {type(value).__name__}",
                    field="data",
                    hint=HINT,
                )
    frame = pd.DataFrame([{c: _cell_text(row.get(c)) for c in columns} for row in rows], columns=columns, dtype=object)
    return derive_facts(frame, source=source, max_chars=max_chars)


def _too_big(source: str, what: str) -> InkwellError:
    return InkwellError(
        f"{source}: the table is too large for a report ({what})",
        field="data",
        hint=f"summarise or filter it first: at most {MAX_ROWS} rows and {MAX_COLUMNS} columns",
    )


def _cell_text(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value).strip()


def _number_or_none(text: str) -> tuple[float, Column] | None:
    return parse_number(text) if text else None


def parse_number(text: str) -> tuple[float, Column] | None:
    """A table cell as a number and how it is written ('$1,234.50' -> 1234.5, 2 decimals, '$'); None if not one."""
    m = CELL.match(text.strip())
    if not m or not (m.group("num") or m.group("dec")):
        return None
    digits = (m.group("num") or "0").replace(",", "") + (m.group("dec") or "")
    value = float(digits) * (-1 if m.group("sign") in ("-", "−") else 1)
    decimals = len(m.group("dec") or ".") - 1
    return value, Column("", decimals, bool(m.group("pct")), m.group("cur") or "")


# ---------------------------------------------------------------- deriving facts


def derive_facts(frame, *, source: str, max_chars: int = MAX_BLOCK_CHARS) -> FactSheet:
    """The facts of a table of text cells (a pandas DataFrame of str)."""
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    numeric: dict[str, Column] = {}
    values: dict[str, pd.Series] = {}
    for name in columns:
        cells = [c for c in frame[name] if c != ""]
        parsed = [parse_number(c) for c in cells]
        if cells and all(p is not None for p in parsed):
            kinds = [p[1] for p in parsed if p is not None]
            numeric[name] = Column(
                name, max(k.decimals for k in kinds), any(k.percent for k in kinds), kinds[0].currency
            )
            values[name] = pd.Series([p[0] if p else math.nan for p in map(_number_or_none, frame[name])], dtype=float)
    order, order_keys = _order_column(frame, columns, numeric)
    measures = [c for c in numeric if c != order]
    if not measures:
        raise InkwellError(
            f"{source}: no numeric column to report on (columns: {', '.join(columns)})", field="data", hint=HINT
        )
    labels = [c for c in columns if c not in numeric and c != order]
    labels.sort(key=lambda c: c.strip().lower() == "id")  # an id column names rows only when nothing else does
    entities = list(dict.fromkeys(v for c in labels for v in frame[c] if v))
    data = pd.DataFrame({m: values[m] for m in measures})
    label = frame[labels[0]] if labels else pd.Series([f"row {i + 1}" for i in range(len(frame))], dtype=object)
    sheet = FactSheet(source, len(frame), columns, measures, labels, order, [], entities, [], {}, max_chars)
    where = label  # how a cell is named in its id: close[AAPL 2024-03-05], gold[France], close[2024-03-05]
    if order is not None:
        where = label + " " + frame[order] if labels else frame[order]
    for m in measures:
        for i, v in enumerate(data[m]):
            if not math.isnan(v):
                sheet.cells.append((float(v), f"{m}[{where.iloc[i]}]"))
    for i, key in enumerate(order_keys):  # the years of the dates (or of a year column) are data too
        sheet.cells.append((float(key[0]), f"{order}[{frame[order].iloc[i]}]"))
    add = sheet.facts.append
    if order is None:
        add(Fact("rows", f"Rows: {len(frame)}" + (f" ({labels[0]})" if labels else ""), [float(len(frame))], 0))
        _cross_section(add, numeric, measures, data, label)
    else:
        sheet.days = {k: f"{order}[{frame[order].iloc[i]}]" for i, k in enumerate(order_keys) if k[1]}
        _time_series(add, frame, numeric, measures, data, labels[0] if labels else None, order, order_keys)
    return sheet


def _time_series(add, frame, numeric: dict[str, Column], measures: list[str], data, label, order, keys) -> None:
    """Rows in time order: one series per measure (or, when the label column repeats, per label and measure),
    each with its first, last, change, highest, lowest and average, and a ranking of the series by change."""
    sort = sorted(range(len(frame)), key=lambda i: keys[i])
    when = frame[order]
    add(
        Fact("rows", f"Rows: {len(frame)}, {order} from {when.iloc[sort[0]]} to {when.iloc[sort[-1]]}", [len(frame)], 0)
    )
    if label is not None and frame[label].duplicated().any():  # long format: date, ticker, close
        groups = list(dict.fromkeys(frame[label]))
        add(Fact("groups", f"{label}: {', '.join(groups[:MAX_RANKED])}", [float(len(groups))], 0))
        for m in measures:
            changes = []
            for g in groups:
                rows = [i for i in sort if frame[label].iloc[i] == g and not math.isnan(data[m].iloc[i])]
                _series_facts(add, numeric[m], f"{m}[{g}]", f"{g} {m}", rows, data[m], when)
                changes.append(_change(data[m], rows))
            _ranking(add, f"{m}.rank_change", groups, changes)
        return
    changes = []
    for k, m in enumerate(measures):  # wide format: date, AAPL, MSFT
        rows = [i for i in sort if not math.isnan(data[m].iloc[i])]
        _series_facts(add, numeric[m], m, m, rows, data[m], when, extra_priority=min(k, 2))
        changes.append(_change(data[m], rows))
    _ranking(add, "measures.rank_change", measures, changes)
    if len(frame) <= MAX_ROW_FACTS:
        for i in sort:
            cells = [f"{m} {numeric[m].fmt(data[m].iloc[i])}" for m in measures if not math.isnan(data[m].iloc[i])]
            add(Fact(f"row[{when.iloc[i]}]", f"{when.iloc[i]}: {', '.join(cells)}", [], 3))


def _order_column(frame, columns: list[str], numeric: dict[str, Column]) -> tuple[str | None, list]:
    """The column that orders the rows: the first whose every cell is a date, else the first numeric column
    named like a period (year, round, 年份, ...), else the first column of rising years (2019, 2020, ...).
    Returns it with each row's (year, month, day) key."""
    import pandas as pd

    for name in columns:
        cells = list(frame[name])
        if name in numeric or not all(c and any(ch.isdigit() for ch in c) for c in cells):
            continue
        parsed = pd.to_datetime(pd.Series(cells), errors="coerce", format="mixed")
        if parsed.notna().all():
            return name, [(d.year, d.month, d.day) for d in parsed]
    for name in columns:
        if name in numeric and (ORDER_NAMES.match(name.strip()) or name.strip() in ORDER_NAMES_ZH):
            if all(frame[name]):  # every row has its place in time
                return name, [(int(float(c)), 0, 0) for c in frame[name]]
    for name in columns:  # only beside another number: a table of birth years alone is measured, not ordered
        if name in numeric and len(numeric) > 1 and _years(list(frame[name])):
            return name, [(int(c), 0, 0) for c in frame[name]]
    return None, []


def _years(cells: list[str]) -> bool:
    """Plain four-digit whole numbers within YEAR_RANGE, strictly increasing (at least two): a year column."""
    if len(cells) < 2 or not all(re.fullmatch(r"\d{4}", c) for c in cells):
        return False
    years = [int(c) for c in cells]
    low, high = YEAR_RANGE
    return all(low <= y <= high for y in years) and all(a < b for a, b in zip(years, years[1:]))


def _change(series, rows: list) -> float | None:
    """Percent change from the first to the last of `rows` (None when it cannot be said)."""
    if len(rows) < 2 or series.iloc[rows[0]] == 0:
        return None
    first, last = float(series.iloc[rows[0]]), float(series.iloc[rows[-1]])
    return (last - first) / abs(first) * 100


def _series_facts(add, column: Column, key: str, name: str, rows: list, series, order, extra_priority: int = 0) -> None:
    """First, last, change, highest, lowest and average of one series, `rows` in time order."""
    if not rows:
        return
    p = extra_priority

    def at(i) -> str:  # "on 2024-03-05", "in 2010"
        when = str(order.iloc[i])
        return f"in {when}" if when.isdigit() else f"on {when}"

    def value(i) -> float:
        return float(series.iloc[i])

    first, last = rows[0], rows[-1]
    add(Fact(f"{key}.first", f"{name} {at(first)} (first): {column.fmt(value(first))}", [value(first)], 2 + p))
    if len(rows) < 2:
        return
    add(Fact(f"{key}.last", f"{name} {at(last)} (last): {column.fmt(value(last))}", [value(last)], 1 + p))
    change = value(last) - value(first)
    text = f"{name} change from {order.iloc[first]} to {order.iloc[last]}: {column.fmt(change, signed=True)}"
    stated = [change]
    if value(first) != 0 and not column.percent:
        stated.append(change / abs(value(first)) * 100)
        text += f" ({stated[1]:+.1f}%)"
    add(Fact(f"{key}.change", text, stated, 1 + p, signed=True))
    top, low = max(rows, key=value), min(rows, key=value)
    add(Fact(f"{key}.max", f"highest {name}: {column.fmt(value(top))} {at(top)}", [value(top)], 2 + p))
    add(Fact(f"{key}.min", f"lowest {name}: {column.fmt(value(low))} {at(low)}", [value(low)], 2 + p))
    mean = float(series.iloc[rows].mean())
    add(Fact(f"{key}.mean", f"average {name}: {column.fmt(mean, extra=1)}", [mean], 3 + p))


def _ranking(add, key: str, names: list[str], changes: list[float | None]) -> None:
    """Series ranked by their percent change, biggest rise first."""
    ranked = sorted(((c, n) for c, n in zip(changes, names) if c is not None), key=lambda cn: -cn[0])[:MAX_RANKED]
    if len(ranked) > 1:
        listed = ", ".join(f"{i + 1}. {n} ({c:+.1f}%)" for i, (c, n) in enumerate(ranked))
        add(Fact(key, f"ranking by change: {listed}", [c for c, _ in ranked], 1, signed=True))


def _cross_section(add, numeric: dict[str, Column], measures: list[str], data, label) -> None:
    """Rows that are not in time order (regions, countries, match statistics): per measure its highest and
    lowest row, total and average, a ranking and each row's share of the total."""
    for k, m in enumerate(measures):
        column, series = numeric[m], data[m]
        present = series.dropna()
        if present.empty:
            continue
        p = min(k, 2)  # the first measure matters most
        for stat, word, extreme in (("max", "highest", present.max()), ("min", "lowest", present.min())):
            named = " and ".join(str(label.iloc[j]) for j in present.index[present == extreme])  # ties: all
            add(Fact(f"{m}.{stat}", f"{word} {m}: {named} ({column.fmt(extreme)})", [float(extreme)], 1 + p))
        nonnegative = bool((present >= 0).all()) and not column.percent
        total = float(present.sum())
        if nonnegative and len(present) > 1:
            add(Fact(f"{m}.total", f"total {m}: {column.fmt(total)}", [total], 1 + p))
        mean = float(present.mean())
        add(Fact(f"{m}.mean", f"average {m}: {column.fmt(mean, extra=1)}", [mean], 2 + p))
        order = present.sort_values(ascending=False, kind="stable")
        if len(order) > 1:
            listed = ", ".join(
                f"{i + 1}. {label.iloc[j]} ({column.fmt(order[j])})" for i, j in enumerate(order.index[:MAX_RANKED])
            )
            add(Fact(f"{m}.rank", f"ranking by {m}: {listed}", [], 1 + p))
        if nonnegative and total > 0 and len(present) > 1:
            for j in order.index:
                share = float(present[j] / total * 100)
                add(
                    Fact(
                        f"{m}.share[{label.iloc[j]}]",
                        f"{label.iloc[j]} share of total {m}: {share:.1f}%",
                        [share],
                        3 + p,
                    )
                )
    if len(label) <= MAX_ROW_FACTS:
        for i in range(len(label)):
            cells = ", ".join(
                f"{m} {numeric[m].fmt(data[m].iloc[i])}" for m in measures if not math.isnan(data[m].iloc[i])
            )
            add(Fact(f"row[{label.iloc[i]}]", f"{label.iloc[i]}: {cells}", [], 2))
