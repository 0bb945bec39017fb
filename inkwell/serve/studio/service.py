"""The studio's shared layer: who is asking, the store, templates, systems and prompt rendering. The
endpoint families build on it: pieces.py (writing, editing, verdicts, history), compare.py (blind
comparisons, leaderboard), loop.py (export, training, blind rounds, promotion); api.py maps HTTP onto them.

Each API key is one creator (`owner`: the key's id, `local` on a server without keys); every call reads and
writes through `StudioData` with that owner, so one creator never sees another's pieces. Generation goes
through the server's scheduler like /v1 requests (same batches, same moderation, same history log); the
feedback loop (export, training, blind rounds, promotion) is `inkwell.feedback`'s.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from inkwell.errors import InkwellError
from inkwell.serve.errors import APIError, bad_request, from_inkwell
from inkwell.serve.moderation import screen_fields
from inkwell.serve.serving import Serving
from inkwell.serve.studio import schemas
from inkwell.store.studio import NotFound, StudioData

log = logging.getLogger("inkwell.studio")

LOCAL = "local"  # the owner of everything on a server without API keys
BASE = "base"  # the system name of the server's base model
REMOTE = "remote:"  # resolve_system's prefix for a system on another server (not a scheduler adapter)


def not_found(exc: NotFound) -> APIError:
    return APIError(404, str(exc).split("\n")[0], param=exc.field, code="not_found")


def _field_error(exc: InkwellError, prefix: str) -> APIError:
    """An InkwellError about one template field or setting, as a 400 naming `prefix.NAME`."""
    error = from_inkwell(exc)
    if exc.field:
        error.param = f"{prefix}.{exc.field}"
    return error


def parse_date(value: str | None, name: str) -> float | None:
    """`YYYY-MM-DD` (UTC midnight) or unix seconds -> unix seconds; a 400 naming the parameter otherwise."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        day = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise bad_request(f"{name} must be a date (YYYY-MM-DD) or unix seconds, got {value!r}", param=name) from None
    return day.timestamp()


class Studio:
    """The studio's operations over the server's state and serving layer (kept on `app.state.studio`)."""

    def __init__(self, serving: Serving):
        self.serving = serving
        self.state = serving.state
        self.runs_dir: Path | None = None  # where feedback training runs go (default INKWELL_HOME/studio/runs)
        self._attach_lock = threading.Lock()

    # ------------------------------------------------------------ shared steps

    async def owner(self, request: Request, *, model: bool = False) -> str:
        """Auth (401) and the per-key rate limit (429); with `model`, readiness too (503). The owner's name."""
        state = self.state
        key_id = state.keys.check(request.headers.get("authorization"))
        if model:
            state.require_ready()
        state.rate.check(key_id or f"addr:{request.client.host if request.client else '-'}")
        return key_id or LOCAL

    async def data(self, action: Callable[[Any], Any], tables: Callable[[Any], Any] = StudioData) -> Any:
        """`action(tables(store))` on the server's store (StudioData, or another owner-scoped family such as
        LongformData), off the event loop; NotFound -> 404, other user errors -> 400 naming the field."""

        def run() -> Any:
            return self.state.with_store(lambda store: action(tables(store)))

        try:
            return await run_in_threadpool(run)
        except NotFound as exc:
            raise not_found(exc) from None
        except InkwellError as exc:
            raise from_inkwell(exc) from None

    async def body(self, request: Request, model: type) -> Any:
        return await self.serving.parse(request, model)

    # ------------------------------------------------------------ who, templates, systems

    async def me(self, request: Request) -> dict:
        owner = await self.owner(request)
        default = await self.data(lambda d: d.default_system(owner))
        return {"user": owner, "auth": self.state.keys.enabled, "default_system": default or BASE}

    async def templates(self, request: Request) -> dict:
        from inkwell.prompts.library import all_templates

        await self.owner(request)
        items = await run_in_threadpool(all_templates)
        data = []
        for t in items.values():
            fields = [
                {
                    "name": name,
                    "type": spec.type,
                    "required": spec.required,
                    "default": spec.default,
                    "choices": spec.choices,
                    "description": spec.description,
                }
                for name, spec in t.fields.items()
            ]
            data.append(
                {
                    "name": t.name,
                    "description": t.description,
                    "languages": t.languages,
                    "structured": t.output_schema is not None,
                    "fields": fields,
                }
            )
        return {"data": data}

    async def systems(self, request: Request) -> dict:
        owner = await self.owner(request)
        return {"data": await self._systems(owner)}

    async def _systems(self, owner: str) -> list[dict]:
        state = self.state
        own, default = await self.data(lambda d: (d.adapters(owner), d.default_system(owner)))
        default = default or BASE
        base_label = state.base_id or (state.config.model or "the default model")
        out: list[dict[str, Any]] = [{"id": BASE, "kind": "base", "label": f"{base_label} (base model)"}]
        out += [{"id": name, "kind": "adapter", "label": f"{name} (adapter)"} for name in state.adapters]
        out += [
            {"id": name, "kind": "remote", "label": f"{name} ({target}, remote)"}
            for name, target in state.config.remotes.items()
        ]
        out += [
            {"id": name, "kind": "adapter", "label": f"{name} (trained from your feedback, job {a['job_id']})"}
            for name, a in own.items()
        ]
        for item in out:
            item["default"] = item["id"] == default
        return out

    async def resolve_system(self, owner: str, system: str | None, param: str = "system") -> tuple[str, str | None]:
        """(system name, the scheduler's adapter name or None for the base model); 400 naming `param` for an
        unknown system. A creator's own trained adapter is attached to the engine on first use."""
        state = self.state
        if system is None:
            system = await self.data(lambda d: d.default_system(owner)) or BASE
        if system in (BASE, *state.base_aliases):
            return BASE, None
        if system in state.adapters:
            return system, system
        if system in state.config.remotes:
            return system, REMOTE + system
        own = await self.data(lambda d: d.adapters(owner))
        if system in own:
            await run_in_threadpool(self.attach, system, own[system]["path"])
            return system, system
        names = [BASE, *state.adapters, *state.config.remotes, *own]
        raise bad_request(f"unknown system '{system}'; this server has: {', '.join(names)}", param=param)

    async def engine_for(self, adapter: str | None, cancel: threading.Event):
        """The engine that writes for a resolved system: the scheduler's (base or adapter) or a remote one."""
        if adapter is not None and adapter.startswith(REMOTE):
            try:
                return await run_in_threadpool(self.state.remote_engine, adapter[len(REMOTE) :])
            except InkwellError as exc:
                raise APIError(
                    502, f"the remote system is unavailable: {str(exc).splitlines()[0]}", param="system"
                ) from None
        return self.state.engine_for(adapter, cancel=cancel)

    def attach(self, name: str, path: str) -> None:
        """Attach a trained adapter to the serving engine (once), between batches."""
        state = self.state
        with self._attach_lock:
            if name in state.studio_adapters:
                return
            engine = state.engine
            if not engine.capabilities.adapters:
                raise InkwellError(
                    "this server's engine serves the base model only",
                    field="system",
                    hint="start the studio with --engine torch to use adapters trained from feedback",
                )
            from inkwell.generate.scheduler import adapter_selector, attach_adapters

            scheduler = state.ready_scheduler

            def chore() -> None:
                attached = attach_adapters(engine.loaded, {name: path})
                engine.model = engine.loaded.model
                assert name in attached
                scheduler.select_adapter = adapter_selector(engine.model)

            scheduler.call_idle(chore)
            state.studio_adapters[name] = path

    # ------------------------------------------------------------ writing pieces

    async def template(self, name: str, param: str = "template"):
        from inkwell.prompts.library import get_template

        try:
            return await run_in_threadpool(get_template, name)
        except InkwellError as exc:
            raise APIError(404, str(exc).split("\n")[0], param=param, code="template_not_found") from None

    async def prepare(
        self,
        owner: str,
        tpl,
        given: dict,
        settings: schemas.StudioSettings,
        system: str | None,
        n: int,
        grounding: Any = None,
        shots: list | None = None,
        sheet: Any = None,
        system_for: Callable[[str, str | None], Any] | None = None,
    ):
        """Fields checked (400 naming `fields.NAME`) and moderated, the system resolved, the prompt rendered:
        (fields, system, adapter, rendered, settings, engine, cancel, prompt text). `grounding`
        (compose.grounded.Grounding of the piece's `kb`): its passages that fit the context join the prompt.
        `shots`: few-shot examples (a style's exemplars); `sheet` (compose.facts.FactSheet): its least important
        facts dropped until the prompt fits; `system_for(system, adapter)`: an async swap of the resolved
        system (a style's LoRA, extras.py)."""
        from inkwell.generate.content import prepare as prepare_content

        state = self.state
        try:
            fields = tpl.resolve_fields(given)
        except InkwellError as exc:
            raise _field_error(exc, "fields") from None
        if state.guard is not None:
            fields, _ = await self.serving.moderated("studio", screen_fields, state.guard, fields)
        system_name, adapter = await self.resolve_system(owner, system)
        if system_for is not None:
            system_name, adapter = await system_for(system_name, adapter)
        overrides = settings.overrides()
        if overrides.get("max_new_tokens", 0) > state.max_tokens_limit:
            raise bad_request(
                f"max_tokens is {overrides['max_new_tokens']}, above this server's limit of {state.max_tokens_limit}",
                param="settings.max_tokens",
            )
        if n > 1:
            overrides["num_return_sequences"] = n
        cancel = threading.Event()
        engine = await self.engine_for(adapter, cancel)

        def render():
            used, values = tpl, dict(fields)
            if grounding is not None and grounding.known:
                from inkwell.compose.grounded import fit

                used, values = fit(engine, tpl, values, grounding, None, overrides)
            if sheet is not None:
                from inkwell.compose.report import fit_facts

                fit_facts(engine, used, values, sheet, overrides)
            rendered, decoding = prepare_content(engine, used, values, shots=shots, overrides=overrides)
            return rendered, decoding, engine.render(rendered.prompt)

        try:
            rendered, decoding, prompt = await run_in_threadpool(render)
        except InkwellError as exc:
            if exc.field == "kb":  # no passage fits the context
                raise from_inkwell(exc) from None
            raise _field_error(exc, "settings" if exc.field in _SETTING_NAMES else "fields") from None
        return fields, system_name, adapter, rendered, decoding, engine, cancel, prompt


_SETTING_NAMES = {"temperature", "top_p", "top_k", "max_new_tokens", "seed", "repetition_penalty", "max_tokens"}
