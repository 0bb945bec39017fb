"""Perplexity of a causal language model on texts: exp(total NLL / total scored tokens), token-weighted.
An encoder-decoder (seq2seq) model scores a reference given its prompt instead (`seq2seq_nll`): the prompt
goes to the encoder and the decoder reads the reference, as it does in training.

Texts longer than the model's context are scored with a sliding window (the method in the Hugging Face
perplexity guide): windows of `max_length` tokens advance by `stride`, and each window scores only the
tokens no earlier window scored, so every token is scored once, with at least `max_length - stride`
tokens of context after the first window. An optional context (a prompt) before each text is fed to the
model but not scored: that gives the perplexity of a reference output given its prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Scorer(Protocol):
    """What perplexity needs: next-token logits for a window of ids, and the longest window. Every engine
    whose `capabilities.scoring` is set is one (torch, ONNX, native); `ModelScorer` makes a bare torch model one."""

    context_length: int

    def window_logits(self, ids: Sequence[int]) -> Any: ...  # [len(ids), vocab]


class ModelScorer:
    """A transformers causal LM as a Scorer (references in tests and evaluation, models outside an engine)."""

    def __init__(self, model: Any):
        self.model = model
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)

    def window_logits(self, ids: Sequence[int]):
        import torch

        device = next(self.model.parameters()).device
        with torch.inference_mode():
            return self.model(input_ids=torch.tensor([list(ids)], device=device)).logits[0].float()


@dataclass
class PerplexityResult:
    perplexity: float
    nll: float  # total negative log-likelihood (nats)
    tokens: int  # scored tokens
    per_text: list[tuple[float, int]] = field(default_factory=list)  # (NLL, tokens) per text


def encode_for_scoring(tokenizer, text: str, context: str | None = None) -> tuple[list[int], int]:
    """(token ids, index of the first scored token). Without a context, a BOS token is put first when the
    tokenizer has one (so the first real token is scored); without BOS the first token has no context and
    is not scored."""
    if context:
        prefix = tokenizer(context, add_special_tokens=True)["input_ids"]
        target = tokenizer(text, add_special_tokens=False)["input_ids"]
        return prefix + target, len(prefix)
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids, 1


def sequence_nll(
    scorer: Scorer, ids: Sequence[int], score_from: int = 1, max_length: int | None = None, stride: int | None = None
) -> tuple[float, int]:
    """(sum of NLL, number of scored tokens) for tokens ids[t], t >= max(score_from, 1)."""
    import torch

    n = len(ids)
    score_from = max(1, score_from)
    if n <= score_from:
        return 0.0, 0
    max_length = max_length or n
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    stride = min(stride or max(1, max_length // 2), max_length - 1) if n > max_length else max_length
    total, count = 0.0, 0
    scored_until = score_from  # every target position below this is done
    begin = 0
    while True:
        end = min(begin + max_length, n)
        first = max(scored_until, begin + 1)  # targets need at least one token of context in the window
        if first < end:
            window = torch.tensor([list(ids[begin:end])])
            logits = torch.as_tensor(scorer.window_logits(ids[begin:end])).float().cpu()
            # logits at window position j predict window token j + 1, i.e. ids[begin + j + 1]
            logprobs = torch.log_softmax(logits[first - begin - 1 : end - begin - 1], dim=-1)
            targets = window[0, first - begin : end - begin]
            total += float(-logprobs.gather(-1, targets[:, None]).sum())
            count += end - first
            scored_until = end
        if end >= n:
            break
        begin += stride
    return total, count


def perplexity(
    scorer: Scorer,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    contexts: Sequence[str | None] | None = None,
    max_length: int | None = None,
    stride: int | None = None,
) -> PerplexityResult:
    """Token-weighted perplexity of `scorer` (an engine, or `ModelScorer(model)`) on `texts` (each optionally
    after an unscored context). `max_length` defaults to the model's context size."""
    if max_length is None:
        max_length = scorer.context_length
    per_text: list[tuple[float, int]] = []
    for i, text in enumerate(texts):
        context = contexts[i] if contexts is not None else None
        ids, start = encode_for_scoring(tokenizer, text, context)
        per_text.append(sequence_nll(scorer, ids, start, max_length=max_length, stride=stride))
    nll = sum(a for a, _ in per_text)
    tokens = sum(b for _, b in per_text)
    return PerplexityResult(math.exp(nll / tokens) if tokens else float("nan"), nll, tokens, per_text)


def seq2seq_nll(model: Any, prompt_ids: Sequence[int], target_ids: Sequence[int]) -> tuple[float, int]:
    """(sum of NLL, number of scored tokens) of `target_ids` given `prompt_ids` for an encoder-decoder model:
    the prompt is the encoder's input and the decoder is teacher-forced on the target (every target token is
    scored, the first one too: the decoder's start token is its context)."""
    import torch

    if not target_ids:
        return 0.0, 0
    device = next(model.parameters()).device
    labels = torch.tensor([list(target_ids)], device=device)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([list(prompt_ids)], device=device), labels=labels).logits[0].float()
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, labels[0][:, None]).sum()
    return float(nll), len(target_ids)


def reference_nll(engine: Any, prompt_ids: Sequence[int], target_ids: Sequence[int]) -> tuple[float, int]:
    """(sum of NLL, scored tokens) of a reference after its prompt, for an engine that can score: a causal LM
    reads prompt + reference in windows (`sequence_nll`); a seq2seq model on the torch engine uses `seq2seq_nll`."""
    if engine.loaded.seq2seq:
        return seq2seq_nll(engine.model, prompt_ids, target_ids)
    ids = list(prompt_ids) + list(target_ids)
    return sequence_nll(engine, ids, len(prompt_ids), max_length=engine.context_length)
