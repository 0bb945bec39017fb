"""The studio's pieces: writing them (streamed variants, "another"), choosing, editing (versions beside the
original), verdicts, branches and the history search. Each function is one endpoint of serve/studio/api.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from inkwell.generate.record import GenerationRecord
from inkwell.prompts.render import RenderedPrompt
from inkwell.safety import ModerationBlocked
from inkwell.serve.errors import APIError, bad_request, moderation_blocked
from inkwell.serve.moderation import StreamScreen
from inkwell.serve.serving import DONE, SSEResponse, api_error, sse
from inkwell.serve.studio import extras as extras_
from inkwell.serve.studio import knowledge, schemas
from inkwell.serve.studio.service import LOCAL, Studio, parse_date
from inkwell.store.studio import NotFound, PieceFilter, StudioData


async def create_piece(studio: Studio, request: Request) -> Response:
    owner = await studio.owner(request, model=True)
    req = await studio.body(request, schemas.PieceRequest)
    tpl = await studio.template(req.template)
    # `style`, `table`, `best_of` (extras.py): 404 naming `style`, 400 naming `table` or `best_of`
    extras, given = await extras_.for_piece(studio, req, tpl)
    grounding = await knowledge.ground(studio, req.kb, tpl, given)  # `kb`: its passages (404 naming `kb`)
    if grounding is not None and grounding.escalates(tpl):  # nothing relevant: the template's own reply, no model
        return await knowledge.escalated_piece(studio, owner, tpl, given, req.system, grounding, req.stream)
    fields, system, _adapter, rendered, decoding, engine, cancel, prompt = await studio.prepare(
        owner,
        tpl,
        given,
        req.settings,
        req.system,
        req.n * extras.best_of,  # best-of: every candidate is a row of the batch
        grounding,
        shots=extras.shots,
        sheet=extras.sheet,
        system_for=extras.system_for(studio),
    )
    piece_id = await studio.data(
        lambda d: d.new_piece(
            owner,
            template=tpl.name,
            fields=knowledge.without_passages(rendered.fields),
            system=system,
            settings=decoding.to_dict(),
            request=rendered.prompt,
            prompt=prompt,
        )
    )
    return await _write(
        studio, request, owner, piece_id, tpl, rendered, decoding, engine, cancel, system, req.stream, grounding, extras
    )


async def add_variant(studio: Studio, request: Request, piece_id: int) -> Response:
    from inkwell.generate.content import template_settings

    owner = await studio.owner(request, model=True)
    req = await studio.body(request, schemas.VariantRequest)
    piece = await studio.data(lambda d: d.piece(owner, piece_id))
    tpl = await studio.template(piece["template"], param="template")
    extras = await extras_.of_piece(studio, piece, tpl)  # the piece's style, facts table and best-of
    system, adapter = await studio.resolve_system(owner, extras.asked(req.system or piece["system"]))
    system, adapter = await extras.system_for(studio)(system, adapter)
    stored = {k: v for k, v in piece["settings"].items() if k != "seed"}  # a new seed: another text
    decoding = template_settings(tpl, {**stored, "num_return_sequences": extras.best_of}, [])
    if req.settings is not None:
        decoding = template_settings(tpl, {**decoding.to_dict(), **req.settings.overrides()}, [])
    cancel = threading.Event()
    engine = await studio.engine_for(adapter, cancel)

    # the stored rendering: a variant sees exactly the piece's prompt (its stops are in the stored settings)
    rendered = RenderedPrompt(prompt=piece["request"], fields=piece["fields"], shots_used=0)
    grounding = await studio.data(lambda d: knowledge.stored_grounding(d, piece))  # its passages are in the prompt
    return await _write(
        studio, request, owner, piece_id, tpl, rendered, decoding, engine, cancel, system, req.stream, grounding, extras
    )


async def _write(
    studio: Studio,
    request: Request,
    owner: str,
    piece_id: int,
    tpl,
    rendered,
    decoding,
    engine,
    cancel,
    system,
    stream,
    grounding=None,
    extras: extras_.Extras | None = None,
) -> Response:
    """Generate the variants of one piece: streamed as Server-Sent Events, or answered whole (the text of
    best-of candidates or of variants checked against a facts table is sent when they are done)."""
    extras = extras or extras_.Extras()
    state = studio.state
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    rows = decoding.num_return_sequences
    screen = StreamScreen(state.guard, rows) if state.guard is not None else None

    def on_delta(index: int, text: str) -> None:  # the scheduler's thread
        loop.call_soon_threadsafe(queue.put_nowait, (index, text))

    def work():
        return extras.write(engine, tpl, rendered, decoding, on_delta if stream and extras.streams else None)

    slot = state.slots.acquire()
    started = time.perf_counter()
    task = asyncio.ensure_future(run_in_threadpool(work))

    async def finish() -> dict:
        """Moderate and store each finished variant; the piece as it is now."""
        outcome = task.result()
        if isinstance(outcome, Exception):
            raise outcome
        texts = []
        for item in outcome:
            if grounding is not None:  # citations added to the text; they ride with the record (knowledge.cited)
                grounding.annotate(item)
            text = item.text
            if state.guard is not None:
                text, _decision = await run_in_threadpool(state.guard.screen_output, item.text)
            texts.append(text)
        scores = await extras.scores(texts, rendered.fields, [item.extra for item in outcome])
        shown = {}  # what each new variant is shown with, also where the history log is off
        for item, text, scored in zip(outcome, texts, scores):
            record = GenerationRecord.of_content(
                engine, item, template=tpl.name, source="studio", api_key_id=None if owner == LOCAL else owner
            )
            record.text = text  # as moderated
            record.extra.update(scored)  # style, fact check, best-of: they ride with the record (extras.annotated)
            variant_id = await _store_variant(
                studio, owner, piece_id, system, text, item.generation.finish_reason, record
            )
            shown[variant_id] = {k: scored[k] for k in extras_.SHOWN if k in scored}
        studio.serving.count("studio", 200)
        state.metrics.e2e.observe(time.perf_counter() - started)
        piece = await studio.data(lambda d: extras_.annotated(d, d.piece(owner, piece_id)))
        for variant in piece["variants"]:
            variant.update({k: v for k, v in shown.get(variant["id"], {}).items() if k not in variant})
        return piece

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
        piece = await studio.data(lambda d: d.piece(owner, piece_id))
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

    return SSEResponse(events(), on_close)


async def _store_variant(studio: Studio, owner, piece_id, system, text, finish_reason, record: GenerationRecord) -> int:
    log_it = studio.state.config.log_generations

    def write(d: StudioData) -> int:
        generation_id = d.store.log_record(record) if log_it else None
        return d.add_variant(
            owner, piece_id, system=system, text=text, generation_id=generation_id, finish_reason=finish_reason
        )

    return await studio.data(write)


# ------------------------------------------------------------ editing, verdicts, history


async def piece(studio: Studio, request: Request, piece_id: int) -> dict:
    owner = await studio.owner(request)
    return await studio.data(lambda d: extras_.annotated(d, d.piece(owner, piece_id)))


async def choose(studio: Studio, request: Request, piece_id: int) -> dict:
    owner = await studio.owner(request)
    req = await studio.body(request, schemas.ChooseRequest)

    def pick(d: StudioData) -> dict:
        d.choose(owner, piece_id, req.variant_id)
        return d.piece(owner, piece_id)

    return await studio.data(pick)


async def add_version(studio: Studio, request: Request, piece_id: int) -> dict:
    owner = await studio.owner(request)
    req = await studio.body(request, schemas.VersionRequest)
    return await studio.data(
        lambda d: (d.add_version(owner, piece_id, req.text, req.parent_id), d.piece(owner, piece_id))[1]
    )


async def feedback(studio: Studio, request: Request, piece_id: int) -> dict:
    owner = await studio.owner(request)
    req = await studio.body(request, schemas.FeedbackRequest)

    def verdict(d: StudioData) -> dict:
        cleared = "rating" in req.model_fields_set and req.rating is None  # "rating": null clears it
        d.set_verdict(owner, piece_id, status=req.status, rating=req.rating, tags=req.tags, clear_rating=cleared)
        return d.piece(owner, piece_id)

    return await studio.data(verdict)


async def branch(studio: Studio, request: Request, piece_id: int) -> dict:
    """A new piece with the same template, fields, system and prompt, starting from one version's text."""
    owner = await studio.owner(request)
    req = await studio.body(request, schemas.BranchRequest)

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

    return await studio.data(fork)


async def search(studio: Studio, request: Request) -> dict:
    owner = await studio.owner(request)
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
    rows, total = await studio.data(lambda d: d.search(owner, where))
    summary = [{k: v for k, v in row.items() if k not in ("owner", "request", "prompt")} for row in rows]
    return {"data": summary, "total": total}


# ------------------------------------------------------------ blind comparisons
