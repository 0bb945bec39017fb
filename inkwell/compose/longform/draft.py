"""Stage 2, the draft: one section at a time, each from a prompt that holds the outline, the rolling summary
(short-term memory), the most relevant earlier passages (long-term memory) and, with --sources, the best
source passages, all sized to the model's window with room left to write.

Several candidates are sampled per section and reranked by model-free checks (Re3/DOC reranking, without
their large models): coverage of the section's points, repetition of what earlier sections said, length
against the section's budget, degenerate text; optionally the model's own likelihood. A candidate that ends
well short of its budget is continued (small models stop early).

An instruct model gets chat messages; a base model (Gemma-3-270M) gets the document so far, which is what
it continues well: `# Title`, earlier sections as their summaries, then `## This section`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from inkwell.compose.longform import checks
from inkwell.compose.longform.memory import Memory, Passage, Similar, fit, similar_for
from inkwell.compose.longform.plan import Outline
from inkwell.errors import InkwellError
from inkwell.generate.settings import GenerationSettings

DEFAULT_WINDOW = 1536  # prompt tokens at most: small models lose the thread in longer prompts (docs/longform.md)
MIN_ROOM = 64  # tokens the window must leave for writing, at the least
TOKENS_PER_WORD = {"en": 1.5, "zh": 1.3}  # SmolLM2/Gemma-3 tokenizers on prose (a Han character is a "word")
STOP = ["\n# ", "\n## "]  # a section ends where the model starts the next heading


@dataclass(frozen=True)
class DraftOptions:
    candidates: int = 3  # sampled per section; the reranker keeps one
    temperature: float = 0.7  # 0.8 and up: the 135M model wanders off the topic within a paragraph
    top_p: float = 0.9
    repetition_penalty: float = 1.15
    window: int | None = None  # prompt token budget (default: DEFAULT_WINDOW, less on a short-context model)
    recall: int = 3  # earlier passages recalled into each prompt
    summaries: int = 8  # most recent section summaries in each prompt
    extend: int = 1  # continuation rounds for a candidate below EXTEND_BELOW of its budget
    likelihood: bool = False  # add the model's mean log-probability to the rerank (an extra forward pass each)
    seed: int | None = 0  # None: a fresh draw each run (no resumable identity)

    @classmethod
    def from_decoding(cls, decoding: dict | None, **values) -> DraftOptions:
        """The command's decoding flags (temperature, top_p, repetition_penalty, seed) over these defaults; a
        flag that means nothing here (lengths come from the plan's word budgets) is an error naming it."""
        decoding = dict(decoding or {})
        for name in decoding:
            if name not in ("temperature", "top_p", "repetition_penalty", "seed"):
                raise InkwellError(
                    f"--{name.replace('_', '-')} does not apply to long-form writing",
                    field=name,
                    hint="lengths come from --words and the plan's budgets; use --temperature, --top-p, "
                    "--repetition-penalty or --seed",
                )
        return cls(**decoding, **{k: v for k, v in values.items() if v is not None})

    def check(self) -> None:
        if not 1 <= self.candidates <= 16:
            raise InkwellError("--candidates must be between 1 and 16", field="candidates")
        if self.window is not None and self.window < 256:
            raise InkwellError("--window must be at least 256 tokens", field="window")


EXTEND_BELOW = 0.65
# sum 1; junk and likelihood adjust. On-topic weighs as much as the plan's points: drift is what a small
# model does most (a tides article wandering into a teacher's life story), and points are often missing.
WEIGHTS = {"coverage": 0.2, "topic": 0.25, "length": 0.3, "fresh": 0.15, "varied": 0.1}


def new_tokens(words: int, lang: str) -> int:
    return math.ceil(words * TOKENS_PER_WORD[lang] * 1.25)


def window_for(engine: Any, options: DraftOptions, max_new: int) -> int:
    """Prompt tokens this section may use: the configured window, within the context left after writing."""
    context = int(engine.loaded.context_length)
    room = context - max_new - 8
    if room < MIN_ROOM:
        raise InkwellError(
            f"the model's context ({context} tokens) leaves no room for a section of {max_new} new tokens",
            field="words",
            hint="ask for fewer words per section (more sections), or use a model with a longer context",
        )
    return min(options.window or DEFAULT_WINDOW, room)


# ---------------------------------------------------------------- prompts


def chat_prompt(
    outline: Outline,
    index: int,
    summaries: list[str],
    passages: list[Passage],
    notes: list[str],
    compact: bool = False,
) -> list:
    """`compact`: only the sections next to this one in the outline (the last resort of a small window)."""
    section = outline.sections[index]
    zh = outline.lang == "zh"
    near = range(max(0, index - 1), min(len(outline.sections), index + 2)) if compact else range(len(outline.sections))
    lines = [f"{i + 1}. {outline.sections[i].title}{'  <- now' if i == index else ''}" for i in near]
    parts = [("题目：" if zh else "Topic: ") + outline.topic, ("提纲：\n" if zh else "Outline:\n") + "\n".join(lines)]
    if summaries:
        parts.append(("前文概要：\n" if zh else "Written so far (summary):\n") + "\n".join(summaries))
    if passages:
        earlier = "\n".join(f"- {p.text}" for p in sorted(passages, key=lambda p: p.section))
        parts.append(("前文相关段落：\n" if zh else "Earlier passages that matter here:\n") + earlier)
    if notes:
        parts.append(("资料：\n" if zh else "Sources:\n") + "\n".join(f"[{i + 1}] {n}" for i, n in enumerate(notes)))
    points = "; ".join(section.points)
    if zh:
        ask = f"现在写第{index + 1}节“{section.title}”，约{section.words}字。"
        ask += f"要点：{points}。" if points else ""
        ask += "只写这一节的正文，分段，不要标题，不要重复前文。"
        system = f"你用清楚的中文写{_ZH[outline.kind]}。"
    else:
        ask = f'Now write section {index + 1}, "{section.title}", in about {section.words} words.'
        ask += f" Cover: {points}." if points else ""
        ask += " Write only this section's text, in paragraphs, with no heading. Do not repeat earlier sections."
        system = f"You write clear, well-organised {outline.kind.replace('-', ' ')}s in English."
    parts.append(ask)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


_ZH = {"article": "文章", "report": "报告", "story": "故事", "study-guide": "学习指南"}


def document_prompt(
    outline: Outline,
    index: int,
    summaries: list[str],
    passages: list[Passage],
    notes: list[str],
    compact: bool = False,
) -> str:
    """For a base model: the document so far, compressed (earlier sections as their summaries, with recalled
    passages under the section they came from), ending at this section's heading."""
    joiner = "" if outline.lang == "zh" else " "
    first = index - len(summaries)  # summaries cover sections first..index-1
    recalled: dict[int, list[str]] = {}
    for p in passages:
        recalled.setdefault(p.section, []).append(p.text)
    out = [f"# {outline.title}\n"]
    if notes:
        out.append(("资料：\n" if outline.lang == "zh" else "Notes:\n") + "\n".join(f"- {n}" for n in notes) + "\n")
    for i in range(index):
        body = recalled.get(i, [])
        if first <= i:
            body = [summaries[i - first], *body]
        if body:
            out.append(f"## {outline.sections[i].title}\n\n{joiner.join(body)}\n")
    out.append(f"## {outline.sections[index].title}\n\n")
    return "\n".join(out)


# ---------------------------------------------------------------- one section


def draft_section(
    engine: Any,
    outline: Outline,
    index: int,
    memory: Memory,
    options: DraftOptions,
    similar: Similar | None,
    sources: Callable[[str], list[dict]] | None = None,
    earlier_text: str = "",
    round_: int = 0,
) -> dict:
    """Write section `index`: candidates, their scores, the chosen one, and what the prompt held."""
    section = outline.sections[index]
    max_new = new_tokens(section.words, outline.lang)
    budget = window_for(engine, options, max_new)
    query = " ".join([section.title, *section.points])
    found = sources(query) if sources else []
    notes = [f["text"] for f in found]
    recalled = memory.recall(query, options.recall, similar, skip_sections={index - 1})
    summaries = memory.summaries[-options.summaries :] if options.summaries else []
    make = chat_prompt if engine.loaded.chat else document_prompt

    def build(kept_summaries: list[str], kept_passages: list[Passage]):
        return make(outline, index, kept_summaries, kept_passages, notes)

    prompt: Any
    prompt, kept_summaries, kept_passages = fit(build, summaries, recalled, engine.count_tokens, budget)
    used = engine.count_tokens(prompt)
    if used > budget:  # even without memory: the outline shrinks to this section's neighbours
        prompt, kept_summaries, kept_passages = make(outline, index, [], [], notes, compact=True), [], []
        used = engine.count_tokens(prompt)
    if used > budget:
        raise InkwellError(
            f"section {index + 1}'s prompt needs {used} tokens, more than the window of {budget}",
            field="window",
            hint="raise --window, shorten the topic or outline, or use a model with a longer context",
        )
    seed = None if options.seed is None else options.seed + 1009 * index + 7919 * round_
    settings = GenerationSettings(
        max_new_tokens=max_new,
        temperature=options.temperature,
        top_p=options.top_p,
        repetition_penalty=options.repetition_penalty,
        num_return_sequences=options.candidates,
        stop=list(STOP),
        seed=seed,
    )
    results = engine.generate([prompt], settings)
    texts = [r.text for r in results]
    if options.extend:
        texts = _extend(engine, prompt, texts, results, section.words, outline.lang, options, settings)
    candidates = [
        {"text": text, "seed": r.seed, "finish_reason": r.finish_reason, "words": checks.word_count(text)}
        for text, r in zip(texts, results, strict=True)
    ]
    score_candidates(
        candidates,
        section.points or [section.title],
        section.words,
        earlier_text,
        similar,
        topic=f"{outline.topic}: {section.title}",
    )
    if options.likelihood and engine.capabilities.scoring:
        add_likelihood(engine, prompt, candidates)
    chosen = max(range(len(candidates)), key=lambda i: candidates[i]["score"])
    return {
        "index": index,
        "title": section.title,
        "words_budget": section.words,
        "prompt_tokens": used,
        "window": budget,
        "max_new_tokens": max_new,
        "memory": {
            "summaries": kept_summaries,
            "passages": [{"section": p.section, "text": p.text} for p in kept_passages],
        },
        "sources": found,
        "candidates": candidates,
        "chosen": chosen,
        "text": candidates[chosen]["text"],
        "prompt": prompt,
    }


def _extend(engine, prompt, texts, results, budget_words, lang, options, settings) -> list[str]:
    """Continue candidates that stopped well short of their budget (one batched call per round)."""
    if not engine.capabilities.local:
        return texts
    rendered = engine.render(prompt)
    texts = list(texts)
    for round_ in range(options.extend):
        short = [
            i
            for i, t in enumerate(texts)
            if checks.word_count(t) < EXTEND_BELOW * budget_words and t.strip() and results[i].finish_reason == "stop"
        ]
        if not short:
            break
        joiner = "\n\n"
        prompts = [rendered + texts[i].rstrip() + joiner for i in short]
        remaining = max(16, new_tokens(budget_words - min(checks.word_count(texts[i]) for i in short), lang))
        # what the context has left after the longest prompt (each prompt now holds its candidate's text)
        remaining = min(remaining, int(engine.loaded.context_length) - max(map(engine.count_tokens, prompts)) - 8)
        if remaining < 16:
            break
        more = engine.generate(
            prompts,
            replace(
                settings,
                num_return_sequences=1,
                max_new_tokens=remaining,
                seed=None if settings.seed is None else settings.seed + 31 * (round_ + 1),
            ),
        )
        for i, r in zip(short, more, strict=True):
            if r.text.strip():
                texts[i] = texts[i].rstrip() + joiner + r.text.strip()
    return texts


def score_candidates(
    candidates: list[dict],
    points: Sequence[str],
    budget: int,
    earlier: str,
    similar: Similar | None,
    topic: str = "",
) -> None:
    """Give each candidate its check scores (0-1) and their weighted sum `score` (higher is better)."""
    for c in candidates:
        text = c["text"]
        measure = similar_for(text, similar) if similar is not None else None
        parts = {
            "coverage": checks.coverage(text, points, measure),
            "topic": on_topic(text, topic, similar) if topic else 1.0,
            "length": checks.length_score(checks.word_count(text), budget) / 100,
            "fresh": 1 - checks.overlap_with(text, earlier) if earlier else 1.0,
            "varied": 1 - checks.repeated_ngram_rate(text),
        }
        junk = checks.junk_share(text)
        c["checks"] = {k: round(v, 4) for k, v in parts.items()} | {"junk": round(junk, 4)}
        c["score"] = round(sum(WEIGHTS[k] * v for k, v in parts.items()) - 2 * junk, 4)


def add_likelihood(engine: Any, prompt, candidates: list[dict]) -> None:
    """Mean log-probability of each candidate after the prompt, rank-normalised to 0-1 and added at weight 0.1."""
    import torch

    prompt_ids = engine.encode(prompt)
    tokenizer = engine.loaded.tokenizer
    means = []
    for c in candidates:
        written = tokenizer.encode(c["text"], add_special_tokens=False)
        ids = (prompt_ids + written)[-int(engine.loaded.context_length) :]
        start = max(1, len(ids) - len(written))
        logits = engine.window_logits(ids)
        logprobs = torch.log_softmax(logits[start - 1 : -1].float(), dim=-1)
        target = torch.tensor(ids[start:])
        means.append(float(logprobs.gather(1, target[:, None]).mean()) if len(target) else -99.0)
    order = sorted(range(len(means)), key=lambda i: means[i])
    for rank, i in enumerate(order):
        share = rank / max(1, len(order) - 1)
        candidates[i]["checks"]["likelihood"] = round(means[i], 4)
        candidates[i]["score"] = round(candidates[i]["score"] + 0.1 * share, 4)


ON_TOPIC = {"embedding": 0.2, "lexical": 0.05}  # a sentence below this similarity to the topic is off it


def on_topic(text: str, topic: str, similar: Similar | None) -> float:
    """Share of the text's words in sentences that are about the topic (the section's title and the piece's
    topic): a candidate that drifts into another subject half-way scores about one half."""
    found = checks.sentences(text)
    if not found:
        return 0.0
    measure = similar_for(text + topic, similar)
    threshold = ON_TOPIC["embedding"] if measure is similar else ON_TOPIC["lexical"]
    scores = measure(found, [topic])[:, 0]
    sizes = [checks.word_count(s) for s in found]
    return sum(n for n, score in zip(sizes, scores, strict=True) if score >= threshold) / max(1, sum(sizes))
