"""SFT on an encoder-decoder (a tiny random T5 from a local folder): rows split into encoder input (the prompt as
`inkwell write` sends it) and decoder labels (the response + </s>), batches padded per side, a loss that averages
over the target tokens of the whole step, LoRA and full fine-tuning, and runs that `write`/`generate` load."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ALPACA_ROWS

from inkwell.errors import InkwellError
from inkwell.train.collate import IGNORE, Encoder, alpaca_prompt, collate_seq2seq
from inkwell.train.data import DataReport, Row

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


@pytest.fixture(scope="module")
def t5_tokenizer(tiny_t5_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_t5_model)


def _encoder(tokenizer, chat: bool = False) -> Encoder:
    return Encoder(tokenizer, chat=chat, stop_ids={tokenizer.eos_token_id}, max_length=64, seq2seq=True)


def test_a_row_becomes_encoder_input_and_decoder_labels(t5_tokenizer):
    row = Row("a.jsonl:1", "prompt_completion", {"prompt": "The quick brown fox", "completion": " jumps."})
    example = _encoder(t5_tokenizer).encode(row)
    eos = t5_tokenizer.eos_token_id
    assert example["input_ids"] == t5_tokenizer("The quick brown fox")["input_ids"]  # what the engine encodes
    assert example["input_ids"][-1] == eos  # T5 ends the encoder's input with </s>
    assert example["labels"] == t5_tokenizer(" jumps.", add_special_tokens=False)["input_ids"] + [eos]

    alpaca = Row(
        "a.jsonl:2", "alpaca", {"instruction": "Describe socks.", "input": "", "output": "Warm.", "system": ""}
    )
    example = _encoder(t5_tokenizer).encode(alpaca)
    assert t5_tokenizer.decode(example["input_ids"], skip_special_tokens=True) == alpaca_prompt("Describe socks.", "")
    assert t5_tokenizer.decode(example["labels"], skip_special_tokens=True) == "Warm."


def test_text_rows_have_no_prompt_and_are_reported(t5_tokenizer):
    report = DataReport()
    rows = [Row("t.jsonl:1", "text", {"text": "Poems, stories."})]
    assert _encoder(t5_tokenizer).encode_all(rows, report) == []
    assert "t.jsonl:1: a text row has no prompt; a seq2seq model learns prompt -> response pairs" in str(
        report.problems[0]
    )


def test_a_conversation_becomes_one_pair(t5_tokenizer):
    import copy

    t5_tokenizer = copy.deepcopy(t5_tokenizer)  # a T5 with a chat template (uncommon, but allowed)
    t5_tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Name a fox"},
        {"role": "assistant", "content": "Quick"},
    ]
    example = _encoder(t5_tokenizer, chat=True).encode(Row("m.jsonl:1", "messages", {"messages": messages}))
    prompt = "user: Hi\nassistant: Hello\nuser: Name a fox\nassistant: "
    assert example["input_ids"] == t5_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert t5_tokenizer.decode(example["labels"], skip_special_tokens=True) == "Quick"


def test_batches_pad_each_side_on_its_own():
    batch = collate_seq2seq(
        [{"input_ids": [5, 6, 7], "labels": [8, 1]}, {"input_ids": [9], "labels": [10, 11, 12, 1]}], pad_id=0
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [9, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[8, 1, IGNORE, IGNORE], [10, 11, 12, 1]]


def test_the_loss_averages_over_the_target_tokens_of_the_whole_step(tiny_t5_model):
    """Micro-batches divided by the target tokens of all of them add up to the loss of one batch (grad_accum),
    and that loss is the model's own mean cross-entropy."""
    from transformers import AutoModelForSeq2SeqLM

    from inkwell.train.losses import Seq2SeqLMLoss

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_model).eval()
    examples = [
        {"input_ids": [5, 6, 7, 1], "labels": [8, 9, 1]},
        {"input_ids": [10, 1], "labels": [11, 1]},
        {"input_ids": [12, 13, 1], "labels": [14, 15, 16, 17, 1]},
    ]
    loss_of = Seq2SeqLMLoss()
    with torch.no_grad():
        whole = loss_of(model, collate_seq2seq(examples, 0))
        own = model(**collate_seq2seq(examples, 0)).loss
        parts = [collate_seq2seq(examples[:2], 0), collate_seq2seq(examples[2:], 0)]
        n = sum(loss_of.count(batch) for batch in parts)
        assert n == 10
        split = sum(loss_of(model, batch, torch.tensor(float(n))) for batch in parts)
    assert torch.allclose(whole, own, atol=1e-6) and torch.allclose(split, whole, atol=1e-6)


@pytest.mark.parametrize("method, weights", [("lora", "adapter"), ("full", "full")])
def test_sft_trains_a_t5_folder_and_the_run_writes(
    make_config, run_config, tiny_t5_model, alpaca_file, capsys, method, weights
):
    from inkwell.cli import main

    path = make_config(
        tiny_t5_model,
        alpaca_file,
        method=method,
        name=f"t5-{method}",
        data={"val": [str(alpaca_file)]},
        training={"max_steps": 12, "lr": 3e-2 if method == "lora" else 1e-2, "eval_on_start": True},
    )
    run = run_config(path)
    records = [json.loads(line) for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val_loss"] < records[0]["val_loss"] - 0.5  # the same rows, before and after
    assert run.card["architecture"] == "seq2seq" and run.card["weights"] == weights
    assert run.card["metrics"]["val_loss"] is not None
    if method == "lora":
        assert json.loads((run.out / "adapter_config.json").read_text())["task_type"] == "SEQ_2_SEQ_LM"
        use = ["--adapter", str(run.out)]  # the base comes from the run card
    else:
        assert json.loads((run.out / "config.json").read_text())["architectures"] == ["T5ForConditionalGeneration"]
        use = ["--model", str(run.out)]

    # the trained model in memory and the run loaded by `inkwell generate` write the same answer
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_model)
    prompt = alpaca_prompt(ALPACA_ROWS[2]["instruction"], "")
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        out = run.model.eval().generate(input_ids=ids, max_new_tokens=8, do_sample=False)
    expected = tokenizer.decode(out[0][1:], skip_special_tokens=True)
    main(["generate", *use, prompt, "-t", "0", "--repetition-penalty", "1", "--max-new-tokens", "8", "--json"])
    assert json.loads(capsys.readouterr().out)["text"] == expected


def test_freeze_and_packing_on_a_seq2seq_model(make_config, run_config, tiny_t5_model, alpaca_file):
    with pytest.raises(InkwellError, match="method freeze trains the last blocks of a decoder-only model"):
        run_config(make_config(tiny_t5_model, alpaca_file, method="freeze"))
    said: list[str] = []
    from inkwell.train import train

    run = train(
        make_config(tiny_t5_model, alpaca_file, name="packed", training={"packing": True, "max_steps": 1}),
        say=said.append,
    )
    assert any("training.packing is for decoder-only models" in line for line in said)
    assert run.card["packed"] is False


@pytest.mark.parametrize(
    "stage, data", [("pretrain", "text_folder"), ("dpo", "pairs_file"), ("classify", "labelled_file")]
)
def test_other_stages_refuse_a_seq2seq_model_by_name(make_config, run_config, tiny_t5_model, request, stage, data):
    path = make_config(tiny_t5_model, request.getfixturevalue(data), stage=stage, method="lora")
    with pytest.raises(InkwellError, match=f"stage {stage} does not train encoder-decoder .seq2seq. models") as info:
        run_config(path)
    assert info.value.field == "model"
