"""The number checker: every number, date, ordinal and proper name in a generated text, each marked supported
or not by the data it was written from (a table's cells and derived facts, and the user's own fields).

    evidence = Evidence(values=[(171.48, "close.last")], names=["AAPL"], inputs=["March report"])
    check = check_text("AAPL closed at 171.5, down 5.5%.", evidence)
    check.unsupported        # [Span(text="5.5%", kind="percent", supported=False, ...)]
    check.marked()           # 'AAPL closed at 171.5, down ⟦5.5%⟧.'

How it decides (docs/grounding.md says the same for users):
- a number is supported when a value of the data rounds to it at the precision written ("171.5" covers
  171.48; "1,200" and "1.2 million" cover 1,234 and 1,212,000; "3万" covers 31,000), sign aside, except that a
  change written with a direction ("down 5.5%", "上涨3%") must have that sign; a percentage is also compared
  with fractions (0.123 -> "12.3%");
- a date is supported when the data holds that day (or, written without a year, that month and day; written as
  a month and year, a day of that month);
- an ordinal ("third", "3rd", "第三") is supported when the data has that many rows to rank;
- a name (a capitalised word or run of words not at the start of a sentence; in Chinese, a table entity found
  in the text) is supported when it is one of the table's entities or column names or in the user's fields;
- anything that appears in the user's own fields (a year in the title, say) is supported.

Pure text processing: no pandas, no model. `inkwell/compose/facts.py` builds the Evidence from a table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

NUMBER_KINDS = ("number", "percent", "date", "ordinal")  # what "numbers" means in the measurements
MARK_OPEN, MARK_CLOSE = "⟦", "⟧"  # around an unsupported span in plain output

# ---------------------------------------------------------------- vocabulary

MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}
WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
# "one" is left out on purpose: it is far more often a pronoun ("one of the", "no one") than a count.
WORD_NUMBERS = {
    w: i + 2
    for i, w in enumerate(
        "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
        "eighteen nineteen twenty".split()
    )
}
ORDINAL_WORDS = {
    w: i + 1
    for i, w in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
        "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth".split()
    )
}
SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12}
UP_WORDS = {"up", "rose", "rise", "rises", "rising", "gained", "gain", "gains", "increased", "increase", "grew"}
UP_WORDS |= {"climbed", "jumped", "added", "higher", "advanced"}
DOWN_WORDS = {"down", "fell", "fall", "falls", "falling", "dropped", "drop", "drops", "declined", "decline"}
DOWN_WORDS |= {"decreased", "decrease", "lost", "slipped", "slid", "lower", "shed", "sank"}
ZH_UP = ("上涨", "上升", "增长", "增加", "提高", "涨")
ZH_DOWN = ("下跌", "下降", "减少", "降低", "回落", "跌")
# Words that start a sentence with a capital without being a name (dropped from the front of a name run there).
OPENERS = set(
    "the a an in on at by for from to of this that these those its it our their his her overall meanwhile "
    "however while with after before during over since between both each all compared according as and but "
    "also then so yet here there when where which what who total average sales".split()
)

# ---------------------------------------------------------------- patterns

_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_ZH_DIGIT = "零〇一二两三四五六七八九"
_ZH_NUM = f"[{_ZH_DIGIT}十百千万亿]"
DATE_PATTERNS = [
    ("iso", re.compile(r"(?<![\d.])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d])")),
    ("slash", re.compile(r"(?<![\d./])(\d{4})/(\d{1,2})/(\d{1,2})(?![\d/])")),
    ("mdy", re.compile(rf"\b({_MONTH})\.?\s+({_DAY})(?:,?\s+(\d{{4}}))?(?![\w])", re.I)),
    ("dmy", re.compile(rf"(?<![\w.])({_DAY})\s+(?:of\s+)?({_MONTH})\.?(?:,?\s+(\d{{4}}))?(?![\w])", re.I)),
    ("my", re.compile(rf"\b({_MONTH})\.?,?\s+(\d{{4}})(?![\w])", re.I)),
    (
        "zh",
        re.compile(
            rf"(?:(\d{{4}}|[{_ZH_DIGIT}]{{4}})年)?(\d{{1,2}}|[{_ZH_DIGIT}十]{{1,3}})月(?:(\d{{1,2}}|[{_ZH_DIGIT}十]{{1,3}})[日号])?"
        ),
    ),
]
_UNITS = (
    r"%|％|percent\b|per\s?cent\b|percentage\s+points?\b|pp\b|pts?\b|points?\b|km\b|kg\b|cm\b|mm\b|mi\b|miles?\b"
    r"|°[CF]?|degrees?\b|kwh\b|mwh\b|gw\b|mw\b|usd\b|eur\b|gbp\b|cny\b|rmb\b|yuan\b|dollars?\b|euros?\b|pounds?\b"
    r"|goals?\b|shots?\b|units?\b|people\b|hours?\b|h\b|minutes?\b|min\b|seconds?\b|s\b|days?\b|years?\b"
)
NUMBER = re.compile(
    r"(?P<cur>[$€£¥]|US\$|USD\s|EUR\s|RMB\s|CNY\s)?"
    r"(?P<sign>[-−–+](?=\d))?"
    r"(?<![\d.])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?!\d)"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|mn)\b|(?P<kscale>[kKmM])(?![A-Za-z]))?"
    r"(?P<zhscale>[十百千万亿]+)?"
    rf"(?:\s?(?P<unit>{_UNITS}))?",
    re.I,
)
ORDINAL = re.compile(r"\b(\d{1,3})(?:st|nd|rd|th)\b", re.I)
RANK_MARK = re.compile(r"(?:(?<=[,:;(，：；] )|(?<=[,:;(，：；]))(\d{1,3})[.)](?= *[^\W\d_])")  # ", 2. China (27)"
WORDS = re.compile(r"\b[a-z]+\b", re.I)
ZH_PERCENT = re.compile(rf"百分之([\d.]+|[{_ZH_DIGIT}十百千点]+)")
ZH_ORDINAL = re.compile(rf"第(\d+|[{_ZH_DIGIT}十百]+)")
ZH_NUMBER = re.compile(rf"{_ZH_NUM}+(?:点[{_ZH_DIGIT}]+)?")
NAME_WORD = r"(?:[A-Z][A-Za-z0-9&'’.-]*[A-Za-z0-9]|[A-Z])"
NAME = re.compile(rf"(?<![A-Za-z0-9_]){NAME_WORD}(?:[ \t]+(?:of |de )?{NAME_WORD})*(?![A-Za-z0-9])")
INLINE_PLACE = re.compile(r"[,:;(，：；] *\d{1,3}[.)] *$")  # "..., 2. China": a place in a ranking, not a sentence end
SENTENCE_START = re.compile(r"(?:^|[.!?:;。！？：；]\s*|\n)[\s#*>\-•\d.)\"'“‘(\[]*$")


# ---------------------------------------------------------------- what the text is checked against


@dataclass
class Evidence:
    """What a text may say: numeric values (each with the id of the fact it comes from; `signed` marks values
    whose sign a writer conveys with a direction, such as changes), days (year, month, day), names, how many
    rows there are to rank, and the user's own input texts (whose numbers and names are supported as given)."""

    values: list[tuple[float, str]] = field(default_factory=list)  # (value, fact id)
    signed: set[str] = field(default_factory=set)  # fact ids whose sign matters ("change", "pct_change")
    days: dict[tuple[int, int, int], str] = field(default_factory=dict)  # (y, m, d) -> fact id
    names: list[str] = field(default_factory=list)  # entities and column names
    rank_limit: int = 0  # ordinals up to this are supported
    inputs: list[str] = field(default_factory=list)  # the user's field values

    def __post_init__(self) -> None:
        known = [(_norm(n), "entity") for n in self.names] + [(_norm(t), "input") for t in self.inputs]
        self._known = [(text, source) for text, source in known if text]
        self._known_words = {w: source for text, source in reversed(self._known) for w in text.split()}
        for text in self.inputs:  # numbers and days the user wrote count as supported
            for span in _number_spans(text):
                if span.kind == "date" and isinstance(span.value, tuple):
                    y, m, d = span.value
                    self.days.setdefault((y or 0, m, d or 0), "input")
                elif isinstance(span.value, float):
                    self.values.append((span.value, "input"))


@dataclass
class Span:
    """One checked piece of the text: [start, end) in characters, what it is, and the fact that supports it."""

    start: int
    end: int
    text: str
    kind: str  # number | percent | date | ordinal | name
    supported: bool = False
    fact: str | None = None  # the id of the supporting fact ("input": the user's fields; "entity": a table name)
    value: float | tuple | None = None  # the number read (a date: (year or None, month, day or None))
    tolerance: float = 0.0  # how far from `value` a datum may be and still round to what is written
    sign: int = 0  # +1 / -1 when the text gives a direction (a minus, "down", "上涨"), else 0
    percent: bool = False

    def to_json(self) -> dict:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "kind": self.kind,
            "supported": self.supported,
            "fact": self.fact,
        }


@dataclass
class FactCheck:
    """A text and its checked spans, in order."""

    text: str
    spans: list[Span]

    @property
    def unsupported(self) -> list[Span]:
        return [s for s in self.spans if not s.supported]

    @property
    def numbers(self) -> list[Span]:
        return [s for s in self.spans if s.kind in NUMBER_KINDS]

    def marked(self) -> str:
        """The text with each unsupported span between ⟦ and ⟧."""
        out, at = [], 0
        for span in self.unsupported:
            out += [self.text[at : span.start], MARK_OPEN, self.text[span.start : span.end], MARK_CLOSE]
            at = span.end
        return "".join(out) + self.text[at:]

    def to_json(self) -> dict:
        numbers = self.numbers
        return {
            "numbers": len(numbers),
            "numbers_supported": sum(s.supported for s in numbers),
            "unsupported": len(self.unsupported),
            "spans": [s.to_json() for s in self.spans],
        }


def check_text(text: str, evidence: Evidence) -> FactCheck:
    """Every number, date, ordinal and name in `text`, each decided against `evidence`."""
    spans = _number_spans(text) + name_spans(text, evidence)
    spans = _without_overlaps(spans)
    named = [  # where a name with digits is written ("City 7", "Route 66"): its digits are part of the name
        (m.start(), m.end())
        for name in evidence.names
        if any(c.isdigit() for c in name)
        for m in re.finditer(re.escape(name), text, re.I)
    ]
    for span in spans:
        if span.kind != "name" and any(a <= span.start and span.end <= b for a, b in named):
            span.supported, span.fact = True, "entity"
        else:
            span.supported, span.fact = _decide(span, evidence)
    return FactCheck(text, spans)


# ---------------------------------------------------------------- reading numbers


def _number_spans(text: str) -> list[Span]:
    """Dates first, then Chinese forms, then figures, then words: where two overlap the earlier kind wins."""
    found: list[Span] = []
    found += _dates(text)
    for m in ZH_PERCENT.finditer(text):
        value = zh_number(m.group(1))
        if value is not None:
            span = Span(m.start(), m.end(), m.group(), "percent", value=value, tolerance=_tol(m.group(1)))
            span.percent, span.sign = True, _direction(text, m.start())
            found.append(span)
    for m in ZH_ORDINAL.finditer(text):
        value = zh_number(m.group(1))
        if value is not None:
            found.append(Span(m.start(), m.end(), m.group(), "ordinal", value=value))
    for m in ORDINAL.finditer(text):
        found.append(Span(m.start(), m.end(), m.group(), "ordinal", value=float(m.group(1))))
    for m in RANK_MARK.finditer(text):  # the places of a ranking written inline: "1. Texas (+15.9%), 2. ..."
        found.append(Span(m.start(1), m.end(1), m.group(1), "ordinal", value=float(m.group(1))))
    for m in NUMBER.finditer(text):
        figure = _figure(m, text)
        if figure is not None:
            found.append(figure)
    for m in ZH_NUMBER.finditer(text):
        run = m.group()
        if run == "一" or not any(c in _ZH_DIGIT for c in run):  # 一些, 一起; 万物, 十分: words, not numbers
            continue
        value = zh_number(run)
        if value is not None:
            tolerance = _tol(run) if "点" in run else _zh_tolerance(run)
            span = Span(m.start(), m.end(), run, "number", value=value, tolerance=tolerance)
            span.sign = _direction(text, m.start())
            found.append(span)
    for m in WORDS.finditer(text):
        word = m.group().lower()
        if word in WORD_NUMBERS:
            found.append(Span(m.start(), m.end(), m.group(), "number", value=float(WORD_NUMBERS[word])))
        elif word in ORDINAL_WORDS:
            found.append(Span(m.start(), m.end(), m.group(), "ordinal", value=float(ORDINAL_WORDS[word])))
    return _without_overlaps(found)


def _figure(m: re.Match, text: str) -> Span | None:
    """A number written in digits, with what surrounds it: currency, sign, scale (million, k, 万), unit."""
    if m.start("num") > 0 and text[m.start("num") - 1].isascii() and text[m.start("num") - 1].isalpha():
        return None  # part of a word or a code: "Q3", "H2O", "B2B"
    line = text[text.rfind("\n", 0, m.start()) + 1 : m.start()]
    if not line.strip(" \t#*>-•") and re.match(r"\d{1,2}[.)]\s", text[m.start() :]):
        return None  # the number of a numbered list's item
    digits, kscale = m.group("num"), (m.group("kscale") or "").lower()
    scale = SCALES.get((m.group("scale") or "").lower(), 1.0)
    if kscale == "k" or (kscale == "m" and m.group("cur")):  # 12k, $1.2m (a bare "5m" is five metres)
        scale = SCALES[kscale]
    for char in m.group("zhscale") or "":  # 3万, 1.5亿
        scale *= {"十": 10, "百": 100, "千": 1e3, "万": 1e4, "亿": 1e8}[char]
    unit = re.sub(r"\s+", " ", (m.group("unit") or "").lower())
    percent = unit in ("%", "％", "percent", "per cent")
    start = m.start()
    if m.group("sign") and not m.group("cur") and start > 0 and text[start - 1].isalnum():
        start = m.start("num")  # a range or a hyphen ("2020-21"), not a minus
    sign = {"-": -1, "−": -1, "–": -1, "+": 1}.get(m.group("sign") or "", 0) if start < m.start("num") else 0
    piece = text[start : m.end()].rstrip()
    span = Span(
        start,
        start + len(piece),
        piece,
        "percent" if percent else "number",
        value=float(digits.replace(",", "")) * scale,
    )
    span.tolerance = _tol(digits) * scale
    span.percent = percent
    span.sign = sign or _direction(text, start)
    return span


def _tol(digits: str) -> float:
    """Half a unit of the last digit written: '171.5' -> 0.05. An integer of 1,000 or more with at least two
    significant digits written before its trailing zeros is read as rounded to them ('1,200' -> 50)."""
    digits = digits.replace(",", "")
    if "." in digits or "点" in digits:
        return 0.5 * 10 ** -len(re.split(r"[.点]", digits)[1])
    if not digits.isdigit():  # Chinese numerals: exact unless they end in a unit (see _zh_tolerance)
        return 0.5
    stripped = digits.rstrip("0")
    zeros = len(digits) - len(stripped)
    if int(digits) >= 1000 and zeros and len(stripped) >= 2:
        return 0.5 * 10**zeros
    return 0.5


def _zh_tolerance(run: str) -> float:
    """'3万' and '十二万' are rounded to 万 (±5,000); '一千二百' to 百."""
    units = {"十": 10, "百": 100, "千": 1e3, "万": 1e4, "亿": 1e8}
    return 0.5 * units[run[-1]] if run[-1] in units and len(run) > 1 else 0.5


def _direction(text: str, start: int) -> int:
    """+1 / -1 when a direction word comes just before the number ("down 3.2", "fell by 3%", "下跌了3%"); 0 when
    there is none, or when the number is a level ("fell to 171")."""
    before = text[max(0, start - 24) : start]
    zh = before.rstrip().removesuffix("约").removesuffix("了").removesuffix("约")
    if zh.endswith(ZH_UP):
        return 1
    if zh.endswith(ZH_DOWN):
        return -1
    words = re.findall(r"[A-Za-z]+", before)[-3:]
    if words and words[-1].lower() in ("to", "at", "from"):
        return 0
    words = [w.lower() for w in words if w.lower() not in ("by", "of", "about", "around", "nearly", "almost", "some")]
    if words and words[-1] in UP_WORDS:
        return 1
    if words and words[-1] in DOWN_WORDS:
        return -1
    return 0


def _dates(text: str) -> list[Span]:
    found = []
    for kind, pattern in DATE_PATTERNS:
        for m in pattern.finditer(text):
            parts = _date_parts(kind, m.groups())
            if parts is not None:
                found.append(Span(m.start(), m.end(), m.group(), "date", value=parts))
    return found


def _date_parts(kind: str, groups: tuple) -> tuple | None:
    """(year or None, month, day or None) of a date match, or None when it is not a possible date."""

    def num(value: str | None) -> int | None:
        if value is None:
            return None
        if value.isdigit():
            return int(value)
        if value[0].isdigit():
            return int(re.sub(r"\D", "", value))
        if len(value) == 4 and all(c in _ZH_DIGIT for c in value):  # 二〇二四
            return int("".join(str(_ZH_DIGITS[c]) for c in value))
        parsed = zh_number(value)
        return int(parsed) if parsed is not None else None

    if kind in ("iso", "slash"):
        year, month, day = (num(g) for g in groups)
    elif kind == "mdy":
        month, day, year = MONTHS.get(groups[0].lower().rstrip(".")), num(groups[1]), num(groups[2])
    elif kind == "dmy":
        day, month, year = num(groups[0]), MONTHS.get(groups[1].lower().rstrip(".")), num(groups[2])
    elif kind == "my":
        month, year, day = MONTHS.get(groups[0].lower().rstrip(".")), num(groups[1]), None
    else:  # zh
        year, month, day = (num(g) for g in groups)
    if month is None or not 1 <= month <= 12 or (day is not None and not 1 <= day <= 31):
        return None
    return (year, month, day)


_ZH_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000}
_ZH_BIG = {"万": 10**4, "亿": 10**8}


def zh_number(text: str) -> float | None:
    """A number written in Chinese numerals, Arabic digits or both: '十二' 12, '三百零五' 305, '3万' 30000,
    '1.5亿' 150000000, '三点五' 3.5, '二〇二四' 2024. None when it is not one."""
    text = text.strip()
    if not text:
        return None
    lead = re.match(r"\d+(?:\.\d+)?", text)
    if lead:  # Arabic digits, then units that multiply them
        value = float(lead.group())
        for char in text[lead.end() :]:
            factor = _ZH_UNITS.get(char) or _ZH_BIG.get(char)
            if factor is None:
                return None
            value *= factor
        return value
    whole, _, fraction = text.partition("点")
    if not whole or whole[0] in _ZH_BIG:  # 万, 亿 alone, or 万一 ("just in case"): not numbers
        return None
    if fraction and not all(c in _ZH_DIGITS for c in fraction):
        return None
    if whole and all(c in _ZH_DIGITS for c in whole) and len(whole) > 1:  # digit by digit: 二〇二四
        value = float("".join(str(_ZH_DIGITS[c]) for c in whole))
    else:
        total, section, digit = 0, 0, None
        for char in whole:
            if char in _ZH_DIGITS:
                digit = _ZH_DIGITS[char]
            elif char in _ZH_UNITS:
                section += (1 if digit is None else digit) * _ZH_UNITS[char]
                digit = None
            elif char in _ZH_BIG:
                section += digit or 0
                if char == "亿":
                    total = (total + section) * _ZH_BIG[char]
                else:
                    section *= _ZH_BIG[char]
                    total += section
                section, digit = 0, None
                if char == "万":
                    continue
            else:
                return None
        value = float(total + section + (digit or 0))
    if fraction:
        value += float("0." + "".join(str(_ZH_DIGITS[c]) for c in fraction))
    return value


# ---------------------------------------------------------------- reading names


def name_spans(text: str, evidence: Evidence | None = None) -> list[Span]:
    """Proper-name-looking spans: runs of capitalised words not at the start of a sentence (a run that starts a
    sentence keeps its words after the opener: "Sales in North Region" -> "North Region"; an all-capitals word
    such as a ticker counts anywhere); month and weekday names are not names. With `evidence`, also every table
    entity found verbatim in Chinese text (where capitals do not mark names)."""
    found = []
    for m in NAME.finditer(text):
        words = list(re.finditer(r"\S+", m.group()))
        before = text[: m.start()]
        start_of_sentence = bool(SENTENCE_START.search(before)) and not INLINE_PLACE.search(before)
        keep = words
        if start_of_sentence:
            while keep and keep[0].group().lower().strip(".,") in OPENERS:
                keep = keep[1:]
            if len(keep) > 2 and keep[1].group() in ("of", "de") and not _all_caps(keep[0].group()):
                keep = keep[2:]  # "Shares of AAPL": the sentence's first word, then a name
            if len(keep) == len(words) == 1 and not _all_caps(words[0].group()):
                continue  # one capitalised word starting a sentence: an ordinary word ("Revenue rose")
        keep = [w for w in keep if not _calendar(w.group())]
        while keep and keep[0].group().lower() in ("of", "de"):
            keep = keep[1:]
        if not keep:
            continue
        start, end = m.start() + keep[0].start(), m.start() + keep[-1].end()
        piece = text[start:end].rstrip(".'’-")
        if piece.lower() in OPENERS or piece == "I":
            continue
        found.append(Span(start, start + len(piece), piece, "name"))
    if evidence is not None:
        for name in sorted(set(evidence.names), key=len, reverse=True):
            if name and not name.isascii():
                for m in re.finditer(re.escape(name), text):
                    found.append(Span(m.start(), m.end(), name, "name"))
    return found


def _all_caps(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def _calendar(word: str) -> bool:
    word = word.lower().strip(".,")
    return word in MONTHS or word in WEEKDAYS


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", str(text).casefold().replace("_", " ")))


# ---------------------------------------------------------------- deciding


def _decide(span: Span, evidence: Evidence) -> tuple[bool, str | None]:
    if span.kind == "name":
        return _known_name(span.text, evidence)
    if span.kind == "date":
        return _known_day(span.value, evidence)
    if span.kind == "ordinal":
        rank = span.value if isinstance(span.value, float) else 0
        return (True, "rank") if 1 <= rank <= evidence.rank_limit else _known_value(span, evidence)
    return _known_value(span, evidence)


def _known_value(span: Span, evidence: Evidence) -> tuple[bool, str | None]:
    assert isinstance(span.value, float)
    written = abs(span.value)
    slack = span.tolerance + 1e-9 * max(1.0, written)
    best: tuple[float, str] | None = None
    for value, fact in evidence.values:
        candidates = [value]
        if span.percent and abs(value) <= 1:  # a fraction in the data, a percentage in the text
            candidates.append(value * 100)
        for candidate in candidates:
            gap = abs(abs(candidate) - written)
            if gap > slack:
                continue
            if span.sign and fact in evidence.signed and candidate != 0 and math.copysign(1, candidate) != span.sign:
                continue  # "down 5%" when the data's change is +5%
            if best is None or gap < best[0]:
                best = (gap, fact)
    return (True, best[1]) if best is not None else (False, None)


def _known_day(value, evidence: Evidence) -> tuple[bool, str | None]:
    year, month, day = value
    for (y, m, d), fact in evidence.days.items():
        if m == month and (year is None or y in (year, 0)) and (day is None or d == day):
            return True, fact
    return False, None


def _known_name(text: str, evidence: Evidence) -> tuple[bool, str | None]:
    name = _norm(text)
    if not name:
        return True, None
    for known, source in evidence._known:
        if f" {name} " in f" {known} ":
            return True, source
    words = name.split()
    if all(word in evidence._known_words for word in words):  # "North Region" when the table says "North"
        return True, evidence._known_words[words[0]]
    return False, None


def _without_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Spans in text order; of two that overlap, the one found first (an earlier kind) is kept."""
    kept: list[Span] = []
    for span in spans:
        if any(span.start < k.end and k.start < span.end for k in kept):
            continue
        kept.append(span)
    return sorted(kept, key=lambda s: s.start)
