"""What a running server holds: its settings, the model (loaded in the background), the scheduler that
owns the engine, keys, limits, metrics and the history store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from inkwell.errors import InkwellError
from inkwell.serve.auth import KeyRing
from inkwell.serve.errors import model_not_found, unavailable
from inkwell.serve.limits import ConcurrencyLimiter, RateLimiter, parse_rate
from inkwell.serve.metrics import ServeMetrics

if TYPE_CHECKING:
    from inkwell.generate.record import GenerationRecord
    from inkwell.generate.scheduler import Scheduler
    from inkwell.store import Store

log = logging.getLogger("inkwell.serve")


@dataclass
class ServeConfig:
    model: str | None = None  # registry name, HF folder or .gguf (default: the embedded default model)
    adapters: dict[str, str] = field(default_factory=dict)  # served name -> LoRA adapter folder
    dtype: str = "auto"
    device: str = "auto"
    engine: str = "torch"  # native (or auto: native where it applies, else torch): see docs/serving.md
    host: str = "127.0.0.1"  # loopback unless asked: an open port on a LAN is an open model
    port: int = 8000
    api_keys: list[str] = field(default_factory=list)
    api_keys_file: str | None = None
    max_concurrency: int = 64  # requests running + waiting; a few batches' worth, so a burst queues instead of failing
    rate_limit: str | None = None  # e.g. "60/min" per key (per client address when there are no keys)
    batch_size: int = 16  # rows per engine batch: on CPUs throughput stops growing around 16-32
    window_ms: float = 20.0  # how long a batch's first request waits for others to join
    step_tokens: int = 256  # tokens one decode step may process: one per running row + a chunk of prompts
    max_queue: int = 256  # rows waiting for a place in a batch; beyond it requests get 429 (queue_full)
    continuous_batching: bool = True  # requests join a running batch between decode steps (else: window batching)
    max_tokens_limit: int | None = None  # the most max_tokens a request may ask for (default: the context length)
    default_max_tokens: int = 256  # when a request leaves max_tokens out
    drain_timeout_s: float = 30.0  # on SIGTERM, how long in-flight requests may take to finish
    log_generations: bool = True  # also the moderation audit (the store's moderation_audit table)
    db_path: str | None = None  # default: INKWELL_HOME/inkwell.db
    moderation: bool = True  # screen inputs and outputs with `policy` (False: --no-moderation)
    remotes: dict[str, str] = field(default_factory=dict)  # studio systems on other servers: name -> MODEL@URL
    remote_api_key: str | None = None  # the key those servers take (INKWELL_REMOTE_API_KEY)
    training: bool = True  # the studio may start feedback training runs (False: --no-training, e.g. a shared box)
    policy: str | None = None  # moderation policy file or name (None: INKWELL_HOME/policy.yaml, else the default)


def served_name(spec: str) -> str:
    """The id a model is served under: registry names as they are, paths by their last part."""
    path = Path(spec)
    return path.stem if spec.endswith(".gguf") else path.name if ("/" in spec or "\\" in spec) else spec


class ServerState:
    """Everything the app's handlers share. `loader` (for tests) returns (engine, {adapter name: path})."""

    def __init__(self, config: ServeConfig, loader: Callable[[ServeConfig], tuple] | None = None):
        self.config = config
        self.keys = KeyRing.build(config.api_keys, config.api_keys_file)
        self.rate = RateLimiter(parse_rate(config.rate_limit))
        self.slots = ConcurrencyLimiter(config.max_concurrency)
        self.metrics = ServeMetrics(
            running=lambda: self.scheduler.running if self.scheduler else 0,
            waiting=lambda: self.scheduler.waiting if self.scheduler else 0,
            in_flight=lambda: self.slots.in_flight,
        )
        for name in config.adapters:
            if not name or "/" in name:
                raise InkwellError(f"invalid adapter name '{name}'", field="adapter", hint="use --adapter NAME=PATH")
        self._loader = loader or load_engine
        self.status = "loading"  # loading | ready | failed
        self.load_error: str | None = None
        self.scheduler: Scheduler | None = None  # set once the model has loaded (status "ready")
        self.adapters: dict[str, str] = {}
        self.studio_adapters: dict[str, str] = {}  # creators' adapters trained from feedback, attached on first use
        self.base_id = ""
        self.base_aliases: set[str] = set()
        self.on_load_failed: Callable[[], None] | None = None
        self._loading: threading.Thread | None = None
        self._remotes: dict[str, object] = {}  # name -> RemoteEngine, opened on first use
        self._remote_lock = threading.Lock()
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self.guard = None  # inkwell.safety.Guard, or None with moderation off
        if config.moderation:
            from inkwell.safety import Guard, load_policy

            # Loaded here, before the model: a bad policy file stops `inkwell serve` at once.
            self.guard = Guard(
                load_policy(config.policy), source="serve", store=_AuditLog(self) if config.log_generations else None
            )

    # ------------------------------------------------------------ loading

    def start_loading(self) -> None:
        if self._loading is None:
            self._loading = threading.Thread(target=self._load, name="inkwell-load", daemon=True)
            self._loading.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        if self._loading is not None:
            self._loading.join(timeout)
        return self.status == "ready"

    def _load(self) -> None:
        from inkwell.generate.scheduler import Scheduler, adapter_selector

        try:
            engine, adapters = self._loader(self.config)
            clash = set(adapters) & {served_name(engine.loaded.name), engine.loaded.name}
            if clash:
                raise InkwellError(f"adapter name '{clash.pop()}' is the base model's name", field="adapter")
            self.adapters = dict(adapters)  # a copy: the engine's own table may grow (studio adapters)
            self.base_id = served_name(engine.loaded.name)
            self.base_aliases = {self.base_id, engine.loaded.name}
            self.scheduler = Scheduler(
                engine,
                window_s=self.config.window_ms / 1000,
                step_tokens=self.config.step_tokens,
                max_waiting=self.config.max_queue,
                select_adapter=adapter_selector(engine.model) if engine.capabilities.adapters else None,
                continuous=self.config.continuous_batching,
            ).start()
            self.status = "ready"
            log.info("model %s ready (%d adapters)", self.base_id, len(adapters))
        except Exception as exc:  # noqa: BLE001 - reported by /health and the CLI
            self.status, self.load_error = "failed", str(exc)
            log.error("could not load the model: %s", exc)
            if self.on_load_failed:
                self.on_load_failed()

    def require_ready(self) -> None:
        if self.status == "loading":
            raise unavailable("The model is still loading; retry in a few seconds (GET /health says when it is ready).")
        if self.status != "ready":
            raise unavailable("The model failed to load; see the server log.")

    # ------------------------------------------------------------ models

    @property
    def ready_scheduler(self) -> Scheduler:
        """The scheduler, which exists once loading finished: requests get here after `require_ready`."""
        assert self.scheduler is not None, "the model has not finished loading"
        return self.scheduler

    @property
    def engine(self):
        return self.ready_scheduler.engine

    @property
    def context_length(self) -> int:
        return self.engine.loaded.context_length

    @property
    def max_tokens_limit(self) -> int:
        return min(self.config.max_tokens_limit or self.context_length, self.context_length)

    def model_ids(self) -> list[str]:
        return [self.base_id, *self.adapters]

    def resolve_model(self, name: str | None) -> str | None:
        """The adapter a request's `model` names (None: the base model); 404 for anything else."""
        if name is None or name in self.base_aliases:
            return None
        if name in self.adapters:
            return name
        raise model_not_found(name, self.model_ids())

    def engine_for(self, adapter: str | None, cancel: threading.Event | None = None):
        from inkwell.generate.scheduler import ScheduledEngine

        # block=False: a full queue is answered with 429 + Retry-After rather than a request thread left waiting.
        return ScheduledEngine(
            self.ready_scheduler, adapter, self.adapters.get(adapter) if adapter else None, cancel=cancel, block=False
        )

    def remote_engine(self, name: str):
        """The engine of a remote system (`--remote NAME=MODEL@URL`), connected on first use."""
        from inkwell.generate.builder import EngineSpec, open_engine

        with self._remote_lock:
            if name not in self._remotes:
                model, _, url = self.config.remotes[name].rpartition("@")
                self._remotes[name] = open_engine(
                    EngineSpec(model or None, backend="remote", base_url=url, api_key=self.config.remote_api_key),
                    log.info,
                )
            return self._remotes[name]

    # ------------------------------------------------------------ history

    def with_store(self, action: Callable):
        """Run `action(store)` under the store lock (the store is opened on first use). Thread-safe."""
        with self._store_lock:
            if self._store is None:
                from inkwell.store import Store

                self._store = Store(self.config.db_path)
            return action(self._store)

    def log_record(self, record: GenerationRecord) -> None:
        """Log one served generation like the CLI does (`source="serve"`, `api_key_id`: the key's id, never
        the key). Thread-safe."""
        if not self.config.log_generations:
            return
        try:
            self.with_store(lambda store: store.log_record(record))
        except Exception:  # a full disk must not fail a request that already has its answer
            log.exception("could not log a generation to the store")

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close(timeout=self.config.drain_timeout_s)
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class _AuditLog:
    """The store as the moderation guard sees it: the server's shared store, behind its lock."""

    def __init__(self, state: ServerState):
        self.state = state

    def log_moderation(self, **record) -> int | None:
        try:
            return self.state.with_store(lambda store: store.log_moderation(**record))
        except Exception:  # like the history log: a store failure does not fail the request
            log.exception("could not write a moderation decision to the audit log")
            return None

    def link_moderation(self, audit_id: int, generation_id: int) -> None:
        try:
            self.state.with_store(lambda store: store.link_moderation(audit_id, generation_id))
        except Exception:
            log.exception("could not link a moderation decision to its generation")


SERVE_ENGINES = ("torch", "native", "auto")


def load_engine(config: ServeConfig):
    """Load the base model once (unmerged) and attach the adapters by name. `native` (or `auto`, on the CPU
    with no adapters) serves a llama GGUF (the embedded SmolLM2) on the native engine instead: one stream
    ~8x faster, ~2.6x the aggregate at 16 streams (docs/serving.md); adapters are switched per batch on the
    torch engine, which holds them unmerged."""
    from inkwell.generate.builder import EngineSpec, open_engine

    if config.engine not in SERVE_ENGINES:
        raise InkwellError(f"unknown engine '{config.engine}'", field="engine", hint="use auto, native or torch")
    if config.engine == "native" and config.adapters:
        raise InkwellError(
            "the native engine serves the base model only",
            field="engine",
            hint="drop --adapter, or use --engine torch (adapters unmerged, switched per batch)",
        )
    engine = open_engine(
        EngineSpec(
            config.model,
            backend=config.engine,
            workload="serve",
            dtype=config.dtype,
            device=config.device,
            batch_size=config.batch_size,
            adapters=dict(config.adapters),
        ),
        log.info,
    )
    return engine, (engine.adapters if engine.capabilities.adapters else {})
