"""Stage 3, the revision: a pass over the drafted sections that a small model cannot be trusted to do by
rewriting, so it is done by rule, and every change is written down (revise.json) so it can be checked:

- clean-up: chat-template tokens and echoed headings removed, a last sentence cut off mid-way dropped;
- drift: with embeddings (English), a sentence with almost nothing to do with the topic and the section
  (cosine below `off_topic`) is removed: a small model's tangents (a personal story in a tides article);
- repetition across sections: a sentence that says again what an earlier sentence said (same normalised
  text, or most of its 4-grams) is removed;
- consistency: numbers (and, with sources, capitalised names) that appear in neither the topic, the plan
  nor the sources are listed as unsupported; with `strict` their sentences are removed;
- transitions: where a section opens with no link to the one before, the model writes a few one-sentence
  bridges and the best one that passes the checks (close to both sides, short, new) is put in front.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from inkwell.compose.longform import checks
from inkwell.compose.longform.memory import Similar, similar_for
from inkwell.compose.longform.plan import Outline
from inkwell.generate.settings import GenerationSettings

DUPLICATE_4GRAMS = 0.6  # a sentence whose 4-grams are mostly in earlier sentences repeats them
_CHAT_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|<(?:start|end)_of_turn>|</?s>|\[/?INST\]")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:%|\b)")
_NAME = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]+(?: [A-Z][a-z]+)*")
_LINKS = (
    "also",
    "another",
    "next",
    "however",
    "then",
    "in addition",
    "moreover",
    "finally",
    "as ",
    "this ",
    "these ",
    "while",
    "beyond",
    "building on",
    "with ",
    "after",
    "turning",
    "by contrast",
    "similarly",
    "in the end",
    "此外",
    "另外",
    "接着",
    "然后",
    "同时",
    "最后",
    "因此",
    "不过",
    "但是",
    "总之",
)


def clean(text: str, title: str) -> tuple[str, list[str]]:
    """Leaked chat tokens, echoed headings and an unfinished last sentence removed; notes say what."""
    notes: list[str] = []
    cleaned = _CHAT_TOKENS.sub("", text)
    if cleaned != text:
        notes.append("removed chat-template tokens")
    lines = cleaned.strip().splitlines()
    while lines and (
        lines[0].lstrip().startswith("#")
        or lines[0].strip().strip("*:：").strip().casefold() == title.casefold()
        or re.match(r"^\s*\**(section|第.{1,3}节)\b", lines[0], re.I)
        and len(checks.tokens(lines[0])) <= 12
    ):
        notes.append(f"removed the opening heading line '{lines.pop(0).strip()[:60]}'")
    body = "\n".join(line.rstrip() for line in lines if not line.lstrip().startswith("#")).strip()
    body = re.sub(r"\n{3,}", "\n\n", body)
    found = checks.sentences(body)
    if len(found) > 1 and not re.search(r"[.!?。！？\"'”’)\]]\s*$", body):
        last = found[-1]
        cut = body.rfind(last)
        if cut > 0:
            body = body[:cut].rstrip()
            notes.append(f"removed an unfinished last sentence '{last[:60]}'")
    return body, notes


def _norm(sentence: str) -> str:
    return " ".join(checks.tokens(sentence))


def revise(
    outline: Outline,
    texts: list[str],
    *,
    support: str = "",
    strict: bool = False,
    check_names: bool = False,
    bridge: Callable[[str, str, str], list[str]] | None = None,
    similar: Similar | None = None,
    off_topic: float | None = None,
) -> list[dict]:
    """The revised sections: [{title, text, changes: [...], unsupported: [...], bridge}]."""
    allowed_numbers = set(_NUMBER.findall(support))
    allowed_names = {n.casefold() for n in _NAME.findall(" " + support)} | {
        w.casefold() for w in re.findall(r"[A-Z][a-z]+", support)
    }
    seen_sentences: list[str] = []
    seen_grams: set[tuple[str, ...]] = set()
    out: list[dict] = []
    for index, (section, text) in enumerate(zip(outline.sections, texts, strict=True)):
        body, changes = clean(text, section.title)
        kept_paragraphs: list[str] = []
        unsupported: list[str] = []
        relevance: dict[str, float] = {}
        if off_topic is not None and similar is not None and not checks.is_chinese(body):
            found = checks.sentences(body)
            if found:
                scores = similar(found, [f"{outline.topic}: {section.title}"])[:, 0]
                relevance = dict(zip(found, map(float, scores), strict=True))
        for paragraph in body.split("\n\n"):
            kept: list[str] = []
            for sentence in checks.sentences(paragraph):
                if relevance.get(sentence, 1.0) < (off_topic or 0.0):
                    changes.append(f"removed an off-topic sentence '{sentence[:60]}'")
                    continue
                norm = _norm(sentence)
                grams = set(checks.ngrams(checks.tokens(sentence), 4))
                if norm and norm in seen_sentences:
                    changes.append(f"removed a repeated sentence '{sentence[:60]}'")
                    continue
                if grams and len(grams & seen_grams) / len(grams) >= DUPLICATE_4GRAMS:
                    changes.append(f"removed a sentence repeating earlier text '{sentence[:60]}'")
                    continue
                bad = [n for n in _NUMBER.findall(sentence) if n not in allowed_numbers]
                if check_names:
                    bad += [n for n in _NAME.findall(sentence) if not set(n.casefold().split()) & allowed_names]
                if bad:
                    unsupported.extend(bad)
                    if strict:
                        changes.append(f"removed a sentence with unsupported {', '.join(bad)}: '{sentence[:60]}'")
                        continue
                kept.append(sentence)
                seen_sentences.append(norm)
                seen_grams |= grams
            if kept:
                kept_paragraphs.append(("" if outline.lang == "zh" else " ").join(kept))
        new_text = "\n\n".join(kept_paragraphs)
        chosen_bridge = None
        if bridge is not None and index > 0 and out and out[-1]["text"] and new_text and not _linked(new_text):
            chosen_bridge = _pick_bridge(bridge, out[-1]["text"], section.title, new_text, similar, seen_grams)
            if chosen_bridge:
                new_text = chosen_bridge + ("" if outline.lang == "zh" else " ") + new_text
                changes.append(f"added a transition '{chosen_bridge[:60]}'")
        out.append(
            {
                "title": section.title,
                "text": new_text,
                "changes": changes,
                "unsupported": unsupported,
                "bridge": chosen_bridge,
            }
        )
    return out


def _linked(text: str) -> bool:
    start = text.lstrip().casefold()[:40]
    return any(start.startswith(link) for link in _LINKS)


def _pick_bridge(bridge, before: str, title: str, after: str, similar: Similar | None, seen) -> str | None:
    """The best proposed bridge: one sentence of 6-30 words, new, and close to both sides."""
    last = checks.sentences(before)[-1]
    first = checks.sentences(after)[0]
    best, best_score = None, 0.0
    for proposal in bridge(last, title, first):
        found = checks.sentences(proposal.strip())
        if not found:
            continue
        sentence = found[0]
        words = checks.word_count(sentence)
        if not 6 <= words <= 30 or checks.junk_share(sentence) > 0.02:
            continue
        grams = set(checks.ngrams(checks.tokens(sentence), 4))
        if grams and len(grams & seen) / len(grams) > 0.3:
            continue
        measure = similar_for(sentence, similar)
        scores = measure([sentence], [last, title + ". " + first])[0]
        score = float(min(scores))
        if score > best_score and score >= 0.2:
            best, best_score = sentence, score
    return best


def model_bridge(engine: Any, lang: str, seed: int | None, candidates: int = 3):
    """Bridges written by the model: a short sentence that leads from one section into the next."""

    def propose(last: str, title: str, first: str) -> list[str]:
        if not engine.loaded.chat:
            return []  # a base model continues text; it does not follow an instruction to link two passages
        last, first = last[-300:], first[:300]  # a sentence, not a paragraph run together
        if lang == "zh":
            ask = (
                f"上一节结尾：“{last}”\n下一节“{title}”开头：“{first}”\n写一句自然的过渡句，连接这两部分。只写这一句。"
            )
        else:
            ask = (
                f'The previous section ends: "{last}"\nThe next section, "{title}", begins: "{first}"\n'
                "Write one short sentence that leads from the first into the second. Only the sentence."
            )
        prompt = [{"role": "user", "content": ask}]
        if engine.count_tokens(prompt) + 48 > int(engine.loaded.context_length):
            return []
        settings = GenerationSettings(
            max_new_tokens=48, temperature=0.7, top_p=0.9, num_return_sequences=candidates, seed=seed, stop=["\n"]
        )
        return [r.text for r in engine.generate([prompt], settings)]

    return propose
