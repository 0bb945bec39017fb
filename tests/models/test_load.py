"""Loading models: HF folders, registry names, adapters, and clear errors for everything that can be missing."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from inkwell.errors import InkwellError
from inkwell.generate.engine import Engine
from inkwell.generate.settings import GenerationSettings
from inkwell.models.catalog import list_models, model_info
from inkwell.models.load import adapter_base, check_hf_folder, load_model, pick_device, pick_dtype, resolve
from inkwell.models.registry import DEFAULT_MODEL, EMBEDDED_MODELS, get_embedded


@pytest.fixture
def model_copy(tiny_chat_model, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tiny_chat_model, target)
    return target


# ------------------------------------------------------------------ folders


def test_loads_a_chat_folder(tiny_chat_model):
    loaded = load_model(str(tiny_chat_model), dtype="fp32", device="cpu")
    assert loaded.chat is True
    assert loaded.context_length == 512  # from inkwell-model.json
    assert loaded.device == "cpu" and loaded.dtype == "fp32"
    assert loaded.name == str(tiny_chat_model) and loaded.path == tiny_chat_model
    assert loaded.adapter is None and loaded.fast_path is True
    assert loaded.tokenizer.pad_token is not None
    assert not loaded.model.training
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert loaded.count_tokens("The quick brown fox") > 0


def test_loads_a_base_folder(tiny_base_model):
    loaded = load_model(str(tiny_base_model), dtype="fp32", device="cpu")
    assert loaded.chat is False


def test_without_card_chat_follows_the_chat_template(model_copy):
    (model_copy / "inkwell-model.json").unlink()
    loaded = load_model(str(model_copy), dtype="fp32", device="cpu")
    assert loaded.chat is True
    assert loaded.context_length == 512  # max_position_embeddings


@pytest.mark.parametrize(
    "remove, needle",
    [
        (["config.json"], "config.json"),
        (["model.safetensors"], "no weights"),
        (["tokenizer.json"], "no tokenizer"),
    ],
)
def test_incomplete_folder_names_the_missing_file(model_copy, remove, needle):
    for name in remove:
        (model_copy / name).unlink()
    with pytest.raises(InkwellError) as info:
        load_model(str(model_copy), dtype="fp32", device="cpu")
    assert needle in str(info.value)
    assert str(model_copy) in str(info.value)
    assert info.value.field == "model"
    with pytest.raises(InkwellError, match=needle):
        check_hf_folder(model_copy)


def test_missing_weights_message_mentions_safetensors(model_copy):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(InkwellError, match="safetensors"):
        resolve(str(model_copy))


def test_adapter_folder_given_as_model(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    with pytest.raises(InkwellError, match="--adapter"):
        load_model(str(folder), device="cpu")


def test_missing_path_and_missing_gguf(tmp_path):
    with pytest.raises(InkwellError, match="model path not found"):
        load_model(str(tmp_path / "nowhere" / "model"), device="cpu")
    with pytest.raises(InkwellError, match="GGUF file not found"):
        load_model(str(tmp_path / "model.gguf"), device="cpu")


# ------------------------------------------------------------------ registry


def test_unknown_registry_name_lists_known_names():
    with pytest.raises(InkwellError) as info:
        load_model("gpt-17-ultra", device="cpu")
    message = str(info.value)
    assert "unknown model 'gpt-17-ultra'" in message
    for name in EMBEDDED_MODELS:
        assert name in message
    assert info.value.field == "model"


def test_registry_entries():
    assert DEFAULT_MODEL in EMBEDDED_MODELS
    for name, entry in EMBEDDED_MODELS.items():
        assert entry.name == name
        data = entry.to_dict()
        assert data["kind"] in ("chat", "base") and isinstance(data["languages"], list)
    assert get_embedded(DEFAULT_MODEL).chat is True
    with pytest.raises(InkwellError, match="known models"):
        get_embedded("nope")


def test_catalog_lists_embedded_models_and_describes_folders(tiny_chat_model):
    items = list_models()
    names = [item["name"] for item in items]
    assert set(EMBEDDED_MODELS) <= set(names)
    assert sum(item["default"] for item in items if item["source"] == "embedded") == 1
    info = model_info(str(tiny_chat_model))
    assert info["source"] == "folder" and info["model_type"] == "llama"
    assert info["card"]["chat"] is True
    with pytest.raises(InkwellError, match="known models"):
        model_info("nope")


# ------------------------------------------------------------------ devices and dtypes


def test_device_and_dtype_errors():
    assert pick_device("cpu") == "cpu"
    with pytest.raises(InkwellError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InkwellError, match="no CUDA"):
            pick_device("cuda")
    assert pick_dtype("fp32", "cpu") == (torch.float32, "fp32")
    assert pick_dtype("auto", "cpu") == (torch.float32, "fp32")  # the suite pins INKWELL_CPU_BF16=off
    with pytest.raises(InkwellError, match="unknown dtype"):
        pick_dtype("fp8", "cpu")


def test_auto_dtype_follows_the_cpu_and_the_override(monkeypatch):
    monkeypatch.setenv("INKWELL_CPU_BF16", "on")
    assert pick_dtype("auto", "cpu") == (torch.bfloat16, "bf16")
    assert pick_dtype("fp32", "cpu") == (torch.float32, "fp32")  # an explicit dtype always wins
    monkeypatch.setenv("INKWELL_CPU_BF16", "auto")  # detection: the answer depends on this CPU
    from inkwell.models.load import cpu_has_fast_bf16

    detected = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert cpu_has_fast_bf16() is detected
    assert pick_dtype("auto", "cpu")[1] == ("bf16" if detected else "fp32")
    monkeypatch.setenv("INKWELL_CPU_BF16", "sometimes")
    with pytest.raises(InkwellError, match="(?s)INKWELL_CPU_BF16.*auto, on or off"):
        pick_dtype("auto", "cpu")


# ------------------------------------------------------------------ adapters


def test_adapter_folder_without_adapter_config_errors(tiny_chat_model, tmp_path):
    empty = tmp_path / "not-an-adapter"
    empty.mkdir()
    with pytest.raises(InkwellError) as info:
        load_model(str(tiny_chat_model), adapter=str(empty), device="cpu")
    assert "adapter_config.json" in str(info.value)
    assert info.value.field == "adapter"


@pytest.fixture
def lora_adapter(tiny_chat_model, tmp_path):
    """A LoRA adapter with non-zero weights (init_lora_weights=False), so it really changes the output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_chat_model, dtype=torch.float32)
    config = LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(base, config)
    with torch.no_grad():  # make the change large enough to move greedy decoding
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(20)
    folder = tmp_path / "lora"
    peft_model.save_pretrained(folder)
    peft_model.eval()
    return folder, peft_model


def test_lora_adapter_loads_and_matches_the_peft_model(tiny_chat_model, tiny_engine, lora_adapter):
    folder, peft_model = lora_adapter
    loaded = load_model(str(tiny_chat_model), adapter=str(folder), dtype="fp32", device="cpu")
    assert loaded.adapter == str(folder)
    assert loaded.fast_path is True  # LoRA is merged
    engine = Engine(loaded)
    prompts = ["The quick brown fox", "Write a product"]
    settings = GenerationSettings(max_new_tokens=12, min_new_tokens=12, temperature=0, repetition_penalty=1.0)
    results = engine.generate(prompts, settings)
    base = tiny_engine.generate(prompts, settings)
    for prompt, result in zip(prompts, results):
        ids = torch.tensor([engine.encode(prompt)])
        with torch.inference_mode():
            out = peft_model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=12,
                min_new_tokens=12,
                do_sample=False,
                pad_token_id=engine.pad_id,
                eos_token_id=sorted(engine.eos_ids),
            )
        expected = engine.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        assert result.text == expected, prompt
    assert [r.text for r in results] != [r.text for r in base]  # the adapter is really applied


def test_adapter_base_is_read_from_adapter_config(tiny_chat_model, lora_adapter):
    folder, _ = lora_adapter
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tiny_chat_model)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    assert adapter_base(folder) == str(tiny_chat_model)
    loaded = load_model(adapter=str(folder), dtype="fp32", device="cpu")  # no model named: the adapter's base
    assert loaded.name == str(tiny_chat_model)
    (folder / "inkwell-run.json").write_text(json.dumps({"base_model": "somewhere-else"}))
    assert adapter_base(folder) == "somewhere-else"


def test_broken_adapter_is_an_inkwell_error(tiny_chat_model, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]}))
    with pytest.raises(InkwellError) as info:
        load_model(str(tiny_chat_model), adapter=str(folder), dtype="fp32", device="cpu")
    assert info.value.field == "adapter"


def test_a_classifier_adapter_is_refused_with_the_command_to_use(tiny_chat_model, tmp_path):
    run = tmp_path / "topics"
    run.mkdir()
    (run / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "task_type": "SEQ_CLS", "base_model_name_or_path": str(tiny_chat_model)})
    )
    (run / "inkwell-run.json").write_text(json.dumps({"stage": "classify", "labels": ["a", "b"]}))
    with pytest.raises(InkwellError) as info:
        load_model(str(tiny_chat_model), adapter=str(run))
    assert info.value.field == "adapter" and "is a classifier" in str(info.value)
    assert "inkwell classify --model" in info.value.hint
