"""Reading eval inputs: --system specs and eval rows."""

from __future__ import annotations

import json

import pytest

from inkwell.errors import InkwellError
from inkwell.evaluate.data import parse_system, read_eval_rows


def test_system_specs(tmp_path):
    adapter = tmp_path / "runs" / "lora"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    shots = tmp_path / "shots.jsonl"
    shots.write_text('{"prompt": "a", "output": "b"}\n')
    spec = parse_system(f"tuned=smollm2-135m-instruct:{adapter}@{shots}")
    assert (spec.name, spec.model, spec.adapter, spec.shots) == (
        "tuned",
        "smollm2-135m-instruct",
        str(adapter),
        str(shots),
    )
    assert parse_system("base=smollm2-135m-instruct").adapter is None
    assert parse_system(f"d=@{shots}").model is None  # the default model with shots
    odd = tmp_path / "model:v2"  # a ':' inside a path is not an adapter separator
    odd.mkdir()
    assert parse_system(f"m={odd}").model == str(odd)
    with pytest.raises(InkwellError, match="system 'x': adapter folder not found"):
        parse_system("x=smollm2-135m-instruct:runs/missing")
    with pytest.raises(InkwellError, match="system 'y': model path not found"):
        parse_system("y=./no/such/model")
    with pytest.raises(InkwellError, match="shots file not found"):
        parse_system("z=smollm2-135m-instruct@nope.jsonl")
    with pytest.raises(InkwellError, match="NAME=MODEL"):
        parse_system("smollm2-135m-instruct")
    with pytest.raises(InkwellError, match="invalid system name"):
        parse_system("a/b=smollm2-135m-instruct")


def test_eval_rows(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": 7, "product": "mug", "extra": 1, "gold": "A mug.", "keywords": "mug, cup"},
                {"fields": {"product": "cup"}, "gold": {"label": "x"}},
            ]
        )
        + "\n"
    )
    rows = read_eval_rows(data, ref_field="gold", template_fields=["product", "tone"])
    assert rows[0].id == "7" and rows[0].fields == {"product": "mug"} and rows[0].keywords == ["mug", "cup"]
    assert rows[1].id == "2" and rows[1].fields == {"product": "cup"} and rows[1].reference == '{"label": "x"}'
    with pytest.raises(InkwellError, match="duplicate id"):
        data.write_text('{"id": 1, "prompt": "a", "reference": "b"}\n{"id": 1, "prompt": "c", "reference": "d"}\n')
        read_eval_rows(data)
