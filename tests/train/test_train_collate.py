"""From rows to tokens: the prompt is exactly what generation sends and is masked with -100 exactly;
packed examples do not see each other; the batch order is a pure function of (seed, epoch)."""

from __future__ import annotations

import pytest

from inkwell.train.collate import IGNORE, Encoder, collate, epoch_batches, pack_blocks, pack_examples, packing_isolates
from inkwell.train.data import DataReport, Row


def _encoder(engine, max_length=512) -> Encoder:
    tokenizer = engine.tokenizer
    return Encoder(tokenizer, chat=engine.loaded.chat, stop_ids={tokenizer.eos_token_id}, max_length=max_length)


def _prompt_length(example) -> int:
    return next(i for i, label in enumerate(example["labels"]) if label != IGNORE)


def test_alpaca_on_a_chat_model_masks_exactly_the_prompt_generation_sends(tiny_engine):
    row = Row(
        "a.jsonl:1",
        "alpaca",
        {"instruction": "Describe a mug.", "input": "for tea", "output": "A warm mug.", "system": ""},
    )
    example = _encoder(tiny_engine).encode(row)
    prompt_ids = tiny_engine.encode(
        [{"role": "user", "content": "Describe a mug.\n\nfor tea"}]
    )  # what `generate --chat` sends
    n = len(prompt_ids)
    assert example["input_ids"][:n] == prompt_ids
    assert example["labels"][:n] == [IGNORE] * n  # every prompt token masked ...
    assert example["labels"][n:] == example["input_ids"][n:]  # ... and every response token learned
    answer = tiny_engine.tokenizer.decode(example["input_ids"][n:])
    assert answer == "A warm mug.<|im_end|>\n"  # ends with the end-of-turn token the engine stops on


@pytest.mark.parametrize("engine_name", ["tiny_engine", "tiny_base_engine"])
def test_template_rows_use_the_exact_prompt_of_inkwell_write(engine_name, request):
    from inkwell.prompts.library import get_template
    from inkwell.prompts.render import build_prompt

    engine = request.getfixturevalue(engine_name)
    template = get_template("product-description")
    fields = template.resolve_fields({"product": "linen apron", "audience": "cooks"})
    row = Row("t.jsonl:1", "template", {"template": template, "fields": fields, "output": "Soft linen."})
    example = _encoder(engine).encode(row)
    rendered = build_prompt(template, fields, chat=engine.loaded.chat)  # the call `inkwell write` makes
    prompt_ids = engine.encode(rendered.prompt)
    n = _prompt_length(example)
    assert example["input_ids"][:n] == prompt_ids
    answer = engine.tokenizer.decode(example["input_ids"][n:])
    if engine.loaded.chat:
        assert answer == "Soft linen.<|im_end|>\n"
    else:
        assert rendered.prompt.endswith("Description:")  # the empty output slot of the base-model pattern
        assert answer == " Soft linen.<|endoftext|>"


def test_every_assistant_turn_is_learned_and_every_user_turn_is_masked(tiny_engine):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ]
    example = _encoder(tiny_engine).encode(Row("m.jsonl:1", "messages", {"messages": messages}))
    tokenizer = tiny_engine.tokenizer
    assert tokenizer.decode(example["input_ids"]) == tokenizer.apply_chat_template(messages, tokenize=False)
    learned = tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE])
    assert learned == "Hello.<|im_end|>\nGoodbye.<|im_end|>\n"


def test_prompt_completion_and_text_rows(tiny_base_engine):
    encoder = _encoder(tiny_base_engine)
    pc = encoder.encode(Row("p.jsonl:1", "prompt_completion", {"prompt": "Poems, ", "completion": "stories"}))
    n = _prompt_length(pc)
    assert pc["input_ids"][:n] == tiny_base_engine.encode("Poems, ")
    assert tiny_base_engine.tokenizer.decode(pc["input_ids"][n:]) == "stories<|endoftext|>"
    text = encoder.encode(Row("x.jsonl:1", "text", {"text": "Inkwell writes"}))
    assert text["labels"] == text["input_ids"]


def test_over_long_and_empty_examples_are_reported(tiny_engine):
    report = DataReport()
    rows = [
        Row("a.jsonl:1", "prompt_completion", {"prompt": "word " * 40, "completion": "x"}),
        Row("a.jsonl:2", "prompt_completion", {"prompt": "short", "completion": "fine"}),
    ]
    kept = _encoder(tiny_engine, max_length=20).encode_all(rows, report)
    assert len(kept) == 1
    assert str(report.problems[0]).startswith("a.jsonl:1: is ") and "over training.max_length (20)" in str(
        report.problems[0]
    )


def test_packed_examples_do_not_see_each_other(tiny_chat_model):
    """The loss of a packed row equals the loss of the same examples padded one per row: position ids
    restart per example, no attention mask, no cache (see collate.py's docstring)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model, dtype=torch.float32)
    assert packing_isolates(model)
    examples = [
        {"input_ids": list(range(5, 5 + n)), "labels": [IGNORE] * 2 + list(range(7, 5 + n)), "source": str(n)}
        for n in (6, 9, 4)
    ]
    packed = pack_examples(examples, max_length=64, seed=0)
    assert len(packed) == 1 and packed[0]["position_ids"].count(0) == 3
    one = torch.tensor(1.0)
    with torch.no_grad():
        padded_batch = collate(examples, pad_id=0)
        packed_batch = collate(packed, pad_id=0)
        assert "attention_mask" not in packed_batch
        padded = model(**padded_batch, num_items_in_batch=one, use_cache=False).loss
        packed_loss = model(**packed_batch, num_items_in_batch=one, use_cache=False).loss
        leaky = model(
            input_ids=packed_batch["input_ids"], labels=packed_batch["labels"], num_items_in_batch=one, use_cache=False
        ).loss
    assert torch.allclose(padded, packed_loss, rtol=1e-5)
    assert not torch.allclose(padded, leaky, rtol=1e-3)  # without restarting positions, examples would leak


def test_pretraining_blocks_join_documents_with_eos():
    blocks, dropped = pack_blocks([[1, 2, 3], [4, 5]], block=3, eos=0)
    assert [b["input_ids"] for b in blocks] == [[1, 2, 3], [0, 4, 5]]
    assert blocks[0]["labels"] == blocks[0]["input_ids"] and dropped == 1


def test_batch_order_depends_only_on_seed_and_epoch_and_shards_evenly():
    lengths = [3, 9, 1, 7, 5, 2, 8]
    first = epoch_batches(lengths, batch_size=2, world=1, seed=3, epoch=0, group_by_length=False)
    assert first == epoch_batches(lengths, 2, 1, 3, 0, False)
    assert first != epoch_batches(lengths, 2, 1, 3, 1, False)
    assert sorted(i for b in first for i in b) == list(range(7))
    two = epoch_batches(lengths, batch_size=2, world=2, seed=3, epoch=0, group_by_length=False)
    assert all(len(b) == 4 for b in two)  # wrapped around so both processes get full batches
    grouped = epoch_batches(lengths, batch_size=2, world=1, seed=3, epoch=0, group_by_length=True)
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in grouped if len(b) == 2]
    assert max(spans) <= 2  # similar lengths share a batch
