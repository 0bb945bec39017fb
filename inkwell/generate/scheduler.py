"""Request batching over one shared Engine: a background thread owns the engine and decodes the requests
of many clients together.

Two levels, picked per batch:
- *Step-level continuous batching* (the default, on the engine's fast path with a plain KV cache): a
  running batch admits waiting requests with the same adapter and settings between two decode steps.
  Their prompts are prefilled together, their KV cache is left-padded to the batch's length and joined
  on; rows that finish (or whose client left) drop out at once, and a request is answered as soon as its
  own rows are done. So a request never waits for someone else's long answer to finish.
- *Window batching* (beam search, prefix-tuning adapters, sliding-window caches such as gemma3's): the
  first waiting request waits `window_s` for others, then the batch runs as one `Engine.generate` call.
In both, a batch forms from idle after `window_s`, so a burst starts together. Admission is first come,
first served: a waiting request for another adapter or other settings stops later ones from joining the
running batch, which then drains, and the waiting request opens the next one (no starvation).

Multi-adapter serving: the base model is loaded once, LoRA adapters are attached *unmerged* as named PEFT
adapters, and every batch runs with exactly one adapter active (or none), so requests for different
adapters never share weights. Correctness over speed: adapters take turns, batch by batch.

    scheduler = Scheduler(engine)            # or Scheduler(engine, select_adapter=adapter_selector(model))
    scheduler.start()
    results = scheduler.run([prompt], settings)          # from any thread but the scheduler's
    job = scheduler.submit(GenerationJob([prompt], settings, on_delta=..., on_done=...))  # non-blocking
    job.cancel()                                         # its rows leave the batch at the next step
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from inkwell.errors import InkwellError
from inkwell.generate.engine import Engine, GenerationResult, Prompt, left_pad
from inkwell.generate.settings import GenerationSettings

log = logging.getLogger("inkwell.scheduler")

# The first request of a batch waits this long for company. 20 ms is under one decode step of the
# embedded models on a CPU, so a lone request barely notices it, while a burst lands in one batch.
WINDOW_S = 0.02
LORA_FAMILY = ("LORA", "IA3", "ADALORA")
# Settings a continuous batch tracks per job; the others (sampling, penalties) must match to share a batch.
PER_JOB_SETTINGS = ("max_new_tokens", "min_new_tokens", "stop", "num_return_sequences")  # adapters that only add to weights: switchable, fast path


class JobCancelled(InkwellError):
    """The job was cancelled (client gone) before it ran."""


@dataclass(eq=False)
class GenerationJob:
    """One request: its prompts share `settings`; results come back in the engine's order."""

    prompts: Sequence[Prompt]
    settings: GenerationSettings
    adapter: str | None = None
    # Both callbacks run on the scheduler thread: keep them short (e.g. loop.call_soon_threadsafe).
    on_delta: Callable[[int, str], None] | None = None  # (index within this job's results, new text)
    on_done: Callable[["GenerationJob"], None] | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    results: list[GenerationResult] | None = None
    error: BaseException | None = None
    seed: int = 0
    emitted: bool = False
    _rows: list = field(default_factory=list, repr=False)  # continuous batching: the engine rows of this job
    _open: int = 0  # ... and how many of them are still decoding
    _t0: float = 0.0
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.prompts = list(self.prompts)
        # A seedless request still gets its own seed, so two of them in one batch do not write the same text.
        self.seed = self.settings.seed if self.settings.seed is not None else random.SystemRandom().randrange(2**31)

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.settings.num_return_sequences

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def wait(self, timeout: float | None = None) -> list[GenerationResult]:
        if not self._done.wait(timeout):
            raise TimeoutError("generation did not finish in time")
        if self.error is not None:
            raise self.error
        return self.results or []

    def batch_key(self, continuous: bool = False) -> str:
        """Jobs with equal keys can share a batch. One engine call needs equal settings (the seed aside: it is
        per prompt); a continuous batch only equal sampling (lengths, stops and n are per job)."""
        settings = self.settings.to_dict()
        for name in ("seed", *(PER_JOB_SETTINGS if continuous else ())):
            settings.pop(name)
        return json.dumps([self.adapter, settings], sort_keys=True)


class Scheduler:
    """Owns the engine on one thread; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        *,
        window_s: float = WINDOW_S,
        max_batch_rows: int | None = None,
        select_adapter: Callable[[str | None], contextlib.AbstractContextManager] | None = None,
        continuous: bool = True,
    ):
        self.engine = engine
        self.continuous = continuous and supports_continuous(engine)
        self.window_s = window_s
        self.max_batch_rows = max_batch_rows or engine.batch_size
        self.select_adapter = select_adapter or _no_adapters
        # A second Engine view with its own tokenizer, for request threads (render / count tokens) while the
        # scheduler thread decodes: HF fast tokenizers must not be borrowed by two threads at once.
        self.front = copy.copy(engine)
        self.front.tokenizer = copy.deepcopy(engine.tokenizer)
        self._front_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: list[GenerationJob] = []
        self._running: list[GenerationJob] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._batch: ContinuousBatch | None = None
        self.batches = 0  # batches started (tests and metrics read it)

    # ------------------------------------------------------------ public API

    def start(self) -> "Scheduler":
        self._thread = threading.Thread(target=self._loop, name="inkwell-scheduler", daemon=True)
        self._thread.start()
        return self

    def submit(self, job: GenerationJob) -> GenerationJob:
        with self._cond:
            if self._closed:
                raise InkwellError("the generation scheduler is shut down", field="model")
            self._pending.append(job)
            self._cond.notify_all()
        return job

    def run(self, prompts: Sequence[Prompt], settings: GenerationSettings, adapter: str | None = None,
            on_delta: Callable[[int, str], None] | None = None) -> list[GenerationResult]:
        """Submit and wait (blocking). Not for the scheduler thread itself."""
        return self.submit(GenerationJob(prompts, settings, adapter=adapter, on_delta=on_delta)).wait()

    def tokenize(self, fn: Callable[[Engine], Any]) -> Any:
        """Run `fn(front_engine)` for render / encode / count_tokens from a request thread."""
        with self._front_lock:
            return fn(self.front)

    @property
    def waiting(self) -> int:
        with self._cond:
            return sum(1 for job in self._pending if not job.cancelled)

    @property
    def running(self) -> int:
        with self._cond:
            return sum(1 for job in self._running if not job.cancelled and not job.done)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking jobs, finish the pending ones (up to `timeout`), then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            leftover, self._pending = self._pending, []
        for job in leftover:
            self._finish(job, error=InkwellError("the server shut down before this request ran"))

    # ------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while True:
            window: list[GenerationJob] = []  # a window batch to run as one Engine.generate call
            newcomers: list[GenerationJob] = []  # jobs joining the continuous batch at this step
            with self._cond:
                if self._batch is None:
                    while not self._pending and not self._closed:
                        self._cond.wait()
                    if not self._pending:
                        return  # closed and drained
                    leader = self._pending[0]
                    deadline = leader.submitted_at + self.window_s
                    while not self._closed and self._compatible_rows(leader) < self.max_batch_rows:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    if self.continuous and leader.settings.num_beams == 1:
                        try:
                            self._batch = ContinuousBatch(self, leader)
                        except Exception as exc:  # noqa: BLE001 - e.g. an unknown adapter: fail that job only
                            self._pending.remove(leader)
                            self._finish(leader, error=exc)
                            continue
                        self.batches += 1
                    else:
                        window = self._take(leader)
                        self._running = window
                if self._batch is not None:
                    newcomers = self._admissible(self._batch)
                    self._running = [*self._running, *newcomers]
            if window:
                try:
                    self._run(window)
                finally:
                    with self._cond:
                        self._running = []
                continue
            batch = self._batch
            if batch is None:
                continue
            try:
                batch.step(newcomers)
            except Exception as exc:  # noqa: BLE001 - handed to the batch's jobs; the loop must survive
                log.exception("a decode step failed")
                batch.fail(exc, newcomers)
            with self._cond:
                self._running = [job for job in self._running if not job.done]
                if batch.empty:
                    batch.close()
                    self._batch = None

    def _admissible(self, batch: "ContinuousBatch") -> list[GenerationJob]:
        """Remove and return waiting jobs that can join `batch` now: oldest first, stopping at the first that
        cannot (another adapter or settings, or no room), so nothing waiting is overtaken for long."""
        room = self.max_batch_rows - len(batch.rows)
        taken: list[GenerationJob] = []
        keep: list[GenerationJob] = []
        blocked = False
        for job in self._pending:
            if job.cancelled:
                self._finish(job, error=JobCancelled("the request was cancelled before it ran"))
            elif not blocked and self._key(job) == batch.key and (job.rows <= room or (not batch.rows and not taken)):
                taken.append(job)
                room -= job.rows
            else:
                blocked = True
                keep.append(job)
        self._pending = keep
        return taken

    def _key(self, job: GenerationJob) -> str:
        return job.batch_key(continuous=self.continuous and job.settings.num_beams == 1)

    def _compatible_rows(self, leader: GenerationJob) -> int:
        key = self._key(leader)
        return sum(job.rows for job in self._pending if not job.cancelled and self._key(job) == key)

    def _take(self, leader: GenerationJob) -> list[GenerationJob]:
        """Remove and return the leader plus compatible jobs (oldest first) that fit in one batch."""
        key, rows = leader.batch_key(), 0
        batch: list[GenerationJob] = []
        keep: list[GenerationJob] = []
        for job in self._pending:
            if job.cancelled:
                self._finish(job, error=JobCancelled("the request was cancelled before it ran"))
            elif job.batch_key() == key and (not batch or rows + job.rows <= self.max_batch_rows):
                batch.append(job)
                rows += job.rows
            else:
                keep.append(job)
        self._pending = keep
        return batch

    def _run(self, batch: list[GenerationJob]) -> None:
        settings = dataclasses.replace(batch[0].settings, stop=list(batch[0].settings.stop), seed=None)
        samples = settings.num_return_sequences
        prompts: list[Prompt] = []
        seeds: list[int] = []
        owner: list[tuple[GenerationJob, int]] = []  # engine prompt index -> (job, offset of its first prompt)
        now = time.monotonic()
        for job in batch:
            job.started_at = now
            offset = len(prompts)
            for prompt in job.prompts:
                owner.append((job, offset))
                prompts.append(prompt)
                seeds.append(job.seed)

        def locate(index: int) -> tuple[GenerationJob, int]:
            job, offset = owner[index // samples]
            return job, index - offset * samples

        def on_delta(index: int, text: str) -> None:
            job, local = locate(index)
            job.emitted = True
            if job.on_delta is not None and not job.cancelled:
                try:
                    job.on_delta(local, text)
                except Exception:  # a broken callback must not break the other requests in the batch
                    log.exception("on_delta callback failed; cancelling its request")
                    job.cancel()

        def should_stop(index: int) -> bool:
            return owner[index // samples][0].cancelled

        self.batches += 1
        try:
            with self.select_adapter(batch[0].adapter):
                results = self.engine.generate(prompts, settings, on_delta=on_delta, should_stop=should_stop, seeds=seeds)
        except Exception as exc:  # noqa: BLE001 - handed to each job; the loop must survive
            retry = [job for job in batch if not job.emitted]
            if len(batch) > 1 and retry:
                # One bad request (say, too long for the context) must not fail the others: run them alone.
                for job in batch:
                    if job.emitted:
                        self._finish(job, error=exc)
                    else:
                        self._run([job])
                return
            for job in batch:
                self._finish(job, error=exc)
            return
        grouped: dict[int, list[GenerationResult]] = {}
        for result in results:
            job, offset = owner[result.prompt_index]
            grouped.setdefault(id(job), []).append(dataclasses.replace(result, prompt_index=result.prompt_index - offset))
        for job in batch:
            self._finish(job, results=grouped.get(id(job), []))

    def _finish(self, job: GenerationJob, results: list[GenerationResult] | None = None,
                error: BaseException | None = None) -> None:
        job.results, job.error = results, error
        job._done.set()
        if job.on_done is not None:
            try:
                job.on_done(job)
            except Exception:
                log.exception("on_done callback failed")


# ---------------------------------------------------------------- step-level continuous batching


def supports_continuous(engine) -> bool:
    """Continuous batching joins KV caches row-wise, which needs the fast path and a plain per-layer cache
    (sliding-window layers, as in gemma3, keep a rolling window that cannot simply be padded)."""
    try:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        if not getattr(engine.loaded, "fast_path", False):
            return False
        cache = DynamicCache(config=engine.model.config)
        return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)
    except Exception:  # an unusual model or cache API: fall back to window batching
        return False


class ContinuousBatch:
    """The rows being decoded together: their KV cache, attention mask, positions and sampling state.
    Lives on the scheduler thread. Mirrors the engine's fast decode loop (and reuses its helpers for
    logits warpers, stop sequences and streaming), with rows joining between steps."""

    def __init__(self, scheduler: Scheduler, leader: GenerationJob):
        self.engine = scheduler.engine
        self.finish = scheduler._finish
        self.key = scheduler._key(leader)
        self.adapter = leader.adapter
        self.settings = dataclasses.replace(leader.settings, stop=list(leader.settings.stop), seed=None)
        self.warpers = self.engine._warpers(self.settings)
        self.penalty = float(self.settings.repetition_penalty)
        self.vocab = self.engine.model.config.get_text_config().vocab_size
        self.rows: list = []  # engine _Row objects, one per batch position
        self.owners: list[GenerationJob] = []  # the job of each batch position
        self.cache = None
        self.mask = None  # (rows, length) 1 for real tokens; None while nothing is padded
        self.next_pos = None  # (rows, 1) position of the next token
        self.tokens = None  # (rows,) the last sampled tokens: the next step's input
        self.seen = None  # (rows, vocab) tokens seen, for the repetition penalty
        self.history = None  # (rows, length) ids, only when a logits processor needs them
        self._adapter = contextlib.ExitStack()
        self._adapter.enter_context(scheduler.select_adapter(self.adapter))  # one adapter for the batch's life

    @property
    def empty(self) -> bool:
        return not self.rows

    def close(self) -> None:
        self._adapter.close()

    def fail(self, exc: BaseException, newcomers: list[GenerationJob] = ()) -> None:
        """A step raised: every job in the batch (or joining it) gets the error; the batch empties."""
        for job in dict.fromkeys([*self.owners, *newcomers]):
            if not job.done:
                self.finish(job, error=exc)
        self.rows, self.owners = [], []
        self.cache = self.mask = self.next_pos = self.seen = self.history = self.tokens = None

    # ------------------------------------------------------------ one step

    def step(self, newcomers: list[GenerationJob]) -> None:
        import torch

        parts = []
        with torch.inference_mode():
            if self.rows:
                parts.append(self._decode())
            if newcomers:
                logits = self._admit(newcomers)
                if logits is not None:
                    parts.append(logits)
            if parts:
                self._sample(torch.cat(parts) if len(parts) > 1 else parts[0])

    def _decode(self):
        import torch

        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=-1)
        out = self.engine.model(
            input_ids=self.tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.next_pos,  # per row: rows joined at different times sit at different positions
            past_key_values=self.cache,
            use_cache=True,
        )
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1, :]

    def _admit(self, jobs: list[GenerationJob]):
        """Prefill the newcomers' prompts together and join their cache onto the batch's."""
        import torch
        from transformers import DynamicCache

        engine, device = self.engine, self.engine.loaded.device
        rows, owners = [], []
        for job in jobs:
            try:
                job_rows = engine._make_rows(job.prompts, job.settings, seeds=[job.seed] * len(job.prompts))
            except Exception as exc:  # noqa: BLE001 - e.g. a prompt too long for the context: only this job fails
                self.finish(job, error=exc)
                continue
            job.started_at = time.monotonic()
            job._rows, job._open, job._t0 = job_rows, len(job_rows), time.perf_counter()
            rows += job_rows
            owners += [job] * len(job_rows)
        if not rows:
            return None
        ids, mask, positions, padded = left_pad([r.prompt_ids for r in rows], engine.pad_id, device)
        cache = DynamicCache(config=engine.model.config)
        out = engine.model(input_ids=ids, attention_mask=mask if padded else None,
                           position_ids=positions if padded else None, past_key_values=cache, use_cache=True,
                           logits_to_keep=1)
        seen = None
        if self.penalty != 1.0:
            seen = torch.zeros((len(rows), self.vocab), dtype=torch.bool, device=device)
            for i, row in enumerate(rows):
                seen[i, torch.tensor(row.prompt_ids, device=device)] = True
        self._join(cache, mask, positions[:, -1:] + 1, seen, ids, padded)
        self.rows += rows
        self.owners += owners
        return out.logits[:, -1, :]

    def _join(self, cache, mask, next_pos, seen, ids, padded: bool) -> None:
        import torch
        import torch.nn.functional as F

        if self.cache is None:  # the first rows of the batch
            self.cache, self.mask, self.next_pos, self.seen = cache, mask if padded else None, next_pos, seen
            self.history = ids if len(self.warpers) else None
            return
        old_len, new_len = self.cache.get_seq_length(), cache.get_seq_length()
        length = max(old_len, new_len)
        for mine, theirs in zip(self.cache.layers, cache.layers):  # left-pad both to one length, then stack rows
            mine.keys = torch.cat([F.pad(mine.keys, (0, 0, length - old_len, 0)), F.pad(theirs.keys, (0, 0, length - new_len, 0))])
            mine.values = torch.cat([F.pad(mine.values, (0, 0, length - old_len, 0)), F.pad(theirs.values, (0, 0, length - new_len, 0))])
        old_mask = self.mask if self.mask is not None else torch.ones((len(self.rows), old_len), dtype=torch.long, device=mask.device)
        self.mask = torch.cat([F.pad(old_mask, (length - old_len, 0)), F.pad(mask, (length - new_len, 0))])
        self.next_pos = torch.cat([self.next_pos, next_pos])
        if self.seen is not None:
            self.seen = torch.cat([self.seen, seen])
        if self.history is not None:
            pad = self.engine.pad_id
            width = max(self.history.shape[1], ids.shape[1])
            self.history = torch.cat([F.pad(self.history, (width - self.history.shape[1], 0), value=pad),
                                      F.pad(ids, (width - ids.shape[1], 0), value=pad)])

    def _sample(self, logits) -> None:
        import torch

        engine, settings, device = self.engine, self.settings, self.engine.loaded.device
        if logits.dtype != torch.float32:
            logits = logits.float()
        if logits.shape[-1] > self.vocab:
            logits = logits[:, : self.vocab]
        if self.seen is not None:
            picked = torch.where(logits > 0, logits / self.penalty, logits * self.penalty)
            logits = torch.where(self.seen, picked, logits)
        young = [b for b, row in enumerate(self.rows) if len(row.generated) < self.owners[b].settings.min_new_tokens]
        if young:
            eos = torch.tensor(sorted(engine.eos_ids), device=device)
            logits[torch.tensor(young, device=device)[:, None], eos] = -float("inf")
        if len(self.warpers):
            logits = self.warpers(self.history, logits)
        if settings.greedy:
            tokens = logits.argmax(-1)
        else:
            probs = torch.softmax(logits, dim=-1)
            tokens = torch.cat([torch.multinomial(probs[b], 1, generator=row.generator) for b, row in enumerate(self.rows)])
        now = time.perf_counter()
        keep: list[int] = []
        for b, token in enumerate(tokens.tolist()):
            row, job = self.rows[b], self.owners[b]
            stream, stops = _stream_to(job), job.settings.stop
            if job.cancelled:
                row.finish_reason = "cancelled"
            elif token in engine.eos_ids:
                row.finish_reason = "stop"
                engine._flush(row, stream, final=True)
            else:
                row.generated.append(token)
                if (stream or stops) and engine._update_text(row, stops, stream):
                    row.finish_reason = "stop"
                elif len(row.generated) >= job.settings.max_new_tokens:
                    row.finish_reason = "length"
                    engine._flush(row, stream, final=True)
                else:
                    keep.append(b)
                    continue
            row.finished_at = now
            self._row_done(job, row)
        if len(keep) < len(self.rows):  # finished rows leave the batch
            index = torch.tensor(keep, device=device, dtype=torch.long)
            self.cache.batch_select_indices(index)
            tokens, self.next_pos = tokens[index], self.next_pos[index]
            if self.mask is not None:
                self.mask = self.mask[index]
            if self.seen is not None:
                self.seen = self.seen[index]
            if self.history is not None:
                self.history = self.history[index]
            self.rows = [self.rows[b] for b in keep]
            self.owners = [self.owners[b] for b in keep]
            left = True
        else:
            left = False
        self.tokens = tokens
        if not self.rows:
            self.cache = self.mask = self.next_pos = self.seen = self.history = self.tokens = None
            return
        if self.seen is not None:
            self.seen[torch.arange(len(self.rows), device=device), tokens] = True
        if self.history is not None:
            self.history = torch.cat([self.history, tokens[:, None]], dim=-1)
        if left:
            self._trim()

    def _trim(self) -> None:
        """Drop the cache columns that only held padding for rows that have left, so a batch that never
        empties (steady traffic) keeps a cache as long as its longest live row, not as its age."""
        if self.history is not None:
            longest = max(len(r.prompt_ids) + len(r.generated) for r in self.rows)
            self.history = self.history[:, -longest:]
        if self.mask is None:
            return
        first = int(self.mask.any(0).int().argmax())  # the first column any row still uses
        if first:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.mask = self.mask[:, first:]
        if bool(self.mask.all()):
            self.mask = None  # nothing padded any more: the model's own causal mask is cheaper

    def _row_done(self, job: GenerationJob, row) -> None:
        if row.finish_reason == "cancelled":
            row.text = self.engine._decode(row.generated)
        job._open -= 1
        if job._open:
            return
        results = [
            GenerationResult(
                text=r.text, prompt_tokens=len(r.prompt_ids), completion_tokens=len(r.generated or []),
                finish_reason=r.finish_reason or "length", latency_s=round(r.finished_at - job._t0, 4),
                prompt_index=r.prompt_index, sample_index=r.sample_index, seed=r.seed,
            )
            for r in job._rows
        ]
        self.finish(job, results=results)


def _stream_to(job: GenerationJob) -> Callable[[int, str], None] | None:
    """The job's on_delta, guarded like the window path's (a broken callback cancels only its job)."""
    if job.on_delta is None or job.cancelled:
        return None

    def deliver(index: int, text: str) -> None:
        job.emitted = True
        try:
            job.on_delta(index, text)
        except Exception:
            log.exception("on_delta callback failed; cancelling its request")
            job.cancel()

    return deliver


# ---------------------------------------------------------------- adapters


@contextlib.contextmanager
def _no_adapters(name: str | None) -> Iterator[None]:
    if name is not None:
        raise InkwellError(f"no adapter named '{name}' is loaded", field="model")
    yield


def attach_adapters(loaded, adapters: dict[str, str]) -> dict[str, str]:
    """Wrap `loaded.model` (a plain, unmerged model) in a PeftModel holding each adapter under its name.
    Returns name -> folder. Only LoRA-family adapters: they can be switched per batch on the fast path."""
    from pathlib import Path

    from peft import PeftConfig, PeftModel

    if not adapters:
        return {}
    model = loaded.model
    attached: dict[str, str] = {}
    for name, folder in adapters.items():
        path = Path(folder).expanduser()
        if not (path / "adapter_config.json").exists():
            raise InkwellError(f"adapter '{name}': '{path}' is not a PEFT adapter folder (no adapter_config.json)",
                               field="adapter", hint="point NAME=PATH at a folder written by `inkwell train`")
        kind = PeftConfig.from_pretrained(str(path)).peft_type.value
        if kind not in LORA_FAMILY:
            raise InkwellError(f"adapter '{name}' is a {kind} adapter; serving several adapters supports LoRA-type ones only",
                               field="adapter", hint="serve it alone with `inkwell generate --adapter`")
        try:
            if isinstance(model, PeftModel):
                model.load_adapter(str(path), adapter_name=name)
            else:
                model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
        except Exception as exc:
            raise InkwellError(f"could not load adapter '{name}' from {path} onto '{loaded.name}': {exc}",
                               field="adapter", hint="use the base model the adapter was trained on") from exc
        attached[name] = str(path)
    model.to(loaded.device)
    model.eval()
    loaded.model = model
    return attached


def adapter_selector(model) -> Callable[[str | None], contextlib.AbstractContextManager]:
    """A context manager factory: select(name) activates one named adapter, select(None) the bare base."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return _no_adapters

    @contextlib.contextmanager
    def select(name: str | None) -> Iterator[None]:
        if name is None:
            with model.disable_adapter():
                yield
            return
        if name not in model.peft_config:
            raise InkwellError(f"no adapter named '{name}' is loaded", field="model")
        model.set_adapter(name)
        yield

    return select


# ---------------------------------------------------------------- an Engine look-alike


class ScheduledEngine:
    """Looks like an Engine (`loaded`, `batch_size`, `render`, `encode`, `count_tokens`, `generate`) but
    queues its generations on a Scheduler, so code written for Engine (`content.write_many`, batch jobs)
    shares batches with everything else. Use it from any thread but the scheduler's."""

    def __init__(self, scheduler: Scheduler, adapter: str | None = None, adapter_path: str | None = None,
                 cancel: threading.Event | None = None):
        self.scheduler = scheduler
        self.adapter = adapter
        loaded = scheduler.engine.loaded
        self.loaded = dataclasses.replace(loaded, adapter=adapter_path) if adapter else loaded
        self.batch_size = scheduler.engine.batch_size
        self.tokenizer = scheduler.front.tokenizer
        self.cancelled = cancel or threading.Event()  # set it to cancel the running and any later generate()

    def render(self, prompt: Prompt) -> str:
        return self.scheduler.tokenize(lambda engine: engine.render(prompt))

    def encode(self, prompt: Prompt) -> list[int]:
        return self.scheduler.tokenize(lambda engine: engine.encode(prompt))

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.encode(prompt))

    def generate(self, prompts: Sequence[Prompt], settings: GenerationSettings | None = None,
                 on_delta: Callable[[int, str], None] | None = None) -> list[GenerationResult]:
        if self.cancelled.is_set():
            raise JobCancelled("the request was cancelled")
        job = self.scheduler.submit(GenerationJob(prompts, settings or GenerationSettings(), adapter=self.adapter,
                                                  on_delta=on_delta))
        while not job._done.wait(0.1):
            if self.cancelled.is_set():
                job.cancel()
        return job.wait()
