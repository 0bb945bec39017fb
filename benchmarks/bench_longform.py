"""Long-form writing against one-shot generation on the embedded models (docs/longform.md).

    python benchmarks/bench_longform.py [--lang en|zh|all] [--stride N] [--limit N] [--candidates 3] [--json F]
    python benchmarks/bench_longform.py --one 1500        # wall time and peak memory of one 1,500-word article

For each task of benchmarks/data/longform-tasks.jsonl (16 English on SmolLM2-135M-Instruct, 6 Chinese on
Gemma-3-270M; topic, kind, target words) it writes the piece twice with the same model and seed:
(a) one-shot: one prompt asking for the whole piece, with the token budget `write long` has for all its
sections together (capped by the context), also "forced" to use 80% of it (min_new_tokens), and (b)
`inkwell write long` (plan -> sections -> revise).
Both are measured against the same plan (the one (b) made): LongWriter's length score S_l, outline coverage
(share of planned points and section titles present: embedding similarity for English, character bigrams
for Chinese, which the bundled embedder cannot read), the repeated 4-gram rate, and distinct-2.
Prints the CPU flags, one line per task, the means per language and system; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The native engine's OpenMP threads spin while they wait: on a busy 2-core machine that starves the other
# thread (measured 8x slower beside another benchmark). Passive waiting costs little on an idle one.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TASKS = REPO / "benchmarks" / "data" / "longform-tasks.jsonl"
MODELS = {"en": "smollm2-135m-instruct", "zh": "gemma3-270m"}
# one_shot: the whole piece from one prompt with write long's token budget; forced: the same with
# min_new_tokens at 80% of it (how a user gets length out of one prompt); long: `write long`.
SYSTEMS = ("one_shot", "forced", "long")


def cpu_flags() -> str:
    """The CPU and the flags that decide its speed (inkwell.models.cpu)."""
    from inkwell.models.cpu import describe

    return describe()


def one_shot(engine, task: dict, max_new: int, seed: int, forced: bool = False) -> str:
    from inkwell.generate.settings import GenerationSettings

    zh = task["lang"] == "zh"
    if engine.loaded.chat:
        ask = (
            f"写一篇关于“{task['topic']}”的文章，约{task['words']}字，分几个小节。"
            if zh
            else f"Write a {task['kind'].replace('-', ' ')} about {task['topic']}, about {task['words']} words long, "
            "in several sections with headings."
        )
        prompt: object = [{"role": "user", "content": ask}]
    else:
        prompt = f"# {task['topic']}\n\n"
    room = int(engine.loaded.context_length) - engine.count_tokens(prompt) - 8
    budget = min(max_new, room)
    settings = GenerationSettings(
        max_new_tokens=budget,
        min_new_tokens=int(0.8 * budget) if forced else 0,  # what a user does to get length from one prompt
        temperature=0.7,
        top_p=0.9,
        repetition_penalty=1.15,
        seed=seed,
    )
    return engine.generate([prompt], settings)[0].text


def measure(text: str, plan: dict, similar) -> dict:
    from inkwell.compose.longform import checks

    points = [s["title"] for s in plan["sections"]] + [p for s in plan["sections"] for p in s["points"]]
    return {
        "words": checks.word_count(text),
        "S_l": checks.length_score(checks.word_count(text), plan["words"]),
        "coverage": round(checks.coverage(text, points, similar), 3),
        "repeat4": round(checks.repeated_ngram_rate(text), 4),
        "distinct2": round(checks.distinct_n(text, 2), 4),
    }


def run_tasks(args) -> dict:
    from inkwell.compose.longform import DraftOptions, LongRequest, write_long
    from inkwell.compose.longform.draft import new_tokens
    from inkwell.compose.longform.run import default_similar
    from inkwell.generate.builder import EngineSpec, open_engine

    tasks = [json.loads(line) for line in TASKS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tasks = [t for t in tasks if args.lang in ("all", t["lang"])][:: args.stride][: args.limit or None]
    rows = []
    engines: dict[str, object] = {}
    for task in tasks:
        lang = task["lang"]
        if lang not in engines:
            engines[lang] = open_engine(EngineSpec(MODELS[lang]), lambda m: print(f"  {m}", flush=True))
        engine = engines[lang]
        similar = default_similar(lang)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            request = LongRequest(
                task["kind"], task["topic"], task["words"], lang, options=DraftOptions(candidates=args.candidates)
            )
            piece = write_long(engine, request, Path(tmp) / "piece", similar=similar)
            long_s = time.perf_counter() - t0
            plan = json.loads((Path(tmp) / "piece" / "plan.json").read_text(encoding="utf-8"))
            long_text = "\n\n".join(s["text"] for s in piece["sections"])
        budget = sum(new_tokens(s["words"], lang) for s in plan["sections"])
        row = {"id": task["id"], "lang": lang, "words": task["words"]}
        for system, forced in (("one_shot", False), ("forced", True)):
            t0 = time.perf_counter()
            text = one_shot(engine, task, budget, seed=0, forced=forced)
            row[system] = measure(text, plan, similar) | {"seconds": round(time.perf_counter() - t0, 1)}
        row["long"] = measure(long_text, plan, similar) | {"seconds": round(long_s, 1)}
        rows.append(row)
        print(
            f"{task['id']:6} {task['kind']:11} {task['words']:5}w | "
            + " | ".join(
                f"{system} {m['words']:5}w S_l {m['S_l']:5.1f} cov {m['coverage']:.2f} rep {m['repeat4']:.3f} "
                f"d2 {m['distinct2']:.3f}"
                for system, m in ((s, row[s]) for s in SYSTEMS)
            )
            + f" ({row['long']['seconds']:.0f}s)",
            flush=True,
        )
    for engine in engines.values():
        engine.close()  # type: ignore[attr-defined]
    summary: dict = {}
    for lang in sorted({r["lang"] for r in rows}):
        mine = [r for r in rows if r["lang"] == lang]
        summary[lang] = {"tasks": len(mine), "model": MODELS[lang]}
        for system in SYSTEMS:
            summary[lang][system] = {
                k: round(sum(r[system][k] for r in mine) / len(mine), 4)
                for k in ("words", "S_l", "coverage", "repeat4", "distinct2", "seconds")
            }
        for base in ("one_shot", "forced"):
            summary[lang][f"long_vs_{base}"] = {
                "S_l_higher": sum(r["long"]["S_l"] > r[base]["S_l"] for r in mine),
                "repeat4_lower": sum(r["long"]["repeat4"] < r[base]["repeat4"] for r in mine),
                "repeat4_equal": sum(r["long"]["repeat4"] == r[base]["repeat4"] for r in mine),
            }
    return {"rows": rows, "summary": summary}


def run_one(words: int, candidates: int) -> dict:
    from inkwell.compose.longform import DraftOptions, LongRequest, write_long
    from inkwell.generate.builder import EngineSpec, open_engine

    t0 = time.perf_counter()
    engine = open_engine(EngineSpec(MODELS["en"]), lambda m: print(f"  {m}", flush=True))
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        request = LongRequest("article", "how tides work", words, options=DraftOptions(candidates=candidates))
        piece = write_long(engine, request, Path(tmp) / "piece", say=print)
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "words_target": words,
        "words": piece["words"],
        "S_l": piece["measures"]["length_score"],
        "load_s": round(load_s, 1),
        "write_s": round(seconds, 1),
        "timings": piece["timings"],
        "peak_rss_mib": round(peak),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lang", default="all", choices=["en", "zh", "all"])
    parser.add_argument("--limit", type=int, default=0, help="only the first N tasks")
    parser.add_argument("--stride", type=int, default=1, help="every Nth task (a quicker run over all kinds)")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--one", type=int, default=0, help="time one article of this many words instead")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    print(f"CPU: {cpu_flags()}", flush=True)
    result = run_one(args.one, args.candidates) if args.one else run_tasks(args)
    if not args.one:
        for lang, s in result["summary"].items():
            print(f"\n{lang} ({s['tasks']} tasks, {s['model']}):")
            for system in SYSTEMS:
                m = s[system]
                print(
                    f"  {system:8} words {m['words']:7.1f}  S_l {m['S_l']:5.1f}  coverage {m['coverage']:.3f}  "
                    f"repeat4 {m['repeat4']:.4f}  distinct2 {m['distinct2']:.4f}  {m['seconds']:.0f}s/piece"
                )
            for base in ("one_shot", "forced"):
                v = s[f"long_vs_{base}"]
                print(
                    f"  write long vs {base}: higher S_l in {v['S_l_higher']}/{s['tasks']}, fewer repeats in "
                    f"{v['repeat4_lower']}/{s['tasks']} (equal in {v['repeat4_equal']})"
                )
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(json.dumps(result.get("summary", result), ensure_ascii=False))


if __name__ == "__main__":
    main()
