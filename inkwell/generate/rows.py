"""The text side every engine shares, by composition: prompts in (chat template, token ids, context checks),
rows being decoded, text out (detokenising, stop sequences, streaming only what is safe, end of text).

    text = TextRows(loaded, config_eos=[...])   # each backend holds one (torch, ONNX, native)
    rows = text.make_rows(prompts, settings, seeds)
    while text.advance(row, token, now): ...    # per decoded token, whatever computed it

Backends differ only in how they compute the next token; what a user sees (stops, streaming, seeds,
finish reasons) is decided here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from inkwell.errors import InkwellError
from inkwell.generate.grammar import RowGrammar, row_grammar
from inkwell.generate.settings import GenerationSettings

Prompt = str | list[dict]  # plain text (completion) or chat messages [{"role", "content"}]
OnDelta = Callable[[int, str], None]  # (result index, new text) while streaming


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of text or stop sequence) | "length" (max_new_tokens) | "cancelled"
    latency_s: float
    prompt_index: int
    sample_index: int
    seed: int | None
    model: str | None = None  # which model wrote it, when several could have (an ensemble, generate/ensemble.py)
    adapter: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Row:
    """One sequence being decoded (a prompt x one of its return sequences)."""

    out_index: int
    prompt_index: int
    sample_index: int
    prompt_ids: list[int]
    seed: int | None
    generator: object = None
    generated: list[int] = field(default_factory=list)  # the tokens decoded so far (end of text excluded)
    text: str = ""
    emitted: int = 0
    finish_reason: str | None = None
    finished_at: float = 0.0
    # Per row, so rows of different requests can share a continuous batch:
    max_new_tokens: int = 256
    min_new_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    stream: OnDelta | None = None  # on_delta(out_index, text)
    cancelled: Callable[[], bool] | None = None  # asked once per step; True ends the row ("cancelled")
    on_done: Callable[[Row], None] | None = None  # called once when the row finishes
    owner: object = None  # whoever queued the row (the scheduler's job)
    grammar: RowGrammar | None = None  # constrained decoding: the engine masks logits with it (generate/grammar.py)


def row_result(row: Row, started: float) -> GenerationResult:
    """A finished row as the API's result; latency counted from `started` (a perf_counter time)."""
    return GenerationResult(
        text=row.text,
        prompt_tokens=len(row.prompt_ids),
        completion_tokens=len(row.generated),
        finish_reason=row.finish_reason or "length",
        latency_s=round(row.finished_at - started, 4),
        prompt_index=row.prompt_index,
        sample_index=row.sample_index,
        seed=row.seed,
    )


class TextRows:
    """Prompts and text for one loaded model (its tokenizer, chat template, context length, end-of-text ids).
    `config_eos`: end-of-text ids the model's configuration names besides the tokenizer's."""

    def __init__(self, loaded, config_eos: Sequence = ()):
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.eos_ids = self._eos_ids(config_eos)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)

    def with_own_tokenizer(self) -> TextRows:
        """The same prompts side with a private copy of the tokenizer, for another thread: HF fast tokenizers
        must not be borrowed by two threads at once (the scheduler's request threads vs its decode thread)."""
        import copy

        twin = copy.copy(self)
        twin.tokenizer = copy.deepcopy(self.tokenizer)
        return twin

    def _eos_ids(self, config_eos: Sequence) -> set[int]:
        ids: set[int] = set()
        for value in (*config_eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        if not ids:
            raise InkwellError("the tokenizer defines no end-of-text token", field="model")
        return ids

    def advance(self, row: Row, token: int, now: float) -> bool:
        """Take one decoded token for a row: True while the row goes on; otherwise its finish_reason is set
        (cancelled, stop: end of text or a stop sequence, length), its text final and on_done called."""
        if row.cancelled is not None and row.cancelled():
            row.finish_reason = "cancelled"
            row.text = self.decode(row.generated)
        elif token in self.eos_ids:
            row.finish_reason = "stop"
            self.flush(row, row.stream)
        else:
            row.generated.append(token)
            if row.grammar is not None:
                row.grammar.accept(token)
            if (row.stream or row.stop) and self.update_text(row, row.stop, row.stream):
                row.finish_reason = "stop"
            elif row.grammar is not None and row.grammar.finished:  # complete: nothing but the end can follow
                row.finish_reason = "stop"
                self.flush(row, row.stream)
            elif len(row.generated) >= row.max_new_tokens:
                row.finish_reason = "length"
                self.flush(row, row.stream)
            else:
                return True
        row.finished_at = now
        if row.on_done is not None:
            row.on_done(row)
        return False

    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees (chat template applied for message lists)."""
        if isinstance(prompt, str):
            return prompt
        if self.tokenizer.chat_template is None:
            raise InkwellError(
                f"model '{self.loaded.name}' has no chat template, so it cannot take chat messages",
                field="model",
                hint="send a plain text prompt (completion) or use an instruction-tuned model",
            )
        return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)

    def encode(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"]

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.encode(prompt))

    def make_rows(
        self, prompts: Sequence[Prompt], settings: GenerationSettings, seeds=None, torch_generators: bool = False
    ) -> list[Row]:
        """One row per prompt and return sequence. Seeds: per prompt (`seeds`), else `settings.seed`, else a
        recorded random one; sample k of a prompt uses seed + k. `torch_generators`: a seeded torch.Generator
        per sampled row (the torch engine; the numpy paths seed their own)."""
        import random

        if not prompts:
            return []
        rows: list[Row] = []
        context = self.loaded.context_length
        base_seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**31)
        for p_index, prompt in enumerate(prompts):
            ids = self.encode(prompt)
            if not ids:
                raise InkwellError(f"prompt {p_index} is empty", field="prompt")
            if len(ids) + settings.max_new_tokens > context:
                raise InkwellError(
                    f"prompt {p_index} has {len(ids)} tokens and max_new_tokens is {settings.max_new_tokens}: "
                    f"{len(ids) + settings.max_new_tokens} exceeds the model's context of {context} tokens",
                    field="max_new_tokens",
                    hint="shorten the prompt or lower max_new_tokens",
                )
            samples = settings.num_return_sequences
            for s_index in range(samples):
                seed = (seeds[p_index] if seeds and seeds[p_index] is not None else base_seed) + s_index
                generator = None
                if torch_generators and not settings.greedy:
                    import torch

                    generator = torch.Generator(device=self.loaded.device)
                    generator.manual_seed(seed)
                rows.append(
                    Row(
                        out_index=len(rows),
                        prompt_index=p_index,
                        sample_index=s_index,
                        prompt_ids=ids,
                        seed=None if settings.greedy else seed,
                        generator=generator,
                        generated=[],
                        max_new_tokens=settings.max_new_tokens,
                        min_new_tokens=settings.min_new_tokens,
                        stop=list(settings.stop),
                        grammar=self.grammar_for(settings),
                    )
                )
        return rows

    def grammar_for(self, settings: GenerationSettings) -> RowGrammar | None:
        """A fresh matcher for one row under `settings.grammar` (None without one)."""
        if not settings.grammar:
            return None
        return row_grammar(self.loaded, settings.grammar, len(self.tokenizer), self.eos_ids)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def update_text(self, row: Row, stops: list[str], on_delta: OnDelta | None) -> bool:
        """Re-decode the row, cut at a stop sequence, stream what is safe. True when a stop was hit."""
        text = self.decode(row.generated)
        for stop in stops:
            at = text.find(stop, max(0, len(row.text) - len(stop)))
            if at != -1:
                row.text = text[:at]
                self.emit(row, row.text, on_delta)
                return True
        row.text = text
        safe = len(text)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for the next token
            safe = len(text.rstrip("\ufffd"))
        for stop in stops:  # hold back a tail that could be the start of a stop sequence
            for k in range(min(len(stop) - 1, safe), 0, -1):
                if text[:safe].endswith(stop[:k]):
                    safe -= k
                    break
        self.emit(row, text[:safe], on_delta)
        return False

    def emit(self, row: Row, upto: str, on_delta: OnDelta | None) -> None:
        if on_delta and len(upto) > row.emitted:
            on_delta(row.out_index, upto[row.emitted :])
            row.emitted = len(upto)

    def flush(self, row: Row, on_delta: OnDelta | None, final: bool = False) -> None:
        row.text = self.decode(row.generated)
        self.emit(row, row.text, on_delta)
