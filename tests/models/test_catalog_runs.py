"""`inkwell models list` shows training runs recorded by `inkwell train` (via the run card writer)."""

import json

from inkwell.cli import main
from inkwell.train.outputs import write_run_card


def test_run_card_is_recorded_and_listed(tmp_path, capsys):
    run = tmp_path / "runs" / "lora-demo"
    run.mkdir(parents=True)
    (run / "adapter_config.json").write_text("{}")
    write_run_card(run, stage="sft", method="lora", base_model="smollm2-135m-instruct", metrics={"val_loss": 1.5})

    gone = tmp_path / "runs" / "deleted"
    gone.mkdir()
    write_run_card(gone, stage="pretrain", method="full", base_model="x", metrics={})
    (gone / "inkwell-run.json").unlink()  # a run whose folder was removed is not listed

    main(["models", "list", "--json"])
    items = json.loads(capsys.readouterr().out)
    runs = [item for item in items if item.get("source") == "run"]
    assert [r["path"] for r in runs] == [str(run.resolve())]
    assert runs[0]["kind"] == "adapter" and runs[0]["method"] == "lora"
    assert runs[0]["base_model"] == "smollm2-135m-instruct" and runs[0]["metrics"] == {"val_loss": 1.5}
    assert runs[0]["use"] == f"--adapter {run.resolve()}"


def test_rerun_into_the_same_folder_replaces_the_entry(tmp_path):
    from inkwell.store import Store

    run = tmp_path / "run"
    run.mkdir()
    write_run_card(run, stage="sft", method="lora", base_model="a", metrics={})
    write_run_card(run, stage="sft", method="full", base_model="a", metrics={})
    runs = Store().runs()
    assert len(runs) == 1 and runs[0]["method"] == "full"
