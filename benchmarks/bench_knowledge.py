"""python benchmarks/bench_knowledge.py --grounding 20 --max-new-tokens 120 --model smollm2-135m-instruct

Knowledge folders on a real document: the Debian FAQ (apt-get install debian-faq debian-faq-zh-cn), English
chapters (/usr/share/doc/debian/FAQ/*.en.html) and Chinese ones (zh-cn/*.html), each indexed into its own
folder in a temporary INKWELL_HOME. Printed:

1. retrieval: for the 50 questions per language in benchmarks/data/debian-faq-{en,zh}.jsonl (written by hand from
   the FAQ; the answer is identified by a short exact substring of the FAQ text), recall@1/@5 and MRR@10 of
   hybrid (RRF of BM25 and embeddings) vs BM25 only vs embeddings only; for Chinese also the jieba segmenter
   (when installed) against the default character bigrams, and hybrid with the dense half at full weight;
2. the relevance threshold: the best passage's relevance for the FAQ questions vs 20 off-topic shop questions per
   language (benchmarks/data/off-topic.jsonl), and how many of each fall on the right side of
   compose.grounded's MIN_COSINE / MIN_COVERAGE;
3. grounding with the embedded SmolLM2 on the first `--grounding` English questions, written with the
   customer-service-reply template (greedy) with and without the knowledge folder: with it, the share of
   replies whose cited passages contain the answer substring, the share citing anything, the escalations;
   in both runs, the share of replies that contain the answer substring themselves.

The CPU's flags (avx2 / avx512 / amx) are printed first; the last line is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the native engine beside other busy processes (bench_facts)

FAQ = Path("/usr/share/doc/debian/FAQ")
DATA = ROOT / "benchmarks" / "data"


def cpu_flags() -> str:
    """The CPU model and which of the flags that decide speed here it has."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "lscpu unavailable"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    wanted = ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile"]
    have = [f for f in wanted if f in flags]
    return f"{fields.get('Model name', '?').strip()}; {os.cpu_count()} CPUs; flags: {' '.join(have) or 'none'}"


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def ranks(kb, rows: list[dict], mode: str) -> list[int | None]:
    """The rank (1-based, within 10) of the first passage holding each row's answer substring."""
    out = []
    for row in rows:
        hits = kb.search(row["question"], k=10, mode=mode)
        out.append(next((i for i, hit in enumerate(hits, start=1) if row["answer"] in hit.text), None))
    return out


def summary(found: list[int | None]) -> dict:
    n = len(found)
    return {
        "recall@1": round(sum(1 for r in found if r == 1) / n, 3),
        "recall@5": round(sum(1 for r in found if r and r <= 5) / n, 3),
        "mrr@10": round(sum(1 / r for r in found if r) / n, 3),
    }


def build(name: str, files: list[Path], segmenter: str):
    from inkwell.knowledge import KnowledgeBase

    started = time.perf_counter()
    kb = KnowledgeBase.create(name, segmenter=segmenter)
    report = kb.add(files)
    print(f"indexed {name}: {report['added']} files, {report['chunks']} chunks in {time.perf_counter() - started:.1f}s")
    return kb


def retrieval(figures: dict) -> dict:
    import inkwell.knowledge.index as index

    english = sorted(p for p in FAQ.glob("*.en.html") if not p.is_symlink())
    chinese = sorted((FAQ / "zh-cn").glob("*.html"))
    kbs = {"en": build("faq-en", english, "bigram"), "zh": build("faq-zh", chinese, "bigram")}
    questions = {"en": load(DATA / "debian-faq-en.jsonl"), "zh": load(DATA / "debian-faq-zh.jsonl")}
    print("\nretrieval (the answer substring in a retrieved passage)")
    print(f"{'language':<22}{'mode':<10}{'recall@1':>9}{'recall@5':>9}{'mrr@10':>8}")
    table = {}
    for lang in ("en", "zh"):
        for mode in ("hybrid", "bm25", "dense"):
            row = summary(ranks(kbs[lang], questions[lang], mode))
            table[f"{lang}/{mode}"] = row
            print(f"{lang:<22}{mode:<10}{row['recall@1']:>9}{row['recall@5']:>9}{row['mrr@10']:>8}")
    saved = index.CJK_DENSE_WEIGHT
    index.CJK_DENSE_WEIGHT = 1.0
    row = table["zh/hybrid, dense weight 1"] = summary(ranks(kbs["zh"], questions["zh"], "hybrid"))
    index.CJK_DENSE_WEIGHT = saved
    print(f"{'zh, dense weight 1.0':<22}{'hybrid':<10}{row['recall@1']:>9}{row['recall@5']:>9}{row['mrr@10']:>8}")
    try:
        import jieba  # noqa: F401

        jieba_kb = build("faq-zh-jieba", chinese, "jieba")
        row = table["zh-jieba/bm25"] = summary(ranks(jieba_kb, questions["zh"], "bm25"))
        print(f"{'zh, jieba words':<22}{'bm25':<10}{row['recall@1']:>9}{row['recall@5']:>9}{row['mrr@10']:>8}")
    except ImportError:
        print("zh, jieba words: jieba is not installed (pip install jieba to compare)")
    figures["retrieval"] = table
    print(f"(Chinese hybrid uses the dense half at weight {saved}: MiniLM is an English model)")
    return kbs


def threshold(kbs: dict, figures: dict) -> None:
    from inkwell.compose.grounded import MIN_COSINE, MIN_COVERAGE

    off = load(DATA / "off-topic.jsonl")
    print("\nrelevance of the best passage: FAQ questions vs off-topic shop questions")
    out = {}
    for lang, limit in (("en", MIN_COSINE), ("zh", MIN_COVERAGE)):
        kb = kbs[lang]
        inside = [
            max(p.relevance for p in kb.search(r["question"], k=5)) for r in load(DATA / f"debian-faq-{lang}.jsonl")
        ]
        outside = [max([p.relevance for p in kb.search(r["question"], k=5)] or [0]) for r in off if r["lang"] == lang]
        kept = sum(x >= limit for x in inside)
        refused = sum(x < limit for x in outside)
        out[lang] = {
            "threshold": limit,
            "faq_range": [round(min(inside), 3), round(max(inside), 3)],
            "off_topic_range": [round(min(outside), 3), round(max(outside), 3)],
            "faq_kept": f"{kept}/{len(inside)}",
            "off_topic_refused": f"{refused}/{len(outside)}",
        }
        print(
            f"{lang}: threshold {limit}; FAQ {min(inside):.2f}-{max(inside):.2f} ({kept}/{len(inside)} kept); "
            f"off-topic {min(outside):.2f}-{max(outside):.2f} ({refused}/{len(outside)} escalated)"
        )
    figures["threshold"] = out


def grounding(count: int, max_new_tokens: int, model: str, engine_name: str, figures: dict) -> None:
    from inkwell.compose.grounded import ground_write
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.jobs import prepare_write, write_job

    rows = load(DATA / "debian-faq-en.jsonl")[:count]
    started = time.perf_counter()
    engine = open_engine(EngineSpec(model, backend=engine_name), lambda note: print(note, file=sys.stderr))
    print(
        f"\ngrounding: {engine.loaded.name} ({type(engine).__name__}), loaded in {time.perf_counter() - started:.1f}s"
    )
    overrides = {"temperature": 0.0, "max_new_tokens": max_new_tokens, "seed": 0}
    result: dict = {}
    for side in ("without kb", "with kb"):
        contains = cited_any = cited_right = escalated = 0
        started = time.perf_counter()
        for row in rows:
            job = prepare_write(
                "customer-service-reply", None, {"message": row["question"]}, shots=None, overrides=overrides
            )
            if side == "without kb":
                (record,) = write_job(engine, job).records
            else:
                found = ground_write("faq-en", job)
                if found.escalates(job.template):
                    escalated += 1
                    continue  # the unknown_reply: no answer, no citation
                (record,) = write_job(engine, found.apply(engine, job), annotate=found.annotate).records
                cites = record.extra.get("citations") or []
                cited_any += bool(cites)
                cited_right += any(row["answer"] in c["text"] for c in cites)
            contains += row["answer"].lower() in record.text.lower()
        seconds = time.perf_counter() - started
        n = len(rows)
        result[side] = {"questions": n, "answer_in_reply": round(contains / n, 3), "seconds": round(seconds, 1)}
        line = f"{side}: answer substring in the reply {contains}/{n}"
        if side == "with kb":
            result[side].update(
                cited_passage_has_answer=round(cited_right / n, 3),
                cites_any=round(cited_any / n, 3),
                escalated=escalated,
            )
            line += f"; a cited passage holds the answer {cited_right}/{n}; cites anything {cited_any}/{n}"
            line += f"; escalated {escalated}/{n}"
        print(f"{line} ({seconds:.0f}s)", flush=True)
    engine.close()
    figures["grounding"] = result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grounding", type=int, default=20, help="English questions written with SmolLM2 (0: skip)")
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args()
    if not (FAQ / "index.en.html").exists() or not (FAQ / "zh-cn").is_dir():
        sys.exit("the Debian FAQ is not installed: apt-get install debian-faq debian-faq-zh-cn")
    figures: dict = {"cpu": cpu_flags()}
    print(f"cpu: {figures['cpu']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="inkwell-bench-kb-") as home:
        os.environ["INKWELL_HOME"] = home
        os.environ.setdefault("INKWELL_MODEL_CACHE", str(Path.home() / ".cache" / "inkwell" / "models"))
        started = time.perf_counter()
        kbs = retrieval(figures)
        threshold(kbs, figures)
        if args.grounding:
            grounding(args.grounding, args.max_new_tokens, args.model, args.engine, figures)
        figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
