"""The chunked cross-entropy (losses.py) equals the model's own loss and gradients; TensorBoard events."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import write_jsonl

from inkwell.train.losses import CausalLMLoss, build_loss, chunk_size, chunked_causal_lm_loss

SGD = {"optimizer": "sgd", "lr": 1.0, "max_grad_norm": 0, "schedule": "constant", "max_steps": 1}


def _full_logits_loss(hidden, labels, weight, bias, softcap, num_items):
    logits = F.linear(hidden, weight, bias)
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    targets = F.pad(labels[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum") / num_items


@pytest.mark.parametrize("softcap", [None, 4.0])
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_loss_and_gradients_equal_the_full_logits(softcap, bias):
    torch.manual_seed(0)
    hidden = torch.randn(3, 11, 16, requires_grad=True)
    weight = torch.randn(97, 16, requires_grad=True)
    b = torch.randn(97, requires_grad=True) if bias else None
    labels = torch.randint(0, 97, (3, 11))
    labels[0, :4] = -100  # a masked prompt
    labels[2, -3:] = -100  # padding
    params = [hidden, weight] + ([b] if bias else [])
    full = _full_logits_loss(hidden, labels, weight, b, softcap, 7.0)
    expected = torch.autograd.grad(full, params)
    chunked = chunked_causal_lm_loss(hidden, labels, weight, b, softcap=softcap, chunk=4, num_items=torch.tensor(7.0))
    got = torch.autograd.grad(chunked, params)
    assert float(chunked.detach()) == pytest.approx(float(full.detach()), rel=1e-5)
    for g_full, g_chunk in zip(expected, got):
        assert torch.allclose(g_full, g_chunk, atol=1e-5, rtol=1e-4)


def test_no_labels_means_zero_loss_not_nan():
    hidden = torch.randn(1, 4, 8, requires_grad=True)
    loss = chunked_causal_lm_loss(hidden, torch.full((1, 4), -100), torch.randn(50, 8), chunk=2)
    loss.backward()
    assert float(loss) == 0.0 and torch.equal(hidden.grad, torch.zeros_like(hidden))


def test_auto_chunks_only_large_vocabularies():
    assert chunk_size("auto", 49_152) == 0  # SmolLM2: the model's own loss
    assert chunk_size("auto", 262_144) == 128  # Gemma-3: 128 x 262k = 32M logits per chunk
    assert chunk_size(0, 262_144) == 0 and chunk_size(64, 1000) == 64


def _batches(vocab: int):
    torch.manual_seed(1)
    ids = torch.randint(3, vocab, (2, 9))
    labels = ids.clone()
    labels[0, :3] = -100
    padded = {"input_ids": ids, "labels": labels, "attention_mask": torch.tensor([[1] * 9, [1] * 6 + [0] * 3])}
    padded["labels"][1, 6:] = -100
    packed = {"input_ids": ids, "labels": labels, "position_ids": torch.tensor([list(range(4)) + list(range(5))] * 2)}
    return [padded, packed]


def _loss_and_grads(model, loss_of, batch):
    model.zero_grad(set_to_none=True)
    loss = loss_of(model, batch, torch.tensor(11.0))
    loss.backward()
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_chunked_equals_the_models_own_loss_on_a_real_architecture(tiny_chat_model, method):
    """Tied embeddings (the tiny llama), full fine-tuning (the head's weight trains) and a PEFT wrapper."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model, dtype=torch.float32)
    if method == "lora":
        import peft

        model = peft.get_peft_model(
            model, peft.LoraConfig(task_type="CAUSAL_LM", r=4, target_modules="all-linear", lora_dropout=0.0)
        )
        for name, param in model.named_parameters():  # B = 0 at init would hide a wrong gradient
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.1)
    model.train()
    chunked = build_loss(model, 5, say=lambda _m: None)
    assert chunked.chunk == 5 and chunked.head is model.get_output_embeddings()
    for batch in _batches(model.config.vocab_size):
        own_loss, own_grads = _loss_and_grads(model, CausalLMLoss(), batch)
        our_loss, our_grads = _loss_and_grads(model, chunked, batch)
        assert our_loss == pytest.approx(own_loss, rel=1e-5)
        assert own_grads.keys() == our_grads.keys()
        for name, grad in own_grads.items():
            assert torch.allclose(grad, our_grads[name], atol=1e-5, rtol=1e-4), name


def test_gemma3_softcapping_is_applied():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        final_logit_softcapping=2.0,
        sliding_window=8,
    )
    model = Gemma3ForCausalLM(config)
    chunked = build_loss(model, 7, say=lambda _m: None)
    assert chunked.chunk == 7 and chunked.softcap == 2.0  # the self-check passed with the softcap
    for batch in _batches(300):
        own_loss, own_grads = _loss_and_grads(model, CausalLMLoss(), batch)
        our_loss, our_grads = _loss_and_grads(model, chunked, batch)
        assert our_loss == pytest.approx(own_loss, rel=1e-5)
        for name, grad in own_grads.items():
            assert torch.allclose(grad, our_grads[name], atol=1e-5, rtol=1e-4), name


def test_a_model_whose_logits_are_more_than_the_head_keeps_its_own_loss(tiny_chat_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model, dtype=torch.float32)
    original = model.lm_head.forward
    model.lm_head.forward = lambda x: original(x) * 0.5  # e.g. a logit scale the chunked path does not know
    notes: list[str] = []
    assert build_loss(model, 8, say=notes.append).chunk == 0
    assert "using the model's own loss" in notes[0]


def test_training_with_chunks_takes_the_same_steps(make_config, run_config, tiny_chat_model, tmp_path, read_losses):
    """Same updates and logged losses, with packing, NEFTune and FGM (hooks on the embeddings) on."""
    rows = write_jsonl(
        tmp_path / "data" / "rows.jsonl",
        [
            {"instruction": "Hi.", "output": "Yes."},
            {
                "instruction": "Describe a linen apron for cooks.",
                "output": "Soft stonewashed linen with two deep pockets.",
            },
            {"instruction": "Describe a tea pot.", "output": "Pours well, keeps tea hot."},
        ],
    )
    training = {
        **SGD,
        "max_steps": 2,
        "lr": 0.5,
        "batch_size": 2,
        "packing": True,
        "neftune_alpha": 5.0,
        "adversarial": "fgm",
    }
    own = run_config(
        make_config(tiny_chat_model, rows, method="full", name="own", training={**training, "loss_chunk_tokens": 0})
    )
    ours = run_config(
        make_config(tiny_chat_model, rows, method="full", name="ours", training={**training, "loss_chunk_tokens": 3})
    )
    assert read_losses(ours.out) == pytest.approx(read_losses(own.out), rel=1e-5)
    for name, param in own.model.named_parameters():
        assert torch.allclose(param, dict(ours.model.named_parameters())[name], atol=1e-5), name


def test_negative_chunk_is_a_config_error(make_config, tiny_chat_model, alpaca_file):
    from inkwell.errors import InkwellError
    from inkwell.train.config import load_config

    with pytest.raises(InkwellError, match="training.loss_chunk_tokens"):
        load_config(make_config(tiny_chat_model, alpaca_file), ["training.loss_chunk_tokens=-1"])


def test_tensorboard_events_hold_the_logged_scalars(make_config, run_config, tiny_chat_model, alpaca_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = run_config(
        make_config(
            tiny_chat_model,
            alpaca_file,
            data={"val_split": 0.34},
            training={"max_steps": 3, "eval_every": 2, "eval_on_start": True},
        )
    )
    board = run.out / "tensorboard"
    assert list(board.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(board))
    events.Reload()
    assert {"train/loss", "train/lr", "train/tokens_per_s", "val/loss"} <= set(events.Tags()["scalars"])
    records = [json.loads(line) for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["loss"]) for r in records if "loss" in r]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (s, pytest.approx(v, rel=1e-6)) for s, v in logged
    ]
    assert [e.step for e in events.Scalars("val/loss")] == [0, 2, 3]  # eval_on_start adds step 0


def test_tensorboard_can_be_switched_off(make_config, run_config, tiny_chat_model, alpaca_file):
    run = run_config(make_config(tiny_chat_model, alpaca_file, training={"max_steps": 1, "tensorboard": False}))
    assert not (run.out / "tensorboard").exists() and (run.out / "metrics.jsonl").exists()
