"""Writing grounded on a knowledge folder (`--kb NAME`): the passages that best match the request are numbered
into the prompt (the best PromptStyle.passages of them, as many as the model's context holds), the model is asked
to cite them like [1], each citation in the text is mapped back to its passage (file, character offsets, heading,
checksum), and the sentences the model left uncited are attributed to the passage they come from
(compose/attribution.py): a small model rarely writes a citation itself.

    grounding = retrieve(KnowledgeBase.open("support"), template, fields)    # before any model loads
    if grounding.escalates(template):           # nothing relevant and the template says what to do then
        text = unknown_reply(template, fields)  # "...I have passed your message on to a colleague": no model call
    job = grounding.apply(engine, job)          # passages in the prompt, within engine.count_tokens' budget
    outcome = write_job(engine, job, annotate=grounding.annotate,          # `citations` (each with `how`),
                        choose=grounding.best_of(4))                       # `support`, `quote`, `grounding`

`annotate` keeps the model's citations (`how: "model"`), inserts `[n]` after each other sentence a passage
supports (`"attributed"`), lists the rest in `support.unsupported`, and for a reply no passage supports offers
the best passage's key sentences as `quote` (Grounding.quote == "replace": they become the text, `"quoted"`).
`best_of(n)` is the `--best-of` chooser that keeps the candidate with the most supported sentences.

When is a passage relevant? Passage.relevance is the cosine of query and passage (MiniLM) for English, and the
share of the query's words the passage holds for Chinese (the embedder is English-only). Calibrated on the
Debian FAQ (benchmarks/bench_knowledge.py, 50 questions per language against 20 off-topic shop questions):
English FAQ questions scored 0.34-0.83 at best, off-topic ones 0.06-0.27, so MIN_COSINE = 0.30 separates them;
Chinese scored 0.25-0.83 against 0.00-0.30, so MIN_COVERAGE = 0.22 keeps every FAQ question and lets 2 of the
20 off-topic ones through (docs/grounding.md).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inkwell.compose.attribution import Attribution, attribute, cited_numbers, key_sentences, quote
from inkwell.compose.bestof import check_best_of
from inkwell.errors import InkwellError
from inkwell.generate.content import ContentResult
from inkwell.generate.jobs import Outcome, TemplateJob
from inkwell.generate.record import GenerationRecord
from inkwell.generate.settings import GenerationSettings
from inkwell.knowledge import KnowledgeBase, Passage
from inkwell.knowledge.chunk import has_cjk
from inkwell.prompts.render import build_prompt
from inkwell.prompts.template import JINJA, ContentTemplate, FieldSpec

TOP_K = 5  # passages retrieved (and judged for relevance); the best PromptStyle.passages of them go into the prompt
MIN_COSINE = 0.30  # best passage's cosine below this: nothing relevant (English; see the module docstring)
MIN_COVERAGE = 0.22  # the same for Chinese queries: share of the query's words found in the best passage
KNOWLEDGE_FIELD = "kb_passages"  # the template field the numbered passages are rendered through
QUOTE_MODES = ("offer", "replace")  # a reply no passage supports: quote offered in `quote`, or the quote replaces it


@dataclass(frozen=True)
class PromptStyle:
    """How the passages are put to the model. Defaults measured with SmolLM2-135M and gemma3-270m on the Debian FAQ
    (benchmarks/bench_knowledge.py, docs/grounding.md): no layout made either write the answer, so the default
    is a short prompt that still holds the answer for most questions."""

    passages: int = 2  # half the time of five; the best two hold the answer for 39 of 50 questions (1: 29, 5: 46)
    example: bool = False  # a worked example of a cited answer: nothing for SmolLM2, a few citations for gemma
    near_question: bool = True  # passages after the instructions, right before the question (restated)
    excerpt: int = 0  # > 0: each passage shown as its key sentences (that many) instead of in full

    def __post_init__(self) -> None:
        if not 1 <= self.passages <= TOP_K:
            raise InkwellError(f"passages must be between 1 and {TOP_K}, got {self.passages}", field="passages")


# The citation rule, after the passages (chat templates and the server's chat)
_RULE = {
    "en": "Use only facts from the numbered passages, and cite the passage of each fact with its number in square "
    "brackets, like [1]. If the passages do not answer it, say that you do not know.",
    "zh": "只使用编号段落中的事实，并在每个事实后用方括号注明段落的编号，例如 [1]。如果段落没有回答这个问题，就说你不知道。",
}
# The one-shot worked example (PromptStyle.example): made-up shop passages, so it cannot leak into a real answer
_EXAMPLE = {
    "en": "An example of an answer that cites its passages:\n"
    "[1] Delivery\nOrders placed before noon ship the same day.\n"
    "[2] Returns\nUnused items can be sent back within 30 days for a full refund.\n"
    "Question: Can I still send back a jumper I bought three weeks ago?\n"
    "Answer: Yes. Unused items can be sent back within 30 days for a full refund [2].",
    "zh": "一个引用段落的回答示例：\n"
    "[1] 发货\n中午之前下的订单当天发货。\n"
    "[2] 退货\n未使用的商品可以在 30 天内退回并全额退款。\n"
    "问题：三周前买的毛衣还能退吗？\n"
    "回答：可以。未使用的商品可以在 30 天内退回并全额退款[2]。",
}
_LABELS = {
    "en": ("Numbered passages from the knowledge folder:", "Question: "),
    "zh": ("知识库中的编号段落：", "问题："),
}
# Added around a template's own prompts. Passages travel as a field value (never as template text), so a
# passage holding `{{ }}` is printed, not executed.
_BEFORE = "{% if kb_passages %}{{ kb_passages }}\n\n{% endif %}"  # passages first, then the template's prompt
_AFTER = "{% if kb_passages %}\n\n{{ kb_passages }}{% endif %}"  # the template's prompt, then passages + question
_RULE_AFTER = "{% if kb_passages %}\n\n" + _RULE["en"] + "{% endif %}"  # near_question=False: the rule at the end


def threshold_for(query: str) -> float:
    return MIN_COVERAGE if has_cjk(query) else MIN_COSINE


@dataclass
class Grounding:
    """What one request was grounded on: the passages (numbered from 1 in the prompt) and whether any was
    relevant enough to write from; how they are put to the model (`style`) and what a reply that no passage
    supports gets (`quote`: "offer" adds the best passage's key sentences as `quote`, "replace" answers with them)."""

    kb: str
    query: str
    passages: list[Passage]
    threshold: float
    best: float  # the best passage's relevance
    dropped: int = 0  # passages left out so the prompt fits the model's context
    escalated: bool = False  # answered with the template's unknown_reply, without the model
    say: Callable[[str], None] | None = field(default=None, repr=False)
    style: PromptStyle = field(default_factory=PromptStyle)
    quote: str = "replace"  # measured: see QUOTE_MODES
    retrieved: int = -1  # passages the search returned (-1: as many as `passages`)

    def __post_init__(self) -> None:
        if self.quote not in QUOTE_MODES:
            raise InkwellError(f"quote must be one of {', '.join(QUOTE_MODES)}, got {self.quote!r}", field="quote")
        if self.retrieved < 0:
            self.retrieved = len(self.passages)

    @property
    def known(self) -> bool:
        return bool(self.passages) and self.best >= self.threshold

    def escalates(self, template: ContentTemplate) -> bool:
        """Nothing relevant was found and the template says what to reply then (its `unknown_reply`)."""
        return not self.known and template.unknown_reply is not None

    def to_json(self) -> dict:
        return {
            "kb": self.kb,
            "query": self.query,
            "known": self.known,
            "escalated": self.escalated,
            "best_relevance": round(self.best, 4),
            "threshold": self.threshold,
            "retrieved": self.retrieved,
            "dropped": self.dropped,
            "passages": [p.to_json() for p in self.passages] if self.known else [],
        }

    # ------------------------------------------------------------ the CLI's write path

    def apply(self, engine, job: TemplateJob) -> TemplateJob:
        """The job with the passages in its template and fields, as many as fit the engine's context."""
        if not self.known:
            self._note(
                f"warning: no passage of knowledge folder '{self.kb}' is relevant (best {self.best:.2f} < "
                f"{self.threshold}); writing without them"
            )
            return job
        template, fields = fit(engine, job.template, job.fields, self, job.shots, job.overrides)
        return dataclasses.replace(job, template=template, fields=fields)

    def annotate(self, item: ContentResult) -> None:
        """Map the citations of one written version to passages, attribute its uncited sentences (into
        item.extra, so the record and the store carry them) and keep the passages out of the record's fields;
        what no passage supports is said (`say`) to the person at the terminal."""
        annotate(item, self)
        for note in support_notes(item):
            self._note(f"warning: {note}")

    def best_of(self, n: int) -> Callable[..., list]:
        """`--best-of N` with `--kb`: the chooser (generate.content's `choose`) that keeps, of each version's N
        candidates, the one with the most sentences a passage supports (ties: the first written)."""
        check_best_of(n)
        return functools.partial(choose_supported, self, n)

    def escalate(self, job: TemplateJob, model: str, store: Any = None) -> Outcome:
        """The template's unknown_reply as the outcome, without a model: logged like any generation."""
        self.escalated = True
        record = escalated_record(job.template, job.fields, self, model=model, source="write")
        if store is not None:
            store.log_record(record)
        self._note(
            f"no passage of knowledge folder '{self.kb}' answers this: replied with the template's unknown_reply"
        )
        return Outcome([record])

    def _note(self, message: str) -> None:
        if self.say is not None:
            self.say(message)


# ---------------------------------------------------------------- retrieval


def open_knowledge(name: str) -> KnowledgeBase:
    """The knowledge folder `name` (InkwellError naming `kb` when there is none)."""
    return KnowledgeBase.open(name)


def knowledge_query(template: ContentTemplate, fields: dict) -> str:
    """What to search for: the template's `knowledge_query` rendered with the fields, else its free-text fields."""
    if template.knowledge_query:
        return JINJA.from_string(template.knowledge_query).render(**fields).strip()
    parts = []
    for name, spec in template.fields.items():
        value = fields.get(name)
        if spec.choices is None and name != KNOWLEDGE_FIELD and isinstance(value, str | list) and value:
            parts.append(", ".join(map(str, value)) if isinstance(value, list) else value)
    return "\n".join(parts).strip()


def retrieve(
    kb: KnowledgeBase, template: ContentTemplate, fields: dict, *, k: int = TOP_K, say: Callable | None = None
) -> Grounding:
    """The passages for one request (fields as resolved by the template)."""
    query = knowledge_query(template, fields)
    if not query:
        raise InkwellError(
            f"nothing to search knowledge folder '{kb.name}' for: template '{template.name}' has no text fields set",
            field="kb",
            hint="fill the template's text fields, or add `knowledge_query:` to the template",
        )
    return search(kb, query, k=k, say=say)


def search(kb: KnowledgeBase, query: str, *, k: int = TOP_K, say: Callable | None = None) -> Grounding:
    """The passages for a query (hybrid search), and whether the best is relevant enough to write from."""
    passages = kb.search(query, k=k, mode="hybrid")
    best = max((p.relevance for p in passages), default=0.0)
    return Grounding(kb.name, query, passages, threshold_for(query), best, say=say)


def ground_write(
    kb: str, job: TemplateJob, say: Callable[[str], None] | None = None, *, quote: str = "replace"
) -> Grounding:
    """`write --kb`: the passages for a checked job (its fields already resolved and moderated)."""
    fields = job.template.resolve_fields(job.fields)
    grounding = dataclasses.replace(retrieve(open_knowledge(kb), job.template, fields, say=say), quote=quote)
    if grounding.known and say is not None:
        shown = min(grounding.style.passages, len(grounding.passages))
        say(
            f"knowledge: {len(grounding.passages)} passages from '{kb}' (best relevance {grounding.best:.2f}), "
            f"the best {shown} in the prompt"
        )
    return grounding


# ---------------------------------------------------------------- prompts


def grounded_template(template: ContentTemplate, style: PromptStyle | None = None) -> ContentTemplate:
    """The template with the passages around its prompts, through one more field, KNOWLEDGE_FIELD: for chat,
    after the request (near_question: the field then holds passages, question and citation rule) or before it
    (the rule after the request); for base models, before the header."""
    style = style or PromptStyle()
    if KNOWLEDGE_FIELD in template.fields:
        if template.fields[KNOWLEDGE_FIELD].description == "knowledge passages (added by --kb)":
            return template  # already grounded
        raise InkwellError(
            f"template '{template.name}' has its own field '{KNOWLEDGE_FIELD}', which --kb needs",
            field="kb",
            hint="rename that field in the template",
        )
    grounded = template.model_copy(deep=True)
    grounded.fields[KNOWLEDGE_FIELD] = FieldSpec(
        type="str", default="", description="knowledge passages (added by --kb)"
    )
    grounded.chat = template.chat + _AFTER if style.near_question else _BEFORE + template.chat + _RULE_AFTER
    grounded.completion.header = _BEFORE + template.completion.header
    return grounded


def passages_text(passages: list[Passage], query: str = "", excerpt: int = 0) -> str:
    """The passages as the model reads them: `[n] heading` then the text (excerpt > 0: only that many key
    sentences for the query), blank lines between."""
    blocks = []
    for number, passage in enumerate(passages, start=1):
        heading = passage.heading.split(" > ")[-1] if passage.heading else ""
        key = key_sentences(passage, query, excerpt) if excerpt else None
        text = key[2] if key is not None else passage.text.strip()
        title = f" {heading}" if heading and not text.startswith(heading) else ""
        blocks.append(f"[{number}]{title}\n{text}")
    return "\n\n".join(blocks)


def knowledge_block(passages: list[Passage], query: str, style: PromptStyle, *, chat: bool = True) -> str:
    """The text of KNOWLEDGE_FIELD: the worked example (style.example), the numbered passages, and for a chat
    prompt with near_question the question and the citation rule after them; in the query's language."""
    lang = "zh" if has_cjk(query) else "en"
    heading, asked = _LABELS[lang]
    parts = [_EXAMPLE[lang]] if style.example else []
    shown = passages_text(passages, query, style.excerpt)
    parts.append(f"{heading}\n\n{shown}" if chat else shown)
    if chat and style.near_question:
        parts += [f"{asked}{query}", _RULE[lang]]
    return "\n\n".join(parts)


def fit(
    engine, template: ContentTemplate, fields: dict, grounding: Grounding, shots=None, overrides: dict | None = None
) -> tuple[ContentTemplate, dict]:
    """The grounded template and fields with as many passages (best first, at most style.passages) as fit the
    context left after max_new_tokens. Passages go before few-shot examples: a shot is dropped only when one
    passage is left."""
    style = grounding.style
    grounded = grounded_template(template, style)
    chat = engine.loaded.chat
    max_new = GenerationSettings.build(template.decoding, overrides).max_new_tokens
    budget = engine.loaded.context_length - max_new
    passages = list(grounding.passages[: style.passages])
    wanted = len(passages)
    while passages:
        values = {**fields, KNOWLEDGE_FIELD: knowledge_block(passages, grounding.query, style, chat=chat)}
        try:
            rendered = build_prompt(
                grounded, values, chat=chat, shots=shots, count_tokens=engine.count_tokens, budget=budget
            )
        except InkwellError:
            rendered = None
        if rendered is not None and (not rendered.warnings or len(passages) == 1):
            break
        passages.pop()
    if not passages:
        raise InkwellError(
            f"not even one passage of knowledge folder '{grounding.kb}' fits the model's context "
            f"({engine.loaded.context_length} tokens, {max_new} kept for the reply)",
            field="kb",
            hint="lower --max-new-tokens, shorten the input, or use a model with a longer context",
        )
    grounding.dropped = wanted - len(passages)
    if grounding.dropped:
        grounding._note(f"note: {grounding.dropped} of {wanted} passages left out to fit the context")
    grounding.passages = passages
    return grounded, {**fields, KNOWLEDGE_FIELD: knowledge_block(passages, grounding.query, style, chat=chat)}


def ground_messages(messages: list[dict], grounding: Grounding, fits: Callable[[list[dict]], bool]) -> list[dict]:
    """Chat messages with the passages (at most style.passages, as many as `fits` allows: it says whether a
    prompt leaves room for the reply) before the last user message's text and the citation rule after it."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last is None or not grounding.known:
        return messages
    style = dataclasses.replace(grounding.style, near_question=False)  # the user's message is the question
    lang = "zh" if has_cjk(grounding.query) else "en"
    passages = list(grounding.passages[: style.passages])
    wanted = len(passages)
    while passages:
        block = knowledge_block(passages, grounding.query, style)
        text = f"{block}\n\n{messages[last]['content']}\n\n{_RULE[lang]}"
        grounded = [*messages[:last], {**messages[last], "content": text}, *messages[last + 1 :]]
        if fits(grounded):
            grounding.dropped = wanted - len(passages)
            grounding.passages = passages
            return grounded
        passages.pop()
    grounding.dropped, grounding.passages = wanted, []
    return messages


# ---------------------------------------------------------------- citations


def citations(text: str, passages: list[Passage]) -> tuple[list[dict], list[int]]:
    """The passages the text cites, in order of first citation: [{number, source, start, end, heading,
    checksum, chunk_id, text}], and the numbers cited that name no passage."""
    found: list[dict] = []
    invalid: list[int] = []
    seen: set[int] = set()
    for number in cited_numbers(text):
        if number in seen:
            continue
        seen.add(number)
        if 1 <= number <= len(passages):
            p = passages[number - 1]
            found.append(
                {
                    "number": number,
                    "source": p.source,
                    "start": p.start,
                    "end": p.end,
                    "heading": p.heading,
                    "checksum": p.checksum,
                    "chunk_id": p.chunk_id,
                    "text": p.text,
                }
            )
        else:
            invalid.append(number)
    return found, invalid


def annotate(item: ContentResult, grounding: Grounding) -> None:
    """One version's citations, support and grounding into item.extra; the passages out of the fields it records.

    A text reply's uncited sentences are attributed to passages ([n] inserted into item.text; compose/attribution.py);
    each citation says `how` it came: "model" (the model wrote it), "attributed" or "quoted". When no sentence is
    supported, the best passage's key sentences are offered as `quote`, or (grounding.quote == "replace") become
    the text, the model's own kept as `model_text`."""
    passages = grounding.passages if grounding.known else []
    extra: dict[str, Any] = {}
    if passages and item.data is None:  # a structured reply's JSON is left as it is
        found = attribute(item.text, passages, grounding.query, embed=_embed)
        extra["support"] = found.to_json()
        offered = quote(passages, grounding.query) if not found.supported else None
        if offered is not None:
            extra["quote"] = offered.to_json()
            if grounding.quote == "replace":
                extra["model_text"] = item.text
                found = Attribution(offered.text)
        written = set(cited_numbers(item.text))
        item.text = found.text
    else:
        written = set(cited_numbers(item.text))
    cited, invalid = citations(item.text, passages)
    for c in cited:
        c["how"] = "model" if c["number"] in written else ("quoted" if "model_text" in extra else "attributed")
    if invalid:
        item.warnings.append(
            f"the text cites {', '.join(f'[{n}]' for n in invalid)}, but only {len(passages)} passages "
            "were given: those citations point nowhere"
        )
    item.extra = {**item.extra, "citations": cited, **extra, "grounding": grounding.to_json()}
    fields = {k: v for k, v in item.rendered.fields.items() if k != KNOWLEDGE_FIELD}
    item.rendered = dataclasses.replace(item.rendered, fields=fields)


def _embed(texts):
    """MiniLM (loaded on first use: attribution asks only for English sentences that share words with a passage)."""
    from inkwell.models.embedder import embed

    return embed(texts)


def support_notes(item: ContentResult) -> list[str]:
    """What the person at the terminal is told about a version's unsupported sentences and its quote."""
    support = item.extra.get("support")
    if support is None:
        return []
    out = []
    if support["unsupported"]:
        listed = "; ".join(repr(s["text"][:80]) for s in support["unsupported"][:3])
        out.append(
            f"{len(support['unsupported'])} of {support['checked']} sentences are found in no passage: {listed} "
            "(--json: support.unsupported)"
        )
    offered = item.extra.get("quote")
    if offered is not None and "model_text" not in item.extra:
        out.append(f"no passage supports the reply; passage [1] says: {offered['text']} (--quote answers with it)")
    return out


# ---------------------------------------------------------------- best of n


def choose_supported(grounding: Grounding, n: int, engine, template, rendered, candidates: list) -> list:
    """generate.content's `choose` for grounded writing: of `len(candidates)` candidates (n per version), the
    `len(candidates) // n` with the most sentences a passage supports (the model's citations and the attributed
    ones; ties: the first written), best first. Each kept one records every candidate's count in
    `extra["best_of"]`. Nothing is changed in the texts: `annotate` adds the citations to the kept ones."""
    del engine, template, rendered  # the chooser contract's arguments: ranking needs only the texts
    passages = grounding.passages if grounding.known else []
    counts = [
        len(attribute(c.text, passages, grounding.query, embed=_embed).supported) if passages else 0 for c in candidates
    ]
    keep = max(1, len(candidates) // n)
    ranked = sorted(range(len(candidates)), key=lambda i: (-counts[i], i))[:keep]
    listing = [{"index": i, "supported": count} for i, count in enumerate(counts)]
    for rank, index in enumerate(ranked, start=1):
        candidates[index].extra["best_of"] = {
            "n": n,
            "by": "supported sentences",
            "rank": rank,
            "index": index,
            "supported": counts[index],
            "candidates": listing,
        }
    return [candidates[i] for i in ranked]


# ---------------------------------------------------------------- nothing relevant: escalate


def unknown_reply(template: ContentTemplate, fields: dict) -> str | None:
    """The template's reply for when no passage is relevant, rendered with the fields (None: it has none)."""
    if template.unknown_reply is None:
        return None
    values = template.resolve_fields({k: v for k, v in fields.items() if k != KNOWLEDGE_FIELD})
    return JINJA.from_string(template.unknown_reply).render(**values).strip()


def escalated_record(
    template: ContentTemplate, fields: dict, grounding: Grounding, *, model: str, source: str, **more: Any
) -> GenerationRecord:
    """The record of a reply given without the model: its text is the template's unknown_reply, no tokens."""
    grounding.escalated = True
    text = unknown_reply(template, fields)
    if text is None:
        raise InkwellError(f"template '{template.name}' has no unknown_reply", field="kb")
    resolved = template.resolve_fields({k: v for k, v in fields.items() if k != KNOWLEDGE_FIELD})
    return GenerationRecord(
        text=text,
        model=model,
        adapter=None,
        template=template.name,
        fields=resolved,
        settings={},
        prompt="",  # no model saw anything
        prompt_tokens=0,
        completion_tokens=0,
        latency_s=0.0,
        finish_reason="escalated",
        source=source,
        extra={"citations": [], "grounding": grounding.to_json()},
        **more,
    )


# ---------------------------------------------------------------- batch: one grounding per row


class RowGrounding:
    """`batch --kb`: each row retrieves its own passages (after moderation screened its fields); rows with
    nothing relevant get the template's unknown_reply without the model (or are written without passages)."""

    def __init__(self, kb: str, job: TemplateJob, say: Callable[[str], None] | None = None):
        self.knowledge = open_knowledge(kb)  # an unknown folder fails here, before a model loads
        self.job = job
        self.template = grounded_template(job.template, PromptStyle())
        self.say = say
        self.engine: Any = None
        self.rows: dict[str, Grounding] = {}

    def on(self, engine) -> RowGrounding:
        """Bound to the engine whose context the passages must fit."""
        self.engine = engine
        return self

    def hooks(self, base: dict) -> dict:
        """run_batch's hooks: grounding after `base`'s screen_input (moderation), the fixed reply, citations."""
        screen = base.get("screen_input")

        def screen_input(row) -> dict:
            return self._ground(row, screen(row) if screen is not None else dict(row.fields or {}))

        return {**base, "screen_input": screen_input, "fixed_reply": self._fixed, "annotate": self._annotate}

    def _ground(self, row, fields: dict) -> dict:
        resolved = self.job.template.resolve_fields(fields)
        grounding = retrieve(self.knowledge, self.job.template, resolved)
        self.rows[row.id] = grounding
        if not grounding.known:
            return fields
        _, grounded = fit(self.engine, self.job.template, fields, grounding, self.job.shots, self.job.overrides)
        return grounded

    def _fixed(self, row) -> str | None:
        grounding = self.rows.get(row.id)
        if grounding is None or not grounding.escalates(self.job.template):
            return None
        grounding.escalated = True
        return unknown_reply(self.job.template, row.fields or {})

    def _annotate(self, row, item: ContentResult) -> None:
        grounding = self.rows.get(row.id)
        if grounding is not None:
            annotate(item, grounding)
