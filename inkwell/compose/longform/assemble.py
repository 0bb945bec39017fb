"""Stage 4, assembly: the revised sections as one Markdown piece, and a JSON twin that says where every
section came from (its plan entry, the candidates it was chosen from and their scores, the memory and
sources its prompt held, what the revision changed)."""

from __future__ import annotations

from typing import Any

from inkwell.compose.longform import checks
from inkwell.compose.longform.plan import Outline


def markdown(outline: Outline, revised: list[dict]) -> str:
    """The piece: `# Title`, then each section under `## Heading` (a story's scenes are set apart by a rule
    instead: headings would read as a report's)."""
    out = [f"# {outline.title}\n"]
    for i, section in enumerate(revised):
        if outline.kind == "story":
            if i:
                out.append("* * *\n")
        else:
            out.append(f"## {section['title']}\n")
        out.append(section["text"].strip() + "\n")
    return "\n".join(out)


def provenance(outline: Outline, drafts: list[dict], revised: list[dict], request: dict[str, Any]) -> dict:
    text = "\n\n".join(s["text"] for s in revised)
    sections = []
    for plan, draft, rev in zip(outline.sections, drafts, revised, strict=True):
        sections.append(
            {
                "title": plan.title,
                "points": plan.points,
                "words_budget": plan.words,
                "words": checks.word_count(rev["text"]),
                "text": rev["text"],
                "provenance": {
                    "chosen": draft["chosen"],
                    "edited": bool(draft.get("edited")),
                    "candidates": [
                        {k: c.get(k) for k in ("seed", "words", "finish_reason", "score", "checks")}
                        for c in draft["candidates"]
                    ],
                    "prompt_tokens": draft["prompt_tokens"],
                    "window": draft["window"],
                    "memory": draft["memory"],
                    "sources": draft.get("sources", []),
                    "revision": {"changes": rev["changes"], "unsupported": rev["unsupported"]},
                },
            }
        )
    words = checks.word_count(text)
    return {
        "title": outline.title,
        "kind": outline.kind,
        "topic": outline.topic,
        "lang": outline.lang,
        "words_target": outline.words,
        "words": words,
        "measures": {
            "length_score": checks.length_score(words, outline.words),
            "repeated_4gram_rate": round(checks.repeated_ngram_rate(text), 4),
            "distinct_2": round(checks.distinct_n(text, 2), 4),
        },
        "request": request,
        "sections": sections,
    }
