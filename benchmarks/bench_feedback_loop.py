"""The studio's feedback loop end to end on the real embedded model: does training on a creator's edits make
the model closer to what the creator writes?

    python benchmarks/bench_feedback_loop.py [--pieces 75] [--stages sft,dpo] [--max-steps N]

A seeded, scripted creator uses ONE template, `social-post` (an X post about a topic, playful, no hashtags or
emoji, under 280 characters). For each piece SmolLM2-135M-Instruct (`smollm2-135m-instruct`) writes a draft
with the template's own sampling settings; the creator replaces it with a real quotation on that topic from
Debian's `fortunes` package (files food, love, work, sports, education; 40-280 characters) and accepts it.
Everything is stored through StudioData exactly as the studio stores it, then each stage runs as a real
feedback job (start_job -> `python -m inkwell.feedback.job` in the background -> poll_job), with the shipped
recipe. The job holds out a fifth of the pieces and grades on them, base model vs base + the new LoRA (torch,
fp32): the perplexity of the creator's texts given the prompts, and the win rate of the new adapter against
the base by ROUGE-L of greedy drafts against those texts (ties half).
Prints the CPU's bf16/AMX flags, each stage's figures and wall times; the last line is a JSON object.
Budget: about 15 minutes on 2 cores for both stages. Quick smoke run: --pieces 15 --max-steps 2 --stages sft
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MODEL = "smollm2-135m-instruct"
TEMPLATE = "social-post"
FORTUNES = Path("/usr/share/games/fortunes")
# fortune file -> the post's topic, as a creator would type it
TOPICS = {"food": "food", "love": "love", "work": "work", "sports": "sports", "education": "school and teachers"}
MIN_CHARS, MAX_CHARS = 40, 280  # one short post (X's limit); very short ones are one-liners with little to learn
DRAFT_TOKENS = 80  # the drafts and the graded generations: about a post's length
SEED = 0


def cpu_flags() -> str:
    """The CPU and the flags that decide its speed (inkwell.models.cpu)."""
    from inkwell.models.cpu import describe

    return describe()


def creator_texts(count: int) -> list[tuple[str, str]]:
    """(topic, quotation) pairs: short distinct fortunes, the topics taken in turn, seeded."""
    from inkwell.data.fortune_files import read_fortunes

    per_topic: dict[str, list[str]] = {}
    for name in TOPICS:
        seen, kept = set(), []
        for entry in read_fortunes(FORTUNES / name):
            # tabs and ragged line ends are terminal layout, not part of the text a creator would post
            text = "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in entry.splitlines()).strip()
            if MIN_CHARS <= len(text) <= MAX_CHARS and text not in seen:
                seen.add(text)
                kept.append(text)
        random.Random(f"{SEED}:{name}").shuffle(kept)
        per_topic[name] = kept
    out = []
    for index in range(count):
        name = list(TOPICS)[index % len(TOPICS)]
        out.append((TOPICS[name], per_topic[name][index // len(TOPICS)]))
    return out


def script_the_creator(data, count: int) -> tuple[float, str]:
    """Drafts by the real model, replaced by fortunes and accepted, stored as the studio stores them."""
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.content import prepare
    from inkwell.prompts.library import get_template

    template = get_template(TEMPLATE)
    texts = creator_texts(count)
    started = time.perf_counter()
    engine = open_engine(EngineSpec(MODEL, workload="bulk"), lambda m: print(f"  {m}", flush=True))
    try:
        prepared = []
        for index, (topic, _text) in enumerate(texts):
            fields = {"topic": topic, "platform": "x", "tone": "playful", "hashtags": False, "emoji": False}
            overrides = {"max_new_tokens": DRAFT_TOKENS, "seed": SEED + index}  # each piece its own draft
            prepared.append(prepare(engine, template, fields, overrides=overrides))
        seeds = [piece_settings.seed for _, piece_settings in prepared]
        drafts = engine.generate([rendered.prompt for rendered, _ in prepared], prepared[0][1], seeds=seeds)
        for (rendered, piece_settings), draft, (_topic, text) in zip(prepared, drafts, texts):
            piece = data.new_piece(
                "local",
                template=TEMPLATE,
                fields=rendered.fields,
                system="base",
                settings=piece_settings.to_dict(),
                request=rendered.prompt,
                prompt=engine.render(rendered.prompt),
            )
            data.add_variant("local", piece, system="base", text=draft.text.strip() or "(empty)")
            data.add_version("local", piece, text)
            data.set_verdict("local", piece, status="accepted")
        label = type(engine).__name__
    finally:
        engine.close()
    return time.perf_counter() - started, label


def run_stage(data, stage: str, runs: Path, max_steps: int | None) -> dict:
    """One feedback job, followed to its end; its report plus wall times."""
    from inkwell.feedback.jobs import poll_job, start_job

    started = time.perf_counter()
    job = start_job(data, "local", stage=stage, base_model=MODEL, runs_dir=runs, max_steps=max_steps)
    rows = job["data"]["rows"]["train"]
    print(f"{stage}: job {job['id']}, {rows} training rows, {len(job['data']['heldout_ids'])} held out", flush=True)
    shown = 0
    while True:
        job = poll_job(data, job["id"])
        for point in job["metrics"][shown:]:
            print(f"  {stage} step {point['step']:>3}  loss {point['loss']:.4f}", flush=True)
        shown = len(job["metrics"])
        if job["status"] != "running":
            break
        time.sleep(2)
    wall = time.perf_counter() - started
    if job["status"] != "finished":
        log = Path(job["run"], "job.log").read_text(encoding="utf-8")[-3000:]
        sys.exit(f"{stage} job failed: {job['error']}\n{log}")
    return {**job["report"], "wall_s": wall, "rows": rows}


def show(stage: str, report: dict) -> dict:
    systems = report["systems"]
    ppl_base, ppl_new = systems["base"]["perplexity"], systems["new"]["perplexity"]
    lower = sum(i["perplexity_new"] < i["perplexity_base"] for i in report["heldout"])
    wins = sum(i["rouge_new"] > i["rouge_base"] for i in report["heldout"])
    ties = sum(i["rouge_new"] == i["rouge_base"] for i in report["heldout"])
    n = report["heldout_count"]
    print(
        f"{stage}: held-out perplexity of the edits {ppl_base:.2f} -> {ppl_new:.2f} "
        f"(ratio {ppl_new / ppl_base:.3f}; lower on {lower}/{n} pieces)\n"
        f"{stage}: ROUGE-L of greedy drafts vs the edits {systems['base']['rouge_l']:.3f} -> "
        f"{systems['new']['rouge_l']:.3f}; win rate vs base {report['win_rate']:.0%} "
        f"({wins} wins, {ties} ties, {n - wins - ties} losses of {n})\n"
        f"{stage}: wall {report['wall_s']:.0f} s (training {report['train_seconds']:.0f} s for "
        f"{report['train']['steps']} steps, grading {report['seconds']:.0f} s), {report['rows']} rows",
        flush=True,
    )
    sample = report["heldout"][0]
    print(
        f"  e.g. edit: {sample['reference'][:100]!r}\n       base: {sample['base_text'][:100]!r}\n"
        f"       new:  {sample['new_text'][:100]!r}",
        flush=True,
    )
    return {
        "perplexity_base": round(ppl_base, 3),
        "perplexity_new": round(ppl_new, 3),
        "win_rate": round(report["win_rate"], 3),
        "rouge_l_base": round(systems["base"]["rouge_l"], 4),
        "rouge_l_new": round(systems["new"]["rouge_l"], 4),
        "wall_s": round(report["wall_s"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=75, help="pieces the creator writes (a fifth is held out)")
    parser.add_argument("--stages", default="sft,dpo", help="feedback recipes to run, in order")
    parser.add_argument("--max-steps", type=int, default=None, help="cap each job's optimizer steps (smoke runs)")
    parser.add_argument(
        "--dpo-max-steps",
        type=int,
        default=8,
        help="cap the dpo job (default 8: one epoch of 60 pairs; its 3 epochs take ~12 min alone on 2 cores)",
    )
    args = parser.parse_args()

    from inkwell.home import models_dir

    cache = models_dir()  # the prepared model is reused; everything else goes to a throwaway home
    work = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    os.environ["INKWELL_MODEL_CACHE"] = str(cache)
    os.environ["INKWELL_HOME"] = str(work / "home")
    from inkwell.store import Store
    from inkwell.store.studio import StudioData

    print(f"cpu: {cpu_flags()}", flush=True)
    total = time.perf_counter()
    data = StudioData(Store())
    seconds, engine = script_the_creator(data, args.pieces)
    print(f"drafts: {args.pieces} pieces of {TEMPLATE} by {MODEL} ({engine}) in {seconds:.0f} s", flush=True)
    from inkwell.feedback.export import export_rows

    counts = export_rows(data, "local").counts
    print(f"export: {counts['sft']} sft rows, {counts['edit']} dpo rows (edit over draft)", flush=True)

    figures: dict = {"pieces": args.pieces, "drafts_s": round(seconds, 1)}
    for stage in [s.strip() for s in args.stages.split(",") if s.strip()]:
        steps = args.max_steps or (args.dpo_max_steps if stage == "dpo" else None)
        figures[stage] = show(stage, run_stage(data, stage, work / "runs", steps))
    from inkwell.feedback.jobs import DEFAULT_STAGE

    ran = [s for s in ("sft", "dpo") if s in figures]
    best = min(ran, key=lambda s: figures[s]["perplexity_new"] / figures[s]["perplexity_base"])
    print(f"lowest held-out perplexity: {best}; `inkwell feedback train` defaults to {DEFAULT_STAGE}", flush=True)
    figures["total_s"] = round(time.perf_counter() - total, 1)
    print(f"total wall {figures['total_s']:.0f} s; run folders in {work / 'runs'}", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
