"""Training speed and memory: Inkwell's LoRA recipes vs plain Hugging Face training, same model, data and steps.

    python benchmarks/bench_train.py [--cases smollm2,gemma3] [--steps 20] [--plain-batches 2,8] [--mem-cap-gb 16]

smollm2: SmolLM2-135M-Instruct, LoRA on English quotes (Debian `fortunes`, 3 to 500 tokens each).
  inkwell  `inkwell train configs/smollm2-lora-sft.yaml` with the data swapped (length-grouped batches)
  trainer  HF `Trainer` + PEFT, the same LoRA settings, batch, accumulation, learning rate and schedule,
           with the default padding collator (`DataCollatorForLanguageModeling(mlm=False)`), random batches
gemma3: Gemma-3-270M, LoRA on Song ci (`fortunes-zh` song100, 30 to 284 tokens each).
  inkwell  `inkwell train configs/gemma3-lora-zh-poetry.yaml` (chunked loss, length-grouped batches)
  plain-bN a plain PEFT loop (`model(**batch, labels=...).loss`, full logits, padding) at micro-batch N,
           accumulating to the same 8 examples per step

Every arm runs in its own process (so its peak RSS, from getrusage, is its own); a watchdog kills an arm
whose RSS passes --mem-cap-gb and reports it as OOM instead of letting it take the machine down. Both
sides run fp32 and count effective (non-padding) input tokens over the timed training loop (model loading
excluded). Prints tokens/s and peak RSS per arm and Inkwell's ratios; the last line is a JSON object of
the ratios (tokens/s: higher is better for Inkwell; RSS: lower is better).
Targets: smollm2 tokens/s >= 1.5x the Trainer at no more memory; gemma3 peak RSS <= 4 GB at 8 examples/step.
Quick smoke run (~2 minutes on a quiet machine): --cases smollm2 --steps 2 --max-rows 400
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CASES = {
    # case: (model, sample, recipe config, max_length)
    "smollm2": ("smollm2-135m-instruct", "fortunes", REPO / "configs" / "smollm2-lora-sft.yaml", 512),
    "gemma3": ("gemma3-270m", "song100", REPO / "configs" / "gemma3-lora-zh-poetry.yaml", 320),
}


# ---------------------------------------------------------------- data (parent process)


def prepare_data(case: str, folder: Path, max_rows: int | None, seed: int) -> Path:
    """The sample's rows that fit the recipe's max_length, as {"text"} JSONL read by every arm."""
    from transformers import AutoTokenizer

    from inkwell.data.sample import sample_rows
    from inkwell.models.load import resolve

    model, sample, _config, max_length = CASES[case]
    rows = [{"text": r["text"]} for r in sample_rows(sample)]
    random.Random(seed).shuffle(rows)
    tokenizer = AutoTokenizer.from_pretrained(resolve(model)[0])
    fits = (r for r in rows if len(tokenizer(r["text"])["input_ids"]) + 1 <= max_length)  # + end-of-text
    rows = list(fits) if max_rows is None else [r for _, r in zip(range(max_rows), fits)]
    path = folder / f"{sample}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- arms (each in its own process)


def arm_inkwell(case: str, data: Path, steps: int, out: Path) -> dict:
    from inkwell.train import train

    overrides = [
        f"data.train={data}",
        "data.format=text",
        "data.template=null",
        "data.val_split=0",
        f"output={out}",
        f"training.max_steps={steps}",
        "training.save_every=0",
        "training.eval_every=0",
        "training.progress=false",
        "training.bf16=false",
        "training.eval_on_start=false",
    ]
    run = train(CASES[case][2], overrides, say=lambda _message: None)
    metrics = run.card["metrics"]
    t = run.card["config"]["training"]
    return {"tokens": metrics["tokens"], "seconds": metrics["seconds"], "batch": f"{t['batch_size']}x{t['grad_accum']}"}


def _examples(case: str, data: Path):
    """Token ids exactly as the recipe encodes text rows (special tokens, then end-of-text), and the tokenizer."""
    from inkwell.models.load import resolve
    from inkwell.train.outputs import load_tokenizer

    folder = resolve(CASES[case][0])[0]
    tokenizer, _stop = load_tokenizer(folder)
    texts = [json.loads(line)["text"] for line in data.read_text(encoding="utf-8").splitlines()]
    return folder, tokenizer, [tokenizer(text)["input_ids"] + [tokenizer.eos_token_id] for text in texts]


def _recipe(case: str):
    from inkwell.train.config import load_config

    return load_config(CASES[case][2])


def _lora(cfg):
    import peft

    s = cfg.lora
    return peft.LoraConfig(
        task_type="CAUSAL_LM", r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=s.target_modules
    )


def arm_trainer(case: str, data: Path, steps: int, out: Path) -> dict:
    """HF Trainer + PEFT with the default padding collator, the recipe's LoRA and optimisation settings."""
    import peft
    import torch
    from transformers import AutoModelForCausalLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

    cfg = _recipe(case)
    t = cfg.training
    folder, tokenizer, ids = _examples(case, data)
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), _lora(cfg))
    padding = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    seen = {"tokens": 0}

    def collate(examples):
        batch = padding(examples)
        seen["tokens"] += int(batch["attention_mask"].sum())  # effective tokens: padding not counted
        return batch

    args = TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type={"constant": "constant_with_warmup"}.get(t.schedule, t.schedule),
        warmup_steps=t.warmup_steps or t.warmup_ratio,
        max_grad_norm=t.max_grad_norm or 0.0,
        seed=t.seed,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=10**6,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=[{"input_ids": x} for x in ids], data_collator=collate)
    started = time.perf_counter()
    trainer.train()
    return {
        "tokens": seen["tokens"],
        "seconds": time.perf_counter() - started,
        "batch": f"{t.batch_size}x{t.grad_accum}",
    }


def arm_plain(case: str, data: Path, steps: int, out: Path, micro: int) -> dict:
    """A plain PEFT loop: random padded batches of `micro`, the model's own loss (full logits), AdamW,
    accumulating to the recipe's examples per step."""
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    cfg = _recipe(case)
    t = cfg.training
    per_step = t.batch_size * t.grad_accum
    folder, tokenizer, ids = _examples(case, data)
    torch.manual_seed(t.seed)
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), _lora(cfg))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.lr)
    order = list(range(len(ids)))
    rng = random.Random(t.seed)
    rng.shuffle(order)
    tokens, position = 0, 0
    started = time.perf_counter()
    for _ in range(steps):
        for _ in range(per_step // micro):
            if position + micro > len(order):
                rng.shuffle(order)
                position = 0
            chosen = [ids[i] for i in order[position : position + micro]]
            position += micro
            width = max(len(x) for x in chosen)
            input_ids = torch.full((micro, width), tokenizer.pad_token_id)
            mask = torch.zeros((micro, width), dtype=torch.long)
            for row, x in enumerate(chosen):
                input_ids[row, : len(x)] = torch.tensor(x)
                mask[row, : len(x)] = 1
            labels = input_ids.masked_fill(mask == 0, -100)
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels, use_cache=False).loss
            (loss / (per_step // micro)).backward()
            tokens += int(mask.sum())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"tokens": tokens, "seconds": time.perf_counter() - started, "batch": f"{micro}x{per_step // micro}"}


def child(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    case, arm = args.case, args.arm
    if arm == "inkwell":
        result = arm_inkwell(case, Path(args.data), args.steps, out / "run")
    elif arm == "trainer":
        result = arm_trainer(case, Path(args.data), args.steps, out / "run")
    else:
        result = arm_plain(case, Path(args.data), args.steps, out / "run", int(arm.removeprefix("plain-b")))
    result["peak_rss_gb"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    )  # KiB on Linux; GB = 10^9 bytes
    (out / "result.json").write_text(json.dumps(result))


# ---------------------------------------------------------------- parent: one process per arm


def run_arm(case: str, arm: str, data: Path, args, work: Path) -> dict:
    import psutil

    out = work / f"{case}-{arm}"
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        __file__,
        "--child",
        "--case",
        case,
        "--arm",
        arm,
        "--data",
        str(data),
        "--steps",
        str(args.steps),
        "--out",
        str(out),
        "--threads",
        str(args.threads or 0),
    ]
    cap = int(args.mem_cap_gb * 1e9)
    log = (out / "log.txt").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    watched, peak, killed = psutil.Process(proc.pid), 0, False
    while proc.poll() is None:  # our own RSS watchdog: an out-of-memory arm is stopped, not the machine
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        if peak > cap:
            proc.kill()
            killed = True
        time.sleep(0.05)
    proc.wait()
    log.close()
    if killed:
        return {"oom": True, "peak_rss_gb": peak / 1e9}
    if proc.returncode != 0:
        tail = (out / "log.txt").read_text(errors="replace")[-2000:]
        raise SystemExit(f"{case} {arm} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads((out / "result.json").read_text())
    result["tokens_per_s"] = result["tokens"] / max(result["seconds"], 1e-9)
    return result


def show(case: str, arm: str, r: dict) -> None:
    if r.get("oom"):
        print(f"{case:<8} {arm:<9} OUT OF MEMORY: killed at {r['peak_rss_gb']:.1f} GB RSS (--mem-cap-gb)", flush=True)
        return
    print(
        f"{case:<8} {arm:<9} batch {r['batch']:<5} {r['tokens']:>7} tokens in {r['seconds']:7.1f} s = "
        f"{r['tokens_per_s']:7.1f} tok/s   peak RSS {r['peak_rss_gb']:5.2f} GB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="smollm2,gemma3")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per arm (8 examples each)")
    parser.add_argument("--plain-batches", default="2,8", help="gemma3: micro-batch sizes of the plain loop")
    parser.add_argument(
        "--mem-cap-gb", type=float, default=16.0, help="an arm over this RSS is killed and reported OOM"
    )
    parser.add_argument("--max-rows", type=int, default=None, help="use at most this many data rows (smoke runs)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per arm (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from inkwell.models.cpu import describe

    print(f"cpu: {describe()}", flush=True)
    ratios: dict = {}
    with tempfile.TemporaryDirectory(prefix="inkwell-bench-train-") as tmp:
        work = Path(tmp)
        for case in [c for c in args.cases.split(",") if c]:
            if case not in CASES:
                raise SystemExit(f"unknown case {case!r}; choose from {', '.join(CASES)}")
            data = prepare_data(case, work, args.max_rows, args.seed)
            rows = data.read_text(encoding="utf-8").count("\n")
            print(f"{case}: {CASES[case][0]}, {rows} rows of {CASES[case][1]}, {args.steps} steps per arm", flush=True)
            baselines = (
                ["trainer"] if case == "smollm2" else [f"plain-b{n}" for n in args.plain_batches.split(",") if n]
            )
            ours = run_arm(case, "inkwell", data, args, work)
            show(case, "inkwell", ours)
            for arm in baselines:
                theirs = run_arm(case, arm, data, args, work)
                show(case, arm, theirs)
                key = f"{case}_vs_{arm}"
                if theirs.get("oom"):
                    ratios[f"{key}_oom"] = True  # the baseline did not fit in --mem-cap-gb; Inkwell did
                    continue
                speed = ours["tokens_per_s"] / theirs["tokens_per_s"]
                memory = ours["peak_rss_gb"] / theirs["peak_rss_gb"]
                ratios[f"{key}_tokens_per_s"] = round(speed, 3)
                ratios[f"{key}_peak_rss"] = round(memory, 3)
                print(f"{'':<8} ratio inkwell / {arm}: tokens/s {speed:5.2f}x   peak RSS {memory:5.2f}x", flush=True)
            ratios[f"{case}_inkwell_peak_rss_gb"] = round(ours["peak_rss_gb"], 2)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
