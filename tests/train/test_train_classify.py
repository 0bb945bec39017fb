"""The classify stage on the tiny models: {text, label} rows checked with file:line and field, a separable toy
task learnt, per-class precision/recall/F1 and the confusion matrix in inkwell-run.json, `inkwell classify`
labels texts with the run, and an interrupted run resumes on the same loss curve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import LABELLED_ROWS, write_jsonl

from inkwell.errors import InkwellError
from inkwell.train.data import DataReport

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "row, field, words",
    [
        ({"text": "a"}, "label", "is missing"),
        ({"text": "a", "label": 1}, "label", "must be a string (the class name), got int 1"),
        ({"text": "a", "label": True}, "label", "got bool"),
        ({"text": "a", "label": ["x"]}, "label", "got list"),
        ({"label": "x"}, "text", "is missing"),
        ({"text": "  ", "label": "x"}, "text", "is empty"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, row, field, words):
    from inkwell.train.classify import read_examples

    path = write_jsonl(tmp_path / "rows.jsonl", [{"text": "fine", "label": "x"}, row])
    report = DataReport()
    assert len(read_examples([path], report)) == 1
    assert str(report.problems[0]).startswith(f"{path}:2: field '{field}': ") and words in str(report.problems[0])
    with pytest.raises(InkwellError, match=re.escape(f"{path}:2: field '{field}'")):
        read_examples([path], DataReport(on_error="error"))


def test_a_validation_label_unknown_to_training_is_reported(
    make_config, run_config, tiny_chat_model, labelled_file, tmp_path
):
    val = write_jsonl(tmp_path / "data" / "val.jsonl", [{"text": "x", "label": "fr"}, {"text": "y", "label": "en"}])
    path = make_config(
        tiny_chat_model, labelled_file, stage="classify", data={"val": [str(val)]}, training={"max_steps": 1}
    )
    run = run_config(path)
    assert run.card["data"]["examples"]["val"] == 1
    assert run.card["data"]["skipped"] == [
        f"{val}:1: field 'label': 'fr' is not a label of the training rows (en, json, zh)"
    ]


def test_learns_a_separable_task_and_reports_per_class_metrics(make_config, run_config, tiny_chat_model, labelled_file):
    path = make_config(
        tiny_chat_model,
        labelled_file,
        stage="classify",
        method="full",
        data={"val": [str(labelled_file)]},
        training={"max_steps": 12, "lr": 3e-3, "eval_every": 1, "eval_on_start": True},
    )
    run = run_config(path)
    records = _records(run.out)
    assert [r["step"] for r in records] == list(range(13))  # step 0: the untrained head
    accuracy = [r["val_accuracy"] for r in records]
    assert accuracy[-1] == 1.0 and accuracy[0] < 1.0  # learnt, not there from the start
    assert list((run.out / "tensorboard").glob("events.out.tfevents.*"))
    assert records[-1]["val_loss"] < records[0]["val_loss"]

    card = json.loads((run.out / "inkwell-run.json").read_text())
    metrics = card["metrics"]
    assert metrics["evaluated_on"] == "val" and metrics["accuracy"] == 1.0 and metrics["macro_f1"] == 1.0
    assert set(metrics["per_class"]) == {"en", "json", "zh"}
    assert metrics["per_class"]["zh"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert metrics["confusion_matrix"] == {"labels": ["en", "json", "zh"], "rows": [[2, 0, 0], [0, 2, 0], [0, 0, 2]]}
    assert card["id2label"] == {"0": "en", "1": "json", "2": "zh"}


def test_report_counts_mistakes_per_class():
    from inkwell.train.classify import classification_report, format_report

    report = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert report["confusion_matrix"]["rows"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert (
        report["per_class"]["b"]["precision"] == pytest.approx(2 / 3, abs=1e-6)
        and report["per_class"]["b"]["recall"] == 1.0
    )
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["accuracy"] == 0.6
    table = format_report(report)
    assert "accuracy 0.600" in table and "confusion matrix" in table


def test_inkwell_classify_prints_labels(make_config, tiny_chat_model, labelled_file, tmp_path, capsys):
    from inkwell.cli import main

    path = make_config(
        tiny_chat_model, labelled_file, stage="classify", name="cli-classify", training={"max_steps": 12, "lr": 1e-2}
    )
    main(["train", str(path), "--json"])
    out = json.loads(capsys.readouterr().out)["output"]
    main(["classify", "--model", out, "床前明月光，疑是地上霜。", "The quick brown fox jumps."])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["zh", "en"]
    assert all(0.0 <= float(line.split("\t")[1]) <= 1.0 for line in lines)

    rows = write_jsonl(tmp_path / "input.jsonl", [{"text": r["text"]} for r in LABELLED_ROWS])
    main(["classify", "--model", out, "--input", str(rows), "--json"])
    results = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in results] == [r["label"] for r in LABELLED_ROWS]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in results)


def test_inkwell_classify_refuses_a_run_of_another_stage(make_config, run_config, tiny_chat_model, alpaca_file, capsys):
    from inkwell.cli import main

    run = run_config(make_config(tiny_chat_model, alpaca_file, training={"max_steps": 1}))
    with pytest.raises(SystemExit) as info:
        main(["classify", "--model", str(run.out), "hello"])
    assert info.value.code == 2 and "holds a sft run, not a classifier" in capsys.readouterr().err


def test_resume_after_an_interrupted_run(make_config, run_config, tiny_chat_model, labelled_file):
    import torch

    training = {"max_steps": 6, "save_every": 2, "keep_last": 2, "batch_size": 2, "dropout": 0.1, "lr": 1e-2}
    whole = run_config(make_config(tiny_chat_model, labelled_file, stage="classify", name="whole", training=training))

    def crash_at_step_3(state, record):
        if state.step == 3:
            raise KeyboardInterrupt

    path = make_config(tiny_chat_model, labelled_file, stage="classify", name="crashed", training=training)
    with pytest.raises(KeyboardInterrupt):
        run_config(path, callbacks=[crash_at_step_3])
    out = whole.out.parent / "crashed"
    assert [r["loss"] for r in _records(out)] == [r["loss"] for r in _records(whole.out)][:3]
    resumed = run_config(path)
    assert [r["loss"] for r in _records(resumed.out)] == [
        r["loss"] for r in _records(whole.out)
    ]  # exact: RNG, order, optimizer
    for name, param in whole.model.named_parameters():
        assert torch.equal(param, dict(resumed.model.named_parameters())[name]), name


def test_classify_config_rules(tmp_path):
    from inkwell.train.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("stage: classify\nmodel: tiny\ndata:\n  train: a.jsonl\n  format: alpaca\n")
    with pytest.raises(InkwellError, match=r"c.yaml:5: data.format: unknown key"):
        load_config(path)
    path.write_text("stage: classify\nmodel: tiny\ndata:\n  train: a.jsonl\ntraining:\n  adversarial: fgm\n")
    with pytest.raises(InkwellError, match=r"training.adversarial: FGM/PGD are not available in the classify stage"):
        load_config(path)


def test_trains_through_the_shared_loop(make_config, run_config, tiny_chat_model, labelled_file, monkeypatch):
    """classify is a recipe over the shared loop (its loss, batches and validation are the loop's hooks): the
    loop's callbacks see every step with the classifier's validation scores, and TensorBoard gets them too."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import inkwell.train.classify as classify
    from inkwell.train import loop
    from inkwell.train.losses import SequenceClassificationLoss

    assert classify.train_loop is loop.train_loop
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return loop.train_loop(*args, **kwargs)

    monkeypatch.setattr(classify, "train_loop", spy)
    seen = []
    path = make_config(
        tiny_chat_model,
        labelled_file,
        stage="classify",
        data={"val": [str(labelled_file)]},
        training={"max_steps": 3, "eval_every": 2},
    )
    run = run_config(path, callbacks=[lambda state, record: seen.append((state.step, dict(record)))])
    assert len(calls) == 1 and isinstance(calls[0]["loss_of"], SequenceClassificationLoss)
    assert [step for step, _ in seen] == [1, 2, 3]
    assert [sorted(k for k in record if k.startswith("val_")) for _, record in seen] == [
        [],
        ["val_accuracy", "val_loss", "val_macro_f1"],
        ["val_accuracy", "val_loss", "val_macro_f1"],
    ]
    assert all("examples_per_s" in record and "tokens_per_s" not in record for _, record in seen)
    assert [record for _, record in seen] == _records(run.out)
    board = EventAccumulator(str(run.out / "tensorboard"))
    board.Reload()
    assert {"train/loss", "train/examples_per_s", "val/loss", "val/accuracy", "val/macro_f1"} <= set(
        board.Tags()["scalars"]
    )
    assert [e.step for e in board.Scalars("val/accuracy")] == [2, 3]
    assert run.card["metrics"]["steps"] == 3 and run.card["precision"] == "fp32"


def test_resume_with_validation_and_accumulation_matches_an_uninterrupted_run(
    make_config, run_config, tiny_chat_model, labelled_file
):
    """A crash between checkpoints, then `resume: auto`: the same steps, losses, validation scores and run card
    metrics as a run that never stopped."""
    training = {
        "max_steps": 5,
        "save_every": 2,
        "batch_size": 1,
        "grad_accum": 2,
        "eval_every": 2,
        "eval_on_start": True,
        "lr": 1e-2,
    }
    data = {"val": [str(labelled_file)]}
    whole = run_config(
        make_config(tiny_chat_model, labelled_file, stage="classify", name="whole", data=data, training=training)
    )

    def crash_at_step_3(state, record):
        if state.step == 3:
            raise KeyboardInterrupt

    path = make_config(tiny_chat_model, labelled_file, stage="classify", name="crashed", data=data, training=training)
    with pytest.raises(KeyboardInterrupt):
        run_config(path, callbacks=[crash_at_step_3])
    assert sorted(p.name for p in (whole.out.parent / "crashed" / "checkpoints").iterdir()) == ["step-00000002"]
    resumed = run_config(path)

    def curve(out):  # everything but the wall-clock speed
        return [{k: v for k, v in r.items() if k != "examples_per_s"} for r in _records(out)]

    assert [r["step"] for r in _records(resumed.out)] == list(range(6))
    assert curve(resumed.out) == curve(whole.out)
    same = ("steps", "train_loss", "val_loss", "best_val_loss", "best_step", "stopped", "accuracy", "confusion_matrix")
    assert {k: resumed.card["metrics"][k] for k in same} == {k: whole.card["metrics"][k] for k in same}


def test_the_loss_averages_over_the_examples_of_the_whole_step(tiny_chat_model):
    """Two micro-batches, each divided by the examples of both, add up to the mean of one batch of all of them
    (what grad_accum relies on); the model's own loss, a mean per micro-batch, would not."""
    import torch

    from inkwell.train.classify import collate, load_classifier_base
    from inkwell.train.losses import SequenceClassificationLoss

    torch.manual_seed(0)
    model = load_classifier_base(tiny_chat_model, ["a", "b"], 0).eval()
    examples = [
        {"input_ids": [5, 6, 7], "label": 0},
        {"input_ids": [8, 9], "label": 1},
        {"input_ids": [10], "label": 1},
    ]
    loss_of = SequenceClassificationLoss()
    with torch.no_grad():
        whole = loss_of(model, collate(examples, 0))
        parts = [collate(examples[:2], 0), collate(examples[2:], 0)]
        n = sum(loss_of.count(batch) for batch in parts)
        assert n == 3
        assert torch.allclose(sum(loss_of(model, batch, torch.tensor(float(n))) for batch in parts), whole, atol=1e-6)


def test_the_inference_classifier_does_not_import_training():
    """generate/ runs trained models and sits below train/: loading a classifier never pulls in the trainer."""
    import subprocess
    import sys

    code = (
        "import sys, inkwell.generate.classify; print(sorted(m for m in sys.modules if m.startswith('inkwell.train')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
