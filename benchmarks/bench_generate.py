"""Generation speed: Inkwell's engine vs plain `model.generate`, same process, model, prompts and settings.

    python benchmarks/bench_generate.py [--model smollm2-135m-instruct] [--dtype auto] [--new-tokens 128] [--repeats 2]

Prints single-stream decode tok/s and bulk aggregate tok/s (16 and 64 prompts) for both, and their
ratios. Both sides decode greedily and exactly `--new-tokens` tokens (end-of-text suppressed), so they do
the same work. Runs alternate engine / HF and the median is kept, so drift on a shared machine hits both.
The last line printed is a JSON object of the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOPICS = [
    "a bamboo water bottle", "a solar phone charger", "a linen summer shirt", "a cast-iron skillet",
    "noise-cancelling headphones", "a standing desk", "a kids' science kit", "a travel backpack",
    "organic green tea", "a mechanical keyboard", "a yoga mat", "a smart thermostat",
    "a hand-thrown ceramic mug", "trail running shoes", "a fountain pen", "a weekend city guide to Lisbon",
]
TASKS = ["Write a product description for {}.", "Write a short ad for {}.", "Write a tweet about {}.",
         "Write a customer review of {}."]


def make_prompts(count: int) -> list[list[dict]]:
    prompts = []
    for i in range(count):
        task = TASKS[i % len(TASKS)].format(TOPICS[(i // len(TASKS) + i) % len(TOPICS)])
        prompts.append([{"role": "user", "content": task}])
    return prompts


def run_engine(engine, prompts, new_tokens: int) -> float:
    from inkwell.generate.settings import GenerationSettings

    settings = GenerationSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=0,
                                  repetition_penalty=1.0)
    engine.batch_size = len(prompts)
    started = time.perf_counter()
    results = engine.generate(prompts, settings)
    elapsed = time.perf_counter() - started
    return sum(r.completion_tokens for r in results) / elapsed


def run_hf(engine, prompts, new_tokens: int) -> float:
    import torch

    model, tokenizer = engine.model, engine.tokenizer
    texts = [engine.render(p) for p in prompts]
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(engine.loaded.device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             pad_token_id=engine.pad_id)
    elapsed = time.perf_counter() - started
    return (out.shape[1] - batch["input_ids"].shape[1]) * len(texts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per case; the median is kept")
    parser.add_argument("--bulk", default="16,64", help="bulk batch sizes")
    args = parser.parse_args()

    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    loaded = load_model(args.model, dtype=args.dtype, device=args.device)
    engine = Engine(loaded)
    print(f"model {loaded.name}  dtype {loaded.dtype}  device {loaded.device}  new tokens {args.new_tokens}", flush=True)
    run_engine(engine, make_prompts(1), 8)  # warm-up both paths
    run_hf(engine, make_prompts(1), 8)

    cases = [("single", 1)] + [(f"bulk{n}", int(n)) for n in args.bulk.split(",") if n]
    ratios = {}
    for name, count in cases:
        prompts = make_prompts(count)
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(run_engine(engine, prompts, args.new_tokens))
            theirs.append(run_hf(engine, prompts, args.new_tokens))
        a, b = statistics.median(ours), statistics.median(theirs)
        ratios[f"{name}_vs_hf"] = round(a / b, 3)
        print(f"{name:<8} prompts {count:>3}  inkwell {a:8.1f} tok/s   hf generate {b:8.1f} tok/s   ratio {a / b:5.2f}", flush=True)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
