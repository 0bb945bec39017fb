"""The interactive writer's loop over the store's tree (store/longform.py): every candidate section becomes a
node, every choice, edit and step back is recorded, so a session can be left and resumed, and the feedback
loop can learn from what the writer took and passed over.

`recorded(chooser, data, owner, run_id)` wraps any chooser (the terminal UI of `write long --interactive`,
or a test's script) so that the tree follows the run; the studio's endpoints make the same calls directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inkwell.compose.longform.draft import DraftOptions, draft_section
from inkwell.compose.longform.memory import Memory, Similar
from inkwell.compose.longform.plan import Outline
from inkwell.compose.longform.run import Chooser
from inkwell.store.longform import LongformData

CANDIDATE_META = ("seed", "words", "finish_reason", "score", "checks")


def node_items(record: dict, start: int = 0) -> list[tuple[str, dict]]:
    """A section record's candidates (from `start`) as (text, meta) for the tree; the meta keeps the prompt so
    a choice can become a training row."""
    return [
        (c["text"], {k: c.get(k) for k in CANDIDATE_META} | {"prompt": record.get("prompt")})
        for c in record["candidates"][start:]
    ]


def recorded(chooser: Chooser, data: LongformData, owner: str, run_id: int) -> Chooser:
    def choose(index: int, record: dict, more: Callable[[], dict]) -> tuple[str, Any]:
        run = data.run(owner, run_id)
        chain = run["chain"]
        if len(chain) > index:  # the files were rewound past the tree (a resume after going back): follow them
            data.back(owner, run_id, chain[index - 1]["id"] if index else None)
            chain = chain[:index]
        parent = chain[-1]["id"] if chain else None
        ids = data.add_candidates(owner, run_id, parent_id=parent, section=index, items=node_items(record))

        def more_recorded() -> dict:
            extra = more()
            ids.extend(data.add_candidates(owner, run_id, parent_id=parent, section=index, items=node_items(extra)))
            record["candidates"].extend(extra["candidates"])
            return record

        action, value = chooser(index, record, more_recorded)
        if action == "back":
            target = int(value)
            data.back(owner, run_id, chain[target - 1]["id"] if target > 0 else None)
            return action, value
        taken = ids[value["chosen"]]
        if value.get("edited"):
            value["node_id"] = data.edit(owner, run_id, taken, value["text"])
        else:
            data.choose(owner, run_id, taken)
            value["node_id"] = taken
        return action, value

    return choose


def take(record: dict, chosen: int, edited_text: str | None = None) -> tuple[str, dict]:
    """A chooser's answer: go on with candidate `chosen` (its text, or the writer's edit of it)."""
    record = dict(record)
    record["chosen"] = chosen
    record["text"] = edited_text if edited_text is not None else record["candidates"][chosen]["text"]
    record["edited"] = edited_text is not None
    return "take", record


# ---------------------------------------------------------------- the studio's steps (one call per request)


def next_section(
    engine: Any,
    outline: Outline,
    written: list[str],
    options: DraftOptions,
    similar: Similar | None,
    round_: int = 0,
) -> dict:
    """Candidates for the section after `written` (the texts of the chain so far), with memory rebuilt from
    them: what `write long` does at that point, as one step."""
    memory = Memory()
    for i, text in enumerate(written):
        memory.remember(i, text, similar)
    return draft_section(
        engine, outline, len(written), memory, options, similar, earlier_text="\n\n".join(written), round_=round_
    )


def assemble_texts(outline: Outline, written: list[str], similar: Similar | None) -> dict:
    """The piece so far (revised by rule, no model call) as Markdown, with the revision's changes and the
    measures: the studio's "Assemble"."""
    from inkwell.compose.longform import assemble, checks
    from inkwell.compose.longform.revise import revise
    from inkwell.compose.longform.run import OFF_TOPIC

    sections = outline.model_copy(update={"sections": outline.sections[: len(written)]})
    support = " ".join([outline.topic, outline.title, *(s.title for s in outline.sections)])
    support += " " + " ".join(p for s in outline.sections for p in s.points)
    revised = revise(sections, written, support=support, similar=similar, off_topic=OFF_TOPIC)
    text = "\n\n".join(s["text"] for s in revised)
    words = checks.word_count(text)
    return {
        "markdown": assemble.markdown(sections, revised),
        "sections": revised,
        "complete": len(written) == len(outline.sections),
        "words": words,
        "words_target": outline.words,
        "measures": {
            "length_score": checks.length_score(words, outline.words) if words else 0.0,
            "repeated_4gram_rate": round(checks.repeated_ngram_rate(text), 4),
            "distinct_2": round(checks.distinct_n(text, 2), 4),
        },
    }
