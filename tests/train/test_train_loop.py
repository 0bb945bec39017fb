"""The shared training loop: accumulation, clipping, schedules, FGM/PGD, NEFTune, early stopping,
checkpoints and exact resume. Runs use SGD with lr 1 where a test reads the gradient from the update."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_jsonl

SGD = {"optimizer": "sgd", "lr": 1.0, "max_grad_norm": 0, "schedule": "constant", "max_steps": 1}


def _update(run, base_folder) -> dict[str, torch.Tensor]:
    """Trained minus initial weights, per parameter (full fine-tuning)."""
    from transformers import AutoModelForCausalLM

    base = dict(AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32).named_parameters())
    return {n: (p.detach() - base[n].detach()) for n, p in run.model.named_parameters()}


def _flat(update: dict) -> torch.Tensor:
    return torch.cat([v.flatten() for v in update.values()])


@pytest.fixture
def two_rows(tmp_path):
    """Two examples of clearly different lengths: a per-micro-batch mean would weight them differently."""
    return write_jsonl(
        tmp_path / "data" / "two.jsonl",
        [
            {"instruction": "Hi.", "output": "Yes."},
            {
                "instruction": "Describe a linen apron for cooks.",
                "output": "Soft stonewashed linen with two deep pockets and long ties.",
            },
        ],
    )


def test_grad_accumulation_equals_the_bigger_batch(make_config, run_config, tiny_chat_model, two_rows):
    big = run_config(
        make_config(tiny_chat_model, two_rows, method="full", name="big", training={**SGD, "batch_size": 2})
    )
    accum = run_config(
        make_config(
            tiny_chat_model, two_rows, method="full", name="accum", training={**SGD, "batch_size": 1, "grad_accum": 2}
        )
    )
    a, b = _flat(_update(big, tiny_chat_model)), _flat(_update(accum, tiny_chat_model))
    assert a.abs().max() > 1e-4  # a real step was taken
    assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    assert big.card["metrics"]["train_loss"] == pytest.approx(accum.card["metrics"]["train_loss"], rel=1e-5)


def test_clipping_bounds_the_update(make_config, run_config, tiny_chat_model, two_rows):
    run = run_config(make_config(tiny_chat_model, two_rows, method="full", training={**SGD, "max_grad_norm": 0.01}))
    norm = float(_flat(_update(run, tiny_chat_model)).norm())
    logged = json.loads((run.out / "metrics.jsonl").read_text().splitlines()[0])["grad_norm"]
    assert logged > 0.05  # the norm before clipping is what is logged ...
    assert norm == pytest.approx(0.01, rel=1e-3)  # ... and the step (lr 1) has exactly the clipped norm


def test_fgm_adds_the_gradient_at_perturbed_embeddings(make_config, run_config, tiny_chat_model, two_rows):
    def step(name, **training):
        run = run_config(make_config(tiny_chat_model, two_rows, method="full", name=name, training={**SGD, **training}))
        return _flat(_update(run, tiny_chat_model))

    clean = step("clean")
    tiny = step("fgm-tiny", adversarial="fgm", adversarial_epsilon=1e-6)
    strong = step("fgm", adversarial="fgm", adversarial_epsilon=2.0)
    pgd = step("pgd", adversarial="pgd", adversarial_epsilon=2.0, adversarial_alpha=1.0, adversarial_steps=3)
    assert torch.allclose(tiny, 2 * clean, atol=1e-6, rtol=1e-4)  # epsilon -> 0: clean + clean gradient
    assert not torch.allclose(strong, 2 * clean, atol=1e-4, rtol=1e-2)  # a real attack changes the gradient
    assert not torch.allclose(pgd, strong, atol=1e-4, rtol=1e-2)


def test_fgm_works_with_frozen_embeddings(make_config, run_config, tiny_chat_model, two_rows):
    plain = run_config(make_config(tiny_chat_model, two_rows, name="plain", training={"max_steps": 2}))
    attacked = run_config(
        make_config(tiny_chat_model, two_rows, name="attacked", training={"max_steps": 2, "adversarial": "fgm"})
    )
    lora = lambda run: torch.cat([p.flatten() for n, p in run.model.named_parameters() if "lora_" in n])  # noqa: E731
    assert not torch.allclose(lora(plain), lora(attacked))


def test_neftune_noises_embeddings_only_in_training_mode(tiny_chat_model):
    from transformers import AutoModelForCausalLM

    from inkwell.train.loop import activate_neftune

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model, dtype=torch.float32)
    embeddings = model.get_input_embeddings()
    ids = torch.tensor([[5, 6, 7, 8]])
    clean = embeddings(ids)
    handle = activate_neftune(embeddings, alpha=5.0)
    model.train()
    noisy = embeddings(ids)
    assert not torch.allclose(noisy, clean)
    bound = 5.0 / (ids.shape[1] * clean.shape[-1]) ** 0.5  # NEFTune: uniform in +-alpha/sqrt(L*d)
    assert (noisy - clean).abs().max() <= bound + 1e-6
    model.eval()
    assert torch.equal(embeddings(ids), clean)
    model.train()
    handle.remove()
    assert torch.equal(embeddings(ids), clean)


def test_neftune_changes_the_training_loss(make_config, run_config, tiny_chat_model, two_rows, read_losses):
    plain = run_config(make_config(tiny_chat_model, two_rows, name="plain"))
    noisy = run_config(make_config(tiny_chat_model, two_rows, name="noisy", training={"neftune_alpha": 50.0}))
    assert read_losses(plain.out)[0] != read_losses(noisy.out)[0]


def test_warmup_then_schedule(make_config, run_config, tiny_chat_model, two_rows):
    run = run_config(
        make_config(
            tiny_chat_model, two_rows, training={"max_steps": 5, "lr": 0.1, "warmup_steps": 2, "schedule": "linear"}
        )
    )
    lrs = [json.loads(line)["lr"] for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([0.0, 0.05, 0.1, 0.1 * 2 / 3, 0.1 / 3])


def test_validation_and_early_stopping(make_config, run_config, tiny_chat_model, alpaca_file):
    # lr so small the validation loss cannot improve: patience 2 stops at the third validation
    run = run_config(
        make_config(
            tiny_chat_model,
            alpaca_file,
            data={"val_split": 0.34},
            training={"max_steps": 20, "lr": 1e-12, "eval_every": 1, "early_stopping_patience": 2, "batch_size": 1},
        )
    )
    records = [json.loads(line) for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    assert run.metrics["stopped"] == "early_stopping" and run.metrics["steps"] == 3
    assert [r["step"] for r in records] == [1, 2, 3] and all("val_loss" in r for r in records)
    assert run.metrics["best_step"] == 1 and run.card["data"]["examples"] == {"train": 4, "val": 2}
    assert (run.out / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_after_a_crash_continues_the_same_loss_curve(
    make_config, run_config, tiny_chat_model, alpaca_file, read_losses
):
    training = {
        "max_steps": 6,
        "save_every": 2,
        "keep_last": 2,
        "dropout": 0.1,
        "neftune_alpha": 5.0,
        "batch_size": 2,
        "schedule": "cosine",
        "warmup_steps": 1,
        "lr": 0.05,
    }
    whole = run_config(make_config(tiny_chat_model, alpaca_file, name="whole", training=training))

    def crash_at_step_3(state, record):
        if state.step == 3:
            raise KeyboardInterrupt  # a kill after step 3 was logged, before its checkpoint

    path = make_config(tiny_chat_model, alpaca_file, name="crashed", training=training)
    with pytest.raises(KeyboardInterrupt):
        run_config(path, callbacks=[crash_at_step_3])
    out = whole.out.parent / "crashed"
    assert read_losses(out) == read_losses(whole.out)[:3]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]

    resumed = run_config(path)  # resume: auto picks up step-00000002
    assert read_losses(resumed.out) == read_losses(whole.out)  # steps 3..6 replayed identically (RNG, data, optimizer)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000004", "step-00000006"]
    for name, param in whole.model.named_parameters():
        assert torch.equal(param, dict(resumed.model.named_parameters())[name]), name


def test_resume_never_starts_again(make_config, run_config, tiny_chat_model, two_rows, read_losses):
    path = make_config(tiny_chat_model, two_rows, training={"max_steps": 2, "save_every": 1})
    first = read_losses(run_config(path).out)
    again = run_config(path, "training.resume=never", "training.max_steps=3")  # from step 0, same folder
    assert read_losses(again.out)[:2] == first and again.metrics["steps"] == 3
    assert sorted(p.name for p in (again.out / "checkpoints").iterdir()) == ["step-00000002", "step-00000003"]
    more = run_config(path, "training.max_steps=4")  # auto: continue the finished run for one more step
    assert len(read_losses(more.out)) == 4


def test_resume_from_a_missing_folder_is_a_clear_error(make_config, run_config, tiny_chat_model, two_rows, tmp_path):
    from inkwell.errors import InkwellError

    path = make_config(tiny_chat_model, two_rows)
    with pytest.raises(InkwellError, match="training.resume: .* is not a checkpoint folder"):
        run_config(path, f"training.resume={tmp_path / 'nowhere'}")
