"""Training configs: every shipped config validates without loading a model; bad keys and values fail
with a message that names the key (and the file:line or the command line) and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from inkwell.errors import InkwellError
from inkwell.train.config import STAGES, SFTConfig, load_config

REPO = Path(__file__).resolve().parents[2]
# training recipes; configs/accelerate-*.yaml are launcher configs (tests/train/test_distributed.py checks them)
SHIPPED = sorted(p for p in (REPO / "configs").glob("*.yaml") if not p.name.startswith("accelerate-"))


def test_the_demo_configs_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {
        "smollm2-lora-sft.yaml",
        "smollm2-full-sft.yaml",
        "smollm2-prefix-sft.yaml",
        "tiny-gpt-pretrain.yaml",
        "gemma3-lora-zh-poetry.yaml",
        "smollm2-dpo.yaml",
        "smollm2-classify.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_validates_and_starts_with_its_command(path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(Path("configs") / path.name)
    assert config.stage in STAGES
    assert path.read_text().splitlines()[0] == f"# inkwell train configs/{path.name}"


def test_validation_loads_no_model_stack():
    import subprocess
    import sys

    code = (
        "import sys; from inkwell.train.config import load_config; "
        "[load_config(p) for p in sys.argv[1:]]; "
        "assert not {'torch', 'transformers', 'peft'} & set(sys.modules), 'heavy import during validation'"
    )
    done = subprocess.run([sys.executable, "-c", code, *map(str, SHIPPED)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_shipped_demo_data_exists_where_configs_point(monkeypatch):
    from inkwell.train import check_data

    monkeypatch.chdir(REPO)
    for path in SHIPPED:
        config = load_config(Path("configs") / path.name)
        if "song100" in str(config.data.train):
            continue  # made by `inkwell data sample song100` (see the config's header)
        report = check_data(config, on_error="error")  # each stage's own reader; any bad row raises
        assert sum(f["kept"] for f in report.files) >= 6, path.name


@pytest.mark.parametrize(
    "name, sample", [("fortune-topics", "fortune-topics"), ("fortune-preferences", "fortune-preferences")]
)
def test_shipped_fortune_data_is_what_its_command_makes(name, sample, tmp_path):
    """configs/data/NAME.jsonl are real quotes from Debian's fortunes, remade exactly by the command in the
    config header (skipped where the package is not installed)."""
    from inkwell.data.sample import find_files, write_sample

    try:
        find_files(sample)
    except InkwellError:
        pytest.skip("Debian package fortunes is not installed")
    write_sample(sample, tmp_path / "made.jsonl", progress=False)
    assert (tmp_path / "made.jsonl").read_text() == (REPO / "configs" / "data" / f"{name}.jsonl").read_text()


def _error(tmp_path, text: str, overrides=()) -> InkwellError:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InkwellError) as info:
        load_config(path, list(overrides))
    return info.value


BASE = "stage: sft\nmodel: tiny\ndata:\n  train: a.jsonl\nmethod: lora\ntraining:\n  lr: 1e-4\n"


def test_bad_method_names_the_key_and_the_choices(tmp_path):
    error = _error(tmp_path, BASE.replace("method: lora", "method: lorra"))
    assert "c.yaml:5: method: must be one of full, freeze, lora, adalora, ia3, prefix, prompt (got 'lorra')" in str(
        error
    )
    assert error.field == "method"


def test_unknown_key_suggests_the_close_one(tmp_path):
    error = _error(tmp_path, BASE.replace("lr: 1e-4", "lrr: 1e-4"))
    assert "c.yaml:7: training.lrr: unknown key; did you mean 'lr'?" in str(error)


def test_override_errors_say_they_came_from_the_command_line(tmp_path):
    error = _error(tmp_path, BASE, ["training.schedule=exp"])
    assert "(command line): training.schedule: must be one of linear, cosine, constant (got 'exp')" in str(error)
    error = _error(tmp_path, BASE, ["training.batch_size=0"])
    assert "training.batch_size: must be greater than or equal to 1" in str(error)


def test_overrides_are_typed_like_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    config = load_config(
        path,
        [
            "training.lr=3e-5",
            "lora.r=16",
            "lora.target_modules=[q_proj, v_proj]",
            "data.train=b.jsonl",
            "training.packing=true",
            "training.max_grad_norm=0",
        ],
    )
    assert isinstance(config, SFTConfig)
    assert config.training.lr == 3e-5 and config.lora.r == 16
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert config.data.train == ["b.jsonl"]
    assert config.training.packing is True and config.training.max_grad_norm is None
    assert config._command.endswith(
        "lora.r=16 lora.target_modules=[q_proj, v_proj] data.train=b.jsonl training.packing=true training.max_grad_norm=0"
    )


@pytest.mark.parametrize(
    "overrides, key, words",
    [
        (["training.warmup_steps=2", "training.warmup_ratio=0.1"], "training.warmup_steps", "not both"),
        (["data.val=v.jsonl", "data.val_split=0.1"], "data.val_split", "not both"),
        (
            ["training.early_stopping_patience=2", "training.eval_every=5"],
            "training.early_stopping_patience",
            "needs validation data",
        ),
        (["method=prefix", "training.packing=true"], "training.packing", "virtual tokens"),
        (["model.from_scratch.layers=2", "model.name=null"], "model.from_scratch", "stage: pretrain"),
        (["training.momentum=0.9"], "training.momentum", "sgd"),
        (["stage=pretrain", "method=prefix"], "method", "must be one of full, freeze, lora"),
        (["stage=dpo", "training.adversarial=pgd"], "training.adversarial", "not available in the dpo stage"),
        (["stage=classify", "method=ia3"], "method", "must be one of full, freeze, lora"),
        (["stage=classifier"], "stage", "must be one of pretrain, sft"),
        (["adalora.target_r=20", "method=adalora"], "adalora.target_r", "<= adalora.init_r"),
    ],
)
def test_rules_that_tie_keys_together(tmp_path, overrides, key, words):
    error = _error(tmp_path, BASE, overrides)
    assert f"{key}: " in str(error) and words in str(error), str(error)


def test_broken_yaml_points_at_the_line(tmp_path):
    error = _error(tmp_path, "stage: sft\nmodel: [unclosed\n")
    assert "c.yaml:" in str(error) and "not valid YAML" in str(error)


def test_override_needs_key_value(tmp_path):
    error = _error(tmp_path, BASE, ["lora.r"])
    assert "must look like key=value" in str(error)


def test_cli_prints_config_errors_without_traceback(tmp_path, capsys):
    from inkwell.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    with pytest.raises(SystemExit) as info:
        main(["train", str(path), "method=lorra"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid training config") and "method: must be one of full, freeze" in err
    assert "Traceback" not in err
