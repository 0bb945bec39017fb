"""From checked rows to token ids and batches: prompt masking, packing, padding and the batch order.

SFT examples become `input_ids` + `labels` where every prompt token is labelled -100, so the loss only
counts the response. Prompts are rendered exactly as generation renders them:

* chat models: `tokenizer.apply_chat_template(messages, add_generation_prompt=True)` tokenised without
  special tokens, as `Engine.render` / `Engine.encode` do; the response is the text the chat template
  adds after that prompt when the assistant message is appended (so it ends with the end-of-turn token
  the model must learn to emit);
* base models: the prompt text tokenised with special tokens (as `Engine.encode` does for strings), then
  the response and the end-of-text token;
* template rows: `build_prompt(template, fields, chat=...)`, the call `inkwell write TEMPLATE` makes
  (chat models: no shots; base models: the template's built-in shots, as `write` uses by default).

Encoder-decoder (seq2seq, T5) models learn the same rows split in two (`Encoder(seq2seq=True)`): the
prompt, tokenised as `inkwell write` sends it to the encoder (with the tokenizer's special tokens: T5's
</s>), is the encoder's input, and the response with its end-of-text token is the decoder's labels;
`collate_seq2seq` pads the two sides separately. A conversation becomes one pair (everything before the
last assistant message -> that message); raw text rows have no prompt and are reported.

Packing (training.packing: true) puts several SFT examples in one row with `position_ids` restarting at
0 for each. transformers (>= 4.46, checked on 5.23) turns position ids that restart into a block-diagonal
causal mask for eager, sdpa and flex attention and into varlen kernels for flash-attention, but ONLY
when no attention_mask and no KV cache are passed: the loop therefore calls the model with
`use_cache=False` and packed batches carry no attention_mask. `packing_isolates(model)` checks this on
the real model before training and the recipe falls back to padding with length-grouped batches when a
model does not isolate packed examples. Pretraining packs raw text into fixed blocks without restarts
(documents separated by EOS, as GPT-style pretraining does).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from inkwell.errors import InkwellError
from inkwell.train.data import DataReport, Row

IGNORE = -100  # the label value cross-entropy ignores


def alpaca_prompt(instruction: str, extra: str) -> str:
    """The Alpaca prompt used for base (non-chat) models; chat models get the instruction as a user message."""
    text = f"### Instruction:\n{instruction}\n\n"
    if extra:
        text += f"### Input:\n{extra}\n\n"
    return text + "### Response:\n"


class NotEncodable(Exception):
    """A row that cannot become a training example (reported as a skipped row)."""


@dataclass
class Encoder:
    """Turns rows into {input_ids, labels, source}. `chat` follows the model, the same rule `load_model` uses."""

    tokenizer: Any
    chat: bool
    stop_ids: set[int]  # end-of-text / end-of-turn ids the model should learn to emit
    max_length: int
    seq2seq: bool = False  # an encoder-decoder: input_ids = the prompt, labels = the response (module docstring)

    def encode_all(self, rows: list[Row], report: DataReport, *, truncate: bool = False) -> list[dict]:
        examples = []
        for row in rows:
            try:
                example = self.encode(row)
            except NotEncodable as exc:
                report.problem(row.source, None, str(exc))
                continue
            size = max(len(example["input_ids"]), len(example["labels"]))  # seq2seq: the longer side
            if size > self.max_length and not truncate:
                report.problem(row.source, None, f"is {size} tokens, over training.max_length ({self.max_length})")
                continue
            if all(label == IGNORE for label in example["labels"][1:]):
                report.problem(row.source, None, "has no response tokens to learn from")
                continue
            examples.append(example)
        return examples

    def encode(self, row: Row) -> dict:
        value = row.value
        if row.kind == "text":
            if self.seq2seq:
                raise NotEncodable(
                    "a text row has no prompt; a seq2seq model learns prompt -> response pairs "
                    "(use prompt_completion, alpaca, messages or template rows)"
                )
            ids = self._ids(value["text"], special=True) + [self.eos]
            return self._example(row, [], ids)
        if row.kind == "prompt_completion":
            return self._example(row, self._ids(value["prompt"], special=True), self._response(value["completion"]))
        if row.kind == "alpaca":
            if self.chat:
                user = value["instruction"] + (f"\n\n{value['input']}" if value["input"] else "")
                messages = [{"role": "system", "content": value["system"]}] if value["system"] else []
                return self._chat(
                    row,
                    messages + [{"role": "user", "content": user}, {"role": "assistant", "content": value["output"]}],
                )
            prompt = (value["system"] + "\n\n" if value["system"] else "") + alpaca_prompt(
                value["instruction"], value["input"]
            )
            return self._example(row, self._ids(prompt, special=True), self._response(value["output"]))
        if row.kind == "messages":
            return self._chat(row, value["messages"])
        if row.kind == "template":
            return self._template(row)
        raise AssertionError(row.kind)

    # ------------------------------------------------------------ pieces

    @property
    def eos(self) -> int:
        return self.tokenizer.eos_token_id

    def _ids(self, text: str, *, special: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def _response(self, text: str) -> list[int]:
        return self._ids(text, special=False) + [self.eos]

    def _example(self, row: Row, prompt_ids: list[int], response_ids: list[int]) -> dict:
        if self.seq2seq:  # the encoder reads the prompt, the decoder learns the response
            return {"input_ids": prompt_ids, "labels": response_ids, "source": row.source}
        return {
            "input_ids": prompt_ids + response_ids,
            "labels": [IGNORE] * len(prompt_ids) + response_ids,
            "source": row.source,
        }

    def _render_chat(self, messages: list[dict], generation_prompt: bool) -> str:
        try:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
        except Exception as exc:  # jinja errors from the model's own template (e.g. "roles must alternate")
            raise NotEncodable(f"the model's chat template refused these messages: {exc}") from None

    def _chat(self, row: Row, messages: list[dict]) -> dict:
        """Loss on every assistant turn. Each turn is split off as the text the chat template adds to the
        rendering of the conversation so far; this needs the template to render a conversation as a prefix
        of its continuation, which holds for ChatML, Gemma, Llama-3 and SmolLM2 templates."""
        if self.tokenizer.chat_template is None:
            raise InkwellError(
                f"{row.source}: chat rows need a model with a chat template, and this tokenizer has none",
                field="data.format",
                hint="use an instruct model, or alpaca/prompt_completion/text rows",
            )
        if self.seq2seq:
            return self._chat_pair(row, messages)
        ids: list[int] = []
        labels: list[int] = []
        done = ""
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = self._render_chat(messages[:index], generation_prompt=True)
            full = self._render_chat(messages[: index + 1], generation_prompt=False)
            if not prompt.startswith(done) or not full.startswith(prompt):
                raise NotEncodable(
                    "the chat template does not render this conversation as a prefix of its continuation"
                )
            prompt_ids = self._ids(prompt[len(done) :], special=False)
            answer_ids = self._ids(full[len(prompt) :], special=False)
            if not self.stop_ids.intersection(answer_ids):
                answer_ids.append(self.eos)
            ids += prompt_ids + answer_ids
            labels += [IGNORE] * len(prompt_ids) + answer_ids
            done = full
        return {"input_ids": ids, "labels": labels, "source": row.source}

    def _chat_pair(self, row: Row, messages: list[dict]) -> dict:
        """A seq2seq model's conversation example: the conversation before the last assistant message, rendered
        as generation renders a chat prompt (template applied, no special tokens added), -> that message."""
        last = max(i for i, message in enumerate(messages) if message["role"] == "assistant")
        prompt = self._render_chat(messages[:last], generation_prompt=True)
        return self._example(row, self._ids(prompt, special=False), self._response(messages[last]["content"]))

    def _template(self, row: Row) -> dict:
        from inkwell.prompts.render import _render, build_prompt

        template, fields, output = row.value["template"], row.value["fields"], row.value["output"]
        try:
            rendered = build_prompt(template, fields, chat=self.chat)
        except InkwellError as exc:
            raise NotEncodable(str(exc).splitlines()[0]) from None
        if self.chat:
            return self._chat(row, rendered.prompt + [{"role": "assistant", "content": output}])
        # Base models: the prompt ends with the query's empty output slot ("Description:"); the answer is
        # what the same example pattern adds when the output is filled in (" Cook in comfort ...").
        where = f"template '{template.name}' completion.example"
        empty = _render(template.completion.example, {**fields, "output": ""}, where)
        filled = _render(template.completion.example, {**fields, "output": output}, where)
        if not rendered.prompt.endswith(empty) or not filled.startswith(empty):
            raise NotEncodable(f"template '{template.name}': the output slot is not at the end of completion.example")
        return self._example(row, self._ids(rendered.prompt, special=True), self._response(filled[len(empty) :]))


# ---------------------------------------------------------------- packing


def pack_examples(examples: list[dict], max_length: int, seed: int) -> list[dict]:
    """SFT packing: examples (in a seeded shuffled order) fill rows of at most max_length tokens; position
    ids restart at 0 per example and the first label of each example is -100, so no token is ever
    predicted across an example boundary (the same tokens count as without packing)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    rows: list[dict] = []
    current: dict = {"input_ids": [], "labels": [], "position_ids": [], "source": []}
    for index in order:
        example = examples[index]
        size = len(example["input_ids"])
        if current["input_ids"] and len(current["input_ids"]) + size > max_length:
            rows.append(current)
            current = {"input_ids": [], "labels": [], "position_ids": [], "source": []}
        current["input_ids"] += example["input_ids"]
        current["labels"] += [IGNORE] + example["labels"][1:]
        current["position_ids"] += list(range(size))
        current["source"].append(example["source"])
    if current["input_ids"]:
        rows.append(current)
    for row in rows:
        row["source"] = ", ".join(row["source"])
    return rows


def pack_blocks(documents: list[list[int]], block: int, eos: int) -> tuple[list[dict], int]:
    """Pretraining: documents joined with EOS and cut into blocks of `block` tokens (the tail that does
    not fill a block is dropped; the count comes back so the recipe can say so)."""
    stream: list[int] = []
    for ids in documents:
        stream.extend(ids)
        stream.append(eos)
    count = len(stream) // block
    blocks = [
        {
            "input_ids": stream[i * block : (i + 1) * block],
            "labels": stream[i * block : (i + 1) * block],
            "source": f"block {i}",
        }
        for i in range(count)
    ]
    return blocks, len(stream) - count * block


def packing_isolates(model) -> bool:
    """True when this model keeps packed examples apart: the logits of an example packed after another
    equal its logits alone (position ids restarting, no attention mask, no cache)."""
    import torch

    vocab = model.get_input_embeddings().weight.shape[0]
    device = next(model.parameters()).device
    a = torch.arange(3, 9, device=device)[None] % vocab
    b = torch.arange(11, 16, device=device)[None] % vocab
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = model(input_ids=b, use_cache=False).logits[0].float()
            positions = torch.cat([torch.arange(a.shape[1]), torch.arange(b.shape[1])]).to(device)[None]
            packed = (
                model(input_ids=torch.cat([a, b], 1), position_ids=positions, use_cache=False)
                .logits[0, a.shape[1] :]
                .float()
            )
    finally:
        model.train(was_training)
    return torch.allclose(alone, packed, atol=1e-3, rtol=1e-3)


# ---------------------------------------------------------------- batches


def collate(examples: list[dict], pad_id: int) -> dict:
    """Right-pad a list of examples into tensors. Packed rows (with position_ids) get no attention mask
    (see the module docstring); padded rows get one, and padding is labelled -100."""
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    packed = "position_ids" in examples[0]
    positions = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, example in enumerate(examples):
        n = len(example["input_ids"])
        ids[i, :n] = torch.tensor(example["input_ids"])
        labels[i, :n] = torch.tensor(example["labels"])
        mask[i, :n] = 1
        if packed:
            positions[i, :n] = torch.tensor(example["position_ids"])
            positions[i, n:] = torch.arange(width - n)  # padding forms its own (unlabelled) segment
    batch = {"input_ids": ids, "labels": labels}
    if packed:
        batch["position_ids"] = positions
    else:
        batch["attention_mask"] = mask
    return batch


def collate_seq2seq(examples: list[dict], pad_id: int) -> dict:
    """An encoder-decoder batch: prompts right-padded with an attention mask, responses padded with -100 (the
    model shifts the labels right itself to make the decoder's inputs)."""
    import torch

    ids = torch.full((len(examples), max(len(e["input_ids"]) for e in examples)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full((len(examples), max(len(e["labels"]) for e in examples)), IGNORE, dtype=torch.long)
    for i, example in enumerate(examples):
        ids[i, : len(example["input_ids"])] = torch.tensor(example["input_ids"])
        mask[i, : len(example["input_ids"])] = 1
        labels[i, : len(example["labels"])] = torch.tensor(example["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def count_targets(batch: dict) -> int:
    """Tokens the loss counts: labels other than -100 after the one-token shift of causal LM loss."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def epoch_batches(
    lengths: list[int], batch_size: int, world: int, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """The global micro-batches of one epoch: lists of batch_size x world example indices (rank r takes
    slice r). Seeded by (seed, epoch) only, so a resumed run sees the same order. With group_by_length,
    examples of similar length share a batch (less padding) and batches come in random order. With
    several processes the order wraps around to fill the last batch, like DistributedSampler."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    size = batch_size * world
    if world > 1 and len(order) % size:
        need = size - len(order) % size
        order += (order * math.ceil(need / len(order)))[:need]
    if group_by_length:
        chunk = size * 50
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda j: -lengths[j])
        ]
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches
