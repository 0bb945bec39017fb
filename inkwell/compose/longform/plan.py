"""Stage 1, the plan: an outline of sections, each with a title, its main points and a word budget
(LongWriter's AgentWrite plan; STORM's outline-first writing).

A 135M model cannot be trusted to write a JSON document, but it can list titles and points. So the model is
asked for plain numbered lines, Inkwell builds the JSON itself, validates it against `Outline` and repairs
what a small model gets wrong (numbering and markdown left in titles, duplicates, too few or too many
sections, missing points) from the kind's skeleton. A user-edited plan.json is validated the same way, and a
mistake is reported by its place in the file (`sections[2].words`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from inkwell.compose.longform.checks import tokens
from inkwell.errors import InkwellError

KINDS = ("article", "report", "story", "study-guide")
LANGS = ("en", "zh")
MIN_SECTION_WORDS = 40  # below this a section is a sentence or two: not worth a stage of its own
MIN_WORDS = 150  # the smallest piece `write long` takes (shorter: `inkwell write` writes it in one go)
MAX_WORDS = 20000
MAX_SECTIONS = 30
WORDS_PER_SECTION = 250  # what the embedded 135M-270M models write well in one go (docs/longform.md)

# The kind's skeleton: the fixed opening and closing sections, and fallback titles for the middle when the
# model's list is unusable. {topic} is filled in.
SKELETONS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "article": ("Introduction", "Why it matters", "How it works", "Common questions", "Conclusion"),
        "report": ("Summary", "Background", "Findings", "Discussion", "Recommendations"),
        "story": ("Opening", "The problem", "Rising trouble", "The turning point", "Ending"),
        "study-guide": ("Overview", "Key terms", "Main ideas", "Worked example", "Review questions"),
    },
    "zh": {
        "article": ("引言", "为什么重要", "是怎样的", "常见问题", "结语"),
        "report": ("摘要", "背景", "发现", "讨论", "建议"),
        "story": ("开端", "问题出现", "矛盾加深", "转折", "结局"),
        "study-guide": ("概述", "关键概念", "主要内容", "例题", "复习题"),
    },
}


class Section(BaseModel):
    title: str = Field(min_length=1, max_length=160)
    points: list[str] = Field(default_factory=list, max_length=8)
    words: int = Field(ge=MIN_SECTION_WORDS, le=MAX_WORDS)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("points")
    @classmethod
    def _points(cls, value: list[str]) -> list[str]:
        return [p.strip() for p in value if p and p.strip()]


class Outline(BaseModel):
    """plan.json: what stage 2 writes, section by section. Edit it and run `--from plan` to write to it."""

    title: str = Field(min_length=1, max_length=200)
    kind: str
    topic: str = Field(min_length=1)
    lang: str = "en"
    words: int = Field(ge=MIN_WORDS, le=MAX_WORDS)  # the target length of the whole piece
    sections: list[Section] = Field(min_length=1, max_length=MAX_SECTIONS)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"must be one of {', '.join(KINDS)}")
        return value

    @field_validator("lang")
    @classmethod
    def _lang(cls, value: str) -> str:
        if value not in LANGS:
            raise ValueError(f"must be one of {', '.join(LANGS)}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Outline:
        seen: set[str] = set()
        for i, section in enumerate(self.sections):
            key = section.title.casefold()
            if key in seen:
                raise ValueError(f"sections[{i}].title: '{section.title}' appears twice; section titles must differ")
            seen.add(key)
        return self


def section_count(words: int) -> int:
    return max(3, min(MAX_SECTIONS, round(words / WORDS_PER_SECTION)))


def budgets(words: int, count: int) -> list[int]:
    """Split the target over the sections: the opening and closing ones get 70% of a middle one's share."""
    weights = [0.7 if i in (0, count - 1) and count > 2 else 1.0 for i in range(count)]
    shares = [max(MIN_SECTION_WORDS, round(words * w / sum(weights))) for w in weights]
    return shares


def check_request(kind: str, words: int, lang: str) -> None:
    if kind not in KINDS:
        raise InkwellError(f"unknown kind '{kind}'", field="kind", hint=f"use one of {', '.join(KINDS)}")
    if lang not in LANGS:
        raise InkwellError(f"unknown language '{lang}'", field="lang", hint="use en or zh")
    if not MIN_WORDS <= words <= MAX_WORDS:
        raise InkwellError(
            f"--words {words} is outside {MIN_WORDS}-{MAX_WORDS}",
            field="words",
            hint=f"ask for at least {MIN_WORDS} words (shorter pieces: `inkwell write`)",
        )


# ---------------------------------------------------------------- asking the model


def titles_prompt(kind: str, topic: str, count: int, lang: str) -> str:
    if lang == "zh":
        return f"为一篇关于“{topic}”的{_ZH_KIND[kind]}列出{count}个小节标题，每行一个，用数字编号，只写标题，不要解释。"
    return (
        f"List {count} section titles for a {kind.replace('-', ' ')} about {topic}. "
        "One title per line, numbered, a few words each. Titles only, no explanations."
    )


def points_prompt(kind: str, topic: str, title: str, lang: str) -> str:
    if lang == "zh":
        return f"一篇关于“{topic}”的{_ZH_KIND[kind]}中，小节“{title}”应讲的两个要点是什么？每行一个，用短句。"
    return (
        f"In a {kind.replace('-', ' ')} about {topic}, what are the two main points of the section "
        f'"{title}"? One short sentence per line, numbered.'
    )


_BYLINE = re.compile(r"\bby:|\bdr\.|\bauthor\b|\bsection\b|\bchapter\b", re.I)  # a byline or meta, not a title
_GLUED = re.compile(r"[a-z][A-Z]")  # "TheSunEffect EarthMagnitude": words run together, not a title
_META_POINT = re.compile(r"\bsentences?\b|\bparagraphs?\b|\bthis section\b|\bwords?\b", re.I)  # about the text
_ZH_KIND = {"article": "文章", "report": "报告", "story": "故事", "study-guide": "学习指南"}

_NUMBERING = re.compile(
    r"^\s*(?:[-*•]+|#+\s*\d{0,2}[.)]?|\(?\d{1,2}[.)、:：]|[一二三四五六七八九十]+[、.．]|section\s+\d+[:.]?)\s*", re.I
)


def parse_lines(text: str, limit: int, max_words: int = 14) -> list[str]:
    """The model's list as clean lines: numbering, bullets, markdown and quotes removed; overlong, empty and
    repeated lines dropped."""
    out: list[str] = []
    seen: set[str] = set()

    def marked(line: str) -> bool:
        found = _NUMBERING.match(line)
        return bool(found and found.end())

    # an unmarked line ending in a colon introduces the list ("Here are the titles:")
    raws = [r for r in (text or "").splitlines() if r.strip() and (marked(r) or not r.rstrip().endswith((":", "：")))]
    if any(marked(r) for r in raws):
        raws = [r for r in raws if marked(r)]  # a list: its items only, not the chatter around it
    for raw in raws:
        line = _NUMBERING.sub("", raw).strip()
        line = re.sub(r"[*_`#]+", "", line).strip().strip("\"'“”「」").strip()
        line = re.sub(r"^(?:(?:section\s+)?title(?:\s+\w+)?|标题)\s*[:：]\s*", "", line, flags=re.I).rstrip(":：")
        line = re.sub(r"\s*\(\d+(?:\s*words?)?\)$", "", line, flags=re.I)  # "(20)", "(250 words)": a count
        if not line or len(tokens(line)) > max_words or len(tokens(line)) == 0:
            continue
        key = line.casefold()
        if key in seen:
            continue
        seen.add(key)
        out.append(line)
        if len(out) == limit:
            break
    return out


def make_outline(
    kind: str,
    topic: str,
    words: int,
    lang: str,
    ask: Callable[[str, int], str] | None,
    title: str | None = None,
    sections: int | None = None,
    source_points: Callable[[str], list[str]] | None = None,
) -> tuple[Outline, dict]:
    """The outline for a request. `ask(prompt, max_new_tokens)` asks the model (None: the kind's skeleton only);
    `source_points(title)` gives points from the sources. Returns the outline and a note of what was repaired."""
    check_request(kind, words, lang)
    count = sections or section_count(words)
    skeleton = [t.format(topic=topic) for t in SKELETONS[lang][kind]]
    repairs: list[str] = []
    middle: list[str] = []
    if ask is not None and count > 2:
        listed = parse_lines(ask(titles_prompt(kind, topic, count - 2, lang), 24 * count), count + 4, max_words=8)
        fixed = {s.casefold() for s in (skeleton[0], skeleton[-1])}  # the opening and closing come from the skeleton
        middle = [
            t for t in listed if not _BYLINE.search(t) and len(_GLUED.findall(t)) < 2 and t.casefold() not in fixed
        ][: count - 2]
    if len(middle) < count - 2:
        fill = [t for t in skeleton[1:-1] if t.casefold() not in {m.casefold() for m in middle}]
        repairs.append(f"the model gave {len(middle)} of {count - 2} middle titles; filled from the {kind} skeleton")
        middle += fill[: count - 2 - len(middle)]
        n = 2
        while len(middle) < count - 2:  # longer pieces than the skeleton has titles for
            middle.append(f"{skeleton[len(middle) % max(1, len(skeleton) - 2) + 1]} ({n})")
            n += 1
    titles = [skeleton[0], *middle, skeleton[-1]] if count > 2 else skeleton[:count]
    shares = budgets(words, len(titles))
    built = []
    for name, share in zip(titles, shares, strict=True):
        points = source_points(name) if source_points else []
        if not points and ask is not None:
            points = [
                p
                for p in parse_lines(
                    ask(points_prompt(kind, topic, name, lang), 90, list_pattern(2, POINT_LINE[lang])), 2, max_words=30
                )
                if len(tokens(p)) >= 3 and not _META_POINT.search(p)
            ]
        built.append(Section(title=name, points=points, words=share))
    if any(not s.points for s in built):
        repairs.append("sections without points are written from their titles")
    heading = title or (f"{topic}" if lang == "zh" else topic[:1].upper() + topic[1:])
    return Outline(title=heading, kind=kind, topic=topic, lang=lang, words=words, sections=built), {"repairs": repairs}


# A point of the outline as constrained decoding's regular expression (a numbered list of exactly two): asked for
# "the two main points, one per line", SmolLM2 left 18 of 30 sections without a usable point, under the pattern 1
# (6 plans of 5 sections; docs/longform.md). Titles stay free: held to a short line, the model cut its
# titles mid-phrase ("A celebration of the"), worse than the skeleton's.
POINT_LINE = {"en": r"[A-Z][^\n]{15,160}", "zh": r"[^\n]{6,60}"}


def list_pattern(count: int, line: str) -> str:
    """A numbered list of exactly `count` lines ("1. ...\n2. ...\n")."""
    return "".join(f"{i}\\. {line}\\n" for i in range(1, count + 1))


def model_asker(engine: Any, seed: int | None) -> Callable[..., str]:
    """`ask(prompt, max_new_tokens, pattern=None)` for make_outline: greedy, as a chat message to an instruct model,
    or as the start of a numbered list for a base model to continue; decoded under `pattern` (a numbered list)
    where the engine can constrain its output."""
    from inkwell.generate.settings import GenerationSettings

    def ask(prompt: str, max_new: int, pattern: str | None = None) -> str:
        chat = engine.loaded.chat
        message: Any = [{"role": "user", "content": prompt}] if chat else prompt + "\n1."
        grammar = None
        if pattern and engine.capabilities.grammar:
            grammar = {"regex": pattern if chat else " ?" + pattern.split("\\. ", 1)[1]}  # a base model: after "1."
        settings = GenerationSettings(
            max_new_tokens=max_new, temperature=0.0, repetition_penalty=1.2, seed=seed, grammar=grammar
        )
        text = engine.generate([message], settings)[0].text
        return text if chat else "1." + text

    return ask


def load_outline(path: Path) -> Outline:
    """An outline file (plan.json or --outline), validated; a mistake names the file and the field."""
    from inkwell.files import read_json

    data = read_json(path, field="outline", what="outline")
    return outline_from(data, str(path))


def outline_from(data: object, where: str) -> Outline:
    if isinstance(data, dict) and "sections" in data:
        # a hand-written outline may leave out the budgets: share the target (or a default) among the sections
        sections = data.get("sections")
        if isinstance(sections, list) and sections and all(isinstance(s, dict) for s in sections):
            total = data.get("words") if isinstance(data.get("words"), int) else None
            shares = budgets(total or WORDS_PER_SECTION * len(sections), len(sections))
            for section, share in zip(sections, shares, strict=True):
                section.setdefault("words", share)
            data.setdefault("words", max(MIN_WORDS, sum(s["words"] for s in sections if isinstance(s["words"], int))))
        data.setdefault("words", MIN_WORDS)  # no usable sections: the error is about them, not the total
    try:
        return Outline.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"]).replace(".[", "[")
        raise InkwellError(
            f"{where}: {place or 'outline'}: {first['msg']}",
            field=place or "outline",
            hint="fix the outline (sections need a title and words >= "
            f"{MIN_SECTION_WORDS}; kind one of {', '.join(KINDS)})",
        ) from None


def outline_json(outline: Outline) -> str:
    return json.dumps(outline.model_dump(), ensure_ascii=False, indent=2) + "\n"
