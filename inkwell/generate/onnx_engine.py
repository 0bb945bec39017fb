"""The fast CPU path: the Engine API on an ONNX Runtime GenAI model (int4/int8/fp32, see models/onnx.py).

ONNX Runtime runs the whole decoder step in C++ (fused attention, int4 matmuls with int8 activations), so a
decode step costs no Python dispatch per layer: on a 2-core CPU SmolLM2-135M decodes about 4-5x faster than
the torch loop. What stays in Python is what Inkwell promises on every path - the chat template, stop
sequences, streaming, per-prompt seeds, min_new_tokens and cancellation - and, when sampling or a
repetition penalty is asked for, the choice of each token: we read the step's logits, apply the same
warpers as the torch engine (repetition penalty, temperature, top-k, top-p) with a per-row RNG, and hand
the chosen token back by masking every other logit, so ONNX Runtime's greedy step emits exactly our pick.

Rows are decoded in static batches (at most 32: the runtime's limit), shortest prompts together; a batch
is right-padded, which the runtime tracks per row (tested: batched greedy equals solo greedy at fp32).
Settings the runtime cannot honour (beam search, no-repeat n-grams) run on the torch engine, loaded on
first need, with a one-line notice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.generate.contract import Capabilities
from inkwell.generate.engine import DEFAULT_BATCH_SIZE, Engine
from inkwell.generate.fastpath import TorchFallback, fast_rows, file_eos, needs_torch, pick_token
from inkwell.generate.rows import GenerationResult, OnDelta, Prompt, TextRows, row_result
from inkwell.generate.settings import GenerationSettings

MAX_BATCH = 32  # onnxruntime-genai refuses batch_size > 32 for these models


class OnnxEngine:
    """The engine contract on ONNX Runtime GenAI: render / encode / count_tokens / generate / window_logits."""

    def __init__(
        self,
        onnx_dir: Path,
        loaded,
        batch_size: int = DEFAULT_BATCH_SIZE,
        fallback: Callable[[], Engine] | None = None,
        notice: Callable[[str], None] | None = None,
    ):
        import onnxruntime_genai as og

        self.onnx_dir = Path(onnx_dir)
        self.og_model = og.Model(str(onnx_dir))
        config = json.loads((self.onnx_dir / "genai_config.json").read_text())["model"]
        self.og_pad = int(config.get("pad_token_id") or 0)
        self.vocab = int(config["vocab_size"])
        self._plain = TorchFallback("ONNX path", fallback, notice)
        self._genai_eos = config.get("eos_token_id")
        # sliding-window models (gemma3): the runtime wants room for a whole window in every generator
        window = int((config.get("decoder", {}).get("sliding_window") or {}).get("window_size") or 0)
        self.min_length = min(window, int(config.get("context_length") or window))
        if batch_size < 1:
            raise InkwellError(f"invalid batch size {batch_size}", field="batch_size", hint="use a whole number >= 1")
        self.loaded = loaded
        self.text = TextRows(loaded, config_eos=file_eos(loaded, self._genai_eos))
        self.tokenizer, self.eos_ids, self.pad_id = self.text.tokenizer, self.text.eos_ids, self.text.pad_id
        self.render, self.encode, self.count_tokens = self.text.render, self.text.encode, self.text.count_tokens
        self.context_length = int(loaded.context_length)  # longest prompt + output (and scoring window)
        self.batch_size = min(batch_size, MAX_BATCH)
        self.capabilities = Capabilities(scoring=True, grammar=True)
        self._scorer = _Scorer(self)

    render: Callable[[Prompt], str]
    encode: Callable[[Prompt], list[int]]
    count_tokens: Callable[[Prompt], int]

    def window_logits(self, ids: Sequence[int]):
        """Next-token logits at every position of `ids`: [len(ids), vocab] (numpy)."""
        return self._scorer.window_logits(ids)

    def close(self) -> None:
        """The runtime's model is released with the object."""

    # ------------------------------------------------------------ the API

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings | None = None,
        on_delta: OnDelta | None = None,
        should_stop: Callable[[int], bool] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[GenerationResult]:
        settings = settings or GenerationSettings()
        settings.validate()
        reason = needs_torch(settings)
        if reason:
            return self._plain(reason).generate(
                prompts, settings, on_delta=on_delta, should_stop=should_stop, seeds=seeds
            )
        import numpy as np

        started = time.perf_counter()
        rows = fast_rows(self.text, prompts, settings, seeds, on_delta, should_stop)
        for row in rows:
            row.generator = None if settings.greedy else np.random.default_rng(row.seed)
        for batch in self._batches(sorted(rows, key=lambda r: len(r.prompt_ids))):
            self._run(batch, settings)
        return [row_result(row, started) for row in rows]

    def _batches(self, ordered: list) -> list[list]:
        """Up to batch_size rows, shortest prompts together. The runtime's sliding-window attention (gemma3)
        rejects right-padded rows, so there a batch holds prompts of one length only."""
        batches: list[list] = []
        for row in ordered:
            last = batches[-1] if batches else None
            if (
                last is None
                or len(last) >= self.batch_size
                or (self.min_length and len(last[0].prompt_ids) != len(row.prompt_ids))
            ):
                batches.append([row])
            else:
                last.append(row)
        return batches

    # ------------------------------------------------------------ one static batch

    def _run(self, rows: list, settings: GenerationSettings) -> None:
        import numpy as np
        import onnxruntime_genai as og

        longest = max(len(r.prompt_ids) for r in rows)
        steps = max(r.max_new_tokens for r in rows)
        params = og.GeneratorParams(self.og_model)
        params.set_search_options(
            max_length=max(longest + steps, self.min_length),
            do_sample=False,
            batch_size=len(rows),
            repetition_penalty=1.0,
        )
        generator = og.Generator(self.og_model, params)
        ids = np.full((len(rows), longest), self.og_pad, dtype=np.int32)
        for b, row in enumerate(rows):
            ids[b, : len(row.prompt_ids)] = row.prompt_ids  # right padding: the runtime tracks each row's length
        generator.append_tokens(ids)
        # The runtime's own greedy step is exact for plain greedy decoding; anything else picks in Python.
        picker = (
            None
            if (
                settings.greedy
                and float(settings.repetition_penalty) == 1.0
                and settings.min_new_tokens == 0
                and not any(r.grammar for r in rows)
            )
            else _Picker(self, rows, settings)
        )
        live = list(range(len(rows)))
        while live:
            if picker is not None:
                generator.set_logits(picker.choose(generator.get_logits(), live))
            generator.generate_next_token()
            tokens = generator.get_next_tokens()
            now = time.perf_counter()
            still: list[int] = []
            for b in live:
                if self.text.advance(rows[b], int(tokens[b]), now):
                    still.append(b)
                    if picker is not None:
                        picker.saw(b, int(tokens[b]))
            live = still
            if live and generator.is_done():  # the runtime stopped every row (its max_length): count as length
                for b in live:
                    rows[b].finish_reason, rows[b].finished_at = "length", time.perf_counter()
                    self.text.flush(rows[b], rows[b].stream)
                live = []
        del generator


class _Scorer:
    """Scoring on the all-positions graph, loaded on first use: `window_logits(ids)` -> [len(ids), vocab]."""

    def __init__(self, engine: OnnxEngine):
        self.engine = engine
        self._model = None

    def _og_model(self):
        """The graph with logits at every position (generation's graph keeps only the last one), loaded on the
        first score; folders built before that split have one graph with every position."""
        import json

        import onnxruntime_genai as og

        from inkwell.models.onnx_logits import ALL_LOGITS

        if self._model is None:
            folder = self.engine.onnx_dir
            if (folder / ALL_LOGITS).exists():
                config = og.Config(str(folder))
                config.overlay(json.dumps({"model": {"decoder": {"filename": ALL_LOGITS}}}))
                self._model = og.Model(config)
            else:
                self._model = self.engine.og_model
        return self._model

    def window_logits(self, ids: Sequence[int]):
        import numpy as np
        import onnxruntime_genai as og

        model = self._og_model()
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=max(len(ids) + 1, self.engine.min_length), batch_size=1)
        generator = og.Generator(model, params)
        generator.append_tokens(np.array([list(ids)], dtype=np.int32))
        return np.array(generator.get_output("logits"))[0]


class _Picker:
    """Token choice outside the runtime, for a static batch: `fastpath.pick_token` per live row."""

    def __init__(self, engine: OnnxEngine, rows: list, settings: GenerationSettings):
        import numpy as np

        self.rows, self.settings, self.vocab = rows, settings, engine.vocab
        self.penalty = float(settings.repetition_penalty)
        self.eos = np.array(sorted(i for i in engine.eos_ids if i < engine.vocab))
        self.seen = None
        if self.penalty != 1.0:
            self.seen = np.zeros((len(rows), engine.vocab), dtype=bool)
            for b, row in enumerate(rows):
                self.seen[b, [i for i in row.prompt_ids if i < engine.vocab]] = True

    def saw(self, b: int, token: int) -> None:
        if self.seen is not None and token < self.vocab:
            self.seen[b, token] = True

    def choose(self, logits, live: list[int]):
        import numpy as np

        logits = np.array(logits, dtype=np.float32).reshape(len(self.rows), -1)
        out = np.full_like(logits, -1e30)
        for b in live:
            seen = self.seen[b] if self.seen is not None else None
            out[b, pick_token(logits[b], self.rows[b], self.settings, self.eos, seen, self.penalty)] = 0.0
        return out.reshape(len(self.rows), 1, -1)
