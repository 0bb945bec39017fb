"""The dpo stage on the tiny models: rows are checked with file:line and field, prompts are rendered as
generation renders them, TRL's DPOTrainer moves the chosen-vs-rejected margin the right way against a
reference that stays fixed, the output loads with `inkwell write --adapter`, and an interrupted run resumes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from conftest import PAIR_ROWS, write_jsonl

from inkwell.errors import InkwellError
from inkwell.train.data import DataReport

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

# One pair, repeated: every batch is the same, so the reference's score of it must be the same at every step.
SAME_PAIR = [
    {"prompt": "Describe a bamboo bottle.", "chosen": "A light bottle.", "rejected": "Headlines and news."}
] * 4
BETA = 0.1


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _check(rows: list, on_error: str = "skip", tmp_path: Path | None = None):
    from inkwell.train.dpo import read_pairs

    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    report = DataReport(on_error=on_error)
    return read_pairs([path], report), report, path


# ---------------------------------------------------------------- rows


def test_string_and_message_rows_become_the_same_prompt(tmp_path):
    rows, report, _ = _check(
        PAIR_ROWS
        + [
            {
                "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
                "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go."}],
            },
        ],
        tmp_path=tmp_path,
    )
    assert not report.problems and len(rows) == 5
    assert rows[0].value == {
        "messages": [{"role": "user", "content": "Describe a bamboo bottle."}],
        "chosen": "A light bottle.",
        "rejected": "Headlines and news.",
    }
    assert rows[2].value["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (
        rows[3].value["messages"] == [{"role": "user", "content": "Describe a tea pot."}]
        and rows[3].value["chosen"] == "Pours well."
    )
    assert rows[4].value["messages"] == [{"role": "user", "content": "Hi"}] and rows[4].value["rejected"] == "Go."


@pytest.mark.parametrize(
    "row, field, words",
    [
        ({"prompt": "p", "chosen": "a"}, "rejected", "is missing"),
        ({"prompt": "p", "chosen": "a", "rejected": 3}, "rejected", "must be a string"),
        ({"prompt": "p", "chosen": "a", "rejected": "a"}, "rejected", "same text as chosen"),
        ({"chosen": "a", "rejected": "b"}, "prompt", "is missing"),
        (
            {"prompt": "p", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"},
            "chosen[0].role",
            "assistant's answer",
        ),
        (
            {
                "chosen": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a"}],
                "rejected": [{"role": "user", "content": "y"}, {"role": "assistant", "content": "b"}],
            },
            "rejected",
            "share every message",
        ),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, row, field, words):
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    rows, report, path = _check([good, row], tmp_path=tmp_path)
    assert len(rows) == 1 and len(report.problems) == 1
    assert str(report.problems[0]).startswith(f"{path}:2: field '{field}': ") and words in str(report.problems[0])
    with pytest.raises(InkwellError, match=re.escape(f"{path}:2: field '{field}'")):
        _check([good, row], on_error="error", tmp_path=tmp_path)


def test_missing_rejected_stops_a_run_with_on_error_error(make_config, run_config, tiny_chat_model, tmp_path):
    data = write_jsonl(tmp_path / "data" / "bad.jsonl", [PAIR_ROWS[0], {"prompt": "p", "chosen": "a"}])
    path = make_config(tiny_chat_model, data, stage="dpo", data={"on_error": "error"})
    with pytest.raises(InkwellError) as info:
        run_config(path)
    assert str(info.value).startswith(f"{data}:2: field 'rejected': is missing")


def test_the_prompt_is_rendered_as_generation_renders_it(tiny_chat_model, tiny_engine, tmp_path):
    from inkwell.train.collate import Encoder
    from inkwell.train.dpo import encode_pairs
    from inkwell.train.outputs import load_tokenizer

    rows, report, _ = _check(PAIR_ROWS, tmp_path=tmp_path)
    tokenizer, stop = load_tokenizer(tiny_chat_model)
    pairs = encode_pairs(Encoder(tokenizer, chat=True, stop_ids=stop, max_length=256), rows, report)
    for row, pair in zip(rows, pairs):
        assert pair["prompt_ids"] == tiny_engine.encode(row.value["messages"])  # exactly what `generate --chat` feeds
        assert tokenizer.decode(pair["chosen_ids"]) == row.value["chosen"] + "<|im_end|>\n"
        assert tokenizer.decode(pair["rejected_ids"]) == row.value["rejected"] + "<|im_end|>\n"


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("method, lr", [("lora", 1e-2), ("full", 1e-3)])
def test_margin_grows_against_a_fixed_reference(method, lr, make_config, run_config, tiny_chat_model, tmp_path):
    data = write_jsonl(tmp_path / "data" / "same.jsonl", SAME_PAIR)
    path = make_config(
        tiny_chat_model,
        data,
        stage="dpo",
        method=method,
        name=method,
        training={"max_steps": 5, "lr": lr},
        dpo={"beta": BETA},
    )
    run = run_config(path)
    records = _records(run.out)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert records[0]["rewards/margins"] == 0 and records[0]["loss"] == pytest.approx(
        math.log(2), abs=1e-6
    )  # policy == reference
    margins = [r["rewards/margins"] for r in records]
    assert margins[-1] > margins[1] > 0 and records[-1]["loss"] < records[0]["loss"]
    assert records[-1]["logps/chosen"] > records[0]["logps/chosen"] - 1e-3
    # rewards = beta * (policy - reference) log-probs: the reference's score of the one pair never moves
    reference = [r["logps/chosen"] - r["rewards/chosen"] / BETA for r in records]
    assert max(reference) - min(reference) < 1e-3, reference
    assert reference[0] == pytest.approx(records[0]["logps/chosen"])
    assert run.metrics["steps"] == 5 and run.metrics["rewards/margins"] == margins[-1]
    assert (run.out / "loss.png").exists()


def test_lora_reference_is_the_base_with_the_adapter_off(make_config, run_config, tiny_chat_model, pairs_file):
    import torch
    from transformers import AutoModelForCausalLM

    run = run_config(make_config(tiny_chat_model, pairs_file, stage="dpo", method="lora"))
    assert set(run.model.peft_config) == {"default"}  # no copy of the adapter is kept as a reference
    base = AutoModelForCausalLM.from_pretrained(tiny_chat_model, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 42, 99]])
    with torch.no_grad(), run.model.disable_adapter():
        off = run.model(input_ids=ids).logits
    with torch.no_grad():
        assert torch.equal(off, base(input_ids=ids).logits)
        assert not torch.allclose(run.model(input_ids=ids).logits, off)


def test_validation_and_the_cli_output_load_with_write_adapter(make_config, tiny_chat_model, pairs_file, capsys):
    from inkwell.cli import main

    path = make_config(
        tiny_chat_model,
        pairs_file,
        stage="dpo",
        name="cli-dpo",
        data={"val": [str(pairs_file)]},
        training={"max_steps": 2, "eval_every": 1},
    )
    main(["train", str(path), "--json"])
    summary = json.loads(capsys.readouterr().out)
    out = Path(summary["output"])
    card = json.loads((out / "inkwell-run.json").read_text())
    assert card["stage"] == "dpo" and card["weights"] == "adapter" and card["config"]["dpo"]["beta"] == 0.1
    assert card["data"]["examples"] == {"train": 4, "val": 4} and summary["val_loss"] is not None
    assert [r["step"] for r in _records(out) if "val_loss" in r] == [1, 2]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))  # train/rewards/margins, val/loss, ...
    main(
        [
            "write",
            "product-description",
            "--adapter",
            str(out),
            "--set",
            "product=mug",
            "--max-new-tokens",
            "3",
            "--seed",
            "1",
            "--no-log",
            "--json",
        ]
    )
    record = json.loads(capsys.readouterr().out)
    assert record["adapter"] == str(out) and record["model"] == str(tiny_chat_model)


def test_resume_after_an_interrupted_run(make_config, run_config, tiny_chat_model, pairs_file):
    training = {"max_steps": 5, "save_every": 2, "keep_last": 2, "batch_size": 2}
    whole = run_config(make_config(tiny_chat_model, pairs_file, stage="dpo", name="whole", training=training))

    def crash_at_step_3(state, record):
        if state.step == 3:
            raise KeyboardInterrupt  # a kill after step 3 was logged, before any later checkpoint

    path = make_config(tiny_chat_model, pairs_file, stage="dpo", name="crashed", training=training)
    with pytest.raises(KeyboardInterrupt):
        run_config(path, callbacks=[crash_at_step_3])
    out = whole.out.parent / "crashed"
    assert [r["step"] for r in _records(out)] == [1, 2, 3]
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2"]

    resumed = run_config(path)  # resume: auto continues from checkpoint-2
    losses = [r["loss"] for r in _records(resumed.out)]
    assert [r["step"] for r in _records(resumed.out)] == [1, 2, 3, 4, 5]
    assert losses == pytest.approx([r["loss"] for r in _records(whole.out)], abs=1e-5)  # same data order and state
    assert resumed.metrics["steps"] == 5
    again = run_config(path, "training.resume=never", "training.max_steps=1")  # starts over: old checkpoints go
    assert [r["step"] for r in _records(again.out)] == [1]
    assert sorted(p.name for p in (again.out / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-1"
    ]  # saved at the end


def test_dpo_config_rules(tmp_path):
    from inkwell.train.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("stage: dpo\nmodel: tiny\ndata:\n  train: a.jsonl\ntraining:\n  packing: true\n")
    with pytest.raises(InkwellError, match=r"c.yaml:6: training.packing: the dpo stage batches whole examples"):
        load_config(path)
    with pytest.raises(InkwellError, match=r"method: must be one of full, freeze, lora"):
        load_config(path, ["training.packing=false", "method=prefix"])
    with pytest.raises(InkwellError, match=r"dpo.label_smoothing: exo_pair needs"):
        load_config(path, ["training.packing=false", "dpo.loss_type=exo_pair"])
    assert load_config(path, ["training.packing=false", "dpo.loss_type=ipo", "dpo.beta=0.5"]).dpo.beta == 0.5
