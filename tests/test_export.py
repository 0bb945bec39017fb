"""`inkwell export` on the tiny models: merged folders load with `load_model` (what `inkwell write --model DIR`
does) and match the adapter; GGUF files read back with gguf's reader and, independently, with transformers'
GGUF loader (which undoes llama.cpp's q/k permutation) with the merged model's logits; every refusal is an
InkwellError that names the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inkwell.errors import InkwellError
from inkwell.models.export import export_model

# PEFT reads a transformers property deprecated in v5 when loading adapters: not ours to fix here.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

IDS = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 120]])
ROWS = [
    {"instruction": f"Describe item {i}.", "output": f"A fine item, number {i}, light and strong."} for i in range(6)
]
LABELLED = [
    {"text": "床前明月光，疑是地上霜。", "label": "zh"},
    {"text": "举头望明月，低头思故乡。", "label": "zh"},
    {"text": "The quick brown fox jumps.", "label": "en"},
    {"text": "Poems, stories and headlines.", "label": "en"},
]


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (tests/conftest.py says why)."""


def logits(model, ids=IDS):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits.float()


def _root_conftest():
    """tests/conftest.py by path: `from conftest import` can find tests/train/conftest.py instead."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tests_root_conftest", Path(__file__).parent / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hf(folder, **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)


def train_run(tmp: Path, name: str, model, data: dict, stage: str = "sft", method: str = "lora", **training) -> Path:
    """Two real `inkwell train` steps; returns the run folder."""
    import yaml

    from inkwell.train import train

    config = {
        "stage": stage,
        "model": model,
        "output": str(tmp / name),
        "data": data,
        "method": method,
        "training": {
            "max_steps": 2,
            "batch_size": 2,
            "lr": 1e-2,
            "progress": False,
            "max_length": 64,
            "schedule": "constant",
            **training,
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(f"# inkwell train {path}\n" + yaml.safe_dump(config, allow_unicode=True))
    return train(path, [], say=lambda _message: None).out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_chat_model):
    """Real run folders, trained once for the module (their history goes to a throw-away INKWELL_HOME)."""
    tmp = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INKWELL_HOME", str(tmp / "home"))
        rows = tmp / "alpaca.jsonl"
        rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        labelled = tmp / "labelled.jsonl"
        labelled.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in LABELLED))
        (tmp / "corpus").mkdir()
        (tmp / "corpus" / "a.txt").write_text(" ".join(r["output"] for r in ROWS) * 8)
        scratch = {
            "from_scratch": {
                "layers": 1,
                "hidden": 32,
                "heads": 2,
                "context": 64,
                "tokenizer_from": str(tiny_chat_model),
            }
        }
        return {
            "lora": train_run(tmp, "lora", str(tiny_chat_model), {"train": [str(rows)]}),
            "full": train_run(tmp, "full", str(tiny_chat_model), {"train": [str(rows)]}, method="full", lr=1e-3),
            "classify": train_run(tmp, "classify", str(tiny_chat_model), {"train": [str(labelled)]}, stage="classify"),
            "scratch": train_run(
                tmp,
                "scratch",
                scratch,
                {"train": [str(tmp / "corpus")]},
                stage="pretrain",
                method="full",
                max_length=32,
            ),
        }


def peft_adapter(base: Path, out: Path, peft_config, method: str) -> Path:
    """A PEFT adapter folder with random (trained-looking) weights and a minimal run card, in a second."""
    from peft import get_peft_model

    torch.manual_seed(1)
    model = get_peft_model(hf(base), peft_config)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(
                    torch.randn_like(param) * 0.05
                )  # LoRA B starts at zero, IA3 at one: make it change the output
    model.save_pretrained(out)
    (out / "inkwell-run.json").write_text(
        json.dumps(
            {
                "inkwell_run": 1,
                "stage": "sft",
                "method": method,
                "weights": "adapter",
                "base_model": str(base),
                "base_model_path": str(base),
                "chat": True,
            }
        )
    )
    return out


ADAPTERS = {
    "dora": lambda peft: peft.LoraConfig(
        task_type="CAUSAL_LM", r=4, use_dora=True, target_modules=["q_proj", "k_proj", "v_proj"]
    ),
    "adalora": lambda peft: peft.AdaLoraConfig(
        task_type="CAUSAL_LM", init_r=4, target_r=2, total_step=10, target_modules=["q_proj", "v_proj"]
    ),
    "ia3": lambda peft: peft.IA3Config(task_type="CAUSAL_LM"),
    "prefix": lambda peft: peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
    "prompt": lambda peft: peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_chat_model):
    import peft

    tmp = tmp_path_factory.mktemp("adapters")
    return {name: peft_adapter(tiny_chat_model, tmp / name, make(peft), name) for name, make in ADAPTERS.items()}


# ---------------------------------------------------------------- --merge


def test_merged_lora_loads_like_inkwell_write_and_matches_the_adapter(runs, tmp_path):
    from inkwell.generate.engine import Engine
    from inkwell.generate.settings import GenerationSettings
    from inkwell.models.load import load_model

    out = tmp_path / "exports" / "ads"
    result = export_model(runs["lora"], out, merge=True)
    assert result["merged"]["path"] == str(out) and result["gguf"] is None
    assert (
        (out / "model.safetensors").exists()
        and (out / "tokenizer.json").exists()
        and (out / "generation_config.json").exists()
    )
    assert not (out / "adapter_config.json").exists() and not (out / "metrics.jsonl").exists()
    assert [p.name for p in out.parent.iterdir()] == ["ads"]  # the staging folder was renamed, nothing left beside it

    card = json.loads((out / "inkwell-model.json").read_text())
    assert card["chat"] is True and card["exported_from"]["run"] == str(runs["lora"].resolve())
    assert card["exported_from"]["method"] == "lora" and card["exported_from"]["weights"] == "merged adapter"
    assert json.loads((out / "inkwell-run.json").read_text())["weights"] == "full"

    merged = load_model(str(out), dtype="fp32", device="cpu")  # inkwell write --model DIR
    adapter = load_model(adapter=str(runs["lora"]), dtype="fp32", device="cpu")  # inkwell write --adapter RUN
    assert merged.chat is True and merged.adapter is None
    assert torch.allclose(logits(merged.model), logits(adapter.model), atol=1e-5)
    assert not torch.allclose(
        logits(merged.model), logits(hf(card_base(runs["lora"]))), atol=1e-4
    )  # the adapter is in it
    settings = GenerationSettings(max_new_tokens=12, temperature=0)
    prompt = [[{"role": "user", "content": "Describe item 3."}]]
    assert Engine(merged).generate(prompt, settings)[0].text == Engine(adapter).generate(prompt, settings)[0].text


def card_base(run: Path) -> str:
    return json.loads((run / "inkwell-run.json").read_text())["base_model_path"]


@pytest.mark.parametrize("method", ["dora", "adalora", "ia3"])
def test_every_weight_changing_adapter_merges(method, adapters, tmp_path):
    from inkwell.models.load import load_model

    out = tmp_path / method
    export_model(adapters[method], out, merge=True)
    merged = load_model(str(out), dtype="fp32", device="cpu")
    adapter = load_model(adapter=str(adapters[method]), dtype="fp32", device="cpu")
    assert torch.allclose(logits(merged.model), logits(adapter.model), atol=1e-5)
    assert not torch.allclose(logits(merged.model), logits(hf(card_base(adapters[method]))), atol=1e-4)


def test_full_weight_run_is_copied_without_training_files(runs, tmp_path):
    from inkwell.models.load import load_model

    out = tmp_path / "full"
    export_model(runs["full"], out, merge=True)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "inkwell-model.json"} <= names
    assert not names & {"metrics.jsonl", "loss.png", "checkpoints", "tensorboard"}
    loaded = load_model(str(out), dtype="fp32", device="cpu")
    assert torch.allclose(logits(loaded.model), logits(hf(runs["full"])), atol=0)
    assert json.loads((out / "inkwell-model.json").read_text())["exported_from"]["weights"] == "full"


def test_merged_classifier_predicts_like_the_run(runs, tmp_path):
    from inkwell.generate.classify import Classifier

    out = tmp_path / "classifier"
    export_model(runs["classify"], out, merge=True)
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "en", "1": "zh"}
    texts = ["明月光", "The quick fox.", "headlines"]
    exported = Classifier.load(out, device="cpu").predict(texts)
    trained = Classifier.load(runs["classify"], device="cpu").predict(texts)
    for a, b in zip(exported, trained):
        assert a["label"] == b["label"] and a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)


@pytest.mark.parametrize("method", ["prefix", "prompt"])
@pytest.mark.parametrize("flag", ["merge", "gguf"])
def test_prefix_and_prompt_adapters_cannot_become_weights(method, flag, adapters, tmp_path):
    with pytest.raises(InkwellError) as info:
        export_model(adapters[method], tmp_path / "out", merge=flag == "merge", gguf="f16" if flag == "gguf" else None)
    assert f"--{flag}" in str(info.value) and "virtual tokens" in str(info.value) and "--adapter" in str(info.value)
    assert info.value.field == flag and not (tmp_path / "out").exists()


# ---------------------------------------------------------------- --gguf


def expected_tensors(layers: int = 2) -> set[str]:
    per_block = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")
    return {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{t}.weight" for i in range(layers) for t in per_block
    }


def read_gguf(path: Path):
    import gguf

    reader = gguf.GGUFReader(path)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    tensors = {t.name: (t.tensor_type.name, tuple(int(d) for d in reversed(t.shape.tolist()))) for t in reader.tensors}
    return fields, tensors


def test_gguf_f16_reads_back_with_the_merged_models_weights_and_logits(runs, tmp_path, tiny_chat_model):
    from transformers import AutoTokenizer

    CHATML = AutoTokenizer.from_pretrained(tiny_chat_model).chat_template

    out = tmp_path / "gguf"
    result = export_model(runs["lora"], out, gguf="f16")
    path = out / "model-f16.gguf"
    assert result["gguf"]["path"] == str(path) and result["merged"] is None
    assert sorted(p.name for p in out.iterdir()) == [
        "inkwell-export.json",
        "model-f16.gguf",
    ]  # the scratch merge is gone

    fields, tensors = read_gguf(path)
    assert set(tensors) == expected_tensors()  # tied embeddings: no output.weight
    assert tensors["token_embd.weight"] == ("F16", (len(AutoTokenizer.from_pretrained(tiny_chat_model)), 64))
    assert tensors["blk.0.attn_k.weight"] == ("F16", (32, 64))  # 2 kv heads x 16
    assert tensors["blk.1.ffn_norm.weight"] == ("F32", (64,))
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    assert fields["general.architecture"] == "llama" and fields["general.file_type"] == 1
    assert fields["llama.block_count"] == 2 and fields["llama.attention.head_count_kv"] == 2
    assert fields["llama.context_length"] == 512 and fields["llama.rope.dimension_count"] == 16
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"][tokenizer.eos_token_id] == "<|im_end|>"
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.token_type"][tokenizer.eos_token_id] == 3  # CONTROL: llama.cpp keeps it whole
    assert len(fields["tokenizer.ggml.merges"]) > 100 and fields["tokenizer.chat_template"] == CHATML

    # An independent reader: transformers de-quantises the file and undoes llama.cpp's q/k row permutation.
    merged = merged_model(runs["lora"])
    back = hf(out, gguf_file=path.name)
    q_ref = merged.model.layers[1].self_attn.q_proj.weight
    k_ref = merged.model.layers[1].self_attn.k_proj.weight
    assert torch.allclose(back.model.layers[1].self_attn.q_proj.weight, q_ref.half().float(), atol=0)
    assert torch.allclose(back.model.layers[1].self_attn.k_proj.weight, k_ref.half().float(), atol=0)
    assert torch.allclose(logits(back), logits(merged), atol=2e-3)
    gguf_tokenizer = AutoTokenizer.from_pretrained(out, gguf_file=path.name)
    text = "Write a product description, 床前明月光 <|im_start|>user\nhi<|im_end|>"
    assert gguf_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]


def merged_model(run: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(hf(card_base(run)), run).merge_and_unload()


def test_gguf_q8_0_file_is_smaller_and_close(runs, tmp_path):
    out = tmp_path / "ads-q8.gguf"
    result = export_model(runs["lora"], out, gguf="q8_0")
    f16 = export_model(runs["lora"], tmp_path / "ads-f16.gguf")  # a .gguf --to alone means f16
    assert result["gguf"]["path"] == str(out) and f16["gguf"]["type"] == "f16"
    fields, tensors = read_gguf(out)
    assert fields["general.file_type"] == 7
    assert {name for name, (kind, _shape) in tensors.items() if kind == "Q8_0"} == {
        name for name in expected_tensors() if not name.endswith("norm.weight")
    }
    assert out.stat().st_size < 0.7 * (tmp_path / "ads-f16.gguf").stat().st_size
    merged, back = merged_model(runs["lora"]), hf(tmp_path, gguf_file=out.name)
    assert torch.allclose(logits(back), logits(merged), atol=5e-2)  # 8-bit blocks: looser than f16


def test_exported_gguf_loads_into_inkwell_write(runs, tmp_path):
    from inkwell.generate.engine import Engine
    from inkwell.generate.settings import GenerationSettings
    from inkwell.models.load import load_model

    out = tmp_path / "exports"
    export_model(runs["lora"], out, merge=True, gguf="f16")
    card = json.loads((out / "inkwell-model.json").read_text())
    assert card["gguf"]["path"] == str(out / "model-f16.gguf")
    loaded = load_model(str(out / "model-f16.gguf"), dtype="fp32", device="cpu")  # inkwell write --model FILE.gguf
    assert loaded.chat is True
    assert torch.allclose(logits(loaded.model), logits(hf(out)), atol=2e-3)
    result = Engine(loaded).generate(
        [[{"role": "user", "content": "Describe item 3."}]], GenerationSettings(max_new_tokens=8, temperature=0)
    )
    assert result[0].completion_tokens > 0 and result[0].prompt_tokens > 5  # rendered with the GGUF's chat template


def test_model_pretrained_from_scratch_exports_to_gguf(runs, tmp_path):
    from inkwell.models.load import load_model

    out = tmp_path / "scratch"
    result = export_model(runs["scratch"], out, merge=True, gguf="f16")
    assert result["gguf"]["model_metadata"] == "config.json"
    fields, tensors = read_gguf(out / "model-f16.gguf")
    assert set(tensors) == expected_tensors(layers=1) and fields["llama.embedding_length"] == 32
    assert (
        "tokenizer.chat_template" not in fields
    )  # trained on plain text: llama.cpp must not wrap prompts in chat turns
    loaded = load_model(str(out / "model-f16.gguf"), dtype="fp32", device="cpu")
    assert loaded.chat is False  # pretrained from scratch: a base model, whatever tokenizer it borrowed
    assert torch.allclose(logits(loaded.model), logits(hf(runs["scratch"])), atol=2e-3)


@pytest.mark.parametrize("method", ["dora", "adalora", "ia3"])
def test_every_weight_changing_adapter_exports_to_gguf(method, adapters, tmp_path):
    export_model(adapters[method], tmp_path / "m.gguf", gguf="f16")
    assert set(read_gguf(tmp_path / "m.gguf")[1]) == expected_tensors()
    assert torch.allclose(logits(hf(tmp_path, gguf_file="m.gguf")), logits(merged_model(adapters[method])), atol=2e-3)


def test_source_gguf_key_values_are_copied_when_the_tensors_match(runs, tmp_path, tiny_chat_model):
    """A model that came from a GGUF file (like the embedded ones) keeps that file's key/values, llama.cpp's
    tokenizer name included; a source of another shape is not used for the model, only for its tokenizer."""
    import shutil

    import gguf

    from inkwell.models.gguf_write import write_gguf

    plain = tmp_path / "plain.gguf"
    write_gguf(tiny_chat_model, plain)
    source = tmp_path / "source.gguf"  # the same file with what only a real source would say
    reader, writer = gguf.GGUFReader(plain), gguf.GGUFWriter(source, "llama")
    for field in reader.fields.values():
        if not field.name.startswith("GGUF.") and field.name not in ("general.architecture", "tokenizer.ggml.pre"):
            kind = field.types[0]
            writer.add_key_value(
                field.name, field.contents(), kind, field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            )
    writer.add_string("general.license", "test-license")
    writer.add_tokenizer_pre("smollm")
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    base = tmp_path / "base"  # the tiny model as `inkwell models pull` leaves a GGUF-born model: with source_gguf
    shutil.copytree(tiny_chat_model, base)
    card = json.loads((base / "inkwell-model.json").read_text())
    (base / "inkwell-model.json").write_text(json.dumps(dict(card, source_gguf=str(source))))
    run = tmp_path / "run"
    shutil.copytree(runs["lora"], run)
    run_card = json.loads((run / "inkwell-run.json").read_text())
    (run / "inkwell-run.json").write_text(json.dumps(dict(run_card, base_model=str(base), base_model_path=str(base))))

    result = export_model(run, tmp_path / "out.gguf", gguf="q8_0")
    assert result["gguf"]["model_metadata"] == f"source GGUF {source}"
    fields, _ = read_gguf(tmp_path / "out.gguf")
    assert fields["general.license"] == "test-license" and fields["tokenizer.ggml.pre"] == "smollm"
    assert fields["general.file_type"] == 7 and fields["general.name"] == "run"

    deeper = tmp_path / "deeper"
    build_tiny_model = _root_conftest().build_tiny_model

    build_tiny_model(deeper, chat=True)
    config = json.loads((deeper / "config.json").read_text())
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(**dict(config, num_hidden_layers=3))).save_pretrained(
        deeper
    )  # same vocabulary, 3 layers
    report = write_gguf(deeper, tmp_path / "deeper.gguf", source=source, tokenizer_source=source)
    assert report.model_metadata == "config.json" and report.tokenizer_metadata == f"source GGUF {source}"
    fields, tensors = read_gguf(tmp_path / "deeper.gguf")
    assert (
        fields["llama.block_count"] == 3
        and fields["tokenizer.ggml.pre"] == "smollm"
        and "general.license" not in fields
    )


# ---------------------------------------------------------------- refusals


def test_gguf_refuses_architectures_it_cannot_describe(tmp_path, tiny_chat_model):
    import shutil

    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Qwen2Config, Qwen2ForCausalLM

    small = dict(
        vocab_size=400,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    for name, model in (
        ("qwen2", Qwen2ForCausalLM(Qwen2Config(**small))),
        ("gemma3", Gemma3ForCausalLM(Gemma3TextConfig(**small, head_dim=32))),
    ):
        folder = tmp_path / name
        model.save_pretrained(folder)
        for tokenizer_file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(tiny_chat_model / tokenizer_file, folder)
        with pytest.raises(InkwellError) as info:
            export_model(folder, tmp_path / f"{name}.gguf", gguf="f16")
        assert info.value.field == "gguf"
        if name == "qwen2":
            assert "'qwen2'" in str(info.value) and "llama, gemma3_text" in str(info.value)
        else:  # gemma3 is written only with the key/values of the GGUF it came from
            assert "none was found" in str(info.value)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*tmp*"))


def test_classifier_is_not_a_gguf(runs, tmp_path):
    with pytest.raises(InkwellError, match="classifier") as info:
        export_model(runs["classify"], tmp_path / "c.gguf", gguf="q8_0")
    assert info.value.field == "gguf"


def test_run_and_target_errors(runs, tmp_path):
    cases = [
        (dict(run=tmp_path / "missing", to=tmp_path / "o", merge=True), "run folder not found", "run"),
        (dict(run=runs["lora"] / "inkwell-run.json", to=tmp_path / "o", merge=True), "a file, not a run folder", "run"),
        (dict(run=tmp_path, to=tmp_path / "o", merge=True), "not a run folder", "run"),
        (dict(run=runs["lora"], to=tmp_path / "o"), "nothing to export", "export"),
        (dict(run=runs["lora"], to=tmp_path / "o", gguf="q4_k"), "unknown GGUF type", "gguf"),
        (dict(run=runs["lora"], to=tmp_path / "o.gguf", merge=True), "--merge writes a folder", "to"),
        (dict(run=runs["lora"], to=runs["lora"], merge=True, force=True), "would replace the run", "to"),
    ]
    for kwargs, message, field in cases:
        with pytest.raises(InkwellError) as info:
            export_model(**kwargs)
        assert message in str(info.value) and info.value.field == field, (kwargs, str(info.value))
    assert (runs["lora"] / "adapter_model.safetensors").exists()


def test_existing_target_needs_force_and_is_then_replaced(runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InkwellError, match="already exists") as info:
        export_model(runs["lora"], out, merge=True)
    assert "--force" in str(info.value) and (out / "keep.txt").read_text() == "mine"
    export_model(runs["lora"], out, merge=True, force=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_export(runs, tmp_path, capsys):
    from cli_helpers import run

    out = tmp_path / "cli"
    _, err = run(capsys, ["export", str(runs["lora"]), "--merge", "--gguf", "q8_0", "--to", str(out)])
    assert f"use: inkwell write --model {out}" in err and "GGUF q8_0" in err and "MB" in err
    assert (out / "model-q8_0.gguf").exists() and (out / "model.safetensors").exists()
    _, err = run(capsys, ["export", str(tmp_path / "nope"), "--merge", "--to", str(tmp_path / "x")], exit_code=2)
    assert "error: run folder not found" in err and "Traceback" not in err
    _, err = run(capsys, ["export", str(runs["lora"]), "--merge", "--to", str(out)], exit_code=2)
    assert "already exists" in err and "--force" in err


def test_quantize_writes_an_onnx_model_that_write_and_eval_load(runs, tmp_path, capsys):
    pytest.importorskip("onnxruntime_genai")
    from cli_helpers import run

    from inkwell.evaluate.perplexity import sequence_nll
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.engine import Engine
    from inkwell.generate.settings import GenerationSettings
    from inkwell.models.load import load_model

    out = tmp_path / "q8"
    _, err = run(capsys, ["export", str(runs["lora"]), "--quantize", "int8", "--to", str(out)])
    assert "ONNX int8" in err and f"inkwell write --model {out}" in err
    card = json.loads((out / "inkwell-onnx.json").read_text())
    assert card["precision"] == "int8" and card["exported_from"]["method"] == "lora"
    fast = open_engine(EngineSpec(str(out)))  # what `inkwell write --model DIR` and `inkwell eval` open
    assert type(fast).__name__ == "OnnxEngine" and fast.loaded.chat
    adapter = Engine(load_model(adapter=str(runs["lora"]), dtype="fp32", device="cpu"))
    ids = adapter.encode([{"role": "user", "content": "Describe item 3."}])
    quant_nll, n = sequence_nll(fast, ids, 1)
    full_nll, m = sequence_nll(adapter, ids, 1)
    assert n == m and abs(quant_nll - full_nll) / full_nll < 0.03  # the adapter is in the quantised weights
    assert fast.generate(["item"], GenerationSettings(max_new_tokens=4, temperature=0))[0].completion_tokens > 0
    # a merged folder can carry the ONNX copy beside the weights
    both = tmp_path / "both"
    run(capsys, ["export", str(runs["lora"]), "--merge", "--quantize", "int8", "--to", str(both)])
    assert (both / "model.safetensors").exists() and (both / "onnx-int8" / "genai_config.json").exists()
    _, err = run(
        capsys, ["export", str(runs["classify"]), "--quantize", "int8", "--to", str(tmp_path / "c")], exit_code=2
    )
    assert "classifier" in err
    _, err = run(capsys, ["export", str(runs["lora"]), "--quantize", "int3", "--to", str(tmp_path / "d")], exit_code=2)
    assert "--quantize" in err and "Traceback" not in err
