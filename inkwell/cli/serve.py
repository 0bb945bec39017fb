"""`inkwell serve`: the OpenAI-compatible HTTP API (`inkwell.serve`)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Annotated

import typer

from inkwell.cli.common import DeviceOpt, DtypeOpt, ModelOpt, NoLog, NoModerationOpt, PolicyOpt, say
from inkwell.errors import InkwellError


def serve(
    model: ModelOpt = None,
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter",
            help="NAME=PATH: serve a LoRA adapter as model NAME (repeatable; not merged, base loaded once).",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key", envvar="INKWELL_API_KEY", help="An accepted API key (repeatable); kept only as a hash."
        ),
    ] = None,
    api_keys_file: Annotated[
        Path | None, typer.Option("--api-keys-file", help="One key per line: `ID KEY`, `ID sha256:HEX` or `KEY`.")
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", min=1, help="Requests running or waiting at once; more get 429.")
    ] = 64,
    rate_limit: Annotated[
        str | None,
        typer.Option("--rate-limit", help="Requests per minute per key (per address without keys), e.g. 60/min."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Most rows in one engine batch.")] = 16,
    window_ms: Annotated[
        float, typer.Option("--batch-window-ms", min=0, help="How long a batch's first request waits for others.")
    ] = 20.0,
    batching: Annotated[
        str,
        typer.Option(
            "--batching",
            help="continuous: requests join a running batch between decode steps; window: each batch runs to its end.",
        ),
    ] = "continuous",
    step_tokens: Annotated[
        int,
        typer.Option(
            "--step-tokens",
            min=1,
            help="Token budget of one decode step: one per running row, the rest for chunks of joining prompts.",
        ),
    ] = 256,
    max_queue: Annotated[
        int,
        typer.Option(
            "--max-queue",
            min=1,
            help="Rows waiting for a place in a batch; more get 429 (queue_full) with Retry-After.",
        ),
    ] = 256,
    max_tokens_limit: Annotated[
        int | None,
        typer.Option(
            "--max-tokens-limit", min=1, help="Most max_tokens a request may ask (default: the context length)."
        ),
    ] = None,
    drain_timeout: Annotated[
        float, typer.Option("--drain-timeout", min=0, help="On SIGTERM, seconds in-flight requests get to finish.")
    ] = 30.0,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="torch | native | auto (native: the CPU engine on a llama GGUF, no --adapter; auto: native where it applies, else torch).",
        ),
    ] = "torch",
    no_log: NoLog = False,
    policy: PolicyOpt = None,
    no_moderation: NoModerationOpt = False,
    remote: Annotated[
        list[str] | None,
        typer.Option(
            "--remote",
            help="NAME=MODEL@URL: a studio system on another OpenAI-compatible server (repeatable), e.g. "
            "big=llama-3-8b@http://gpu-box:8000/v1; its key from INKWELL_REMOTE_API_KEY.",
        ),
    ] = None,
    no_training: Annotated[
        bool,
        typer.Option("--no-training", help="The studio may not start training runs (export still works)."),
    ] = False,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the studio in a web browser once the model is ready.")
    ] = False,
):
    """Serve an OpenAI-compatible HTTP API (completions, chat, content templates, /metrics) and the studio at /.

    Example: inkwell serve --model smollm2-135m-instruct --adapter support=runs/lora --api-key sk-local-123
    """
    from inkwell.serve.server import run_server
    from inkwell.serve.state import ServeConfig

    if batching not in ("continuous", "window"):
        raise InkwellError(f"unknown --batching '{batching}'", field="batching", hint="use continuous or window")
    if engine not in ("torch", "native", "auto"):
        raise InkwellError(f"unknown --engine '{engine}' for serve", field="engine", hint="use torch, native or auto")
    config = ServeConfig(
        model=model,
        adapters=_adapters(adapter),
        dtype=dtype,
        device=device,
        engine=engine,
        host=host,
        port=port,
        api_keys=list(api_key or []),
        api_keys_file=str(api_keys_file) if api_keys_file else None,
        max_concurrency=max_concurrency,
        rate_limit=rate_limit,
        batch_size=batch_size,
        window_ms=window_ms,
        continuous_batching=batching == "continuous",
        step_tokens=step_tokens,
        max_queue=max_queue,
        max_tokens_limit=max_tokens_limit,
        drain_timeout_s=drain_timeout,
        log_generations=not no_log,
        moderation=not no_moderation,
        policy=policy,
        training=not no_training,
        remotes=_remotes(remote),
        remote_api_key=os.environ.get("INKWELL_REMOTE_API_KEY"),
    )
    run_server(config, say=say, open_browser=open_browser)


def studio(*args, **kwargs):
    """Inkwell Studio: write, edit, rate and compare in a browser, and turn that feedback into a better model.

    The same server as `inkwell serve` (same options; the OpenAI-compatible API stays at /v1). Each --api-key is
    one creator, who sees only their own pieces; the first page asks for the key.

    Example: inkwell studio --api-key sk-alice --api-key sk-bob --open
    """
    return serve(*args, **kwargs)


studio.__signature__ = inspect.signature(serve, eval_str=True)  # type: ignore[attr-defined]  # typer reads serve's options


def _remotes(pairs: list[str] | None) -> dict[str, str]:
    """`--remote NAME=MODEL@URL` pairs: studio system name -> MODEL@URL (MODEL may be left out: the first listed)."""
    remotes: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, target = pair.partition("=")
        url = target.rpartition("@")[2]
        if not sep or not name.strip() or not url.startswith(("http://", "https://")):
            raise InkwellError(
                f"--remote expects NAME=MODEL@URL, got '{pair}'",
                field="remote",
                hint="--remote big=llama-3-8b@http://gpu-box:8000/v1",
            )
        if name.strip() in remotes or name.strip() == "base":
            raise InkwellError(f"the remote name '{name.strip()}' is taken", field="remote")
        remotes[name.strip()] = target.strip()
    return remotes


def _adapters(pairs: list[str] | None) -> dict[str, str]:
    """`--adapter NAME=PATH` pairs: served model name -> adapter folder."""
    adapters: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InkwellError(
                f"--adapter expects NAME=PATH, got '{pair}'", field="adapter", hint="--adapter support=runs/lora"
            )
        if name.strip() in adapters:
            raise InkwellError(f"two adapters are named '{name.strip()}'", field="adapter")
        adapters[name.strip()] = path.strip()
    return adapters
