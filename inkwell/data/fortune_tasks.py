"""Labelled and paired rows for the classify and DPO demos, built from Debian's `fortunes` quotes (BSD licence).

    inkwell data sample fortune-topics --out configs/data/fortune-topics.jsonl
    inkwell data sample fortune-preferences --out configs/data/fortune-preferences.jsonl

  fortune-topics       {"text": quote, "label": topic, "source": "fortunes/<topic>"}            (stage: classify)
  fortune-preferences  {"prompt": "Write a short quote about <topic>.", "chosen": a quote from that topic's
                        file, "rejected": a quote from another topic's file, "source": ...}     (stage: dpo)

Every text is a real quotation from the package; nothing is written by us. The label of a quote is the
file it is filed in by the fortunes maintainers. For DPO the preference is topic adherence: both answers
are real quotes of the same genre and length range, so the pair differs in answering the request
("about food"), not in fluency or style, which a preference built from model outputs could not promise.
Rows come in a seeded order that cycles through the topics, so `--limit N` keeps the classes balanced.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from inkwell.data.fortune_files import read_fortunes

# fortune file -> how the prompt names it. Five files whose subjects barely overlap.
TOPICS = {"computers": "computers", "food": "food", "law": "the law", "love": "love", "science": "science"}
MAX_CHARS = 200  # one short quote: one thought, and a demo that trains in minutes on a CPU
PER_TOPIC = {"topics": 100, "preferences": 40}  # the smallest file (love) has 131 quotes this short
SEED = 0  # fixed: the same rows on every machine with the same package version


def topic_quotes(files: list[Path]) -> dict[str, list[str]]:
    """Short, distinct quotes per topic file, in a seeded shuffled order."""
    quotes: dict[str, list[str]] = {}
    for path in files:
        seen: set[str] = set()
        kept = []
        for entry in read_fortunes(path):
            if len(entry) <= MAX_CHARS and entry not in seen:
                seen.add(entry)
                kept.append(entry)
        random.Random(f"{SEED}:{path.name}").shuffle(kept)
        quotes[path.name] = kept
    return quotes


def _round_robin(per_topic: dict[str, list[dict]]) -> Iterator[dict]:
    lists = list(per_topic.values())
    for index in range(max((len(rows) for rows in lists), default=0)):
        for rows in lists:
            if index < len(rows):
                yield rows[index]


def topic_rows(files: list[Path]) -> Iterator[dict]:
    quotes = topic_quotes(files)
    yield from _round_robin(
        {
            topic: [
                {"text": quote, "label": topic, "source": f"fortunes/{topic}"} for quote in found[: PER_TOPIC["topics"]]
            ]
            for topic, found in quotes.items()
        }
    )


def preference_rows(files: list[Path]) -> Iterator[dict]:
    quotes = topic_quotes(files)
    topics = list(quotes)
    rng = random.Random(SEED)
    per_topic: dict[str, list[dict]] = {}
    for i, topic in enumerate(topics):
        rows = []
        for k, chosen in enumerate(quotes[topic][: PER_TOPIC["preferences"]]):
            other = topics[(i + 1 + k % (len(topics) - 1)) % len(topics)]  # every other topic in turn, never this one
            rejected = rng.choice(quotes[other])
            rows.append(
                {
                    "prompt": f"Write a short quote about {TOPICS.get(topic, topic)}.",
                    "chosen": chosen,
                    "rejected": rejected,
                    "source": f"fortunes/{topic} vs fortunes/{other}",
                }
            )
        per_topic[topic] = rows
    yield from _round_robin(per_topic)
