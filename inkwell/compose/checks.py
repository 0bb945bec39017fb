"""Model-free checks of one written piece against its template and fields: could a creator use it as it is?

    verdict = check_output(template, fields, text)
    verdict.score                      # share of the applicable checks passed (best-of-n ranks by it)
    verdict.failed                     # ["length", "invented"]
    verdict.results["length"].detail   # "17 words; headline asks for at most 12"

The checks (docs/quality.md gives each threshold and its reason):
- facts: every key fact of the fields is mentioned: a short field's own words (stems; Chinese character
  bigrams), the numbers, dates and names of a long one (the source text of a headline or summary), the items of
  a list (features, pros), and for a rewrite most of the original's content words;
- length: within the template's bounds, derived from its fields (`words`, `max_words`, `sentences`, `points`,
  `num_questions`, the poem's form, the platform's limit; a translation by the two languages' ratio), and prose ends a sentence (not cut off at the token
  cap); Chinese is counted in characters;
- form: a Chinese 绝句 has four lines and a 律诗 eight, all of five characters or all of seven (the poem template);
- language: the script of the output matches `language` (a share of Han characters; English must also read as
  English: enough common function words in a longer text);
- invented: no number, date or proper name that is not in the input (templates that must not invent them);
- json: valid against the template's schema (structured templates);
- leaks: no chat-template tokens, role labels, placeholders ("[Your Name]") or copied instructions;
- repetition: repeated word 4-grams under a threshold and no line said three times;
- readable: not empty, not a run of capitals or symbols.

A check that does not apply is None (not a pass), so a template's score counts only what it can fail. Whether a
check applies depends on the template and fields only, never on the text, so systems are scored on the same tasks:
an empty text fails the checks that need something written and passes those that look for something wrong.
Numbers and names are read by compose/factcheck.py; words, sentences and repetition by compose/longform/checks.py.
Limits: a Chinese name cannot be told from other words (no capitals), so in Chinese only numbers and Latin-script
names are checked for invention; a name that is also an ordinary word (Rose, Smith) is not flagged; the language
check tells scripts apart, and English from other Latin-script languages only by function words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from inkwell.compose.factcheck import Evidence, check_text
from inkwell.compose.longform.checks import junk_share, repeated_ngram_rate, sentences, tokens, word_count
from inkwell.errors import InkwellError
from inkwell.prompts.template import ContentTemplate

CHECKS = ("facts", "length", "form", "language", "invented", "json", "leaks", "repetition", "readable")

# ---------------------------------------------------------------- thresholds (docs/quality.md)

SHORT_FIELD_TOKENS = 8  # a field of at most this many tokens is a phrase (topic, product): its own words count
TERM_SHARE = {"en": 0.5, "zh": 0.3}  # share of a phrase's words (zh: character bigrams) the text must mention
ITEM_SHARE = 0.5  # share of a list's items (features, pros, characters) the text must mention
WORDS_LOW, WORDS_HIGH, WORDS_SLACK = 0.5, 1.5, 10  # "about N words": between N/2 and 1.5 N + 10
MAX_REPEAT_RATE = 0.2  # share of word 4-grams already seen in the text; prose stays under 0.05, loops go past 0.3
MAX_SAME_LINE = 2  # a line said a third time is a loop
MAX_JUNK = 0.1  # junk_share: symbols and runs of capitals; ordinary prose is 0
LONGEST_RUN = 25  # letters without a space or a lower-case letter: "AAAAHHHHHHH..." (no English word is this long)
ZH_SHARE = 0.5  # Chinese: at least half the tokens (Han characters, words) are Han characters
EN_MAX_HAN = 0.05  # English: at most this share of Han characters (a quoted name is fine)
EN_FUNCTION_SHARE = 0.08  # English of 20+ words: at least this share of common function words
ECHO_WORDS, ECHO_HAN = 6, 8  # a run this long (words; Han characters) copied from the instructions is a leak
RANKS_ALLOWED = 3  # "first", "second", "third" are discourse words, not invented rankings
SOCIAL_LIMITS = {"x": 280, "twitter": 280, "weibo": 140, "threads": 500, "instagram": 2200, "facebook": 5000}
SOCIAL_LIMITS |= {"linkedin": 3000, "xiaohongshu": 1000}
FULL_STOPS = ".!?。！？…"  # how a finished sentence ends
SIGN_OFF_HAN = 8  # a Chinese line of at most this many characters may end without a stop (a sign-off: 暖织团队)


@dataclass(frozen=True)
class KeyField:
    """How one field's facts must show in the text: `terms` (a phrase's own words), `specifics` (its numbers,
    dates and names; `need` of them, or a `share`), `content` (content-word overlap, for rewrites) or `items` (a
    list). A long field without numbers or names falls back to content overlap at `share`."""

    name: str
    how: str = "terms"  # terms | specifics | content | items
    share: float | None = None  # None: the default for `how`
    need: int | None = None  # specifics: this many (or all there are, if fewer)


@dataclass(frozen=True)
class Rules:
    """What the checks expect of one template. Templates not in RULES get derived rules (`derived_rules`)."""

    keys: tuple[KeyField, ...] = ()
    invented: str | None = None  # "all": numbers, dates and names; "numbers": numbers and dates; None: not checked
    words_field: str | None = "words"
    zh_chars_per_word: float = 1.0  # how the template turns `words` into Chinese characters
    words_extra: int = 0  # words the template adds around the asked length (an email's subject and sign-off)
    finished: bool = False  # prose: the last line of more than three words ends a sentence (not cut off)


RULES: dict[str, Rules] = {
    "headline": Rules((KeyField("text", "specifics", need=1, share=0.05),), invented="all", words_field=None),
    "summary": Rules((KeyField("text", "specifics", share=0.5),), invented="all", words_field=None, finished=True),
    "news-article": Rules(
        (KeyField("facts", "specifics", share=0.6), KeyField("quote", "content", share=0.5)),
        invented="all",
        finished=True,
    ),
    "rewrite": Rules((KeyField("text", "content"), KeyField("text", "specifics", share=1.0)), invented="all"),
    "customer-service-reply": Rules(
        (KeyField("resolution"), KeyField("agent", share=1.0)), invented="all", words_field=None, finished=True
    ),
    "ad-copy": Rules(
        (KeyField("product"), KeyField("offer", "specifics", share=1.0), KeyField("call_to_action", share=0.6)),
        invented="all",
    ),
    "marketing-email": Rules(
        (
            KeyField("product"),
            KeyField("offer", "specifics", share=1.0),
            KeyField("call_to_action", share=0.6),
            KeyField("brand", share=1.0),
        ),
        invented="all",
        words_extra=30,
        finished=True,
    ),
    "product-description": Rules((KeyField("product"), KeyField("features", "items")), invented="all", finished=True),
    "product-review": Rules(
        (KeyField("product"), KeyField("pros", "items"), KeyField("cons", "items")), invented="all", finished=True
    ),
    "report": Rules((KeyField("facts", "specifics", need=3),), invented="all", zh_chars_per_word=2.0, finished=True),
    "data-brief": Rules((KeyField("facts", "specifics", need=2),), invented="all", words_field=None),
    "social-post": Rules((KeyField("topic"), KeyField("call_to_action", share=0.6)), invented="numbers"),
    "story": Rules((KeyField("premise", share=0.3), KeyField("characters", "items")), finished=True),
    "poem": Rules((KeyField("topic"),), words_field=None),
    "travel-guide": Rules(
        (KeyField("destination", share=1.0), KeyField("interests", "items")), invented="numbers", finished=True
    ),
    "lesson-quiz": Rules((KeyField("topic"),), words_field=None),
}


# ---------------------------------------------------------------- results


@dataclass
class CheckResult:
    name: str
    passed: bool | None  # None: the check does not apply to this template or these fields
    detail: str = ""

    def to_json(self) -> dict:
        return {"passed": self.passed, "detail": self.detail}


@dataclass
class Verdict:
    """Every check's result for one text, in CHECKS order."""

    results: dict[str, CheckResult]

    @property
    def applicable(self) -> list[str]:
        return [name for name, r in self.results.items() if r.passed is not None]

    @property
    def failed(self) -> list[str]:
        return [name for name, r in self.results.items() if r.passed is False]

    @property
    def passed(self) -> bool:
        """All applicable checks passed: the piece is usable as it is."""
        return not self.failed

    @property
    def score(self) -> float:
        applicable = self.applicable
        return (len(applicable) - len(self.failed)) / len(applicable) if applicable else 1.0

    def flags(self) -> dict[str, bool | None]:
        return {name: r.passed for name, r in self.results.items()}

    def to_json(self) -> dict:
        return {
            "score": round(self.score, 4),
            "failed": self.failed,
            "checks": {name: r.to_json() for name, r in self.results.items()},
        }


@dataclass
class Piece:
    """What every check looks at: the text, the template and its resolved fields, the language asked for."""

    template: ContentTemplate
    fields: dict[str, Any]
    text: str
    language: str
    rules: Rules
    instructions: str = ""  # the chat prompt (system + user message) rendered with the fields, without examples
    _cache: dict = field(default_factory=dict)


def check_output(template: ContentTemplate, fields: dict[str, Any], text: str, *, only: tuple = CHECKS) -> Verdict:
    """Run the checks (all, or `only` these) on `text` written by `template` from `fields` (given or resolved)."""
    unknown = [name for name in only if name not in CHECK_FUNCTIONS]
    if unknown:
        raise InkwellError(f"unknown check '{unknown[0]}'", field="checks", hint=f"checks: {', '.join(CHECKS)}")
    resolved = template.resolve_fields(fields)
    language = str(resolved.get("language") or (template.languages[0] if template.languages else "en"))
    piece = Piece(template, resolved, text or "", language, rules_for(template), _instructions(template, resolved))
    return Verdict({name: _run(name, piece) for name in only})


def _run(name: str, piece: Piece) -> CheckResult:
    outcome = CHECK_FUNCTIONS[name](piece)
    if outcome is None:
        return CheckResult(name, None, "does not apply")
    passed, detail = outcome
    return CheckResult(name, passed, detail)


def rules_for(template: ContentTemplate) -> Rules:
    return RULES.get(template.name) or derived_rules(template)


def derived_rules(template: ContentTemplate) -> Rules:
    """Rules for a template not in RULES (a user's own): its required fields' facts must show (phrases by their
    words, long texts by their numbers and names, lists by their items); nothing is checked for invention."""
    keys = []
    for name, spec in template.fields.items():
        if spec.required and spec.type == "list":
            keys.append(KeyField(name, "items"))
        elif spec.required and spec.type == "str":
            keys.append(KeyField(name, "auto"))
    return Rules(tuple(keys), invented=None)


def _instructions(template: ContentTemplate, fields: dict) -> str:
    from inkwell.prompts.render import build_prompt

    try:
        messages = build_prompt(template, fields, chat=True, shots=[]).prompt
    except InkwellError:
        return ""
    return "\n".join(m["content"] for m in messages) if isinstance(messages, list) else str(messages)


# ---------------------------------------------------------------- words and terms

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LETTER = re.compile(r"[^\W\d_]")
FUNCTION_WORDS = set(
    "a an the and or but nor so yet for of to in on at by with from into onto over under about above below after "
    "before between during through without within against among across behind beyond up down out off near than as "
    "i me my mine we us our ours you your yours he him his she her hers it its they them their theirs this that "
    "these those who whom whose which what where when why how is are was were be been being am do does did done have "
    "has had having will would shall should can could may might must not no yes all any each every both few more "
    "most other some such only own same too very just also there here then now if because while until unless".split()
)


def _is_han(token: str) -> bool:
    return bool(_HAN.fullmatch(token))


def _stem(word: str) -> str:
    """A crude English stem, enough to match "cycles" with "cycle" and "shipped" with "ships"."""
    word = word.lower().replace("’", "'").removesuffix("'s")
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us")):  # "address", "status": not plurals
                break
            word = word[: -len(suffix)] + keep
            if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # "shipped" -> "ship", "stopping" -> "stop"
            break
    return word[:-1] if len(word) >= 4 and word.endswith("e") else word


def _units(text: str) -> list[str]:
    """Content units of a text: English content words (stemmed) and Chinese character bigrams (a text of at most
    four Han characters: its characters)."""
    toks = tokens(text)
    han = [t for t in toks if _is_han(t)]
    words = [_stem(t) for t in toks if not _is_han(t) and len(t) >= 3 and t not in FUNCTION_WORDS]
    words = [w for w in words if not w.isdigit()]
    grams = han if len(han) <= 4 else [a + b for a, b in zip(han, han[1:])]
    return list(dict.fromkeys(words + grams))


def _text_units(piece: Piece) -> set[str]:
    if "units" not in piece._cache:
        toks = tokens(piece.text)
        han = [t for t in toks if _is_han(t)]
        words = {_stem(t) for t in toks if not _is_han(t)}
        piece._cache["units"] = words | set(han) | {a + b for a, b in zip(han, han[1:])}
    return piece._cache["units"]


def term_coverage(phrase: str, piece: Piece) -> float | None:
    """Share of the phrase's content units found in the text (None: the phrase has none)."""
    units = _units(phrase)
    if not units:
        return None
    found = _text_units(piece)
    return sum(u in found for u in units) / len(units)


def _is_short(value: str) -> bool:
    return len(tokens(value)) <= SHORT_FIELD_TOKENS


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None or isinstance(value, bool) else str(value)


# ---------------------------------------------------------------- facts


def specifics(text: str) -> list[tuple[str, Any, str]]:
    """The numbers, dates and names of a text, each once: [(kind, value, as written)], kind number | date | name."""
    found: list[tuple[str, Any, str]] = []
    seen: set[tuple[str, Any]] = set()
    for span in check_text(text, Evidence()).spans:
        if span.kind == "name":
            name = re.sub(r"['’]s$", "", span.text)  # "Main Street's" is "Main Street"
            key: tuple[str, Any] = ("name", name)
        elif span.kind == "date" and isinstance(span.value, tuple):
            key = ("date", span.value)
        elif span.kind in ("number", "percent") and isinstance(span.value, float):
            key = ("number", span.value)
        else:
            continue
        if key not in seen:
            seen.add(key)
            found.append((*key, span.text))
    return found


def specifics_mentioned(keys: list[tuple[str, Any, str]], text: str) -> list[bool]:
    """Which of `keys` (from `specifics`) the text mentions: a number as written or rounded ("ten" is 10, "1.2
    million" covers 1,234,000), a date by its day, a name whole or by its last word ("Lopez" for "Maria Lopez")."""
    values = [(float(v), f"k{i}") for i, (kind, v, _) in enumerate(keys) if kind == "number"]
    days = {(v[0] or 0, v[1], v[2] or 0): f"k{i}" for i, (kind, v, _) in enumerate(keys) if kind == "date"}
    supported = {s.fact for s in check_text(text, Evidence(values=values, days=days)).spans if s.supported}
    folded = " " + " ".join(re.findall(r"\w+", text.casefold())) + " "
    seen = []
    for i, (kind, value, _) in enumerate(keys):
        if kind != "name":
            seen.append(f"k{i}" in supported)
            continue
        words = re.findall(r"\w+", str(value).casefold())
        whole = " " + " ".join(words) + " "
        last = words[-1] if words else ""
        seen.append(bool(words) and (whole in folded or (len(last) >= 3 and f" {last} " in folded)))
    return seen


def _check_key(key: KeyField, value: Any, piece: Piece) -> tuple[bool, str] | None:
    text_value = _value_text(value)
    if not text_value.strip():
        return None  # an optional field left empty
    zh = piece.language == "zh"
    how = key.how
    if how == "auto":
        how = "terms" if _is_short(text_value) else "specifics"
    if how == "items":
        items = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if str(v).strip()]
        hits = [(term_coverage(item, piece) or 0.0) >= TERM_SHARE["zh" if zh else "en"] for item in items]
        share = key.share if key.share is not None else ITEM_SHARE
        missing = [item for item, hit in zip(items, hits) if not hit]
        ok = sum(hits) >= share * len(items)
        return ok, f"{key.name}: {sum(hits)} of {len(items)} mentioned" + (
            f" (missing: {missing[0]!r})" if not ok else ""
        )
    if how == "specifics":
        keys = specifics(text_value)
        if keys:
            seen = specifics_mentioned(keys, piece.text)
            needed = min(key.need, len(keys)) if key.need is not None else 0
            share = key.share if key.share is not None else (0.0 if key.need is not None else 0.5)
            ok = sum(seen) >= needed and sum(seen) >= share * len(keys)
            missing = [shown for (_, _, shown), s in zip(keys, seen) if not s][:3]
            return ok, f"{key.name}: {sum(seen)} of {len(keys)} numbers/names mentioned" + (
                f" (missing: {', '.join(missing)})" if not ok else ""
            )
        how = "content"  # nothing specific to look for: its content words
    share = key.share if key.share is not None else (TERM_SHARE["zh" if zh else "en"] if how == "terms" else 0.3)
    if how == "content" and piece.template.name == "rewrite":
        share = {"shorten": 0.35, "expand": 0.6}.get(str(piece.fields.get("mode")), 0.5)
    coverage = term_coverage(text_value, piece)
    if coverage is None:
        return None
    if how == "content" and key.share is None and piece.template.name != "rewrite":
        share = 0.1  # a long text without numbers or names: at least some of its words
    return coverage >= share, f"{key.name}: {coverage:.0%} of its words mentioned (needs {share:.0%})"


def check_facts(piece: Piece) -> tuple[bool, str] | None:
    if translating(piece):
        return translation_facts(piece)
    results = [_check_key(key, piece.fields.get(key.name), piece) for key in piece.rules.keys]
    done = [r for r in results if r is not None]
    if not done:
        return None
    failed = [detail for ok, detail in done if not ok]
    return (not failed), "; ".join(failed) if failed else "; ".join(detail for _, detail in done)


# ---------------------------------------------------------------- length


def _bullets(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s*(?:[-•*·]|\d{1,2}[.)、])\s*\S", line)]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _zh_verses(text: str) -> list[str]:
    return [v for v in re.split(r"[，。！？；、,.!?;\s]+", text) if _HAN.search(v)]


def _between(count: int, low: float, high: float, unit: str, what: str) -> tuple[bool, str]:
    ok = low <= count <= high
    return (
        ok,
        f"{count} {unit}; {what} asks for {low:g}–{high:g}"
        if low != high
        else f"{count} {unit}; {what} asks for {low:g}",
    )


def check_length(piece: Piece) -> tuple[bool, str] | None:
    """Within the template's bounds; prose must also end a sentence (a piece cut off at the token cap is not done)."""
    outcome = _bounds(piece)
    if outcome is None or not piece.rules.finished or not piece.text.strip():
        return outcome
    # a sign-off aside ("Best wishes, Sam"; Chinese counts characters: "书页编辑部")
    longer = SIGN_OFF_HAN if piece.language == "zh" else 3
    lines = [line for line in _lines(piece.text) if word_count(line) > longer]
    last = (lines[-1] if lines else piece.text).rstrip()
    while last and not (last[-1].isalnum() or last[-1] in FULL_STOPS):  # quotes, brackets, emoji after the stop
        last = last[:-1].rstrip()
    if last and last[-1] not in FULL_STOPS:
        return False, outcome[1] + f"; ends mid-sentence ({last[-24:]!r})"
    return outcome


def _bounds(piece: Piece) -> tuple[bool, str] | None:
    f, text, name, zh = piece.fields, piece.text, piece.template.name, piece.language == "zh"
    unit = "characters" if zh else "words"
    count = word_count(text)
    if name == "lesson-quiz":
        return _quiz_size(piece)
    if name == "headline" and "max_words" in f:
        high = int(f["max_words"]) * (2 if zh else 1)
        lines = len(_lines(text))
        ok, detail = _between(count, 2 if not zh else 4, high, unit, "the headline")
        return ok and lines <= 1, detail + ("" if lines <= 1 else f"; {lines} lines, not one")
    if name == "poem":
        return _poem_size(piece)
    if name == "social-post" and f.get("platform") in SOCIAL_LIMITS:
        limit = SOCIAL_LIMITS[f["platform"]] if not zh or f["platform"] not in ("x", "twitter") else 140
        chars = len(text.strip())
        return chars <= limit and count >= 3, f"{chars} characters; {f['platform']} allows {limit}"
    if name == "data-brief" and "points" in f:
        points = int(f["points"])
        return _between(len(_bullets(text)), max(1, points - 1), points + 1, "bullet points", "the brief")
    if name == "summary" and "sentences" in f:
        return _summary_size(piece)
    if translating(piece) and f.get("text"):
        return translation_size(piece)
    if name == "rewrite" and f.get("text"):
        original = word_count(str(f["text"]))
        shortest, longest = {"shorten": (0.3, 0.9), "expand": (1.1, 3.0)}.get(str(f.get("mode")), (0.6, 1.6))
        low, high = round(shortest * original), round(longest * original) + 3
        return _between(count, low, high, unit, f"a {f.get('mode')} rewrite")
    if name == "customer-service-reply":
        return _between(count, 20, 250, unit, "a reply")
    words_field = piece.rules.words_field
    if words_field and isinstance(f.get(words_field), int) and f[words_field] > 0:
        target = f[words_field] * (piece.rules.zh_chars_per_word if zh else 1)
        high = WORDS_HIGH * target + WORDS_SLACK + piece.rules.words_extra
        return _between(count, round(WORDS_LOW * target), round(high), unit, f"about {target:g} {unit}")
    return None


def _quiz_size(piece: Piece) -> tuple[bool, str]:
    from inkwell.generate.content import extract_json

    try:
        data = extract_json(piece.text)
    except ValueError:
        return False, "no quiz to count (not JSON)"
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list):
        return False, "no list of questions"
    want, options = int(piece.fields.get("num_questions", 0)), int(piece.fields.get("num_options", 0))
    wrong = [
        i + 1 for i, q in enumerate(questions) if not (isinstance(q, dict) and len(q.get("options") or []) == options)
    ]
    ok = len(questions) == want and not wrong
    detail = f"{len(questions)} questions (asked {want})"
    return ok, detail + (f"; question {wrong[0]} does not have {options} options" if wrong else "")


def _poem_size(piece: Piece) -> tuple[bool, str]:
    form, text = piece.fields.get("form"), piece.text
    if piece.language == "zh" and form in REGULATED_LINES:  # its lines are the `form` check's; here its size
        lines, name = REGULATED_LINES[str(form)]
        low, high = lines * min(VERSE_SIZES), lines * max(VERSE_SIZES)
        return _between(len(_HAN.findall(text)), low, high, "characters", f"a {name}")
    lines = len(_lines(text))
    low, high = {"haiku": (3, 3), "sonnet": (12, 16)}.get(str(form), (3, 40))
    return _between(lines, low, high, "lines", f"a {form} poem")


def _summary_size(piece: Piece) -> tuple[bool, str]:
    f, text = piece.fields, piece.text
    want = int(f["sentences"])
    parts = _bullets(text) if f.get("format") == "bullets" else sentences(text)
    unit = "bullet points" if f.get("format") == "bullets" else "sentences"
    ok, detail = _between(len(parts), max(1, want - 1), want + 1, unit, "the summary")
    source, count = word_count(str(f.get("text", ""))), word_count(text)
    if source >= 30 and count > 0.8 * source:
        return False, f"{detail}; {count} words is not shorter than the {source}-word text"
    return ok, detail


# ---------------------------------------------------------------- form (Chinese regulated verse)

REGULATED_LINES = {"jueju": (4, "绝句"), "lushi": (8, "律诗")}  # form -> (lines, name)
VERSE_SIZES = (5, 7)  # 五言 or 七言: every line of a poem the same


def check_form(piece: Piece) -> tuple[bool, str] | None:
    """A Chinese 绝句 (form=jueju) has four lines and a 律诗 (lushi) eight, all of five characters or all of seven.
    A line is the verse between punctuation or line breaks (a poem is written either way: "床前明月光，疑是地上霜。").
    Only the shape: tones and rhyme are not checked (a character's tone needs a dictionary of classical readings)."""
    form = str(piece.fields.get("form"))
    if piece.template.name != "poem" or piece.language != "zh" or form not in REGULATED_LINES:
        return None
    lines, name = REGULATED_LINES[form]
    verses = _zh_verses(piece.text)
    sizes = [len(_HAN.findall(v)) for v in verses]
    foreign = [v for v in verses if re.search(r"[A-Za-z0-9]", v)]
    detail = f"{len(verses)} lines of {'/'.join(map(str, sorted(set(sizes)))) or 0} characters"
    rule = f"a {name} has {lines} lines, all of 5 or all of 7 characters"
    if foreign:
        return False, f"{detail}; a line is not all Chinese ({foreign[0]!r}); {rule}"
    ok = len(verses) == lines and len(set(sizes)) == 1 and sizes[0] in VERSE_SIZES
    return ok, f"{detail}; {rule}"


# ---------------------------------------------------------------- translation (rewrite, mode=translate)

# Length of a translation against its original, in words (English) or characters (Chinese): an English word comes
# out as about 1.5-2 Chinese characters, a Chinese character as about 0.5-0.7 English words.
TRANSLATION_RATIO = {("en", "zh"): (0.8, 3.0), ("zh", "en"): (0.3, 1.2)}


def translating(piece: Piece) -> bool:
    return piece.template.name == "rewrite" and piece.fields.get("mode") == "translate"


def _source_language(text: str) -> str:
    from inkwell.compose.longform.checks import is_chinese

    return "zh" if is_chinese(text) else "en"


def translation_facts(piece: Piece) -> tuple[bool, str] | None:
    """A translation keeps every number and date of the original (days of the week aside: a weekday is a word).
    Words cannot be matched across languages, and a name may be transliterated, so they are not asked for (the
    `language` check asks for the target language)."""
    original = WEEKDAY.sub(" ", str(piece.fields.get("text", "")))  # 周三 is Wednesday, not the number 3
    keys = [k for k in specifics(original) if k[0] != "name"]
    if not keys:
        return None
    seen = specifics_mentioned(keys, piece.text)
    missing = [shown for (_, _, shown), s in zip(keys, seen) if not s][:3]
    detail = f"text: {sum(seen)} of {len(keys)} numbers/dates kept"
    return all(seen), detail + (f" (missing: {', '.join(missing)})" if missing else "")


def translation_size(piece: Piece) -> tuple[bool, str]:
    original = str(piece.fields.get("text", ""))
    pair = (_source_language(original), piece.language)
    shortest, longest = TRANSLATION_RATIO.get(pair, (0.6, 1.6))
    size = word_count(original)
    unit = "characters" if piece.language == "zh" else "words"
    low, high = round(shortest * size), round(longest * size) + 3
    return _between(word_count(piece.text), low, high, unit, f"a translation of {size} {pair[0]} tokens")


# ---------------------------------------------------------------- language


def check_language(piece: Piece) -> tuple[bool, str] | None:
    toks = tokens(piece.text)
    if not toks:
        return False, "nothing written"
    han = sum(_is_han(t) for t in toks) / len(toks)
    if piece.language == "zh":
        return han >= ZH_SHARE, f"{han:.0%} Chinese characters (needs {ZH_SHARE:.0%})"
    if piece.language != "en":
        return None
    letters = _LETTER.findall(piece.text)
    other = sum(1 for c in letters if not _LATIN.match(c) and not _HAN.match(c)) / max(1, len(letters))
    if han > EN_MAX_HAN or other > 0.1:
        return False, f"{han:.0%} Chinese characters, {other:.0%} letters of other scripts: not English"
    words = [t for t in toks if not _is_han(t) and not t.isdigit()]
    if len(words) >= 20 and piece.template.output_schema is None:
        share = sum(w in FUNCTION_WORDS for w in words) / len(words)
        if share < EN_FUNCTION_SHARE:
            return False, f"only {share:.0%} English function words: another language, or not sentences"
    return True, "English"


# ---------------------------------------------------------------- invented numbers and names


WEEKDAY = re.compile(r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)days?\b|(?:星期|礼拜|周)[一二三四五六日天]", re.I)


@lru_cache(maxsize=1)
def _wordnet():
    from inkwell.data.wordnet import WordNet

    try:
        return WordNet()
    except InkwellError:
        return None


@lru_cache(maxsize=1)
def _irregular() -> dict[str, set[str]]:
    """WordNet's exception lists: irregular forms and their lemmas ("went" -> go, "children" -> child)."""
    wordnet = _wordnet()
    forms: dict[str, set[str]] = {}
    for pos in ("noun", "verb", "adj", "adv") if wordnet is not None else ():
        path = wordnet.folder / f"{pos}.exc"
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    forms.setdefault(parts[0], set()).update(parts[1:])
    return forms


@lru_cache(maxsize=50_000)
def common_word(word: str) -> bool | None:
    """True when `word` is an ordinary English word (a function word, or a WordNet lemma with a lower-case
    sense after undoing -s/-es/-ed/-ing or an irregular form; a hyphenated word when each part is), so a capital
    does not make it a name: "Bakery", "Went", "In-Depth". None when WordNet is not installed."""
    low = re.sub(r"['’](?:s|m|re|ve|ll|d|t)$", "", word.lower().strip(".'’-"))
    if low in FUNCTION_WORDS or low.isdigit():
        return True
    wordnet = _wordnet()
    if wordnet is None:
        return None
    if "-" in low and common_word(low.replace("-", "_")):
        return True
    if "-" in low:
        return all(common_word(part) for part in low.split("-") if part)
    forms = {low} | _irregular().get(low, set())
    for suffix, keep in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e")):
        if low.endswith(suffix) and len(low) - len(suffix) >= 2:
            forms.add(low[: -len(suffix)] + keep)
    for form in forms:
        for pos in ("n", "v", "a", "r"):
            for offset in wordnet.senses(form, pos)[:8]:
                if form.replace("_", " ") in (w.lower() for w in wordnet.synset_words(pos, offset) if w.islower()):
                    return True
    return False


def invented(piece: Piece, what: str) -> list[str]:
    """The numbers, dates, days of the week (and with what="all", names) of the text that are not in the input
    (fields and the instructions built from them)."""
    inputs = [_value_text(v) for v in piece.fields.values()] + [piece.instructions]
    check = check_text(piece.text, Evidence(inputs=[i for i in inputs if i], rank_limit=RANKS_ALLOWED))
    known = {w for i in inputs for w in re.findall(r"\w+", i.casefold())}
    found = []
    folded = " ".join(inputs).casefold()
    for match in (
        WEEKDAY.finditer(piece.text) if not translating(piece) else ()
    ):  # 周三 translates Wednesday  # factcheck reads no weekdays (a day of the week is no date)
        if match.group().casefold().removesuffix("s") not in folded:
            found.append(match.group())
    for span in check.unsupported:
        if span.kind == "name":
            if what != "all":
                continue
            words = re.findall(r"[^\W\d_][\w'’.-]*", span.text)
            strange = [w for w in words if w.casefold() not in known and common_word(w) is False]
            if not strange:
                continue
        found.append(span.text)
    return found


def check_invented(piece: Piece) -> tuple[bool, str] | None:
    what = piece.rules.invented
    if what is None:
        return None
    if translating(piece):
        what = "numbers"  # a name may be transliterated (Maria -> 玛丽亚): only numbers can be compared
    if what == "all" and _wordnet() is None:
        what = "numbers"  # without WordNet every capitalised word would look like a name
    found = invented(piece, what)
    kinds = "numbers or names" if what == "all" else "numbers"
    if found:
        shown = ", ".join(repr(s) for s in found[:4])
        return False, f"{len(found)} {kinds} not in the input: {shown}"
    return True, f"no {kinds} beyond the input"


# ---------------------------------------------------------------- JSON, leaks, repetition, readability


def check_json(piece: Piece) -> tuple[bool, str] | None:
    from inkwell.generate.content import validate_output

    if piece.template.output_schema is None:
        return None
    _value, problem = validate_output(piece.text, piece.template.output_schema)
    return problem is None, problem or "valid against the schema"


SPECIAL_TOKENS = re.compile(
    r"<\|[A-Za-z_]+\|>|<(?:start|end)_of_turn>|</?s>|<(?:bos|eos|pad|unk)>|\[/?INST\]|<</?SYS>>|<\|?endoftext\|?>"
)
ROLE_LABEL = re.compile(r"^\s*(?:system|user|assistant|model|human)\s*[:：]", re.I | re.M)
# "[Your Name]", "[address]", "{{ name }}", "【公司名称】" (a markdown link, "[Shop now](...)", is not one)
PLACEHOLDER = re.compile(
    r"\[[A-Za-z]+(?: [A-Za-z]+){0,3}\](?!\()|\{\{[^}]*\}\}|\{%[^%]*%\}"
    r"|【[^】]{0,10}(?:名|公司|姓名|日期)[^】]{0,10}】"
)


def _grams(text: str, words: int, han: int) -> set[tuple[str, ...]]:
    toks = [t for t in tokens(text)]
    latin = [t for t in toks if not _is_han(t)]
    chars = [t for t in toks if _is_han(t)]
    out = {tuple(latin[i : i + words]) for i in range(len(latin) - words + 1)}
    return out | {tuple(chars[i : i + han]) for i in range(len(chars) - han + 1)}


def check_leaks(piece: Piece) -> tuple[bool, str] | None:
    text = piece.text
    for pattern, what in (
        (SPECIAL_TOKENS, "chat-template token"),
        (ROLE_LABEL, "role label"),
        (PLACEHOLDER, "placeholder"),
    ):
        match = pattern.search(text)
        if match:
            return False, f"{what} {match.group().strip()!r}"
    if piece.instructions:
        from_fields = set()
        for value in piece.fields.values():
            from_fields |= _grams(_value_text(value), ECHO_WORDS, ECHO_HAN)
        echoed = (_grams(text, ECHO_WORDS, ECHO_HAN) & _grams(piece.instructions, ECHO_WORDS, ECHO_HAN)) - from_fields
        if echoed:
            sample = next(iter(sorted(echoed)))
            return False, "copies the instructions: " + repr(("" if _is_han(sample[0]) else " ").join(sample))
    return True, "none"


def check_repetition(piece: Piece) -> tuple[bool, str] | None:
    rate = repeated_ngram_rate(piece.text, 4)
    counts: dict[str, int] = {}
    for line in _lines(piece.text):
        key = " ".join(line.split()).casefold()
        if len(key) >= 8:
            counts[key] = counts.get(key, 0) + 1
    looped = max(counts.values(), default=0)
    if looped > MAX_SAME_LINE:
        return False, f"a line written {looped} times"
    return rate <= MAX_REPEAT_RATE, f"{rate:.0%} repeated 4-grams (at most {MAX_REPEAT_RATE:.0%})"


def check_readable(piece: Piece) -> tuple[bool, str] | None:
    text = piece.text.strip()
    if not text:
        return False, "empty"
    if "\ufffd" in text:
        return False, "broken characters (\ufffd)"
    junk = junk_share(text)
    if junk > MAX_JUNK:
        return False, f"{junk:.0%} symbols or shouting"
    run = max((len(m) for m in re.findall(r"[^\s\da-z\u3400-\u9fff#@/:._-]+", text)), default=0)
    if run >= LONGEST_RUN:
        return False, f"a run of {run} characters without a space"
    letters = [c for c in text if c.isalpha() and c.isascii()]
    upper = sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 20 else 0.0
    if upper > 0.6:
        return False, f"{upper:.0%} capital letters"
    return True, "readable"


CHECK_FUNCTIONS: dict[str, Callable[[Piece], tuple[bool, str] | None]] = {
    "facts": check_facts,
    "length": check_length,
    "form": check_form,
    "language": check_language,
    "invented": check_invented,
    "json": check_json,
    "leaks": check_leaks,
    "repetition": check_repetition,
    "readable": check_readable,
}
