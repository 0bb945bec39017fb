"""The classify stage on an encoder (a tiny random BERT, the all-MiniLM-L6-v2 family): full fine-tuning and LoRA
learn a separable task, the run folder is self-describing (`inkwell classify --model OUT` labels texts with it,
as with a causal-LM classifier), and the stages that write text refuse an encoder by name."""

from __future__ import annotations

import json

import pytest
from conftest import LABELLED_ROWS, write_jsonl

from inkwell.errors import InkwellError

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

TRAINING = {"max_steps": 20, "lr": 1e-2, "dropout": 0.0, "eval_every": 20, "eval_on_start": True}


@pytest.mark.parametrize("method, weights", [("full", "full"), ("lora", "adapter")])
def test_an_encoder_learns_a_separable_task_and_the_run_labels_texts(
    make_config, run_config, tiny_bert_model, labelled_file, tmp_path, capsys, method, weights
):
    from inkwell.cli import main
    from inkwell.generate.classify import Classifier

    path = make_config(
        tiny_bert_model,
        labelled_file,
        stage="classify",
        method=method,
        name=f"bert-{method}",
        data={"val": [str(labelled_file)]},
        training=TRAINING,
    )
    run = run_config(path)
    records = [json.loads(line) for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["val_accuracy"] < 1.0 and records[-1]["val_accuracy"] == 1.0  # learnt, not there from the start
    card = json.loads((run.out / "inkwell-run.json").read_text())
    assert card["weights"] == weights and card["labels"] == ["en", "json", "zh"]
    assert card["metrics"]["accuracy"] == 1.0
    if method == "full":
        config = json.loads((run.out / "config.json").read_text())
        assert config["architectures"] == ["BertForSequenceClassification"]
        assert config["id2label"] == {"0": "en", "1": "json", "2": "zh"}
    else:
        assert json.loads((run.out / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"

    # the saved run, loaded on its own, gives what the trained model in memory gives
    texts = [row["text"] for row in LABELLED_ROWS]
    loaded = Classifier.load(run.out, device="cpu")
    assert [r["label"] for r in loaded.predict(texts)] == [row["label"] for row in LABELLED_ROWS]
    import torch

    from inkwell.generate.classify import pad_right

    ids, mask = pad_right([loaded.tokenizer(t)["input_ids"] for t in texts], loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        expected = run.model.eval()(input_ids=ids, attention_mask=mask).logits.softmax(-1)
    got = torch.tensor([[r["probabilities"][label] for label in card["labels"]] for r in loaded.predict(texts)])
    assert torch.allclose(got, expected, atol=1e-5)

    main(["classify", "--model", str(run.out), "床前明月光，疑是地上霜。", "The quick brown fox jumps."])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["zh", "en"]


def test_freeze_trains_the_last_blocks_the_pooler_and_the_head(make_config, run_config, tiny_bert_model, labelled_file):
    import torch

    from inkwell.models.heads import load_classifier

    path = make_config(
        tiny_bert_model,
        labelled_file,
        stage="classify",
        method="freeze",
        freeze={"trainable_layers": 1},
        training={"max_steps": 2},
    )
    run = run_config(path)
    before = load_classifier(tiny_bert_model, ["en", "json", "zh"], 0).state_dict()
    changed = {name for name, value in run.model.state_dict().items() if not torch.equal(value, before[name])}
    assert any(name.startswith("bert.encoder.layer.1.") for name in changed)
    assert not any(name.startswith(("bert.encoder.layer.0.", "bert.embeddings.")) for name in changed)
    assert {"bert.pooler.dense.weight", "classifier.weight"} <= changed


@pytest.mark.parametrize("stage, data", [("sft", "alpaca_file"), ("pretrain", "text_folder"), ("dpo", "pairs_file")])
def test_stages_that_write_refuse_an_encoder_by_name(make_config, run_config, tiny_bert_model, request, stage, data):
    path = make_config(tiny_bert_model, request.getfixturevalue(data), stage=stage, method="lora")
    with pytest.raises(InkwellError, match="encoder-only model .BERT family.: it labels texts") as info:
        run_config(path)
    assert info.value.field == "model" and "stage: classify" in info.value.hint


def test_writing_with_an_encoder_says_what_it_is_for(tiny_bert_model, capsys):
    from inkwell.cli import main

    with pytest.raises(SystemExit) as info:
        main(["generate", "--model", str(tiny_bert_model), "hello"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "encoder-only model (BERT family)" in err and "inkwell classify" in err
    assert "Traceback" not in err


def test_the_embedded_encoder_is_a_registry_name(labelled_file):
    """`model: all-minilm-l6-v2` names the encoder shipped for semantic similarity: the same folder, no download."""
    from inkwell.models.catalog import list_models
    from inkwell.models.embedder import model_dir
    from inkwell.models.load import architecture_of, resolve

    folder, card = resolve("all-minilm-l6-v2")
    assert folder == model_dir() and card["chat"] is False and card["context_length"] == 512
    assert architecture_of(folder) == "encoder"
    [item] = [item for item in list_models() if item["name"] == "all-minilm-l6-v2"]
    assert item["kind"] == "encoder" and item["prepared"] and not item["default"]


def test_a_bert_vocabulary_needs_no_end_of_text_token(tiny_bert_model):
    from inkwell.generate.classify import classifier_tokenizer

    tokenizer = classifier_tokenizer(tiny_bert_model)
    assert tokenizer.eos_token_id is None and tokenizer.pad_token == "[PAD]"


def test_a_validation_file_is_checked_against_the_training_labels(
    make_config, run_config, tiny_bert_model, labelled_file, tmp_path
):
    val = write_jsonl(tmp_path / "data" / "val.jsonl", [{"text": "x", "label": "fr"}, {"text": "y", "label": "en"}])
    path = make_config(
        tiny_bert_model, labelled_file, stage="classify", data={"val": [str(val)]}, training={"max_steps": 1}
    )
    run = run_config(path)
    assert run.card["data"]["skipped"] == [
        f"{val}:1: field 'label': 'fr' is not a label of the training rows (en, json, zh)"
    ]
