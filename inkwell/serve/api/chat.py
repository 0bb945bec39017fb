"""POST /v1/chat/completions: OpenAI's chat completion. What sets it apart from completions is only here
(messages in, `message` choices and `delta` chunks out); the rest is the serving layer's."""

from __future__ import annotations

from fastapi import APIRouter, Request

from inkwell.serve.moderation import screen_messages
from inkwell.serve.schemas import ChatCompletionRequest, openapi_body
from inkwell.serve.serving import GenerationKind, serving_of

router = APIRouter()


def _choice(index: int, text: str, finish: str | None) -> dict:
    return {
        "index": index,
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
        "finish_reason": finish,
    }


def _chunk(index: int, text: str | None, finish: str | None) -> dict:
    return {
        "index": index,
        "delta": {} if text is None else {"content": text},
        "logprobs": None,
        "finish_reason": finish,
    }


def _opening(index: int) -> dict:
    """Each streamed choice starts with the role, as OpenAI's do."""
    return {"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}


CHAT = GenerationKind(
    endpoint="chat",
    request=ChatCompletionRequest,
    param="messages",
    id_prefix="chatcmpl-",
    object="chat.completion",
    chunk_object="chat.completion.chunk",
    prompts_of=lambda req: [req.chat()],  # one conversation: the engine applies the chat template
    screen=lambda guard, req, prompts: screen_messages(guard, prompts),
    choice_of=_choice,
    chunk_of=_chunk,
    opening=_opening,
    grounded=True,  # `kb`: a knowledge folder's passages before the last user message, `citations` per choice
)


@router.post("/v1/chat/completions", openapi_extra=openapi_body(ChatCompletionRequest))
async def chat_completions(request: Request):
    return await serving_of(request).generate(request, CHAT)
