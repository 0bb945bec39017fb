"""The training losses the shared loop calls: a causal LM's cross-entropy over target tokens (the model's own,
or the same loss computed in chunks for large vocabularies), an encoder-decoder's over its response tokens,
and a classifier's cross-entropy per example.

Every loss is called as `loss_of(model, batch, num_items)` and returns its batch's summed loss divided by
`num_items`, the count (`loss_of.count(batch)`, summed over the micro-batches and processes of one
optimizer step) of what it averages over: target tokens for a causal LM or a seq2seq model, examples for
a classifier.

Why chunks: Gemma-3's vocabulary is 262,144 tokens, so the model's own loss materialises
batch x length x 262k logits (1 GB per 1,000 tokens in fp32), upcasts them and keeps their gradient: a
plain loop on Chinese poems at batch 8 ran out of 24 GB. Here the model body runs as usual (through
PEFT, DDP, autocast, NEFTune and FGM/PGD hooks) but its output layer receives an empty slice: a forward
pre-hook captures the final hidden states instead. The loss is then computed over the positions that
have a label, `chunk` positions at a time, so at most chunk x vocab logits exist at once.

Each chunk's gradient is computed in the forward pass while its logits exist (softmax minus one-hot,
times the softcap derivative, times the output weights) and backward only scales the stored result:
the "fused linear cross-entropy" of Liger-Kernel and Apple's Cut Cross-Entropy, written here in plain
PyTorch because both libraries need Triton (GPU) kernels. Compared with `torch.utils.checkpoint` per
chunk this skips re-computing every chunk's logits in backward (one vocab-sized matmul per token).

`build_loss` checks on a few tokens that the chunked loss equals the model's own before using it; a
model whose logits are more than `output_layer(last hidden state)` (+ Gemma's final softcap) keeps its
own loss, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from inkwell.train.collate import count_targets

IGNORE = -100  # labels cross-entropy skips (prompt tokens, padding, the first token of a packed example)
AUTO_MIN_VOCAB = 65_536  # auto: chunk for vocabularies this large (Gemma 262k, Llama-3 128k, Qwen 152k); SmolLM2's 49k keeps the fast path
AUTO_CHUNK_LOGITS = 1 << 25  # auto: positions per chunk so one chunk's logits are ~32M floats (128 MB in fp32)


def chunk_size(setting: int | str, vocab: int) -> int:
    """Positions per chunk for `training.loss_chunk_tokens` (0 = the model's own loss)."""
    if setting == "auto":
        return max(16, AUTO_CHUNK_LOGITS // vocab) if vocab >= AUTO_MIN_VOCAB else 0
    return int(setting)


# ---------------------------------------------------------------- the chunked cross-entropy


def _chunks(hidden, weight, bias, targets, softcap: float | None, chunk: int, grads: tuple[bool, bool, bool]):
    """Summed cross-entropy of softcap(hidden @ weight.T + bias) against targets, chunk rows at a time,
    and (when asked) the gradients of that sum with respect to hidden, weight and bias."""
    need_h, need_w, need_b = grads
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    grad_h = torch.empty_like(hidden) if need_h else None
    grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
    grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b else None
    for start in range(0, hidden.shape[0], chunk):
        h, y = hidden[start : start + chunk], targets[start : start + chunk]
        logits = F.linear(h, weight, bias).float()  # under autocast the matmul runs in bf16, the softmax in fp32
        if softcap:
            capped = torch.tanh(logits / softcap)
            logits = capped * softcap
        lse = torch.logsumexp(logits, dim=-1)
        total += (lse - logits.gather(1, y[:, None]).squeeze(1)).sum()
        if not (need_h or need_w or need_b):
            continue
        g = logits.sub_(lse[:, None]).exp_()  # softmax, in place: d(sum of losses)/d(logits) = softmax - one-hot
        g[torch.arange(len(y), device=y.device), y] -= 1
        if softcap:
            g.mul_(capped.square_().neg_().add_(1))  # d(c * tanh(z / c))/dz = 1 - tanh^2
        if need_h:
            grad_h[start : start + chunk] = (g.to(weight.dtype) @ weight).to(hidden.dtype)
        if need_w:
            grad_w += (g.t().to(h.dtype) @ h).float()
        if need_b:
            grad_b += g.sum(0)
    return total, grad_h, grad_w, grad_b


class _LinearCrossEntropy(torch.autograd.Function):
    """Autograd wrapper around `_chunks`: gradients computed in forward, scaled in backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, softcap, chunk):
        grads = (hidden.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
        total, grad_h, grad_w, grad_b = _chunks(hidden, weight, bias, targets, softcap, chunk, grads)
        ctx.save_for_backward(*(g for g in (grad_h, grad_w, grad_b) if g is not None))
        ctx.grads = grads
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        saved = iter(ctx.saved_tensors)
        need_h, need_w, need_b = ctx.grads
        grad_h = next(saved) * grad_out if need_h else None  # a 0-dim factor keeps the stored dtype
        grad_w = (next(saved) * grad_out).to(ctx.dtypes[0]) if need_w else None
        grad_b = (next(saved) * grad_out).to(ctx.dtypes[1]) if need_b else None
        return grad_h, grad_w, grad_b, None, None, None


def linear_cross_entropy(hidden, weight, bias, targets, *, softcap: float | None = None, chunk: int = 1024):
    """sum_i cross_entropy(softcap(hidden[i] @ weight.T + bias), targets[i]) with at most chunk x vocab
    logits alive. `hidden` is (rows, dim); every target must be a real token id (no -100)."""
    if torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return _LinearCrossEntropy.apply(hidden, weight, bias, targets, softcap, chunk)
    return _chunks(hidden, weight, bias, targets, softcap, chunk, (False, False, False))[0]


def chunked_causal_lm_loss(
    hidden, labels, weight, bias=None, *, softcap: float | None = None, chunk: int = 1024, num_items=None
):
    """The causal-LM loss transformers computes (position t predicts labels[t + 1], -100 ignored, summed and
    divided by `num_items` when given, else the mean over labelled tokens) from the last hidden states
    (batch, length, dim) and the output layer's weight/bias, without the full logits."""
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
    keep = targets != IGNORE
    total = linear_cross_entropy(hidden[keep], weight, bias, targets[keep], softcap=softcap, chunk=chunk)
    return total / (num_items if num_items is not None else keep.sum().clamp_min(1))


# ---------------------------------------------------------------- the loss the loop calls


class _HeadInput:
    """While active, the output layer's input is kept here and the layer itself is given an empty slice
    (so no logits are computed). A pre-hook, not a call into the model's inner decoder, so the model's
    own forward still runs: PEFT wrappers, DDP's bookkeeping and embedding hooks all see a normal call."""

    def __init__(self, head):
        self.head, self.hidden, self.handle = head, None, None

    def _hook(self, module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("input")
        self.hidden = hidden
        return (hidden[..., :0, :], *args[1:]), kwargs

    def __enter__(self):
        self.handle = self.head.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        return False


@dataclass
class CausalLMLoss:
    """loss_of(model, batch, num_items): the loss of one batch, summed over its labelled tokens / num_items."""

    chunk: int = 0  # positions per chunk; 0 = the model's own loss (full logits)
    head: Any = None  # the output layer (a plain nn.Linear), when chunked
    softcap: float | None = None  # config.final_logit_softcapping (Gemma 2/3), applied as the model does
    count = staticmethod(count_targets)  # what num_items counts: labelled tokens after the one-token shift

    def __call__(self, model, batch: dict, num_items=None):
        if not self.chunk:
            return model(**batch, num_items_in_batch=num_items, use_cache=False).loss
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with _HeadInput(self.head) as captured:
            model(**inputs, use_cache=False)
        labels = batch["labels"]
        hidden = captured.hidden[
            :, captured.hidden.shape[1] - labels.shape[1] :
        ]  # prompt tuning prepends virtual tokens
        return chunked_causal_lm_loss(
            hidden,
            labels,
            self.head.weight,
            self.head.bias,
            softcap=self.softcap,
            chunk=self.chunk,
            num_items=num_items,
        )


def build_loss(model, setting: int | str, say: Callable[[str], None] = print) -> CausalLMLoss:
    """The loss for this (unwrapped) model: chunked when `setting` (training.loss_chunk_tokens) asks for
    it and a check on a few tokens shows the chunked loss equals the model's own; otherwise its own."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    chunk = chunk_size(setting, weight.shape[0] if weight is not None else 0)
    if not chunk:
        return CausalLMLoss()
    softcap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    chunked = CausalLMLoss(chunk=chunk, head=head, softcap=softcap)
    if type(head) is not torch.nn.Linear:
        reason = "the output layer is not a plain linear layer (e.g. an adapter on lm_head)"
    elif str(getattr(model, "peft_type", "")).endswith("ADALORA"):
        reason = "AdaLoRA adds its regulariser to the model's own loss"
    elif not _same_loss(model, chunked):
        reason = "this model's logits are more than its output layer applied to its last hidden states"
    else:
        return chunked
    say(f"note: training.loss_chunk_tokens: {reason}; using the model's own loss (full logits)")
    return CausalLMLoss()


def _same_loss(model, chunked: CausalLMLoss) -> bool:
    """The chunked loss equals the model's own on a short input (eval mode: no dropout)."""
    vocab = chunked.head.weight.shape[0]
    device = chunked.head.weight.device
    ids = (torch.arange(5, 17, device=device)[None] * 7919) % vocab
    batch = {"input_ids": ids, "labels": ids.clone()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            own = CausalLMLoss()(model, batch).float()
            ours = chunked(model, batch).float()
    except Exception:  # noqa: BLE001 - any failure means: do not use the chunked path on this model
        return False
    finally:
        model.train(was_training)
    return bool(torch.allclose(own, ours, rtol=1e-4, atol=1e-5))


# ---------------------------------------------------------------- encoder-decoder (seq2seq)


class Seq2SeqLMLoss:
    """loss_of(model, batch, num_items) for an encoder-decoder (T5): cross-entropy of every response token (the
    labels are the decoder's targets, no shift), summed / num_items, the target tokens of the whole step. The
    model's own loss is a mean per micro-batch, which would weigh tokens unevenly under grad_accum."""

    def __call__(self, model, batch: dict, num_items=None):
        labels = batch["labels"]
        logits = model(**batch, use_cache=False).logits.float()
        total = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
        return total / (num_items if num_items is not None else (labels != IGNORE).sum().clamp_min(1))

    @staticmethod
    def count(batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())


# ---------------------------------------------------------------- classification


class SequenceClassificationLoss:
    """loss_of(model, batch, num_items) for a sequence-classification head (the classify stage): one
    cross-entropy per example over its class logits, summed / num_items, the examples of the whole step.
    The model's own loss is a mean per micro-batch, which would weigh examples unevenly under grad_accum."""

    def __call__(self, model, batch: dict, num_items=None):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        total = F.cross_entropy(logits, batch["labels"], reduction="sum")
        return total / (num_items if num_items is not None else len(batch["labels"]))

    @staticmethod
    def count(batch: dict) -> int:
        return len(batch["labels"])
