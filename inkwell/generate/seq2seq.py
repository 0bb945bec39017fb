"""Generation with an encoder-decoder model (T5 family): the prompt goes to the encoder and transformers'
`model.generate` writes the answer with the decoder.

The torch engine sends seq2seq rows here instead of its decode loop (which feeds one growing sequence to a
decoder-only model): there is no step-level batching, so the engine declares `continuous_batching=False`.
Greedy and beam rows of several prompts share one `generate` call (the encoder inputs right-padded, with an
attention mask); sampled rows run one prompt at a time, each seeded by its row's seed, as the torch engine's
`model.generate` path does. Text arrives whole: `on_delta` receives each result once, when it is done.
"""

from __future__ import annotations

import time
from typing import Any

from inkwell.errors import InkwellError
from inkwell.generate.contract import Capabilities
from inkwell.generate.rows import OnDelta, Row
from inkwell.generate.settings import GenerationSettings

# What the torch engine can do with a seq2seq model: generate, stream (whole results) and beams. No step-level
# batches (the decode loop is decoder-only), no next-token scoring of one window (a reference is scored given
# its prompt instead: evaluate.perplexity.seq2seq_nll), no unmerged adapters switched per request.
CAPABILITIES = Capabilities(beams=True)


def generate_rows(engine: Any, rows: list[Row], settings: GenerationSettings, on_delta: OnDelta | None) -> None:
    """Fill in every row's generated tokens, text and finish_reason. `engine` is the torch Engine (its model,
    tokenizer, end-of-text ids, pad id, text side and batch size)."""
    if settings.grammar:
        raise InkwellError(
            f"constrained decoding (a grammar) is not available for the encoder-decoder model '{engine.loaded.name}'",
            field="grammar",
            hint="drop the grammar / JSON schema, or use a causal LM",
        )
    by_prompt: dict[int, list[Row]] = {}
    for row in rows:
        by_prompt.setdefault(row.prompt_index, []).append(row)
    groups = list(by_prompt.values())
    if settings.greedy:  # deterministic: prompts can share a call
        size = max(1, engine.batch_size)
        batches = [sum(groups[i : i + size], []) for i in range(0, len(groups), size)]
    else:  # one seed per prompt: one call each
        batches = groups
    for batch in batches:
        _generate(engine, batch, settings, on_delta)


def _generate(engine: Any, rows: list[Row], settings: GenerationSettings, on_delta: OnDelta | None) -> None:
    import torch

    from inkwell.generate.classify import pad_right

    prompts: list[list[int]] = []
    for row in rows:
        if row.sample_index == 0:
            prompts.append(row.prompt_ids)
    samples = len(rows) // len(prompts)  # every prompt has the same number of rows (num_return_sequences)
    ids, mask = pad_right(prompts, engine.pad_id)
    if rows[0].seed is not None:
        torch.manual_seed(rows[0].seed)
    with torch.inference_mode():
        out = engine.model.generate(
            input_ids=ids.to(engine.loaded.device),
            attention_mask=mask.to(engine.loaded.device),
            generation_config=settings.hf_config(
                samples, engine.eos_ids, engine.pad_id, engine.model.config.decoder_start_token_id
            ),
            tokenizer=engine.tokenizer if settings.stop else None,
        )
    now = time.perf_counter()
    for row, sequence in zip(rows, out):  # prompt 0's samples, then prompt 1's: the order rows come in
        tokens = sequence[1:].tolist()  # position 0 is the decoder's start token
        cut = next((i for i, token in enumerate(tokens) if token in engine.eos_ids), None)
        row.generated = tokens if cut is None else tokens[:cut]
        row.finish_reason = "stop" if cut is not None else "length"
        text = engine.text.decode(row.generated)
        for stop in settings.stop:
            if stop in text:
                text, row.finish_reason = text[: text.find(stop)], "stop"
                while row.generated and row.generated[-1] == engine.pad_id:  # padding after the stop, in a batch
                    row.generated.pop()
        row.text, row.finished_at = text, now
        engine.text.emit(row, text, on_delta)
