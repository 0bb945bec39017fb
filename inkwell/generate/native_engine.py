"""The native CPU path: the Engine API on Inkwell's own decoder over a GGUF's quantised blocks (generate/native/).

Chosen by measurement for interactive work on the CPU (docs/generation.md): SmolLM2-135M's Q4_1 GGUF decodes
one stream at ~130 tok/s on a 2-core AVX2 machine, against ~90 for llama.cpp and ~83 for the ONNX path, with
the GGUF's own numbers (no re-quantisation). It shares the ONNX path's Python side - chat template, stop
sequences, streaming, seeds, min_new_tokens, cancellation, the numpy warpers for sampling and repetition
penalty, and the torch fallback for beams / no-repeat n-grams - and replaces only the batch underneath.

Rows run in static batches like the ONNX path, shortest prompts together; prompts are prefilled in chunks of
`PREFILL_CHUNK` entries, and a row that finishes stops costing anything (it leaves the decode batch).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Sequence

from inkwell.generate.engine import DEFAULT_BATCH_SIZE, Engine
from inkwell.generate.onnx_engine import OnnxEngine

PREFILL_CHUNK = 512  # entries per forward while prefilling: bounds the scratch memory (~10 MB for SmolLM2)


class NativeEngine(OnnxEngine):
    """Same API as Engine: render / encode / count_tokens / generate."""

    def __init__(self, gguf_path: Path, loaded, batch_size: int = DEFAULT_BATCH_SIZE,
                 fallback: Callable[[], Engine] | None = None, notice: Callable[[str], None] | None = None,
                 decoder=None):
        from inkwell.generate.native import Decoder

        self.gguf_path = Path(gguf_path)
        self.decoder = decoder or Decoder.open(self.gguf_path)
        self.vocab = self.decoder.vocab
        self._fallback_factory = fallback
        self._fallback: Engine | None = None
        self._notice = notice
        self._lock = threading.Lock()  # one KV cache: one batch at a time
        Engine.__init__(self, loaded, batch_size=batch_size)
        self.model = _NativeScorer(self)

    def _config_eos(self) -> list:
        import json

        path = Path(self.loaded.path) / "generation_config.json"
        return [json.loads(path.read_text()).get("eos_token_id") if path.exists() else None]

    def _run(self, rows: list, settings) -> None:
        with self._lock:
            super()._run(rows, settings)

    def _open_batch(self, rows: list, steps: int) -> "_NativeBatch":
        return _NativeBatch(self.decoder, rows, steps)


class _NativeBatch:
    """A static batch on the native decoder: each row has its own KV cache row; prompts go in together
    (chunked), then one entry per live row a step. The logits of a step are computed lazily, for the rows
    still live when they are asked for, so a row that just finished costs nothing more."""

    def __init__(self, decoder, rows: list, steps: int):
        import numpy as np

        self.decoder = decoder
        self.lengths = [len(r.prompt_ids) for r in rows]
        self.max_len = max(self.lengths) + steps
        decoder.reset(len(rows), self.max_len)
        self.last = np.zeros((len(rows), decoder.vocab), dtype=np.float32)
        entries = [(tok, b, p) for b, r in enumerate(rows) for p, tok in enumerate(r.prompt_ids)]
        ends = {sum(self.lengths[: b + 1]) - 1: b for b in range(len(rows))}  # a row's last prompt entry
        for start in range(0, len(entries), PREFILL_CHUNK):
            chunk = entries[start:start + PREFILL_CHUNK]
            want = [i for i in range(len(chunk)) if start + i in ends]
            tokens, row_ids, positions = zip(*chunk)
            logits = decoder.forward(tokens, row_ids, positions, want)
            for i, out in zip(want, logits):
                self.last[ends[start + i]] = out
        self.pending: dict[int, int] = {}  # row -> token chosen but not yet run

    def _catch_up(self, live: list[int]) -> None:
        feed = [b for b in live if b in self.pending]
        if feed:
            tokens = [self.pending[b] for b in feed]
            logits = self.decoder.forward(tokens, feed, [self.lengths[b] for b in feed], list(range(len(feed))))
            for b, out in zip(feed, logits):
                self.last[b] = out
                self.lengths[b] += 1
        self.pending = {}

    def logits(self, live: list[int]):
        self._catch_up(live)
        return self.last[:, None, :]

    def advance(self, chosen, live: list[int]):
        import numpy as np

        self._catch_up(live)
        source = self.last if chosen is None else np.asarray(chosen, dtype=np.float32).reshape(self.last.shape)
        tokens = np.zeros(len(self.last), dtype=np.int64)
        for b in live:
            tokens[b] = int(np.argmax(source[b]))
            self.pending[b] = int(tokens[b])
        return tokens

    def is_done(self) -> bool:
        return any(self.lengths[b] >= self.max_len for b in self.pending)

    def close(self) -> None:
        self.pending = {}


class _NativeScorer:
    """Stands in for the torch module where evaluation scores text: `window_logits(ids)` -> [len(ids), vocab]."""

    def __init__(self, engine: NativeEngine):
        self.engine = engine

    def window_logits(self, ids: Sequence[int]):
        import numpy as np

        decoder = self.engine.decoder
        with self.engine._lock:
            decoder.reset(1, len(ids))
            parts = []
            for start in range(0, len(ids), PREFILL_CHUNK):
                chunk = list(ids[start:start + PREFILL_CHUNK])
                parts.append(decoder.forward(chunk, [0] * len(chunk), range(start, start + len(chunk)),
                                             range(len(chunk))))
        return np.concatenate(parts)
