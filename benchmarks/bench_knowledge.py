"""python benchmarks/bench_knowledge.py --grounding 20 --zh-grounding 20 --max-new-tokens 120 --save replies.jsonl

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
3. the quote fallback on all 50 questions per language: the best passage's key sentences holding the answer;
4. grounded answers: the first `--grounding` English questions written by SmolLM2-135M-Instruct and the first
   `--zh-grounding` Chinese ones by gemma3-270m (a base model), through customer-service-reply, once per variant of
   VARIANTS (no folder; 5 or 2 or 1 passages; before the request or right before the question; whole passages or
   their key sentences; a worked example; greedy, one sample, best of 4 samples by supported sentences). Per
   variant: replies holding the answer phrase (strict: the exact phrase; loose: half its content words, Chinese
   bigrams), replies whose cited passage (the model's or an attributed citation) holds it, sentences supported,
   the quote fallback (offered when no sentence is supported) and the answer as written by default (the quote where one
   was offered, else the reply; --no-quote keeps the reply);
5. the attribution thresholds (compose/attribution.py): on the hand-labelled sentences of
   benchmarks/data/attribution-labels.jsonl, how many each rule attributes and how many of those are right; on
   the replies, the share of checked sentences attributed, written without the passages (they never saw them)
   and with them.

The CPU's flags (avx2 / avx512 / amx) are printed first; the last line is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
    """The CPU and the flags that decide its speed (inkwell.models.cpu)."""
    from inkwell.models.cpu import describe

    return describe()


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


def retrieval(figures: dict, measure: bool = True) -> dict:
    import inkwell.knowledge.index as index

    english = sorted(p for p in FAQ.glob("*.en.html") if not p.is_symlink())
    chinese = sorted((FAQ / "zh-cn").glob("*.html"))
    kbs = {"en": build("faq-en", english, "bigram"), "zh": build("faq-zh", chinese, "bigram")}
    if not measure:
        return kbs
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


def quotes(kbs: dict, figures: dict) -> None:
    """The quote fallback on all 50 questions per language: does the best passage's key sentences (what replaces
    a reply no passage supports) hold the answer phrase? With one, two (the default) or three sentences."""
    from inkwell.compose.attribution import quote

    print("\nquote fallback: the answer phrase in the best passage's key sentences")
    out = {}
    for lang, kb in kbs.items():
        rows = load(DATA / f"debian-faq-{lang}.jsonl")
        hits = [kb.search(row["question"], k=5) for row in rows]
        first = sum(row["answer"] in hit[0].text for row, hit in zip(rows, hits))
        line = []
        for count in (1, 2, 3):
            found = [quote(hit, row["question"], count) for row, hit in zip(rows, hits)]
            held = sum(q is not None and row["answer"] in q.text for row, q in zip(rows, found))
            out[f"{lang}/{count}"] = f"{held}/{len(rows)}"
            line.append(f"{count} sentence(s) {held}/{len(rows)}")
        print(f"{lang}: " + "; ".join(line) + f" (the best passage holds it for {first}/{len(rows)})")
    figures["quote"] = out


def loose_hit(answer: str, reply: str) -> bool:
    """At least half of the answer phrase's content words (Chinese: character bigrams) are in the reply."""
    from inkwell.compose.attribution import terms

    wanted = terms(answer)
    return bool(wanted) and len(wanted & terms(reply)) >= len(wanted) / 2


def plain(text: str) -> str:
    """The reply without citations (so an inserted [n] never splits an answer phrase), case-folded."""
    return re.sub(r"\s?\[\d{1,3}(?:\s*[,，;]\s*\d{1,3})*\]", "", text).casefold()


SAMPLED = 0.5  # customer-service-reply's own temperature: best-of candidates are sampled at it
# (name, PromptStyle arguments or None: written without the knowledge folder, candidates: 0 greedy, 1 one sample
# at SAMPLED, k > 1 the best of k samples by supported sentences)
VARIANTS = {
    "en": [
        ("no kb", None, 0),
        ("5 passages before the request (the first version)", dict(passages=5, example=False, near_question=False), 0),
        ("2 passages before the request", dict(passages=2, example=False, near_question=False), 0),
        ("2 passages before the question", dict(passages=2, example=False, near_question=True), 0),
        ("1 passage before the question", dict(passages=1, example=False, near_question=True), 0),
        ("2 before the question + worked example", dict(passages=2, example=True, near_question=True), 0),
        ("2 as key sentences, before the question", dict(passages=2, near_question=True, excerpt=3), 0),
        ("2 as key sentences + worked example", dict(passages=2, example=True, near_question=True, excerpt=3), 0),
        ("2 before the question, 1 sample", dict(passages=2, example=False, near_question=True), 1),
        ("2 before the question, best of 4 samples", dict(passages=2, example=False, near_question=True), 4),
    ],
    "zh": [  # gemma3-270m is a base model: passages (and the example) go before the template's header
        ("no kb", None, 0),
        ("5 passages (the first version)", dict(passages=5, example=False, near_question=False), 0),
        ("2 passages", dict(passages=2, example=False, near_question=False), 0),
        ("2 passages + worked example", dict(passages=2, example=True, near_question=False), 0),
        ("2 as key sentences", dict(passages=2, near_question=False, excerpt=3), 0),
        ("2 passages, 1 sample", dict(passages=2, example=False, near_question=False), 1),
        ("2 passages, best of 4 samples", dict(passages=2, example=False, near_question=False), 4),
    ],
}


def grounding(
    lang: str, count: int, max_new_tokens: int, model: str, engine_name: str, figures: dict, only: set | None
) -> list[dict]:
    """Each variant of VARIANTS[lang] on the first `count` questions: the reply (greedy; best-of candidates
    sampled) as `inkwell write customer-service-reply [--kb]` writes it, with post-hoc attribution."""
    from inkwell.compose.attribution import attribute, quote
    from inkwell.compose.grounded import PromptStyle, ground_write
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.jobs import prepare_write, write_job
    from inkwell.models.embedder import embed

    rows = load(DATA / f"debian-faq-{lang}.jsonl")[:count]
    kb = f"faq-{lang}"
    started = time.perf_counter()
    engine = open_engine(EngineSpec(model, backend=engine_name), lambda note: print(note, file=sys.stderr))
    print(
        f"\ngrounding ({lang}): {engine.loaded.name} ({type(engine).__name__}), loaded in "
        f"{time.perf_counter() - started:.1f}s; {len(rows)} questions, greedy, {max_new_tokens} new tokens",
        flush=True,
    )
    greedy = {"temperature": 0.0, "max_new_tokens": max_new_tokens, "seed": 0}
    sampled = {"temperature": SAMPLED, "max_new_tokens": max_new_tokens, "seed": 0}
    result: dict = {}
    replies: list[dict] = []
    for name, style, candidates in VARIANTS[lang]:
        if only is not None and name not in only:
            continue
        tally = dict.fromkeys(
            ["strict", "loose", "model_cites", "cites", "cited_right", "passages_right", "escalated", "offered",
             "quote_strict", "quote_loose", "final_strict", "final_loose", "sentences", "supported"], 0
        )  # fmt: skip
        started = time.perf_counter()
        for row in rows:
            overrides = dict(sampled if candidates else greedy)
            if candidates > 1:
                overrides["num_return_sequences"] = candidates  # written together; the best kept (choose)
            job = prepare_write(
                "customer-service-reply", None, {"message": row["question"]}, shots=None, overrides=overrides
            )
            answer = row["answer"].casefold()
            found = ground_write(kb, job)
            found.style = PromptStyle(**style) if style is not None else PromptStyle()
            found.quote = "offer"  # the model's own reply is measured; "as written" below is what the default writes
            if style is None:
                (record,) = write_job(engine, job).records
                passages = found.passages[: found.style.passages]  # what the default would have shown
                support = attribute(record.text, passages, found.query, embed=embed)
                extra = {"support": support.to_json()}
                offered = None  # no folder, no quote: the reply is the answer
            elif found.escalates(job.template):
                tally["escalated"] += 1
                continue  # the unknown_reply: no answer, no citation
            else:
                choose = {"choose": found.best_of(candidates)} if candidates > 1 else {}
                (record,) = write_job(engine, found.apply(engine, job), annotate=found.annotate, **choose).records
                extra = record.extra
                passages = found.passages
                cites = extra.get("citations") or []
                tally["model_cites"] += any(c["how"] == "model" for c in cites)
                tally["cites"] += bool(cites)
                tally["cited_right"] += any(row["answer"] in c["text"] for c in cites)
                offered = quote(passages, found.query) if "quote" in extra else None
            tally["passages_right"] += any(row["answer"] in p.text for p in passages)
            text = plain(record.text)
            strict, loose = answer in text, loose_hit(answer, text)
            tally["strict"] += strict
            tally["loose"] += loose
            tally["sentences"] += extra["support"]["checked"]
            tally["supported"] += extra["support"]["supported"]
            final_strict, final_loose = strict, loose
            if offered is not None:
                tally["offered"] += 1
                quoted = plain(offered.text)
                tally["quote_strict"] += answer in quoted
                tally["quote_loose"] += loose_hit(answer, quoted)
                final_strict, final_loose = answer in quoted, loose_hit(answer, quoted)
            tally["final_strict"] += final_strict
            tally["final_loose"] += final_loose
            replies.append(
                {
                    "lang": lang,
                    "variant": name,
                    "question": row["question"],
                    "answer": row["answer"],
                    "query": found.query,
                    "text": record.text,
                    "passages": [p.to_json() for p in passages],
                    "support": extra["support"],
                    "quote": offered.text if offered is not None else None,
                }
            )
        n = len(rows)
        seconds = time.perf_counter() - started
        result[name] = {"questions": n, **tally, "seconds": round(seconds, 1)}
        print(
            f"{name}: answer phrase in the reply {tally['strict']}/{n} (loose {tally['loose']}/{n}); "
            f"a cited passage holds it {tally['cited_right']}/{n} (model-written citation in {tally['model_cites']}/{n}, "
            f"any citation {tally['cites']}/{n}); the passages shown hold it {tally['passages_right']}/{n}; "
            f"sentences supported {tally['supported']}/{tally['sentences']}; quote offered {tally['offered']}/{n}, "
            f"holding the answer {tally['quote_strict']} (loose {tally['quote_loose']}); as written (quote default) "
            f"holds it {tally['final_strict']}/{n} (loose {tally['final_loose']}/{n}); escalated {tally['escalated']} "
            f"({seconds:.0f}s)",
            flush=True,
        )
    engine.close()
    figures[f"grounding_{lang}"] = result
    return replies


def calibration(replies: list[dict], figures: dict) -> None:
    """compose/attribution.py's thresholds. (a) The hand-labelled sentences of benchmarks/data/attribution-labels.jsonl
    (63 sentences written with passages that share at least 40% of their words with one; `supported`: the passage
    states what the sentence says): how many each rule attributes, and how many of those are right. (b) Replies
    written without the passages (they never saw them: an attribution is at best a coincidence) and with them:
    the share of checked sentences each rule attributes. English with and without the MiniLM check; Chinese on
    words alone (MiniLM is an English model)."""
    from inkwell.compose.attribution import attribute
    from inkwell.knowledge import Passage
    from inkwell.models.embedder import embed

    rules = {
        "en": [("words 0.4", {"min_lexical": 0.4}), ("words 0.5", {"min_lexical": 0.5}),
               ("words 0.6", {"min_lexical": 0.6})]
        + [(f"words {w} + MiniLM {c}", {"min_support": w, "min_similarity": c, "embed": embed, "min_lexical": 2.0})
           for w in (0.4, 0.5, 0.6) for c in (0.6, 0.7, 0.75, 0.8)],
        "zh": [(f"words {w}", {"min_lexical": w}) for w in (0.4, 0.5, 0.6, 0.7, 0.8)],
    }  # fmt: skip
    labels = load(DATA / "attribution-labels.jsonl")
    out: dict = {}
    print("\nattribution rules on the hand-labelled sentences: attributed (right) of the labelled, right ones")
    for lang, cases in rules.items():
        mine = [x for x in labels if x["lang"] == lang]
        right_total = sum(x["supported"] for x in mine)
        for name, rule in cases:
            took = right = 0
            for x in mine:
                passage = Passage(x["passage"], "", 0, len(x["passage"]), x["heading"], "", 0.0, "", 0.0)
                if attribute(x["sentence"], [passage], x["query"], **rule).supported:
                    took += 1
                    right += x["supported"]
            out[f"labels/{lang}/{name}"] = {"attributed": took, "right": right, "labelled_right": right_total}
            print(f"{lang} {name}: {took} attributed, {right} right (of {right_total} right in {len(mine)})")
    print("\nattribution rules on the replies: checked sentences attributed, without and with the passages")
    for lang, cases in rules.items():
        for side in ("without kb", "with kb"):
            picked = [r for r in replies if r["lang"] == lang and (r["variant"] == "no kb") == (side == "without kb")]
            if not picked:
                continue
            line = []
            for name, rule in cases:
                checked = attributed = 0
                for r in picked:
                    passages = [Passage(**p) for p in r["passages"]]
                    text = plain(r["text"]) if side == "with kb" else r["text"]  # our own [n] out: attribute again
                    found = attribute(text, passages, r["query"], **rule)
                    checked += len(found.sentences)
                    attributed += sum(s.how == "attributed" for s in found.sentences)
                out[f"replies/{lang}/{side}/{name}"] = f"{attributed}/{checked}"
                line.append(f"{name}: {attributed}/{checked}")
            print(f"{lang} {side} ({len(picked)} replies): " + "; ".join(line), flush=True)
    figures["attribution"] = out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grounding", type=int, default=20, help="English questions written with SmolLM2 (0: skip)")
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--engine", default="auto")
    parser.add_argument(
        "--zh-grounding", type=int, default=20, help="Chinese questions written with --zh-model (0: skip)"
    )
    parser.add_argument("--zh-model", default="gemma3-270m")
    parser.add_argument("--variants", help="only these variants (comma-separated names, as printed)")
    parser.add_argument("--skip-retrieval", action="store_true", help="index, but measure only the grounding")
    parser.add_argument("--save", type=Path, help="write every reply (with its passages and support) to this JSONL")
    parser.add_argument("--calibrate", type=Path, help="only the attribution thresholds, on replies saved by --save")
    parser.add_argument("--home", type=Path, help="keep the indexes in this INKWELL_HOME (reused when run again)")
    args = parser.parse_args()
    only = set(args.variants.split(",")) if args.variants else None
    if args.calibrate is not None:
        calibration(load(args.calibrate), {})
        return
    if not (FAQ / "index.en.html").exists() or not (FAQ / "zh-cn").is_dir():
        sys.exit("the Debian FAQ is not installed: apt-get install debian-faq debian-faq-zh-cn")
    figures: dict = {"cpu": cpu_flags()}
    print(f"cpu: {figures['cpu']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="inkwell-bench-kb-") as temporary:
        os.environ["INKWELL_HOME"] = str(args.home or temporary)
        os.environ.setdefault("INKWELL_MODEL_CACHE", str(Path.home() / ".cache" / "inkwell" / "models"))
        started = time.perf_counter()
        kbs = retrieval(figures, measure=not args.skip_retrieval)
        if not args.skip_retrieval:
            threshold(kbs, figures)
            quotes(kbs, figures)
        replies = []
        if args.grounding:
            replies += grounding("en", args.grounding, args.max_new_tokens, args.model, args.engine, figures, only)
        if args.zh_grounding:
            replies += grounding(
                "zh", args.zh_grounding, args.max_new_tokens, args.zh_model, args.engine, figures, only
            )
        if replies:
            calibration(replies, figures)
        if args.save is not None:
            args.save.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in replies), encoding="utf-8")
        figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
