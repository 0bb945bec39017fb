"""What a studio piece may be written with beyond its fields (docs/studio.md, "Write"): a style profile (its
exemplars as few-shot examples, its LoRA when it has one for the server's model, a style-match score per
variant), a facts table for `report` and `data-brief` (its facts fill the `facts` field; each variant is checked
number by number and rewritten while a number is unsupported) and best-of-n (N candidates per variant, the one
that passes most of the template's checks kept, with its scores). Also GET /studio/api/styles.

compose/ does the work (style.py, facts.py, report.py, bestof.py); this maps it onto the studio. What each
variant was scored on rides with its generation in the history store (`generations.metadata`, migration 8), as
citations do (knowledge.py), so it comes back with the piece; the table's text rides with the first variant, so
that "another" is checked against the same table.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from inkwell.compose.facts import FactSheet
from inkwell.compose.report import DEFAULT_FACT_RETRIES
from inkwell.compose.style import StyleProfile
from inkwell.errors import InkwellError
from inkwell.serve.errors import APIError, bad_request, from_inkwell
from inkwell.serve.studio import knowledge, schemas
from inkwell.serve.studio.service import BASE, Studio
from inkwell.serve.styles import scores_for, style_for
from inkwell.store.studio import StudioData

STYLE_SYSTEM = "style-"  # a style's LoRA writes as the system `style-NAME`
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")  # what compose.facts.read_facts reads
SHOWN = ("style", "fact_check", "best_of")  # what each variant carries back to the page


async def styles(studio: Studio, request: Request) -> dict:
    """GET /studio/api/styles: the style profiles (`inkwell style learn`) the Write screen's Style menu offers."""
    from inkwell.compose.style import list_profiles

    await studio.owner(request)
    profiles = await run_in_threadpool(list_profiles)
    return {
        "data": [
            {
                "name": p["name"],
                "language": p["language"],
                "samples": p["samples"],
                "lora": bool(p["adapter"]) and Path(p["adapter"]).is_dir(),  # `inkwell style learn --train`
                "created": p["created"],
            }
            for p in profiles
        ]
    }


@dataclass
class Extras:
    """A piece's style, facts table and best-of-n, as the writing and scoring of its variants need them."""

    profile: StyleProfile | None = None
    shots: list | None = None  # the style's exemplars as the template's few-shot examples
    sheet: FactSheet | None = None
    table: dict | None = None  # {"name", "text"} as uploaded: kept with the first variant written
    best_of: int = 1
    retries: int = DEFAULT_FACT_RETRIES  # rewrites of a variant with an unsupported number

    @property
    def streams(self) -> bool:
        """Whether text can be shown as it is written: not when candidates are ranked or rewritten at the end."""
        return self.sheet is None and self.best_of == 1

    def write(self, engine, tpl, rendered, decoding, on_delta) -> Any:
        """The variants (generate.content.ContentResult each), or the InkwellError of a structured template."""
        from inkwell.generate.content import write_many

        if self.sheet is None:
            choose = None
            if self.best_of > 1:
                from inkwell.compose.bestof import BestOf

                choose = BestOf(self.best_of)
            return write_many(engine, tpl, [rendered], decoding, on_delta=on_delta, choose=choose)[0]
        from inkwell.compose.report import check_json, write_checked
        from inkwell.generate.jobs import TemplateJob

        # the same request as the piece's prompt, re-rendered by write_checked so that it can write it again
        job = TemplateJob(tpl, decoding.to_dict(), self.shots, dict(rendered.fields))
        items = []
        for version in write_checked(engine, job, self.sheet.evidence(rendered.fields), self.retries):
            version.item.extra["fact_check"] = check_json(version.check, version.unsupported_per_attempt)
            items.append(version.item)
        return items

    async def scores(self, texts: list[str], fields: dict, extras: list[dict]) -> list[dict]:
        """What each variant (its text as moderated) is stored and shown with: `style`, `fact_check` (checked
        again, since moderation may have redacted the text), `best_of` (from `extras`, the chooser's); the first
        also keeps `facts` and the table."""
        out: list[dict[str, Any]] = [{k: e[k] for k in ("best_of",) if k in e} for e in extras]
        matches = await scores_for(self.profile, texts)
        if matches is not None:
            for row, match in zip(out, matches):
                row["style"] = match
        if self.sheet is not None:
            from inkwell.compose.factcheck import check_text
            from inkwell.compose.report import check_json

            evidence = self.sheet.evidence(fields)
            for row, text, extra in zip(out, texts, extras):
                attempts = extra.get("fact_check", {}).get("unsupported_per_attempt", [0])
                row["fact_check"] = check_json(check_text(text, evidence), attempts)
            if out:
                out[0]["facts"] = self.sheet.to_json()
                if self.table is not None:
                    out[0]["table"] = self.table
        return out

    def system_for(self, studio: Studio) -> Callable[[str, str | None], Awaitable[tuple[str, str | None]]]:
        """Studio.prepare's swap: the base model becomes the style's LoRA when the style has one for this model
        (as `inkwell write --style` does without --adapter); another system the creator picked stays."""

        async def swap(system: str, adapter: str | None) -> tuple[str, str | None]:
            profile = self.profile
            if profile is None or profile.adapter is None or adapter is not None:
                return system, adapter
            state = studio.state
            fits = profile.adapter_model in {*state.base_aliases, state.config.model}
            if not fits or not Path(profile.adapter).is_dir():
                return system, adapter  # a LoRA of another model, or gone: the exemplars alone
            name = STYLE_SYSTEM + profile.name
            try:
                await run_in_threadpool(studio.attach, name, profile.adapter)
            except InkwellError:  # this engine serves the base model only: the exemplars alone
                return system, adapter
            return name, name

        return swap

    def asked(self, system: str | None) -> str | None:
        """The system a variant of a piece is asked of: the style's LoRA system is the base model, swapped again."""
        if self.profile is not None and system == STYLE_SYSTEM + self.profile.name:
            return BASE
        return system


async def for_piece(studio: Studio, req: schemas.PieceRequest, tpl) -> tuple[Extras, dict]:
    """A new piece's extras and its fields (with the table's facts as `facts`). 404 naming `style` for an
    unknown style; 400 naming `table` for a bad table, `best_of` for best-of-n it cannot have."""
    extras = Extras(best_of=req.best_of)
    fields = dict(req.fields)
    if req.table is not None:
        if req.best_of > 1:
            raise bad_request(
                "best_of cannot be combined with a facts table: a variant is already rewritten while a number is "
                "unsupported",
                param="best_of",
            )
        if req.kb is not None:
            raise bad_request("a knowledge folder (kb) and a facts table cannot be used together", param="table")
        fields, extras.sheet = await run_in_threadpool(_table_fields, tpl, fields, req.table)
        extras.table = req.table.model_dump()
    if req.best_of > 1:
        from inkwell.compose.bestof import best_of_settings

        overrides = {**req.settings.overrides(), "num_return_sequences": req.n}
        try:
            best_of_settings(overrides, req.best_of)
        except InkwellError as exc:
            raise bad_request(str(exc).replace("\n  fix: ", "; fix: "), param="best_of") from None
    extras.profile = await style_for(req.style)
    if extras.profile is not None:
        extras.shots = await _shots(extras.profile, tpl, fields)
    return extras, fields


async def of_piece(studio: Studio, piece: dict, tpl) -> Extras:
    """The extras a piece was written with (from its variants' stored metadata), for "another" variant."""
    metas = await studio.data(lambda d: [_metadata(d, v.get("generation_id")) for v in piece["variants"]])
    extras = Extras(best_of=next((m["best_of"]["n"] for m in metas if "best_of" in m), 1))
    style = next((m["style"]["name"] for m in metas if "style" in m), None)
    table = next((m["table"] for m in metas if "table" in m), None)
    if table is not None:
        given = schemas.FactsTable.model_validate(table)
        _, extras.sheet = await run_in_threadpool(_table_fields, tpl, {}, given)
    extras.profile = await style_for(style)
    if extras.profile is not None:
        extras.shots = await _shots(extras.profile, tpl, piece["fields"])
    return extras


async def _shots(profile: StyleProfile, tpl, fields: dict) -> list:
    from inkwell.compose.style import style_shots

    try:
        return await run_in_threadpool(style_shots, profile, tpl, tpl.resolve_fields(fields))
    except InkwellError as exc:  # a field the template refuses: named as prepare would name it
        error = from_inkwell(exc)
        error.param = f"fields.{exc.field}" if exc.field else error.param
        raise error from None


def _table_fields(tpl, fields: dict, table: schemas.FactsTable) -> tuple[dict, FactSheet]:
    """The fields with the table's facts, and its FactSheet; an APIError 400 naming `table` (or `fields.facts`)
    for a bad table. The text is read from a file so that the reading and its messages (name:line) are the
    CLI's (`inkwell write report --data`); the messages name the upload, not the temporary file."""
    from inkwell.compose.report import table_fields

    name = table.name or _pasted_name(table.text)
    suffix = Path(name).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise bad_request(
            f"{name}: a facts table must be .csv, .tsv, .jsonl or .json; fix: upload one of those, or paste the table",
            param="table.name",
        )
    with tempfile.TemporaryDirectory(prefix="inkwell-table-") as folder:
        path = Path(folder) / f"table{suffix}"
        path.write_text(table.text, encoding="utf-8", newline="")
        try:
            fields, sheet = table_fields(tpl, fields, path)
        except InkwellError as exc:
            message = str(exc).replace(str(path), name).replace("\n  fix: ", "; fix: ")
            param = {"data": "table", "facts": "fields.facts"}.get(exc.field or "", "table")
            raise APIError(400, message, param=param, code="invalid_value") from None
    sheet.source = name
    return fields, sheet


def _pasted_name(text: str) -> str:
    """How a pasted table is read: JSON lines when it starts with "{", a JSON list with "[", TSV when its first
    line has tabs, else CSV."""
    start = text.lstrip()
    if start.startswith("{"):
        return "pasted.jsonl"
    if start.startswith("["):
        return "pasted.json"
    return "pasted.tsv" if "\t" in start.split("\n", 1)[0] else "pasted.csv"


def annotated(d: StudioData, piece: dict) -> dict:
    """The piece with each variant's citations (knowledge.py), `style`, `fact_check` and `best_of`, and the
    piece's `style` (name), `best_of` (N) and `facts` (what the table gave) where it was written with them."""
    piece = knowledge.cited(d, piece)
    for variant in piece["variants"]:
        meta = _metadata(d, variant.get("generation_id"))
        variant.update({k: meta[k] for k in SHOWN if k in meta})
        if "style" in meta:
            piece.setdefault("style", meta["style"]["name"])
        if "best_of" in meta:
            piece.setdefault("best_of", meta["best_of"]["n"])
        if "facts" in meta:
            piece.setdefault("facts", meta["facts"])
    return piece


def _metadata(d: StudioData, generation_id: int | None) -> dict[str, Any]:
    if generation_id is None:
        return {}
    row = d.store.conn.execute("SELECT metadata FROM generations WHERE id = ?", (generation_id,)).fetchone()
    return json.loads(row[0]) if row and row[0] else {}
