"""`style` on POST /v1/content/{template} and the studio's writing: a style profile's best-matching exemplars go
into the prompt as few-shot examples, and each choice carries its style-match score (compose/style.py does the
work; this maps it onto HTTP). An unknown style is a 404 naming `style`. The server writes with the exemplars
only: a style's LoRA is served like any adapter (`inkwell serve --adapter NAME=PATH`) and chosen with `model`."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from inkwell.compose.style import StyleProfile, load_profile, style_match, style_shots
from inkwell.errors import InkwellError
from inkwell.serve.errors import APIError


async def style_for(name: str | None) -> StyleProfile | None:
    """The request's style profile: None without `style`; 404 for an unknown one, 400 for an unreadable one."""
    if name is None:
        return None
    try:
        return await run_in_threadpool(load_profile, name)
    except InkwellError as exc:
        message = str(exc).replace("\n  fix: ", "; fix: ")
        status = 404 if message.startswith("unknown style") else 400
        code = "style_not_found" if status == 404 else "invalid_value"
        raise APIError(status, message, param="style", code=code) from None


def shots_for(profile: StyleProfile | None, template: Any, fields: dict) -> list | None:
    """The style's exemplars as the template's few-shot examples (None without a style: the template's default)."""
    return None if profile is None else style_shots(profile, template, fields)


async def scores_for(profile: StyleProfile | None, texts: list[str]) -> list[dict] | None:
    """Each text's style match ({"name", "score", "ngram", "embedding"}), or None without a style."""
    if profile is None:
        return None
    matches = await run_in_threadpool(style_match, texts, profile)
    return [{"name": profile.name, **match.to_json()} for match in matches]
