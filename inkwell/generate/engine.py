"""The generation engine: prompts + settings -> results, with optional streaming.

One API for the CLI, batch jobs, evaluation and the server. The fast path is a lean decode loop that calls
the model directly with a DynamicCache (no `generate` wrapper), run as step-level continuous batching
(`inkwell.generate.continuous`): prompts, shortest first, are prefilled in chunks under a token budget per
step, rows join the decoding batch as places free up and leave it as soon as they finish. Logits processing
reuses transformers' warpers. Beam search and adapters that rewrite attention inputs (prefix / prompt
tuning) go through `model.generate` instead.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from inkwell.errors import InkwellError
from inkwell.generate.continuous import DEFAULT_STEP_TOKENS, ContinuousBatch
from inkwell.generate.settings import GenerationSettings

Prompt = str | list[dict]  # plain text (completion) or chat messages [{"role", "content"}]
OnDelta = Callable[[int, str], None]  # (result index, new text) while streaming

DEFAULT_BATCH_SIZE = 16


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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Row:
    """One sequence being decoded (a prompt x one of its return sequences)."""

    out_index: int
    prompt_index: int
    sample_index: int
    prompt_ids: list[int]
    seed: int | None
    generator: object = None
    generated: list | None = None
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
    on_done: Callable[["_Row"], None] | None = None  # called once when the row finishes
    owner: object = None  # whoever queued the row (the scheduler's job)


def row_result(row: _Row, started: float) -> GenerationResult:
    """A finished row as the API's result; latency counted from `started` (a perf_counter time)."""
    return GenerationResult(text=row.text, prompt_tokens=len(row.prompt_ids), completion_tokens=len(row.generated or []),
                            finish_reason=row.finish_reason or "length", latency_s=round(row.finished_at - started, 4),
                            prompt_index=row.prompt_index, sample_index=row.sample_index, seed=row.seed)


class Engine:
    """Wraps a LoadedModel. `generate()` is the whole API; everything else is plumbing."""

    def __init__(self, loaded, batch_size: int = DEFAULT_BATCH_SIZE, step_tokens: int = DEFAULT_STEP_TOKENS):
        if batch_size < 1:
            raise InkwellError(f"invalid batch size {batch_size}", field="batch_size", hint="use a whole number >= 1")
        if step_tokens < 1:
            raise InkwellError(f"invalid step token budget {step_tokens}", field="step_tokens",
                               hint=f"use a whole number >= 1 (default {DEFAULT_STEP_TOKENS})")
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.batch_size = batch_size  # most rows decoding at once
        self.step_tokens = step_tokens  # tokens one step may process: running rows + a chunk of prompts
        self.eos_ids = self._eos_ids()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)

    # ------------------------------------------------------------ prompts

    def _config_eos(self) -> list:
        """End-of-text ids the model's configuration names (besides the tokenizer's)."""
        return [getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)]

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for value in (*self._config_eos(), self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        if not ids:
            raise InkwellError("the tokenizer defines no end-of-text token", field="model")
        return ids

    def _advance(self, row: _Row, token: int, now: float) -> bool:
        """Take one decoded token for a row: True while the row goes on; otherwise its finish_reason is set
        (cancelled, stop: end of text or a stop sequence, length), its text final and on_done called."""
        if row.cancelled is not None and row.cancelled():
            row.finish_reason = "cancelled"
            row.text = self._decode(row.generated)
        elif token in self.eos_ids:
            row.finish_reason = "stop"
            self._flush(row, row.stream)
        else:
            row.generated.append(token)
            if (row.stream or row.stop) and self._update_text(row, row.stop, row.stream):
                row.finish_reason = "stop"
            elif len(row.generated) >= row.max_new_tokens:
                row.finish_reason = "length"
                self._flush(row, row.stream)
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

    # ------------------------------------------------------------ the API

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings | None = None,
        on_delta: OnDelta | None = None,
        should_stop: Callable[[int], bool] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[GenerationResult]:
        """Generate for every prompt; returns results in order prompt 0 sample 0, prompt 0 sample 1, ...

        `on_delta(result_index, text)` receives text as it is produced (never part of a stop sequence).
        `should_stop(result_index)` is asked once per decode step (fast path only); True ends that row with
        finish_reason "cancelled" (the server uses it when a client disconnects). `seeds` gives each prompt
        its own seed (None: `settings.seed`), so requests with different seeds can share one batch."""
        settings = settings or GenerationSettings()
        settings.validate()
        started = time.perf_counter()
        rows = self._make_rows(prompts, settings, seeds)
        use_fast = self.loaded.fast_path and settings.num_beams == 1
        if use_fast:
            batch = ContinuousBatch(self, settings, max_rows=self.batch_size, step_tokens=self.step_tokens)
            for row in rows:
                row.stream = on_delta
                if should_stop is not None:
                    row.cancelled = lambda index=row.out_index: should_stop(index)
            batch.add(sorted(rows, key=lambda r: len(r.prompt_ids)))  # similar lengths share lanes: little padding
            while not batch.idle:
                batch.step()
        else:
            for row_group in self._hf_groups(rows, settings):
                self._hf_generate(row_group, settings, on_delta)
        return [row_result(row, started) for row in rows]

    def _make_rows(self, prompts: Sequence[Prompt], settings: GenerationSettings, seeds=None) -> list[_Row]:
        import random

        import torch

        if not prompts:
            return []
        rows: list[_Row] = []
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
                if not settings.greedy:
                    generator = torch.Generator(device=self.loaded.device)
                    generator.manual_seed(seed)
                rows.append(
                    _Row(
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
                    )
                )
        return rows

    # ------------------------------------------------------------ the fast path (see inkwell.generate.continuous)

    def _warpers(self, settings: GenerationSettings):
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            NoRepeatNGramLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        processors = LogitsProcessorList()
        if settings.no_repeat_ngram_size > 0:
            processors.append(NoRepeatNGramLogitsProcessor(settings.no_repeat_ngram_size))
        if not settings.greedy:
            if float(settings.temperature) != 1.0:
                processors.append(TemperatureLogitsWarper(float(settings.temperature)))
            if settings.top_k > 0:
                processors.append(TopKLogitsWarper(settings.top_k))
            if float(settings.top_p) < 1.0:
                processors.append(TopPLogitsWarper(float(settings.top_p)))
        return processors

    # ------------------------------------------------------------ text, stop sequences and streaming

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _update_text(self, row: _Row, stops: list[str], on_delta: OnDelta | None) -> bool:
        """Re-decode the row, cut at a stop sequence, stream what is safe. True when a stop was hit."""
        text = self._decode(row.generated)
        for stop in stops:
            at = text.find(stop, max(0, len(row.text) - len(stop)))
            if at != -1:
                row.text = text[:at]
                self._emit(row, row.text, on_delta)
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
        self._emit(row, text[:safe], on_delta)
        return False

    def _emit(self, row: _Row, upto: str, on_delta: OnDelta | None) -> None:
        if on_delta and len(upto) > row.emitted:
            on_delta(row.out_index, upto[row.emitted :])
            row.emitted = len(upto)

    def _flush(self, row: _Row, on_delta: OnDelta | None, final: bool = False) -> None:
        row.text = self._decode(row.generated)
        self._emit(row, row.text, on_delta)

    # ------------------------------------------------------------ the HF generate path (beams, prefix/prompt adapters)

    def _hf_groups(self, rows: list[_Row], settings: GenerationSettings):
        # One prompt at a time: all its return sequences come from one generate() call.
        groups: dict[int, list[_Row]] = {}
        for row in rows:
            groups.setdefault(row.prompt_index, []).append(row)
        return list(groups.values())

    def _hf_generate(self, rows: list[_Row], settings: GenerationSettings, on_delta: OnDelta | None) -> None:
        import torch
        from transformers import GenerationConfig

        first = rows[0]
        ids = torch.tensor([first.prompt_ids], device=self.loaded.device)
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            min_new_tokens=settings.min_new_tokens or None,
            do_sample=not settings.greedy,
            temperature=float(settings.temperature) if not settings.greedy else None,
            top_p=float(settings.top_p) if not settings.greedy else None,
            top_k=settings.top_k if not settings.greedy else None,
            repetition_penalty=float(settings.repetition_penalty),
            no_repeat_ngram_size=settings.no_repeat_ngram_size or None,
            num_beams=settings.num_beams,
            num_return_sequences=len(rows),
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            stop_strings=settings.stop or None,
        )
        if first.seed is not None:
            torch.manual_seed(first.seed)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                tokenizer=self.tokenizer if settings.stop else None,
            )
        now = time.perf_counter()
        for row, seq in zip(rows, out):
            tokens = seq[len(first.prompt_ids) :].tolist()
            cut = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
            row.generated = tokens if cut is None else tokens[:cut]
            row.finish_reason = "stop" if cut is not None else "length"
            text = self._decode(row.generated)
            for stop in settings.stop:
                if stop in text:
                    text, row.finish_reason = text[: text.find(stop)], "stop"
            row.text, row.finished_at = text, now
            self._emit(row, text, on_delta)
