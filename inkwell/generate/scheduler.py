"""Request batching over one shared Engine: a background thread owns the engine and decodes the requests
of many clients together.

Two levels, picked per batch:
- *Step-level continuous batching* (the default, on the engine's fast path with a plain KV cache): a
  running batch (`inkwell.generate.continuous.ContinuousBatch`) admits waiting requests with the same
  adapter and sampling settings between two decode steps. Their prompts are prefilled in chunks within a
  token budget per step (`step_tokens`), interleaved with the decode steps of the running rows, so a long
  prompt does not stall the streams already running and a burst of newcomers is admitted a budget's worth
  at a time. Rows that finish (or whose client left) drop out at once, and a request is answered as soon as
  its own rows are done.
- *Window batching* (beam search, prefix-tuning adapters, sliding-window caches such as gemma3's): the
  first waiting request waits `window_s` for others, then the batch runs as one `Engine.generate` call.
In both, a batch forms from idle after `window_s`, so a burst starts together. Admission is first come,
first served: a waiting request for another adapter or other settings stops later ones from joining the
running batch, which then drains, and the waiting request opens the next one (no starvation).

The queue is bounded (`max_waiting` rows): beyond it `submit` raises `QueueFull` (the server answers 429
with Retry-After), or, with `block=True` (in-process callers such as batch jobs), waits for room.

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

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from inkwell.errors import InkwellError
from inkwell.generate.continuous import ContinuousBatch, PrefixCache
from inkwell.generate.contract import Capabilities
from inkwell.generate.engine import Engine
from inkwell.generate.rows import GenerationResult, Prompt, TextRows, row_result
from inkwell.generate.settings import GenerationSettings

log = logging.getLogger("inkwell.scheduler")

# The first request of a batch waits this long for company. 20 ms is under one decode step of the
# embedded models on a CPU, so a lone request barely notices it, while a burst lands in one batch.
WINDOW_S = 0.02
# Rows that may wait for a place in a batch. A few batches' worth: a burst queues, a flood is told to back off.
MAX_WAITING_ROWS = 256
LORA_FAMILY = ("LORA", "IA3", "ADALORA")  # adapters that only add to weights: switchable, fast path
# Settings a continuous batch tracks per job; the others (sampling, penalties) must match to share a batch.
PER_JOB_SETTINGS = ("max_new_tokens", "min_new_tokens", "stop", "num_return_sequences", "grammar")


class JobCancelled(InkwellError):
    """The job was cancelled (client gone) before it ran."""


class QueueFull(InkwellError):
    """The scheduler's queue is at its bound; `retry_after_s` estimates when there will be room."""

    def __init__(self, message: str, retry_after_s: float, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


@dataclass(eq=False)
class GenerationJob:
    """One request: its prompts share `settings`; results come back in the engine's order."""

    prompts: Sequence[Prompt]
    settings: GenerationSettings
    adapter: str | None = None
    # Both callbacks run on the scheduler thread: keep them short (e.g. loop.call_soon_threadsafe).
    on_delta: Callable[[int, str], None] | None = None  # (index within this job's results, new text)
    on_done: Callable[[GenerationJob], None] | None = None
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
        step_tokens: int | None = None,
        max_waiting: int = MAX_WAITING_ROWS,
        select_adapter: Callable[[str | None], contextlib.AbstractContextManager] | None = None,
        continuous: bool = True,
    ):
        if max_waiting < 1:
            raise InkwellError(f"invalid queue bound {max_waiting}", field="max_queue", hint="use 1 or more rows")
        self.engine = engine
        self.continuous = continuous and supports_continuous(engine)
        self.window_s = window_s
        self.max_batch_rows = max_batch_rows or engine.batch_size
        self.step_tokens = step_tokens or engine.step_tokens
        if self.step_tokens < 1:
            raise InkwellError(
                f"invalid step token budget {self.step_tokens}", field="step_tokens", hint="use 1 or more"
            )
        self.max_waiting = max_waiting
        self.select_adapter = select_adapter or _no_adapters
        # The prompts side with its own tokenizer, for request threads (render / count tokens) while the
        # scheduler thread decodes: HF fast tokenizers must not be borrowed by two threads at once.
        self.front = engine.text.with_own_tokenizer()
        self._front_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: list[GenerationJob] = []
        self._running: list[GenerationJob] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._batch: ContinuousBatch | None = None
        self._batch_key: str | None = None
        self._adapter = contextlib.ExitStack()  # the running continuous batch's adapter, active for its life
        self._prefixes: dict[str | None, PrefixCache] = {}  # KV of recent prompt starts, per adapter
        self._chores: list[tuple[Callable[[], Any], concurrent.futures.Future]] = []  # call_idle's queue
        self._job_s = 5.0  # moving average of a request's time in the scheduler, for Retry-After estimates
        self.batches = 0  # batches started (tests and metrics read it)

    # ------------------------------------------------------------ public API

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._loop, name="inkwell-scheduler", daemon=True)
        self._thread.start()
        return self

    def submit(self, job: GenerationJob, block: bool = False) -> GenerationJob:
        """Queue a job. When `max_waiting` rows already wait: raise QueueFull, or with `block` wait for room
        (until the job is cancelled: JobCancelled). A job larger than the bound is taken into an empty queue."""
        with self._cond:
            while True:
                if self._closed:
                    raise InkwellError("the generation scheduler is shut down", field="model")
                waiting = self._waiting_rows()
                if not waiting or waiting + job.rows <= self.max_waiting:
                    break
                if not block:
                    batches_ahead = waiting / max(1, self.max_batch_rows)
                    raise QueueFull(
                        f"the generation queue is full ({waiting} rows waiting, the limit is {self.max_waiting})",
                        retry_after_s=min(60.0, max(1.0, batches_ahead * self._job_s)),
                        field="max_queue",
                        hint="retry after a short wait, or raise the queue bound (inkwell serve --max-queue)",
                    )
                if job.cancelled:
                    raise JobCancelled("the request was cancelled before it ran")
                self._cond.wait(0.1)  # woken when jobs leave the queue; the timeout re-checks cancellation
            self._pending.append(job)
            self._cond.notify_all()
        return job

    def run(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        adapter: str | None = None,
        on_delta: Callable[[int, str], None] | None = None,
    ) -> list[GenerationResult]:
        """Submit (waiting for room in the queue) and wait for the results. Not for the scheduler thread."""
        return self.submit(GenerationJob(prompts, settings, adapter=adapter, on_delta=on_delta), block=True).wait()

    def call_idle(self, fn: Callable[[], Any], timeout: float | None = 300.0) -> Any:
        """Run `fn()` on the scheduler thread between batches (no batch running) and return its result:
        how the engine's model is changed while serving (e.g. an adapter attached). Under constant load a chore
        waits for the running batch to drain; new jobs wait behind it."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                raise InkwellError("the generation scheduler is shut down", field="model")
            self._chores.append((fn, future))
            self._cond.notify_all()
        return future.result(timeout)

    def tokenize(self, fn: Callable[[TextRows], Any]) -> Any:
        """Run `fn(front)` for render / encode / count_tokens from a request thread (`front`: the engine's
        prompts side with its own tokenizer)."""
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

    def _waiting_rows(self) -> int:
        return sum(job.rows for job in self._pending if not job.cancelled)

    # ------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while True:
            window: list[GenerationJob] = []  # a window batch to run as one Engine.generate call
            newcomers: list[GenerationJob] = []  # jobs joining the continuous batch at this step
            with self._cond:
                chores, self._chores = (self._chores, []) if self._batch is None else ([], self._chores)
            for fn, future in chores:  # no batch is running: the engine is the chore's alone
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)
            with self._cond:
                if self._batch is None:
                    while not self._pending and not self._closed and not self._chores:
                        self._cond.wait()
                    if self._chores:
                        continue
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
                            self._open_batch(leader)
                        except Exception as exc:  # noqa: BLE001 - e.g. an unknown adapter: fail that job only
                            self._pending.remove(leader)
                            self._cond.notify_all()
                            self._finish(leader, error=exc)
                            continue
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
                self._admit(batch, newcomers)
                batch.step()
            except Exception as exc:  # noqa: BLE001 - handed to the batch's jobs; the loop must survive
                log.exception("a decode step failed")
                for job in dict.fromkeys([*(row.owner for row in batch.all_rows()), *newcomers]):
                    if not job.done:
                        self._finish(job, error=exc)
                batch.clear()
            with self._cond:
                self._running = [job for job in self._running if not job.done]
                if batch.idle:
                    self._close_batch()

    def _open_batch(self, leader: GenerationJob) -> None:
        settings = dataclasses.replace(leader.settings, stop=list(leader.settings.stop), seed=None)
        self._adapter.enter_context(self.select_adapter(leader.adapter))  # one adapter for the batch's life
        try:
            self._batch = self.engine.continuous_batch(
                settings,
                max_rows=self.max_batch_rows,
                step_tokens=self.step_tokens,
                prefix_cache=self._prefixes.setdefault(leader.adapter, PrefixCache()),
            )
        except BaseException:
            self._adapter.close()
            raise
        self._batch_key = self._key(leader)
        self.batches += 1

    def _close_batch(self) -> None:
        self._batch, self._batch_key = None, None
        self._adapter.close()

    def _admissible(self, batch: ContinuousBatch) -> list[GenerationJob]:
        """Remove and return waiting jobs that can join `batch` now: oldest first, stopping at the first that
        cannot (another adapter or settings, or no room), so nothing waiting is overtaken for long."""
        room = self.max_batch_rows - batch.occupied
        taken: list[GenerationJob] = []
        keep: list[GenerationJob] = []
        blocked = False
        for job in self._pending:
            if job.cancelled:
                self._finish(job, error=JobCancelled("the request was cancelled before it ran"))
            elif (
                not blocked
                and self._key(job) == self._batch_key
                and (job.rows <= room or (not batch.occupied and not taken))
            ):
                taken.append(job)
                room -= job.rows
            else:
                blocked = True
                keep.append(job)
        if len(keep) < len(self._pending):
            self._cond.notify_all()  # room in the queue for blocked submitters
        self._pending = keep
        return taken

    def _admit(self, batch: ContinuousBatch, jobs: list[GenerationJob]) -> None:
        """Queue the jobs' rows on the batch (each job's prompt errors fail that job only)."""
        for job in jobs:
            try:
                rows = self.engine.text.make_rows(
                    job.prompts, job.settings, seeds=[job.seed] * len(job.prompts), torch_generators=True
                )
            except Exception as exc:  # noqa: BLE001 - e.g. a prompt too long for the context
                self._finish(job, error=exc)
                continue
            stream = _stream_to(job)
            for row in rows:
                row.owner, row.stream, row.cancelled, row.on_done = job, stream, job._cancelled.is_set, self._row_done
            job.started_at = time.monotonic()
            job._rows, job._open, job._t0 = rows, len(rows), time.perf_counter()
            batch.add(rows)

    def _row_done(self, row) -> None:
        job = row.owner
        job._open -= 1
        if job._open:
            return
        self._finish(job, results=[row_result(r, job._t0) for r in job._rows])

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
        self._cond.notify_all()
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
                results = self.engine.generate(
                    prompts, settings, on_delta=on_delta, should_stop=should_stop, seeds=seeds
                )
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
            grouped.setdefault(id(job), []).append(
                dataclasses.replace(result, prompt_index=result.prompt_index - offset)
            )
        for job in batch:
            self._finish(job, results=grouped.get(id(job), []))

    def _finish(
        self, job: GenerationJob, results: list[GenerationResult] | None = None, error: BaseException | None = None
    ) -> None:
        job.results, job.error = results, error
        if results is not None:  # a rough time per request, for QueueFull's Retry-After
            self._job_s = 0.8 * self._job_s + 0.2 * (time.monotonic() - job.submitted_at)
        job._done.set()
        if job.on_done is not None:
            try:
                job.on_done(job)
            except Exception:
                log.exception("on_done callback failed")


# ---------------------------------------------------------------- step-level continuous batching


def supports_continuous(engine) -> bool:
    """Whether the engine gives the Scheduler step-level batches (its declared capability)."""
    return engine.capabilities.continuous_batching


def _stream_to(job: GenerationJob) -> Callable[[int, str], None] | None:
    """The job's on_delta, guarded like the window path's (a broken callback cancels only its job)."""
    on_delta = job.on_delta
    if on_delta is None:
        return None

    def deliver(index: int, text: str) -> None:
        if job.cancelled:
            return
        job.emitted = True
        try:
            on_delta(index, text)
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
            raise InkwellError(
                f"adapter '{name}': '{path}' is not a PEFT adapter folder (no adapter_config.json)",
                field="adapter",
                hint="point NAME=PATH at a folder written by `inkwell train`",
            )
        kind = PeftConfig.from_pretrained(str(path)).peft_type.value
        if kind not in LORA_FAMILY:
            raise InkwellError(
                f"adapter '{name}' is a {kind} adapter; serving several adapters supports LoRA-type ones only",
                field="adapter",
                hint="serve it alone with `inkwell generate --adapter`",
            )
        try:
            if isinstance(model, PeftModel):
                model.load_adapter(str(path), adapter_name=name)
            else:
                model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
        except Exception as exc:
            raise InkwellError(
                f"could not load adapter '{name}' from {path} onto '{loaded.name}': {exc}",
                field="adapter",
                hint="use the base model the adapter was trained on",
            ) from exc
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
    shares batches with everything else. Use it from any thread but the scheduler's; several threads may
    call `generate` at once (`concurrent`), which is how batch jobs keep a continuous batch full.

    `block`: when the scheduler's queue is full, wait for room (in-process callers) instead of raising
    QueueFull (the server, which answers 429)."""

    capabilities = Capabilities(concurrent=True, cancellable=True, grammar=True)

    def __init__(
        self,
        scheduler: Scheduler,
        adapter: str | None = None,
        adapter_path: str | None = None,
        cancel: threading.Event | None = None,
        block: bool = True,
    ):
        self.scheduler = scheduler
        self.adapter = adapter
        self.adapter_path = adapter_path
        loaded = scheduler.engine.loaded
        self.loaded = dataclasses.replace(loaded, adapter=adapter_path) if adapter else loaded
        self.batch_size = scheduler.max_batch_rows
        self.tokenizer = scheduler.front.tokenizer
        self.block = block
        self.cancelled = cancel or threading.Event()  # set it to cancel the running and any later generate()

    def with_cancel(self, cancel: threading.Event) -> ScheduledEngine:
        """The same engine with its own cancel switch (e.g. one per batch job)."""
        return ScheduledEngine(self.scheduler, self.adapter, self.adapter_path, cancel=cancel, block=self.block)

    def render(self, prompt: Prompt) -> str:
        return self.scheduler.tokenize(lambda text: text.render(prompt))

    def encode(self, prompt: Prompt) -> list[int]:
        return self.scheduler.tokenize(lambda text: text.encode(prompt))

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.encode(prompt))

    def close(self) -> None:
        """The scheduler is its owner's to close."""

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings | None = None,
        on_delta: Callable[[int, str], None] | None = None,
    ) -> list[GenerationResult]:
        if self.cancelled.is_set():
            raise JobCancelled("the request was cancelled")
        job = GenerationJob(prompts, settings or GenerationSettings(), adapter=self.adapter, on_delta=on_delta)
        job._cancelled = self.cancelled  # cancelling this engine cancels its jobs, queued or running
        return self.scheduler.submit(job, block=self.block).wait()
