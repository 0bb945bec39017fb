"""The torch engine: prompts + settings -> results, with optional streaming.

One API for the CLI, batch jobs, evaluation and the server. The fast path is a lean decode loop that calls
the model directly with a DynamicCache (no `generate` wrapper), run as step-level continuous batching
(`inkwell.generate.continuous`): prompts, shortest first, are prefilled in chunks under a token budget per
step, rows join the decoding batch as places free up and leave it as soon as they finish. Logits processing
reuses transformers' warpers. Beam search and adapters that rewrite attention inputs (prefix / prompt
tuning) go through `model.generate` instead, and so does every encoder-decoder (seq2seq) model
(`inkwell.generate.seq2seq`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from inkwell.errors import InkwellError
from inkwell.generate.continuous import DEFAULT_STEP_TOKENS, ContinuousBatch, grammar_masked, plain_cache
from inkwell.generate.contract import Capabilities
from inkwell.generate.rows import GenerationResult, OnDelta, Prompt, Row, TextRows, row_result
from inkwell.generate.settings import GenerationSettings

__all__ = ["DEFAULT_BATCH_SIZE", "Engine", "GenerationResult", "OnDelta", "Prompt", "row_result"]

DEFAULT_BATCH_SIZE = 16


class Engine:
    """The torch engine: the engine contract (generate.contract) over a LoadedModel's torch module, with the
    prompt/text side composed in (`self.text`, generate.rows)."""

    def __init__(self, loaded, batch_size: int = DEFAULT_BATCH_SIZE, step_tokens: int = DEFAULT_STEP_TOKENS):
        if batch_size < 1:
            raise InkwellError(f"invalid batch size {batch_size}", field="batch_size", hint="use a whole number >= 1")
        if step_tokens < 1:
            raise InkwellError(
                f"invalid step token budget {step_tokens}",
                field="step_tokens",
                hint=f"use a whole number >= 1 (default {DEFAULT_STEP_TOKENS})",
            )
        self.loaded = loaded
        self.model = loaded.model
        self.text = TextRows(
            loaded, config_eos=[getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)]
        )
        self.tokenizer, self.eos_ids, self.pad_id = self.text.tokenizer, self.text.eos_ids, self.text.pad_id
        self.render, self.encode, self.count_tokens = self.text.render, self.text.encode, self.text.count_tokens
        self.context_length = int(loaded.context_length)  # longest prompt + output (and scoring window)
        self.batch_size = batch_size  # most rows decoding at once
        self.step_tokens = step_tokens  # tokens one step may process: running rows + a chunk of prompts
        # step-level batches need the fast path and a plain per-layer cache (gemma3's sliding-window layers
        # keep a rolling window that cannot simply be padded and joined)
        self.adapters: dict[str, str] = {}  # name -> folder of adapters attached unmerged (the server's)
        self.capabilities = Capabilities(
            continuous_batching=bool(loaded.fast_path) and plain_cache(self.model),
            scoring=True,
            beams=True,
            adapters=True,
            grammar=True,
        )
        if loaded.seq2seq:  # an encoder-decoder (T5): model.generate only, see inkwell.generate.seq2seq
            from inkwell.generate.seq2seq import CAPABILITIES

            self.capabilities = CAPABILITIES

    render: Callable[[Prompt], str]
    encode: Callable[[Prompt], list[int]]
    count_tokens: Callable[[Prompt], int]

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
        rows = self.text.make_rows(prompts, settings, seeds, torch_generators=True)
        if self.loaded.seq2seq:  # the prompt goes to the encoder: transformers' generate, not the decode loop
            from inkwell.generate.seq2seq import generate_rows

            generate_rows(self, rows, settings, on_delta)
            return [row_result(row, started) for row in rows]
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

    def continuous_batch(
        self, settings: GenerationSettings, *, max_rows: int, step_tokens: int = DEFAULT_STEP_TOKENS, prefix_cache=None
    ) -> ContinuousBatch:
        """The Scheduler's step-level batch on this engine (where capabilities.continuous_batching)."""
        return ContinuousBatch(self, settings, max_rows=max_rows, step_tokens=step_tokens, prefix_cache=prefix_cache)

    def window_logits(self, ids: Sequence[int]):
        """Next-token logits at every position of `ids` (one window), as a float tensor [len(ids), vocab]."""
        import torch

        window = torch.tensor([list(ids)], device=self.loaded.device)
        with torch.inference_mode():
            return self.model(input_ids=window).logits[0].float()

    def close(self) -> None:
        """Nothing to release: the weights go with the object."""

    # ------------------------------------------------------------ the HF generate path (beams, prefix/prompt adapters)

    def _hf_groups(self, rows: list[Row], settings: GenerationSettings):
        # One prompt at a time: all its return sequences come from one generate() call.
        groups: dict[int, list[Row]] = {}
        for row in rows:
            groups.setdefault(row.prompt_index, []).append(row)
        return list(groups.values())

    def _hf_generate(self, rows: list[Row], settings: GenerationSettings, on_delta: OnDelta | None) -> None:
        import torch

        first = rows[0]
        ids = torch.tensor([first.prompt_ids], device=self.loaded.device)
        config = settings.hf_config(len(rows), self.eos_ids, self.pad_id)
        if first.seed is not None:
            torch.manual_seed(first.seed)
        processors = [_GrammarProcessor(rows, len(first.prompt_ids), self.eos_ids)] if first.grammar else None
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                tokenizer=self.tokenizer if settings.stop else None,
                logits_processor=processors,
            )
        now = time.perf_counter()
        for row, seq in zip(rows, out):
            tokens = seq[len(first.prompt_ids) :].tolist()
            cut = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
            row.generated = tokens if cut is None else tokens[:cut]
            row.finish_reason = "stop" if cut is not None else "length"
            text = self.text.decode(row.generated)
            for stop in settings.stop:
                if stop in text:
                    text, row.finish_reason = text[: text.find(stop)], "stop"
            row.text, row.finished_at = text, now
            self.text.emit(row, text, on_delta)


class _GrammarProcessor:
    """Constrained decoding inside transformers' `generate` (the path for prefix/prompt adapters): each sequence's
    grammar takes the token chosen last step, then masks this step's logits (no beams: settings refuse them)."""

    def __init__(self, rows: list[Row], prompt_length: int, eos_ids: set[int]):
        self.rows, self.start, self.eos_ids = rows, prompt_length, eos_ids
        self.ended = [False] * len(rows)

    def __call__(self, input_ids, scores):
        live = []
        for b, row in enumerate(self.rows):
            if input_ids.shape[1] > self.start and not self.ended[b]:
                token = int(input_ids[b, -1])
                if token in self.eos_ids or row.grammar.finished:
                    self.ended[b] = True
                else:
                    row.grammar.accept(token)
            if not self.ended[b]:
                live.append(b)
        if live:
            scores = grammar_masked(scores, [self.rows[b] for b in live], live)
        return scores
