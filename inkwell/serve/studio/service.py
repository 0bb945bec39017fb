"""What the studio's endpoints do (serve/studio/api.py only maps HTTP onto this).

Each API key is one creator (`owner`: the key's id, `local` on a server without keys); every call reads and
writes through `StudioData` with that owner, so one creator never sees another's pieces. Generation goes
through the server's scheduler like /v1 requests (same batches, same moderation, same history log); the
feedback loop (export, training, blind rounds, promotion) is `inkwell.feedback`'s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from inkwell.errors import InkwellError
from inkwell.feedback.jobs import system_name
from inkwell.generate.record import GenerationRecord
from inkwell.safety import ModerationBlocked
from inkwell.serve.errors import APIError, bad_request, from_inkwell, moderation_blocked
from inkwell.serve.moderation import StreamScreen, screen_fields
from inkwell.serve.serving import DONE, Serving, _SSEResponse, api_error, sse
from inkwell.serve.studio import schemas
from inkwell.store.studio import NotFound, PieceFilter, StudioData

log = logging.getLogger("inkwell.studio")

LOCAL = "local"  # the owner of everything on a server without API keys
BASE = "base"  # the system name of the server's base model
REMOTE = "remote:"  # resolve_system's prefix for a system on another server (not a scheduler adapter)
MAX_EXPORT_ROWS = 50_000  # one download; beyond it, the CLI (`inkwell feedback export`) streams to files


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

    async def data(self, action: Callable[[StudioData], Any]) -> Any:
        """`action(StudioData)` on the server's store, off the event loop; NotFound -> 404, other user errors
        -> 400 naming the field."""

        def run() -> Any:
            return self.state.with_store(lambda store: action(StudioData(store)))

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

    async def _template(self, name: str, param: str = "template"):
        from inkwell.prompts.library import get_template

        try:
            return await run_in_threadpool(get_template, name)
        except InkwellError as exc:
            raise APIError(404, str(exc).split("\n")[0], param=param, code="template_not_found") from None

    async def _prepare(
        self, owner: str, tpl, given: dict, settings: schemas.StudioSettings, system: str | None, n: int
    ):
        """Fields checked (400 naming `fields.NAME`) and moderated, the system resolved, the prompt rendered:
        (fields, system, adapter, rendered, settings, engine, cancel, prompt text)."""
        from inkwell.generate.content import prepare as prepare_content

        state = self.state
        try:
            fields = tpl.resolve_fields(given)
        except InkwellError as exc:
            raise _field_error(exc, "fields") from None
        if state.guard is not None:
            fields, _ = await self.serving.moderated("studio", screen_fields, state.guard, fields)
        system_name, adapter = await self.resolve_system(owner, system)
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
            rendered, decoding = prepare_content(engine, tpl, dict(fields), overrides=overrides)
            return rendered, decoding, engine.render(rendered.prompt)

        try:
            rendered, decoding, prompt = await run_in_threadpool(render)
        except InkwellError as exc:
            raise _field_error(exc, "settings" if exc.field in _SETTING_NAMES else "fields") from None
        return fields, system_name, adapter, rendered, decoding, engine, cancel, prompt

    async def create_piece(self, request: Request) -> Response:
        owner = await self.owner(request, model=True)
        req = await self.body(request, schemas.PieceRequest)
        tpl = await self._template(req.template)
        fields, system, _adapter, rendered, decoding, engine, cancel, prompt = await self._prepare(
            owner, tpl, req.fields, req.settings, req.system, req.n
        )
        piece_id = await self.data(
            lambda d: d.new_piece(
                owner,
                template=tpl.name,
                fields=rendered.fields,
                system=system,
                settings=decoding.to_dict(),
                request=rendered.prompt,
                prompt=prompt,
            )
        )
        return await self._write(request, owner, piece_id, tpl, rendered, decoding, engine, cancel, system, req.stream)

    async def add_variant(self, request: Request, piece_id: int) -> Response:
        from inkwell.generate.content import template_settings

        owner = await self.owner(request, model=True)
        req = await self.body(request, schemas.VariantRequest)
        piece = await self.data(lambda d: d.piece(owner, piece_id))
        tpl = await self._template(piece["template"], param="template")
        system, adapter = await self.resolve_system(owner, req.system or piece["system"])
        stored = {k: v for k, v in piece["settings"].items() if k != "seed"}  # a new seed: another text
        decoding = template_settings(tpl, {**stored, "num_return_sequences": 1}, [])
        if req.settings is not None:
            decoding = template_settings(tpl, {**decoding.to_dict(), **req.settings.overrides()}, [])
        cancel = threading.Event()
        engine = await self.engine_for(adapter, cancel)

        class _Rendered:  # the stored rendering: a variant sees exactly the piece's prompt
            prompt = piece["request"]
            fields = piece["fields"]
            warnings: list[str] = []

        return await self._write(request, owner, piece_id, tpl, _Rendered, decoding, engine, cancel, system, req.stream)

    async def _write(
        self, request: Request, owner: str, piece_id: int, tpl, rendered, decoding, engine, cancel, system, stream
    ) -> Response:
        """Generate the variants of one piece: streamed as Server-Sent Events, or answered whole."""
        from inkwell.generate.content import write_many

        state = self.state
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        rows = decoding.num_return_sequences
        screen = StreamScreen(state.guard, rows) if state.guard is not None else None

        def on_delta(index: int, text: str) -> None:  # the scheduler's thread
            loop.call_soon_threadsafe(queue.put_nowait, (index, text))

        def work():
            return write_many(engine, tpl, [rendered], decoding, on_delta=on_delta if stream else None)[0]

        slot = state.slots.acquire()
        started = time.perf_counter()
        task = asyncio.ensure_future(run_in_threadpool(work))

        async def finish() -> dict:
            """Moderate and store each finished variant; the piece as it is now."""
            outcome = task.result()
            if isinstance(outcome, Exception):
                raise outcome
            for item in outcome:
                text = item.text
                if state.guard is not None:
                    text, _decision = await run_in_threadpool(state.guard.screen_output, item.text)
                record = GenerationRecord.of(
                    engine,
                    item.generation,
                    source="studio",
                    prompt=rendered.prompt,
                    settings=decoding,
                    template=tpl.name,
                    fields=rendered.fields,
                    text=text,
                    api_key_id=None if owner == LOCAL else owner,
                )
                await self._store_variant(owner, piece_id, system, text, item.generation.finish_reason, record)
            self.serving.count("studio", 200)
            state.metrics.e2e.observe(time.perf_counter() - started)
            return await self.data(lambda d: d.piece(owner, piece_id))

        if not stream:
            try:
                await asyncio.wait({task})
                return JSONResponse(await finish())
            except ModerationBlocked as exc:
                raise moderation_blocked(exc) from None
            except APIError:
                raise
            except Exception as exc:  # noqa: BLE001 - a user error is a 400, anything else a logged 500
                raise api_error(exc) from None
            finally:
                slot.release()

        async def events() -> AsyncIterator[str]:
            piece = await self.data(lambda d: d.piece(owner, piece_id))
            yield sse({"type": "piece", "piece": piece})
            known = {v["id"] for v in piece["variants"]}
            try:
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        if queue.empty():
                            break
                        continue
                    index, text = getter.result()
                    if screen is not None:
                        screen.add(index, text)
                        text = await run_in_threadpool(screen.release, index) if screen.due(index) else ""
                    if text:
                        yield sse({"type": "delta", "index": index, "text": text})
                piece = await finish()
            except ModerationBlocked as exc:
                cancel.set()
                yield sse({"type": "error", **moderation_blocked(exc).body()}, ensure_ascii=True)
                yield DONE
                return
            except Exception as exc:  # noqa: BLE001 - the stream started: an error event, then the end
                error = exc if isinstance(exc, APIError) else api_error(exc)
                yield sse({"type": "error", **error.body()}, ensure_ascii=True)
                yield DONE
                return
            new = [v for v in piece["variants"] if v["id"] not in known]
            for index, variant in enumerate(new):
                yield sse({"type": "variant", "index": index, "variant": variant})
            yield sse({"type": "done", "piece": piece})
            yield DONE

        def on_close() -> None:
            if not task.done():  # the creator left mid-stream: stop writing
                cancel.set()
            slot.release()

        return _SSEResponse(events(), on_close)

    async def _store_variant(self, owner, piece_id, system, text, finish_reason, record: GenerationRecord) -> None:
        log_it = self.state.config.log_generations

        def write(d: StudioData) -> None:
            generation_id = d.store.log_record(record) if log_it else None
            d.add_variant(
                owner, piece_id, system=system, text=text, generation_id=generation_id, finish_reason=finish_reason
            )

        await self.data(write)

    # ------------------------------------------------------------ editing, verdicts, history

    async def piece(self, request: Request, piece_id: int) -> dict:
        owner = await self.owner(request)
        return await self.data(lambda d: d.piece(owner, piece_id))

    async def choose(self, request: Request, piece_id: int) -> dict:
        owner = await self.owner(request)
        req = await self.body(request, schemas.ChooseRequest)

        def pick(d: StudioData) -> dict:
            d.choose(owner, piece_id, req.variant_id)
            return d.piece(owner, piece_id)

        return await self.data(pick)

    async def add_version(self, request: Request, piece_id: int) -> dict:
        owner = await self.owner(request)
        req = await self.body(request, schemas.VersionRequest)
        return await self.data(
            lambda d: (d.add_version(owner, piece_id, req.text, req.parent_id), d.piece(owner, piece_id))[1]
        )

    async def feedback(self, request: Request, piece_id: int) -> dict:
        owner = await self.owner(request)
        req = await self.body(request, schemas.FeedbackRequest)

        def verdict(d: StudioData) -> dict:
            cleared = "rating" in req.model_fields_set and req.rating is None  # "rating": null clears it
            d.set_verdict(owner, piece_id, status=req.status, rating=req.rating, tags=req.tags, clear_rating=cleared)
            return d.piece(owner, piece_id)

        return await self.data(verdict)

    async def branch(self, request: Request, piece_id: int) -> dict:
        """A new piece with the same template, fields, system and prompt, starting from one version's text."""
        owner = await self.owner(request)
        req = await self.body(request, schemas.BranchRequest)

        def fork(d: StudioData) -> dict:
            piece = d.piece(owner, piece_id)
            if req.version_id is not None:
                version = next((v for v in piece["versions"] if v["id"] == req.version_id), None)
                if version is None:
                    raise NotFound(f"piece {piece_id} has no version {req.version_id}", field="version_id")
                text = version["text"]
            else:
                text = piece["text"]
            child = d.new_piece(
                owner,
                template=piece["template"],
                fields=piece["fields"],
                system=piece["system"],
                settings=piece["settings"],
                request=piece["request"],
                prompt=piece["prompt"],
                parent_piece=piece["id"],
                parent_version=req.version_id,
            )
            source = next((v for v in piece["variants"] if v["id"] == piece["chosen_variant"]), None)
            d.add_variant(
                owner,
                child,
                system=piece["system"],
                text=source["text"] if source else text,
                generation_id=source["generation_id"] if source else None,
                finish_reason=source["finish_reason"] if source else None,
            )
            if source is None or text != source["text"]:
                d.add_version(owner, child, text)
            return d.piece(owner, child)

        return await self.data(fork)

    async def search(self, request: Request) -> dict:
        owner = await self.owner(request)
        q = request.query_params
        try:
            min_rating = int(q["min_rating"]) if q.get("min_rating") else None
            limit = int(q.get("limit") or 50)
            offset = int(q.get("offset") or 0)
        except ValueError:
            raise bad_request("min_rating, limit and offset must be whole numbers", param="limit") from None
        if not 1 <= limit <= 200:
            raise bad_request(f"limit must be between 1 and 200, got {limit}", param="limit")
        if offset < 0:
            raise bad_request("offset must be >= 0", param="offset")
        status = q.get("status") or None
        if status is not None and status not in ("draft", "accepted", "rejected"):
            raise bad_request("status must be draft, accepted or rejected", param="status")
        where = PieceFilter(
            query=(q.get("q") or "")[:500] or None,
            template=q.get("template") or None,
            system=q.get("system") or None,
            status=status,
            min_rating=min_rating,
            since=parse_date(q.get("since"), "since"),
            until=parse_date(q.get("until"), "until"),
            limit=limit,
            offset=offset,
        )
        rows, total = await self.data(lambda d: d.search(owner, where))
        summary = [{k: v for k, v in row.items() if k not in ("owner", "request", "prompt")} for row in rows]
        return {"data": summary, "total": total}

    # ------------------------------------------------------------ blind comparisons

    async def compare(self, request: Request) -> dict:
        from inkwell.generate.content import write_many

        owner = await self.owner(request, model=True)
        req = await self.body(request, schemas.ComparisonRequest)
        if req.systems[0] == req.systems[1]:
            raise bad_request("compare two different systems", param="systems")
        tpl = await self._template(req.template)
        fields, system_a, _, rendered, decoding, engine_a, cancel, prompt = await self._prepare(
            owner, tpl, req.fields, req.settings, req.systems[0], 1
        )
        system_b, adapter_b = await self.resolve_system(owner, req.systems[1], param="systems")
        engine_b = await self.engine_for(adapter_b, cancel)

        def one(engine) -> str:
            outcome = write_many(engine, tpl, [rendered], decoding)[0]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome[0].text

        slot = self.state.slots.acquire()
        try:
            texts = list(await asyncio.gather(run_in_threadpool(one, engine_a), run_in_threadpool(one, engine_b)))
        except APIError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise api_error(exc) from None
        finally:
            slot.release()
        if self.state.guard is not None:
            texts = [(await run_in_threadpool(self.state.guard.screen_output, t))[0] for t in texts]
        pairs = [(system_a, texts[0]), (system_b, texts[1])]
        random.SystemRandom().shuffle(pairs)  # blind: the creator must not learn the order
        (left_system, left_text), (right_system, right_text) = pairs
        comparison_id = await self.data(
            lambda d: d.new_comparison(
                owner,
                template=tpl.name,
                fields=rendered.fields,
                request=rendered.prompt,
                prompt=prompt,
                left_system=left_system,
                right_system=right_system,
                left_text=left_text,
                right_text=right_text,
            )
        )
        return {"id": comparison_id, "left": {"text": left_text}, "right": {"text": right_text}}

    async def comparisons(self, request: Request) -> dict:
        owner = await self.owner(request)
        pending_arg = request.query_params.get("pending")
        pending = None if pending_arg in (None, "") else pending_arg.lower() in ("1", "true", "yes")
        rows = await self.data(lambda d: d.comparisons(owner, pending=pending))
        return {"data": [blind(row) for row in rows]}

    async def judge(self, request: Request, comparison_id: int) -> dict:
        owner = await self.owner(request)
        req = await self.body(request, schemas.JudgeRequest)
        return blind(await self.data(lambda d: d.judge(owner, comparison_id, req.winner)))

    async def leaderboard(self, request: Request) -> dict:
        owner = await self.owner(request)
        from inkwell.feedback.leaderboard import leaderboard

        rows = await self.data(lambda d: d.comparisons(owner, pending=False))
        return {"method": "bradley-terry", "data": await run_in_threadpool(leaderboard, rows)}

    # ------------------------------------------------------------ the loop: export, train, round, promote

    async def export(self, request: Request) -> Response:
        owner = await self.owner(request)
        from inkwell.feedback.export import export_rows

        q = request.query_params
        kind = q.get("kind") or "sft"
        if kind not in ("sft", "dpo"):
            raise bad_request("kind must be sft or dpo", param="kind")
        since = parse_date(q.get("since"), "since")
        template = q.get("template") or None
        rows = await self.data(lambda d: getattr(export_rows(d, owner, since=since, template=template), kind))
        if len(rows) > MAX_EXPORT_ROWS:
            raise bad_request(
                f"{len(rows)} rows is more than one download holds ({MAX_EXPORT_ROWS}); narrow it with since or "
                "template, or use `inkwell feedback export`",
                param="since",
            )
        body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        name = f"inkwell-feedback-{kind}.jsonl"
        return Response(
            body,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Inkwell-Rows": str(len(rows))},
        )

    async def summary(self, request: Request) -> dict:
        owner = await self.owner(request)
        from inkwell.feedback.export import export_rows

        def count(d: StudioData) -> dict:
            rows = export_rows(d, owner)
            _, pieces = d.search(owner, PieceFilter(limit=1))
            return {
                "sft": len(rows.sft),
                "dpo": len(rows.dpo),
                "pieces": pieces,
                "comparisons": len(d.comparisons(owner, pending=False)),
            }

        return await self.data(count)

    def _runs_dir(self) -> Path:
        from inkwell.home import inkwell_home

        return self.runs_dir or inkwell_home() / "studio" / "runs"

    async def train(self, request: Request) -> Response:
        owner = await self.owner(request, model=True)
        from inkwell.feedback.jobs import start_job

        req = await self.body(request, schemas.TrainingRequest)
        state = self.state
        if not state.config.training:
            raise APIError(
                403,
                "training from feedback is turned off on this server (it was started with --no-training)",
                param="stage",
                code="training_disabled",
            )
        if not state.engine.capabilities.adapters:
            raise bad_request(
                "this server's engine cannot serve adapters, so a trained one could not be compared or used; "
                "start the studio with --engine torch",
                param="stage",
            )
        base_model = state.config.model or state.engine.loaded.name
        job = await self.data(
            lambda d: start_job(
                d,
                owner,
                stage=req.stage,
                base_model=base_model,
                runs_dir=self._runs_dir(),
                max_steps=req.max_steps,
                template=req.template,
            )
        )
        return JSONResponse(await self._job(owner, job["id"]), status_code=202)

    async def _job(self, owner: str, job_id: int) -> dict:
        from inkwell.feedback.jobs import poll_job

        def look(d: StudioData) -> dict:
            d.job(owner, job_id)  # 404 for another owner's job
            job = poll_job(d, job_id)
            job["system"] = system_name(job_id)
            rounds = d.comparisons(owner, round=job_round(job_id))
            job["round"] = {"comparisons": len(rounds), "judged": sum(r["winner"] is not None for r in rounds)}
            return job

        return await self.data(look)

    async def jobs(self, request: Request) -> dict:
        owner = await self.owner(request)
        ids = await self.data(lambda d: [job["id"] for job in d.jobs(owner)])
        return {"data": [await self._job(owner, job_id) for job_id in ids]}

    async def job(self, request: Request, job_id: int) -> dict:
        owner = await self.owner(request)
        return await self._job(owner, job_id)

    async def round(self, request: Request, job_id: int) -> dict:
        """A blind round: for each held-back prompt, the base model's text and the new adapter's text (written by
        the job on the held-back prompts), in random order, as comparisons for the creator to judge."""
        owner = await self.owner(request)
        req = await self.body(request, schemas.RoundRequest)
        job = await self._job(owner, job_id)
        if job["status"] != "finished" or not job.get("report"):
            raise bad_request(f"training job {job_id} is {job['status']}; wait until it has finished", param="job_id")
        heldout = job["report"].get("heldout") or []
        if req.count is not None:
            heldout = heldout[: req.count]
        name = system_name(job_id)
        chooser = random.SystemRandom()

        def make(d: StudioData) -> list[int]:
            if d.comparisons(owner, round=job_round(job_id)):
                raise InkwellError(f"training job {job_id} already has its blind round", field="job_id")
            ids = []
            for item in heldout:
                pairs = [(BASE, item["base_text"]), (name, item["new_text"])]
                chooser.shuffle(pairs)
                ids.append(
                    d.new_comparison(
                        owner,
                        template=item["template"],
                        fields=item["fields"],
                        request=item["request"],
                        prompt=item["prompt"],
                        left_system=pairs[0][0],
                        right_system=pairs[1][0],
                        left_text=pairs[0][1],
                        right_text=pairs[1][1],
                        round=job_round(job_id),
                    )
                )
            return ids

        ids = await self.data(make)
        return {"round": job_round(job_id), "comparisons": ids}

    async def decide(self, request: Request, job_id: int) -> dict:
        owner = await self.owner(request)
        req = await self.body(request, schemas.DecideRequest)
        job = await self._job(owner, job_id)
        name = system_name(job_id)

        def record(d: StudioData) -> dict:
            if req.action == "promote":
                if not job.get("adapter"):
                    raise InkwellError(f"training job {job_id} left no adapter", field="job_id")
                d.register_adapter(owner, name, str(job["adapter"]), job_id)
            return d.decide(owner, job_id, req.action, name)

        return await self.data(record)


_SETTING_NAMES = {"temperature", "top_p", "top_k", "max_new_tokens", "seed", "repetition_penalty", "max_tokens"}


def job_round(job_id: int) -> str:
    return f"job-{job_id}"


def blind(row: dict) -> dict:
    """A comparison as the creator sees it: which system wrote which side stays hidden until judged."""
    out = {k: v for k, v in row.items() if k not in ("request", "prompt")}
    if row["winner"] is None:
        out.pop("left_system")
        out.pop("right_system")
    return out
