"""The bf16 paths, forced on (the `cpu_bf16` fixture, or `bf16: true`) so that every machine runs them, not
only CPUs with AVX512-BF16/AMX. The fp32 identities of the other training tests hold here within bf16's
rounding (8 bits of mantissa: relative steps of ~4e-3)."""

from __future__ import annotations

import json

import pytest
import torch

SGD = {"optimizer": "sgd", "lr": 1.0, "max_steps": 1, "weight_decay": 0.0, "max_grad_norm": 0.0}


def _update(run, base_folder):
    from transformers import AutoModelForCausalLM

    base = dict(AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32).named_parameters())
    return torch.cat([(p.detach().float() - base[n].detach()).flatten() for n, p in run.model.named_parameters()])


@pytest.fixture
def two_rows(tmp_path):
    from conftest import write_jsonl

    return write_jsonl(
        tmp_path / "data" / "two.jsonl",
        [
            {"instruction": "Describe a bamboo bottle.", "output": "A light bottle."},
            {
                "instruction": "Describe a linen apron for cooks.",
                "output": "Soft stonewashed linen with two deep pockets.",
            },
        ],
    )


def test_bf16_auto_turns_autocast_on_on_a_bf16_cpu_and_the_card_says_so(
    cpu_bf16, make_config, run_config, tiny_chat_model, alpaca_file
):
    run = run_config(make_config(tiny_chat_model, alpaca_file, training={"bf16": "auto"}))
    assert run.card["precision"] == "bf16"
    assert next(run.model.parameters()).dtype == torch.float32  # master weights stay fp32 under autocast
    losses = [json.loads(line)["loss"] for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(loss == loss and loss > 0 for loss in losses)  # finite, positive


def test_bf16_auto_stays_fp32_where_the_cpu_has_no_fast_bf16(
    monkeypatch, make_config, run_config, tiny_chat_model, alpaca_file
):
    monkeypatch.setenv("INKWELL_CPU_BF16", "off")
    run = run_config(make_config(tiny_chat_model, alpaca_file, training={"bf16": "auto"}))
    assert run.card["precision"] == "fp32"


def test_bf16_grad_accumulation_matches_the_bigger_batch_within_bf16_rounding(
    make_config, run_config, tiny_chat_model, two_rows
):
    bf16 = {**SGD, "bf16": "true"}
    big = run_config(
        make_config(tiny_chat_model, two_rows, method="full", name="big", training={**bf16, "batch_size": 2})
    )
    accum = run_config(
        make_config(
            tiny_chat_model, two_rows, method="full", name="accum", training={**bf16, "batch_size": 1, "grad_accum": 2}
        )
    )
    fp32 = run_config(
        make_config(tiny_chat_model, two_rows, method="full", name="fp32", training={**SGD, "batch_size": 2})
    )
    a, b, exact = (_update(run, tiny_chat_model) for run in (big, accum, fp32))
    assert big.card["precision"] == "bf16" and fp32.card["precision"] == "fp32"
    scale = exact.abs().max()
    assert scale > 1e-4  # a real step was taken
    # the same step as fp32 up to bf16 rounding, and not bit-identical to it (autocast really ran)
    assert (a - exact).abs().max() < 0.05 * scale and (b - exact).abs().max() < 0.05 * scale
    assert not torch.equal(a, exact)
    assert big.card["metrics"]["train_loss"] == pytest.approx(fp32.card["metrics"]["train_loss"], rel=2e-2)
    assert accum.card["metrics"]["train_loss"] == pytest.approx(fp32.card["metrics"]["train_loss"], rel=2e-2)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_bf16_dpo_trains_and_stays_near_the_fp32_run(method, make_config, run_config, tiny_chat_model, pairs_file):
    bf16 = run_config(
        make_config(tiny_chat_model, pairs_file, stage="dpo", method=method, name="bf16", training={"bf16": "true"})
    )
    fp32 = run_config(make_config(tiny_chat_model, pairs_file, stage="dpo", method=method, name="fp32"))
    assert bf16.card["precision"] == "bf16" and fp32.card["precision"] == "fp32"
    assert bf16.metrics["steps"] == fp32.metrics["steps"] == 3
    assert bf16.metrics["train_loss"] == pytest.approx(fp32.metrics["train_loss"], rel=5e-2)


def test_bf16_lora_dpo_reference_is_the_base_with_the_adapter_off(make_config, run_config, tiny_chat_model, pairs_file):
    from transformers import AutoModelForCausalLM

    run = run_config(make_config(tiny_chat_model, pairs_file, stage="dpo", method="lora", training={"bf16": "true"}))
    base = AutoModelForCausalLM.from_pretrained(tiny_chat_model, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 42, 99]])
    with torch.no_grad(), run.model.disable_adapter():
        off = run.model(input_ids=ids).logits.float()
    with torch.no_grad():
        reference = base(input_ids=ids).logits
        assert torch.allclose(off, reference, atol=0.05 * reference.abs().max())
        assert not torch.allclose(run.model(input_ids=ids).logits.float(), off)
