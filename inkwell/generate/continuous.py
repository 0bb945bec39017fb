"""Step-level continuous batching on the engine's fast path: rows join and leave one decoding batch between
steps, and prompts are prefilled in chunks under a token budget per step. Used by `Engine.generate` and the
`Scheduler` alike.

One step does at most two forward passes: one decode token for every running row, and one chunk of the
prompts being prefilled (a *lane*: a few rows left-padded together with their own KV cache). The step's
token budget (`step_tokens`, like vLLM's `max_num_batched_tokens`) is shared: running rows take one token
each and the lane gets what is left, counted as rows x columns. So a long prompt joins over several steps
while the running rows keep emitting a token per step, and a burst of newcomers is admitted a budget's worth
at a time: the first of them get their first token after one step instead of after everyone's prefill.
When a lane's prompts are all in, its cache is left-padded to the batch's length and stacked on; rows that
finish (end of text, stop sequence, length, cancelled) leave at once.

Prompts that begin alike (a chat template's system prompt, few-shot examples, `n` samples of one prompt)
share the KV of their common start (`PrefixCache`): a lane is laid out [shared prefix][padding][each row's
rest], the prefix computed once (or taken from recent lanes) and only the rests prefilled.

Hand-written rather than taken from a serving library: vLLM / TGI do not run on this stack (CPU, HF models
with PEFT adapters switched per batch), and HF `generate` has no way to add rows mid-way.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import DynamicCache

# 256 tokens a step: on a 2-core CPU a step then costs about as much as 2-3 decode steps of a full batch of
# 16, so running streams slow down at most that much while a prompt is prefilled, and a typical chat prompt
# (30-60 tokens) of 4-8 newcomers fits in one step. Larger: fewer, longer stalls; smaller: more steps.
DEFAULT_STEP_TOKENS = 256
# A shared prompt start shorter than this is not worth the bookkeeping; longer than MAX_PREFIX is not kept.
MIN_PREFIX, MAX_PREFIX = 16, 512
PREFIX_ENTRIES = 8  # prompt starts kept per model/adapter (SmolLM2: ~46 KB of KV a token in fp32)


def left_pad(prompts: list[list[int]], pad_id: int, device):
    """Left-pad token lists into one batch: (input_ids, attention_mask, position_ids, padded). Without
    padding the model's own causal mask is cheaper than one built from a 2-D mask, so callers pass the
    mask and positions only when `padded` is True."""
    import torch

    width = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, ids in enumerate(prompts):
        input_ids[i, width - len(ids) :] = torch.tensor(ids)
        mask[i, width - len(ids) :] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, mask, positions, bool((mask == 0).any())


def _common(a: list[int], b: list[int] | tuple) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixCache:
    """The KV of recently prefilled prompts (for one model + adapter), so a prompt that begins like one of
    them skips those tokens. Any start of a kept prompt serves: attention is causal, so the KV of its first k
    tokens does not depend on what followed. Least recently used entries go first."""

    def __init__(self, entries: int = PREFIX_ENTRIES):
        self.entries: OrderedDict[tuple, list] = OrderedDict()  # token ids -> [(keys, values)] per layer, batch 1
        self.capacity = entries
        self.hits = 0  # tokens not prefilled thanks to the cache (tests and benchmarks read it)

    def match(self, prompts: list[list[int]]) -> tuple[int, tuple | None]:
        """The longest start shared by every prompt and a kept entry, leaving each prompt one token to
        prefill (its logits start the answer): (length, entry key), or (0, None) below MIN_PREFIX."""
        best, best_key = 0, None
        cap = min(len(p) for p in prompts) - 1
        for key in self.entries:
            n = min([cap, *(_common(p, key) for p in prompts)])
            if n > best:
                best, best_key = n, key
        if best < MIN_PREFIX or best_key is None:  # (best_key is set whenever best > 0)
            return 0, None
        self.entries.move_to_end(best_key)
        return best, best_key

    def get(self, key: tuple, length: int) -> list:
        return [(k[:, :, :length], v[:, :, :length]) for k, v in self.entries[key]]

    def wants(self, ids: list[int]) -> bool:
        """False when the prompt is too short to keep or already covered by a kept one."""
        key = tuple(ids[:MAX_PREFIX])
        return len(key) >= MIN_PREFIX and not any(k[: len(key)] == key for k in self.entries)

    def add(self, ids: list[int], layers: list) -> None:
        key = tuple(ids[:MAX_PREFIX])
        if not self.wants(ids):
            return
        for shorter in [k for k in self.entries if key[: len(k)] == k]:  # covered by the new one
            del self.entries[shorter]
        self.entries[key] = [(k[:, :, : len(key)], v[:, :, : len(key)]) for k, v in layers]
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


class _Lane:
    """Rows whose prompts are being prefilled together, a chunk of columns per step, into their own cache.
    Layout per row: [shared prefix][left padding][rest of the prompt]; the prefix's KV is filled in at once."""

    def __init__(self, engine, rows: list, prefix: tuple[int, list] | None = None):
        import torch
        from transformers import DynamicCache

        device = engine.loaded.device
        self.rows = rows
        self.cache = DynamicCache(config=engine.model.config)
        n, layers = prefix if prefix else (0, [])
        ids, mask, positions, padded = left_pad([r.prompt_ids[n:] for r in rows], engine.pad_id, device)
        if n:
            count = len(rows)
            start = torch.tensor(rows[0].prompt_ids[:n], device=device)
            ids = torch.cat([start.expand(count, n), ids], dim=1)
            mask = torch.cat([mask.new_ones((count, n)), mask], dim=1)
            positions = torch.cat([torch.arange(n, device=device).expand(count, n), positions + n], dim=1)
            for index, (k, v) in enumerate(layers):  # copies: kept entries are never written through
                self.cache.update(k.repeat(count, 1, 1, 1), v.repeat(count, 1, 1, 1), index)
        self.ids, self.mask, self.positions, self.padded = ids, mask, positions, padded
        self.filled = n  # columns prefilled so far

    def advance(self, model, tokens: int):
        """Prefill about `tokens` more (rows x columns, at least one column). Returns the logits of every
        row's last prompt token once all prompts are in, else None."""
        width = self.ids.shape[1]
        end = min(width, self.filled + max(1, tokens // len(self.rows)))
        out = model(
            input_ids=self.ids[:, self.filled : end],
            # The mask covers the cached columns too; positions count real tokens only (padding skipped).
            attention_mask=self.mask[:, :end] if self.padded else None,
            position_ids=self.positions[:, self.filled : end] if self.padded else None,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.filled = end
        return out.logits[:, -1, :] if end == width else None

    def first_prompt_kv(self) -> list:
        """The KV of row 0's prompt (its real columns only), batch 1: what PrefixCache keeps."""
        columns = self.mask[0].nonzero().squeeze(-1)
        # transformers types `layers` as a union that includes layers without keys/values; a DynamicCache's have them
        return [
            (layer.keys[:1].index_select(2, columns), layer.values[:1].index_select(2, columns))  # type: ignore[union-attr,index]
            for layer in self.cache.layers
        ]


class ContinuousBatch:
    """The rows being decoded together (`rows.Row`s, each with its own lengths, stops, stream, seed and
    callbacks) plus the queue of rows waiting to join. Sampling settings (temperature, top-p/k, penalties)
    are shared. Not thread-safe: one thread calls `add` and `step`."""

    def __init__(
        self,
        engine,
        settings,
        *,
        max_rows: int,
        step_tokens: int = DEFAULT_STEP_TOKENS,
        prefix_cache: PrefixCache | None = None,
    ):
        self.engine = engine
        self.settings = settings
        self.max_rows = max_rows
        self.step_tokens = step_tokens
        # Rows can join a running batch only with a plain per-layer cache; sliding-window layers (gemma3) keep
        # a rolling window that cannot be padded, so there a new group starts when the batch has drained.
        self.joinable = plain_cache(engine.model)
        self.prefixes = prefix_cache if prefix_cache is not None else PrefixCache()
        self.warpers = engine._warpers(settings)
        self.penalty = float(settings.repetition_penalty)
        self.vocab = engine.model.config.get_text_config().vocab_size
        self.queue: deque = deque()  # rows waiting for a place, in order
        self.lane: _Lane | None = None  # rows being prefilled
        self.rows: list = []  # rows decoding, one per batch position
        self.cache: DynamicCache | None = None  # the running rows' KV; None while no row is decoding
        self.mask: Tensor | None = None  # (rows, length) 1 for real tokens; None while nothing is padded
        self.next_pos: Tensor | None = None  # (rows, 1) position of the next token
        self.tokens: Tensor | None = None  # (rows,) the last sampled tokens: the next step's input
        self.seen: Tensor | None = None  # (rows, vocab) tokens seen, for the repetition penalty
        self.history: Tensor | None = None  # (rows, length) ids, only when a logits processor needs them
        self.steps = 0

    # ------------------------------------------------------------ state

    def add(self, rows: Iterable) -> None:
        self.queue.extend(rows)

    @property
    def idle(self) -> bool:
        return not self.rows and self.lane is None and not self.queue

    @property
    def occupied(self) -> int:
        """Rows decoding, being prefilled or queued: what counts against `max_rows`."""
        return len(self.rows) + (len(self.lane.rows) if self.lane else 0) + len(self.queue)

    def all_rows(self) -> list:
        return [*self.rows, *(self.lane.rows if self.lane else ()), *self.queue]

    def clear(self) -> None:
        """Drop every row (after a failed step: their owners were told)."""
        self.queue.clear()
        self.lane, self.rows = None, []
        self.cache = self.mask = self.next_pos = self.seen = self.history = self.tokens = None

    # ------------------------------------------------------------ one step

    def step(self) -> None:
        """Decode one token for each running row and prefill one chunk of the next lane, within the budget."""
        import torch

        model = self.engine.model
        parts = []
        with torch.inference_mode():
            if self.rows:
                parts.append(self._decode())
            # Without joining (sliding-window caches) a group is prefilled whole, as a static batch would be.
            budget = max(1, self.step_tokens - len(self.rows)) if self.joinable else 1 << 30
            if self.lane is None:
                self.lane = self._open_lane(budget)
            if self.lane is not None:
                logits = self.lane.advance(model, budget)
                if logits is not None:  # every prompt of the lane is in: its rows join the batch
                    lane, self.lane = self.lane, None
                    if self.joinable and self.prefixes.wants(lane.rows[0].prompt_ids):  # later prompts skip its start
                        self.prefixes.add(lane.rows[0].prompt_ids, lane.first_prompt_kv())
                    self._join(lane)
                    parts.append(logits)
            if parts:
                self._sample(torch.cat(parts) if len(parts) > 1 else parts[0])
        self.steps += 1

    def _open_lane(self, budget: int) -> _Lane | None:
        """The next rows to prefill: in queue order, as many as there is room for and (beyond the first) as
        fit in this step's budget, so a burst is admitted a budget's worth per step. The cost of a row is
        what it adds beyond the start it shares with the lane's first row (or with a kept prompt)."""
        if not self.joinable and self.rows:
            return None  # wait for the batch to drain
        room = self.max_rows - len(self.rows)
        taken: list = []
        shared = longest = 0
        while self.queue and len(taken) < room:
            row = self.queue[0]
            if row.cancelled is not None and row.cancelled():  # left before it started
                self.queue.popleft()
                row.finish_reason, row.finished_at = "cancelled", time.perf_counter()
                self._done(row)
                continue
            ids = row.prompt_ids
            if not taken:
                common = self.prefixes.match([ids])[0] if self.joinable else 0
                if self.joinable and not common:
                    common = len(ids) - 1  # what the next rows may share with this one
            else:
                common = min(shared, _common(taken[0].prompt_ids, ids), len(ids) - 1)
            common = common if common >= MIN_PREFIX else 0
            width = max(longest, len(ids)) - common
            if taken and self.joinable and width * (len(taken) + 1) > budget:
                break
            taken.append(self.queue.popleft())
            shared, longest = common, max(longest, len(ids))
        return self._lane(taken, budget) if taken else None

    def _lane(self, rows: list, budget: int) -> _Lane:
        """A lane for `rows`, starting from the KV of their shared start: kept from an earlier lane, or
        computed here once for all of them when they share more than what is kept."""
        if not self.joinable:
            return _Lane(self.engine, rows)
        prompts = [r.prompt_ids for r in rows]
        length, key = self.prefixes.match(prompts)
        kept = (length, self.prefixes.get(key, length)) if key is not None else None
        shared = 0
        if len(rows) > 1:
            shared = min([len(p) - 1 for p in prompts] + [_common(prompts[0], p) for p in prompts[1:]])
        if shared >= length + MIN_PREFIX and shared - length <= budget:
            start = _Lane(self.engine, rows[:1], kept)  # the shared start alone, once (from what is kept)
            start.ids, start.mask, start.positions = (t[:, :shared] for t in (start.ids, start.mask, start.positions))
            start.advance(self.engine.model, shared)
            layers = [(layer.keys, layer.values) for layer in start.cache.layers]  # type: ignore[union-attr]  # (as above)
            self.prefixes.add(prompts[0][:shared], layers)
            self.prefixes.hits += shared * (len(rows) - 1) + length
            return _Lane(self.engine, rows, (shared, layers))
        if kept is not None:
            self.prefixes.hits += length * len(rows)
        return _Lane(self.engine, rows, kept)

    def _decode(self):
        import torch

        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=-1)
        out = self.engine.model(
            input_ids=self.tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.next_pos,  # per row: rows joined at different times sit at different positions
            past_key_values=self.cache,
            use_cache=True,
        )
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1, :]

    def _join(self, lane: _Lane) -> None:
        """Stack the lane's rows under the running ones: both caches left-padded to one length."""
        import torch
        import torch.nn.functional as F

        device = self.engine.loaded.device
        seen = None
        if self.penalty != 1.0:  # only real tokens count as seen (HF would also penalise the padding token)
            seen = torch.zeros((len(lane.rows), self.vocab), dtype=torch.bool, device=device)
            for i, row in enumerate(lane.rows):
                seen[i, torch.tensor(row.prompt_ids, device=device)] = True
        next_pos = lane.positions[:, -1:] + 1
        if self.cache is None:  # the first rows of the batch
            self.cache, self.mask, self.next_pos, self.seen = (
                lane.cache,
                lane.mask if lane.padded else None,
                next_pos,
                seen,
            )
            self.history = lane.ids if len(self.warpers) else None
            self.rows = list(lane.rows)
            return
        assert self.next_pos is not None  # set together with the cache
        old_len, new_len = self.cache.get_seq_length(), lane.cache.get_seq_length()
        length = max(old_len, new_len)
        # plain DynamicLayers here (joinable); transformers types the layers as a union with linear-attention ones
        pairs: list[tuple[Any, Any]] = list(zip(self.cache.layers, lane.cache.layers))
        for mine, theirs in pairs:
            mine.keys = torch.cat(
                [F.pad(mine.keys, (0, 0, length - old_len, 0)), F.pad(theirs.keys, (0, 0, length - new_len, 0))]
            )
            mine.values = torch.cat(
                [F.pad(mine.values, (0, 0, length - old_len, 0)), F.pad(theirs.values, (0, 0, length - new_len, 0))]
            )
        old_mask = (
            self.mask
            if self.mask is not None
            else torch.ones((len(self.rows), old_len), dtype=torch.long, device=device)
        )
        self.mask = torch.cat([F.pad(old_mask, (length - old_len, 0)), F.pad(lane.mask, (length - new_len, 0))])
        self.next_pos = torch.cat([self.next_pos, next_pos])
        if self.seen is not None and seen is not None:  # both exist exactly when there is a repetition penalty
            self.seen = torch.cat([self.seen, seen])
        if self.history is not None:
            pad, ids = self.engine.pad_id, lane.ids
            width = max(self.history.shape[1], ids.shape[1])
            self.history = torch.cat(
                [
                    F.pad(self.history, (width - self.history.shape[1], 0), value=pad),
                    F.pad(ids, (width - ids.shape[1], 0), value=pad),
                ]
            )
        self.rows += lane.rows

    def _sample(self, logits) -> None:
        import torch

        engine, device = self.engine, self.engine.loaded.device
        if logits.dtype != torch.float32:
            logits = logits.float()
        if logits.shape[-1] > self.vocab:
            logits = logits[:, : self.vocab]
        if self.seen is not None:
            picked = torch.where(logits > 0, logits / self.penalty, logits * self.penalty)
            logits = torch.where(self.seen, picked, logits)
        young = [
            b
            for b, row in enumerate(self.rows)
            if len(row.generated) < row.min_new_tokens and not (row.grammar and row.grammar.accepting)
        ]
        if young:
            eos = torch.tensor(sorted(engine.eos_ids), device=device)
            logits[torch.tensor(young, device=device)[:, None], eos] = -float("inf")
        constrained = [b for b, row in enumerate(self.rows) if row.grammar is not None]
        if constrained:  # each row's own grammar (rows with different grammars, or none, share the batch)
            logits = grammar_masked(logits, [self.rows[b] for b in constrained], constrained)
        if len(self.warpers):
            logits = self.warpers(self.history, logits)
        if self.settings.greedy:
            tokens = logits.argmax(-1)
        else:
            probs = torch.softmax(logits, dim=-1)
            tokens = torch.cat(
                [torch.multinomial(probs[b], 1, generator=row.generator) for b, row in enumerate(self.rows)]
            )
        now = time.perf_counter()
        keep: list[int] = []
        for b, token in enumerate(tokens.tolist()):
            row = self.rows[b]
            if engine.text.advance(row, token, now):
                keep.append(b)
        left = len(keep) < len(self.rows)
        if left:  # finished rows leave the batch
            assert self.cache is not None and self.next_pos is not None  # rows were decoding, so these exist
            index = torch.tensor(keep, device=device, dtype=torch.long)
            self.cache.batch_select_indices(index)
            tokens, self.next_pos = tokens[index], self.next_pos[index]
            if self.mask is not None:
                self.mask = self.mask[index]
            if self.seen is not None:
                self.seen = self.seen[index]
            if self.history is not None:
                self.history = self.history[index]
            self.rows = [self.rows[b] for b in keep]
        self.tokens = tokens
        if not self.rows:
            self.cache = self.mask = self.next_pos = self.seen = self.history = self.tokens = None
            return
        if self.seen is not None:
            self.seen[torch.arange(len(self.rows), device=device), tokens] = True
        if self.history is not None:
            self.history = torch.cat([self.history, tokens[:, None]], dim=-1)
        if left:
            self._trim()

    def _trim(self) -> None:
        """Drop the cache columns that only held padding for rows that have left, so a batch that never
        empties (steady traffic) keeps a cache as long as its longest live row, not as its age."""
        if self.history is not None:
            longest = max(len(r.prompt_ids) + len(r.generated) for r in self.rows)
            self.history = self.history[:, -longest:]
        if self.mask is None:
            return
        first = int(self.mask.any(0).int().argmax())  # the first column any row still uses
        if first:
            assert self.cache is not None  # rows are still decoding
            for layer in self.cache.layers:  # (transformers' layer union, as above)
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]  # type: ignore[union-attr,index]
            self.mask = self.mask[:, first:]
        if bool(self.mask.all()):
            self.mask = None  # nothing padded any more: the model's own causal mask is cheaper

    @staticmethod
    def _done(row) -> None:
        if row.on_done is not None:
            row.on_done(row)


def grammar_masked(logits, rows: list, at: list[int]):
    """`logits` with every token a row's grammar forbids at -inf (rows `at` positions `at`)."""
    import numpy as np
    import torch

    width = logits.shape[-1]
    allowed = np.zeros((len(rows), width), dtype=bool)
    for i, row in enumerate(rows):
        mask = row.grammar.allowed()
        allowed[i, : min(width, len(mask))] = mask[:width]
    index = torch.tensor(at, device=logits.device)
    logits[index] = logits[index].masked_fill(~torch.from_numpy(allowed).to(logits.device), -float("inf"))
    return logits


def plain_cache(model) -> bool:
    """True when every layer of the model's cache is a plain DynamicLayer (rows can be joined and padded)."""
    try:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        cache = DynamicCache(config=model.config)
        return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)
    except Exception:  # an unusual model or cache API: the safe choice
        return False
