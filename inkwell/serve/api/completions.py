"""POST /v1/completions: OpenAI's text completion. What sets it apart from chat is only here (prompts in,
`text` choices out); the rest is the serving layer's."""

from __future__ import annotations

from fastapi import APIRouter, Request

from inkwell.serve.moderation import screen_prompts
from inkwell.serve.schemas import CompletionRequest, openapi_body
from inkwell.serve.serving import GenerationKind, serving_of

router = APIRouter()


def _choice(index: int, text: str | None, finish: str | None) -> dict:
    return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}


COMPLETION = GenerationKind(
    endpoint="completions",
    request=CompletionRequest,
    param="prompt",
    id_prefix="cmpl-",
    object="text_completion",
    chunk_object="text_completion",
    prompts_of=lambda req: req.prompts(),
    # a lone string prompt is named `prompt` in a moderation block, one of a list `prompt[i]`
    screen=lambda guard, req, prompts: screen_prompts(guard, prompts, single=isinstance(req.prompt, str)),
    choice_of=_choice,
    chunk_of=_choice,  # a streamed piece looks like a whole choice ("" text on the last)
)


@router.post("/v1/completions", openapi_extra=openapi_body(CompletionRequest))
async def completions(request: Request):
    return await serving_of(request).generate(request, COMPLETION)
