"""Generation speed and memory: Inkwell's engine vs plain `model.generate` (and llama.cpp when installed).

    python benchmarks/bench_generate.py [--model smollm2-135m-instruct] [--engine auto] [--precision auto]
                                        [--new-tokens 128] [--repeats 2] [--bulk 16,64] [--ttft-tokens 500]
                                        [--hf-dtype bf16] [--hf-reference fp32] [--batch-engine none]

Cases, same model, prompts and settings on every side:
- single: one prompt, decode tok/s for `--new-tokens` tokens;
- bulk16 / bulk64: that many prompts at once, aggregate tok/s;
- ttft: time to the first token for a `--ttft-tokens`-token prompt;
- peak RSS of the whole process (each side runs in its own fresh process, so the figure is its own).
Every side decodes greedily and exactly `--new-tokens` tokens (end-of-text suppressed), so they do the same
work. Sides alternate (`--repeats` rounds) and the median is kept, so drift on a shared machine hits all.
HF `generate` runs in bf16 (`--hf-dtype`, the baseline the targets are written against) and, as a second
reference, in fp32 (`--hf-reference`, `none` to skip), printed as `*_vs_hf_fp32`: on a CPU without bf16 matrix
units bf16 is the faster plain-HF dtype for one stream (half the weight bytes) but the slower one for batches
and long prompts (no bf16 kernels), so each case is also compared with whichever HF dtype did it faster.
llama.cpp (`llama-cpp-python`, on the embedded Q4_1 GGUF, all cores) is measured when it is importable;
otherwise its column is skipped with a note (`pip install llama-cpp-python` compiles llama.cpp: minutes;
`--llamacpp on` tries it anyway). Every side runs in its own process, so a peer that is missing or crashes
(llama.cpp, onnxruntime-genai under `--batch-engine onnx`, the second HF dtype; a segfault included) is left
out with a one-line note and the run goes on; only Inkwell's side and the HF baseline are required.
`--batch-engine torch` (or onnx) also runs the bulk cases on that engine (keys `*_batch_vs_hf`); `inkwell batch`
itself runs on the engine of the `inkwell` column under `--engine auto` (native where it applies).
The last line printed is a JSON object of ratios (ours / theirs; for ttft and RSS lower is better).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOPICS = [
    "a bamboo water bottle",
    "a solar phone charger",
    "a linen summer shirt",
    "a cast-iron skillet",
    "noise-cancelling headphones",
    "a standing desk",
    "a kids' science kit",
    "a travel backpack",
    "organic green tea",
    "a mechanical keyboard",
    "a yoga mat",
    "a smart thermostat",
    "a hand-thrown ceramic mug",
    "trail running shoes",
    "a fountain pen",
    "a weekend city guide to Lisbon",
]
TASKS = [
    "Write a product description for {}.",
    "Write a short ad for {}.",
    "Write a tweet about {}.",
    "Write a customer review of {}.",
]


def make_prompts(count: int) -> list[list[dict]]:
    prompts = []
    for i in range(count):
        task = TASKS[i % len(TASKS)].format(TOPICS[(i // len(TASKS) + i) % len(TOPICS)])
        prompts.append([{"role": "user", "content": task}])
    return prompts


def for_model(prompts: list[list[dict]], chat: bool) -> list:
    """Chat messages for a chat model; for a base model (gemma3-270m) the same task as plain text."""
    return prompts if chat else [p[-1]["content"] + "\n\n" for p in prompts]


def long_prompt(tokenizer, tokens: int) -> list[dict]:
    """A chat prompt of about `tokens` tokens: notes on the products above, then a writing task."""
    notes, i = [], 0
    while True:
        notes.append(f"Note {i + 1}: customers liked {TOPICS[i % len(TOPICS)]} for its design and price.")
        text = " ".join(notes)
        if len(tokenizer(text)["input_ids"]) >= tokens - 20:
            return [{"role": "user", "content": text + "\nSummarise these notes as a short article."}]
        i += 1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ---------------------------------------------------------------- one side, in its own process


def arm_inkwell(args, cases) -> dict:
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.settings import GenerationSettings

    engine = open_engine(EngineSpec(args.model, backend=args.engine, precision=args.precision, batch_size=64))
    kind = type(engine).__name__
    limit = 64
    if kind == "OnnxEngine":
        from inkwell.generate.onnx_engine import MAX_BATCH

        limit = MAX_BATCH

    def run(prompts, new_tokens):
        settings = GenerationSettings(
            max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=0, repetition_penalty=1.0
        )
        engine.batch_size = min(len(prompts), limit)  # the ONNX runtime caps a batch at 32 rows
        started = time.perf_counter()
        results = engine.generate(for_model(prompts, engine.loaded.chat), settings)
        return sum(r.completion_tokens for r in results), time.perf_counter() - started

    return measure(run, engine.tokenizer, args, cases, label=f"inkwell ({kind}, {engine.loaded.dtype})")


def arm_hf(args, cases) -> dict:
    import torch

    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    loaded = load_model(args.model, dtype=args.hf_dtype, device="cpu")
    engine = Engine(loaded)  # only for its chat template rendering
    model, tokenizer = loaded.model, loaded.tokenizer
    tokenizer.padding_side = "left"

    def run(prompts, new_tokens):
        texts = [engine.render(p) for p in for_model(prompts, loaded.chat)]
        # a chat template brings its own BOS; plain text gets the tokenizer's (as Inkwell's engine does)
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not loaded.chat)
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **batch,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=engine.pad_id,
            )
        return (out.shape[1] - batch["input_ids"].shape[1]) * len(texts), time.perf_counter() - started

    return measure(run, tokenizer, args, cases, label=f"hf generate ({loaded.dtype})")


def arm_llamacpp(args, cases) -> dict:
    import llama_cpp
    from transformers import AutoTokenizer

    from inkwell.models.load import resolve
    from inkwell.models.registry import get_embedded

    gguf = get_embedded(args.model).gguf_path()
    folder, _ = resolve(args.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=2048, n_threads=os.cpu_count(), n_batch=512, verbose=False)
    eos = llm.token_eos()

    def run(prompts, new_tokens):
        if len(prompts) > 1:
            return None  # llama-cpp-python decodes one sequence at a time: no bulk column
        text = (
            tokenizer.apply_chat_template(prompts[0], add_generation_prompt=True, tokenize=False)
            if tokenizer.chat_template
            else for_model(prompts, False)[0]
        )
        started = time.perf_counter()
        out = llm.create_completion(text, max_tokens=new_tokens, temperature=0.0, logit_bias={eos: -1e9})
        return out["usage"]["completion_tokens"], time.perf_counter() - started

    return measure(run, tokenizer, args, [c for c in cases if c[1] == 1], label="llama.cpp (Q4_1 GGUF)")


def measure(run, tokenizer, args, cases, label: str) -> dict:
    run(make_prompts(1), 4)  # warm-up
    out: dict = {"label": label}
    for name, count in cases:
        done = run(make_prompts(count), args.new_tokens)
        if done is not None:
            out[name] = done[0] / done[1]
    if args.ttft_tokens:
        prompt = long_prompt(tokenizer, args.ttft_tokens)
        _, seconds = run([prompt], 1)
        out["ttft"] = seconds
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def arm_batch_engine(args, cases) -> dict:
    """The bulk cases on another engine (`--batch-engine`), for comparison."""
    bulk = [c for c in cases if c[1] > 1]
    return arm_inkwell(argparse.Namespace(**{**vars(args), "engine": args.batch_engine, "ttft_tokens": 0}), bulk)


def arm_hf_reference(args, cases) -> dict:
    return arm_hf(argparse.Namespace(**{**vars(args), "hf_dtype": args.hf_reference}), cases)


ARMS = {
    "inkwell": arm_inkwell,
    "batch": arm_batch_engine,
    "hf": arm_hf,
    "hf_ref": arm_hf_reference,
    "llamacpp": arm_llamacpp,
}


# ---------------------------------------------------------------- the driver


REQUIRED = ("inkwell", "hf")  # the side measured and the baseline of every ratio; the others are peers


def run_arm(arm: str, passthrough: list[str]) -> tuple[dict | None, str, str]:
    """One side in a fresh process: (its figures or None, why it failed in one line, its stderr). A crash in a
    peer's native code (a segfault in llama.cpp or onnxruntime-genai) ends that process only."""
    done = subprocess.run([sys.executable, __file__, *passthrough, "--arm", arm], capture_output=True, text=True)
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    if done.returncode < 0:
        return None, f"crashed ({signal.Signals(-done.returncode).name})", done.stderr
    if done.returncode != 0:
        return None, (lines[-1][:200] if lines else f"exit status {done.returncode}"), done.stderr
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), "", done.stderr
    except (IndexError, json.JSONDecodeError):
        return None, "printed no figures", done.stderr


def llamacpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--engine", default="auto", help="Inkwell's engine: auto | native | onnx | torch")
    parser.add_argument(
        "--precision", default="auto", help="ONNX path precision: auto | int4 | int8 | fp32 (not auto: ONNX)"
    )
    parser.add_argument("--hf-dtype", default="bf16", help="plain HF baseline dtype (the targets' baseline)")
    parser.add_argument("--hf-reference", default="fp32", help="second plain HF dtype to compare with (none: skip)")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds; the median is kept")
    parser.add_argument("--bulk", default="16,64", help="bulk batch sizes")
    parser.add_argument("--ttft-tokens", type=int, default=500, help="prompt length for time to first token (0: skip)")
    parser.add_argument(
        "--llamacpp",
        default="auto",
        choices=["auto", "on", "off"],
        help="auto: when llama-cpp-python imports; on: try it anyway (a failure is a note)",
    )
    parser.add_argument(
        "--batch-engine", default="none", help="also run the bulk cases on this engine, e.g. torch (none: skip)"
    )
    parser.add_argument("--arm", choices=sorted(ARMS), help=argparse.SUPPRESS)  # internal: run one side
    args = parser.parse_args()

    cases = [("single", 1)] + [(f"bulk{n}", int(n)) for n in args.bulk.split(",") if n]
    if args.arm:
        print(json.dumps(ARMS[args.arm](args, cases)), flush=True)
        return

    from inkwell.models.cpu import describe

    print(f"cpu: {describe()}", flush=True)
    arms = ["inkwell", "hf"] + (["hf_ref"] if args.hf_reference != "none" else [])
    if args.batch_engine != "none" and any(count > 1 for _, count in cases):
        arms.append("batch")
    wanted = args.llamacpp == "on" or (args.llamacpp == "auto" and args.model == "smollm2-135m-instruct")
    if wanted and (args.llamacpp == "on" or llamacpp_available()):
        arms.append("llamacpp")
    elif args.llamacpp == "auto":
        print("note: llama.cpp column skipped: llama-cpp-python is not installed (or the model has no embedded GGUF)")
    passthrough = [a for a in sys.argv[1:]]
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    for round_ in range(args.repeats):
        for arm in list(arms):
            figures, why, stderr = run_arm(arm, passthrough)
            if figures is None and arm in REQUIRED:
                sys.exit(f"{arm} failed ({why}):\n{stderr[-2000:]}")
            if figures is None:  # a peer: leave its column out, keep measuring the rest
                print(f"note: {arm} column skipped: {why}", flush=True)
                arms.remove(arm)
                del runs[arm]
                continue
            runs[arm].append(figures)
            print(f"round {round_ + 1}: {arm} done", file=sys.stderr, flush=True)

    def med(arm: str, key: str) -> float | None:
        values = [r[key] for r in runs.get(arm, []) if key in r]
        return statistics.median(values) if values else None

    print(f"model {args.model}  new tokens {args.new_tokens}  repeats {args.repeats}")
    for arm in arms:
        print(f"  {arm:<9} = {runs[arm][0]['label']}")
    ratios: dict[str, float] = {}

    def column(
        line: str,
        arm: str,
        key: str,
        label: str,
        fmt: str,
        unit: str,
        ours: float | None = None,
        ratio_key: str | None = None,
        show_ratio: bool = True,
    ) -> str:
        """Append another side's figure (our ratio to it printed and/or recorded) when that side ran."""
        theirs = med(arm, key)
        if not theirs:
            return line
        line += f"   {label} {theirs:{fmt}} {unit}"
        if ours is not None and show_ratio:
            line += f"   ratio {ours / theirs:5.2f}"
        if ours is not None and ratio_key:
            ratios[ratio_key] = round(ours / theirs, 3)
        return line

    ref, batch_label = args.hf_reference, f"inkwell batch ({args.batch_engine})"
    for name, count in cases:
        ours, hf = med("inkwell", name), med("hf", name)
        line = f"{name:<8} prompts {count:>3}  inkwell {ours:8.1f} tok/s   hf {hf:8.1f} tok/s   ratio {ours / hf:5.2f}"
        ratios[f"{name}_vs_hf"] = round(ours / hf, 3)
        line = column(line, "hf_ref", name, f"hf {ref}", "7.1f", "tok/s", ours, f"{name}_vs_hf_{ref}")
        batch = med("batch", name)
        if batch:
            line += f"   {batch_label} {batch:7.1f} tok/s   ratio {batch / hf:5.2f}"
            ratios[f"{name}_batch_vs_hf"] = round(batch / hf, 3)
        line = column(line, "llamacpp", name, "llama.cpp", "7.1f", "tok/s", ours, f"{name}_vs_llamacpp")
        print(line)
    if args.ttft_tokens:
        ours, hf = med("inkwell", "ttft"), med("hf", "ttft")
        line = (
            f"ttft     {args.ttft_tokens}-token prompt  inkwell {ours:6.3f} s   hf {hf:6.3f} s   ratio {ours / hf:5.2f}"
        )
        line = column(line, "hf_ref", "ttft", f"hf {ref}", "6.3f", "s", ours, f"ttft_vs_hf_{ref}")
        line = column(line, "llamacpp", "ttft", "llama.cpp", "6.3f", "s")
        print(line)
        ratios["ttft_vs_hf"] = round(ours / hf, 3)
    ours, hf = med("inkwell", "peak_rss_mb"), med("hf", "peak_rss_mb")
    line = f"peak RSS inkwell {ours:7.0f} MB   hf {hf:7.0f} MB   ratio {ours / hf:5.2f}"
    line = column(
        line, "hf_ref", "peak_rss_mb", f"hf {ref}", "7.0f", "MB", ours, f"peak_rss_vs_hf_{ref}", show_ratio=False
    )
    if med("batch", "peak_rss_mb"):
        line += f"   {batch_label} {med('batch', 'peak_rss_mb'):7.0f} MB"
        ratios["peak_rss_batch_vs_hf"] = round(med("batch", "peak_rss_mb") / hf, 3)
    line = column(line, "llamacpp", "peak_rss_mb", "llama.cpp", "7.0f", "MB")
    print(line)
    ratios["peak_rss_vs_hf"] = round(ours / hf, 3)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
