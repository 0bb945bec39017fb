"""The native CPU path: the Engine API on Inkwell's own decoder over a GGUF's quantised blocks (generate/native/).

Chosen by measurement on the CPU (docs/generation.md): SmolLM2-135M's Q4_1 GGUF decodes one stream at ~140
tok/s on a 2-core AVX2 machine, against ~80-94 for llama.cpp and ~83 for the ONNX path, with the GGUF's own
numbers (no re-quantisation). What stays in Python is what Inkwell promises on every path - chat template,
stop sequences, streaming, per-prompt seeds, min_new_tokens, cancellation, the numpy warpers of the ONNX path
for sampling and repetition penalty, and the torch engine for beams / no-repeat n-grams.

Batching is step-level and continuous (`NativeBatch`), for `generate` and for the Scheduler (server, batch
jobs) alike: every step is one decoder call holding one token for each running row plus a chunk of the prompts
being prefilled, within a token budget (`step_tokens`, as the torch engine's); a row joins as soon as a slot
is free and leaves the moment it finishes. Each row has its own KV slot, sized for its prompt and
max_new_tokens, so rows never pad to each other.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from inkwell.errors import InkwellError
from inkwell.generate.continuous import DEFAULT_STEP_TOKENS
from inkwell.generate.contract import Capabilities
from inkwell.generate.engine import DEFAULT_BATCH_SIZE, Engine
from inkwell.generate.fastpath import TorchFallback, fast_rows, file_eos, needs_torch, pick_token
from inkwell.generate.rows import GenerationResult, OnDelta, Prompt, TextRows, row_result
from inkwell.generate.settings import GenerationSettings

SCORE_CHUNK = 512  # positions per decoder call when scoring a window: bounds the scratch memory


class NativeEngine:
    """The engine contract on the native decoder: render / encode / count_tokens / generate / window_logits, and
    `continuous_batch` for the Scheduler. Beams and no-repeat n-grams go to the torch engine (`fallback`)."""

    def __init__(
        self,
        decoder,
        loaded,
        batch_size: int = DEFAULT_BATCH_SIZE,
        step_tokens: int = DEFAULT_STEP_TOKENS,
        fallback: Callable[[], Engine] | None = None,
        notice: Callable[[str], None] | None = None,
    ):
        if batch_size < 1:
            raise InkwellError(f"invalid batch size {batch_size}", field="batch_size", hint="use a whole number >= 1")
        self.decoder = decoder
        self.vocab = decoder.vocab
        self.loaded = loaded
        self.text = TextRows(loaded, config_eos=file_eos(loaded))
        self.tokenizer, self.eos_ids, self.pad_id = self.text.tokenizer, self.text.eos_ids, self.text.pad_id
        self.render, self.encode, self.count_tokens = self.text.render, self.text.encode, self.text.count_tokens
        self.context_length = int(loaded.context_length)  # longest prompt + output (and scoring window)
        self.batch_size, self.step_tokens = batch_size, step_tokens
        self.capabilities = Capabilities(continuous_batching=True, scoring=True, grammar=True)
        self._plain = TorchFallback("native engine", fallback, notice)
        self._lock = threading.Lock()  # generate() from several threads: one batch at a time

    render: Callable[[Prompt], str]
    encode: Callable[[Prompt], list[int]]
    count_tokens: Callable[[Prompt], int]

    def continuous_batch(
        self, settings: GenerationSettings, *, max_rows: int, step_tokens: int = DEFAULT_STEP_TOKENS, prefix_cache=None
    ) -> NativeBatch:
        """The Scheduler's batch on this engine (prompt-start sharing is the torch batch's; prefill here is
        cheap enough without it)."""
        return NativeBatch(self, settings, max_rows=max_rows, step_tokens=step_tokens)

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings | None = None,
        on_delta: OnDelta | None = None,
        should_stop: Callable[[int], bool] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[GenerationResult]:
        settings = settings or GenerationSettings()
        settings.validate()
        reason = needs_torch(settings)
        if reason:
            return self._plain(reason).generate(
                prompts, settings, on_delta=on_delta, should_stop=should_stop, seeds=seeds
            )
        started = time.perf_counter()
        rows = fast_rows(self.text, prompts, settings, seeds, on_delta, should_stop)
        with self._lock:
            batch = NativeBatch(self, settings, max_rows=self.batch_size, step_tokens=self.step_tokens)
            batch.add(rows)
            while not batch.idle:
                batch.step()
        return [row_result(row, started) for row in rows]

    def window_logits(self, ids: Sequence[int]):
        """Next-token logits at every position of `ids`: [len(ids), vocab] (numpy)."""
        import numpy as np

        ctx = self.decoder.context(1)  # its own context: scoring never disturbs a running batch
        ctx.slot(0, len(ids))
        parts = []
        for start in range(0, len(ids), SCORE_CHUNK):
            chunk = list(ids[start : start + SCORE_CHUNK])
            parts.append(ctx.forward(chunk, [0] * len(chunk), range(start, start + len(chunk)), range(len(chunk))))
        ctx.close()
        return np.concatenate(parts)

    def close(self) -> None:
        """The decoder's memory-mapped weights are released with the object."""


class NativeBatch:
    """Rows decoding together on one decoder context (`rows.Row`s, each with its own slot, lengths, stops,
    stream, seed and callbacks) plus the rows waiting to join. Sampling settings are shared. The Scheduler's
    interface: add / step / idle / occupied / all_rows / clear. Not thread-safe: one thread calls add and step."""

    def __init__(
        self,
        engine: NativeEngine,
        settings: GenerationSettings,
        *,
        max_rows: int,
        step_tokens: int = DEFAULT_STEP_TOKENS,
    ):
        import numpy as np

        self.engine, self.settings = engine, settings
        self.max_rows, self.step_tokens = max_rows, step_tokens
        self.ctx = engine.decoder.context(max_rows)
        self.free = list(range(max_rows - 1, -1, -1))  # slots, taken from the end
        self.queue: deque = deque()  # rows waiting for a slot, in order
        self.filling: list = []  # rows whose prompts are going in (row.filled tokens so far)
        self.rows: list = []  # rows decoding: their last token is the next step's input
        self.penalty = float(settings.repetition_penalty)
        self.eos = np.array(sorted(i for i in engine.eos_ids if i < engine.vocab))
        self.steps = 0

    # ------------------------------------------------------------ state

    def add(self, rows: Iterable) -> None:
        import numpy as np

        for row in rows:
            row.generator = None if self.settings.greedy else np.random.default_rng(row.seed)
            self.queue.append(row)

    @property
    def idle(self) -> bool:
        return not self.rows and not self.filling and not self.queue

    @property
    def occupied(self) -> int:
        return len(self.rows) + len(self.filling) + len(self.queue)

    def all_rows(self) -> list:
        return [*self.rows, *self.filling, *self.queue]

    def clear(self) -> None:
        """Drop every row (after a failed step: their owners were told)."""
        for row in [*self.rows, *self.filling]:
            self._release(row)
        self.queue.clear()
        self.rows, self.filling = [], []

    # ------------------------------------------------------------ one step

    def step(self) -> None:
        """One decoder call: a token for every running row and a chunk of the prompts being prefilled."""
        budget = max(1, self.step_tokens - len(self.rows))
        self._admit()
        tokens, slots, positions = [], [], []
        for row in self.rows:  # the token each running row sampled last step
            tokens.append(row.generated[-1])
            slots.append(row.slot)
            positions.append(len(row.prompt_ids) + len(row.generated) - 1)
        want = list(range(len(self.rows)))
        joining = []
        for row in self.filling:
            if budget <= 0:
                break
            take = min(budget, len(row.prompt_ids) - row.filled)
            tokens += row.prompt_ids[row.filled : row.filled + take]
            slots += [row.slot] * take
            positions += range(row.filled, row.filled + take)
            row.filled += take
            budget -= take
            if row.filled == len(row.prompt_ids):
                want.append(len(tokens) - 1)
                joining.append(row)
        if tokens:
            logits = self.ctx.forward(tokens, slots, positions, want)
            self.filling = [r for r in self.filling if r not in joining]
            stepping = [*self.rows, *joining]
            now = time.perf_counter()
            keep = []
            for row, x in zip(stepping, logits):
                if self.engine.text.advance(row, self._choose(row, x), now):
                    keep.append(row)
                else:
                    self._release(row)
            self.rows = keep
        self.steps += 1

    def _admit(self) -> None:
        """Rows from the queue into free slots (each slot sized for its row), skipping rows already cancelled."""
        while self.queue and self.free:
            row = self.queue.popleft()
            if row.cancelled is not None and row.cancelled():  # left before it started
                row.finish_reason, row.finished_at = "cancelled", time.perf_counter()
                if row.on_done is not None:
                    row.on_done(row)
                continue
            row.slot = self.free.pop()
            self.ctx.slot(row.slot, len(row.prompt_ids) + row.max_new_tokens)
            row.filled = 0
            row.seen = None
            if self.penalty != 1.0:
                import numpy as np

                row.seen = np.zeros(self.engine.vocab, dtype=bool)
                row.seen[[i for i in row.prompt_ids if i < self.engine.vocab]] = True
            self.filling.append(row)

    def _release(self, row) -> None:
        self.ctx.slot(row.slot, 0)
        self.free.append(row.slot)

    def _choose(self, row, x) -> int:
        token = pick_token(x, row, self.settings, self.eos, row.seen, self.penalty)
        if row.seen is not None and token < self.engine.vocab:
            row.seen[token] = True
        return token
