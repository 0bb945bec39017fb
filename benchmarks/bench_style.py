"""python benchmarks/bench_style.py --prompts 8 --gen-authors 4 --lora-authors 1 --lora-steps 24

Style profiles and reader matching (inkwell/compose/style.py, rank.py), measured on Debian's `fortunes` and
`fortunes-zh` (BSD; /usr/share/games/fortunes). Printed:

1. calibration: the logistic fit of the style-match score (bias, n-gram weight, embedding weight) on
   same-writer / other-writer pairs of *calibration* writers (English: fortunes authors with 12-24 quotes;
   Chinese: tang300/song100 poets other than the two measured) - the values of style.CALIBRATION;
2. attribution: the accuracy of the score at telling the writers apart on their held-out real quotes (nearest
   profile; English: every author with >= 25 quotes, 20 % held out; Chinese: 杜甫 vs 李白), for the n-gram half,
   the embedding half and the calibrated score, and the mean score of held-out texts against their own writer's
   profile vs the other writers';
3. generation: for `--gen-authors` authors, the held-out quotes' topics as prompts ("Write a short remark about
   TOPIC."), SmolLM2-135M-Instruct outputs with no style, with the style's exemplars as few-shot examples
   (`--style`), and with a style LoRA trained for `--lora-steps` steps (`style learn --train`) for
   `--lora-authors` of them; the mean style-match score against the author's profile (and the share of outputs
   that the author's profile scores above every other profile);
4. ranking: NDCG@5 of `inkwell rank` when each of ten fortunes category files is a reader's interest (its name
   as the keyword, `--liked` of its quotes as liked texts, or both) over a pool of held-out quotes of all ten.

Seeds are fixed. The CPU's flags are printed first; the last line is a JSON object of the figures.
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
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: busy-waiting OpenMP threads starve the peers

FORTUNES = Path("/usr/share/games/fortunes")
CHINESE_FILES = ("tang300", "song100", "chinese")
ZH_POETS = ("杜甫", "李白")  # the two poets with the most poems in tang300
CATEGORIES = ("food", "love", "work", "sports", "education", "computers", "law", "science", "medicine", "pets")
MIN_QUOTES, CALIBRATION_QUOTES = 25, 12  # authors measured / authors the calibration is fitted on
HELD_OUT = 0.2
SEED = 0


def cpu_flags() -> str:
    """The CPU and the flags that decide its speed (inkwell.models.cpu, as every benchmark prints it)."""
    from inkwell.models.cpu import describe

    return describe()


# ---------------------------------------------------------------- data


def english_authors() -> dict[str, list[str]]:
    """Attributed quotes ("... -- Author, source") of every English fortune file, by author, deduplicated."""
    from inkwell.data.fortune_files import read_fortunes

    quotes: dict[str, list[str]] = defaultdict(list)
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or path.name in CHINESE_FILES or not path.is_file():
            continue
        for entry in read_fortunes(path):
            lines = entry.rstrip().split("\n")
            found = re.match(r"^\s*-+\s*(.+?)\s*$", lines[-1]) if len(lines) > 1 else None
            if not found:
                continue
            author = re.split(r",|\(|\[|\"", found.group(1))[0].strip()
            body = re.sub(r"[ \t]+", " ", "\n".join(lines[:-1])).strip()
            if author and 20 <= len(body) <= 600 and body not in quotes[author]:
                quotes[author].append(body)
    return quotes


def chinese_poets() -> dict[str, list[tuple[str, str]]]:
    """(title, poem body) by poet, from tang300 and song100 (colour codes stripped by read_fortunes)."""
    from inkwell.data.fortune_files import read_fortunes

    poems: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name in ("tang300", "song100"):
        for entry in read_fortunes(FORTUNES / name):
            lines = [line.strip() for line in entry.splitlines() if line.strip()]
            title = next((re.sub(r"^题目[:：]|[《》]", "", line) for line in lines[:2]), "")
            author = next((line for line in lines[:3] if line.startswith("作者")), None)
            if author is None:
                continue
            poet = re.split(r"[（(\s]", re.sub(r"^作者[:：]\s*", "", author))[0]
            body = "\n".join(line for line in lines if line is not author and not line.startswith(("题目", "《")))
            if poet and body:
                poems[poet].append((title, body))
    return poems


def split(items: list, rng: random.Random) -> tuple[list, list]:
    """(train, held out): HELD_OUT of the items, at least 5, held out."""
    items = list(items)
    rng.shuffle(items)
    cut = max(5, round(len(items) * HELD_OUT))
    return items[cut:], items[:cut]


# ---------------------------------------------------------------- the score


def fit_calibration(profiles: dict, held: dict, language: str) -> tuple[float, float, float]:
    """Logistic regression (balanced) of same-writer on (n-gram, embedding) similarity over held-out texts x
    profiles: the constants of style.CALIBRATION[language]."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    features, labels = [], []
    for author, texts in held.items():
        for name, profile in profiles.items():
            for match in raw_matches(texts, profile):
                features.append([match[0], match[1] if language == "en" else 0.0])
                labels.append(int(name == author))
    model = LogisticRegression(class_weight="balanced", C=10.0, max_iter=1000).fit(np.array(features), labels)
    return float(model.intercept_[0]), float(model.coef_[0][0]), float(model.coef_[0][1])


_EMBEDDINGS: dict[str, object] = {}


def raw_matches(texts: list[str], profile) -> list[tuple[float, float]]:
    """(n-gram cosine, embedding cosine) of each text against a profile (texts embedded once, cached)."""
    import numpy as np

    from inkwell.compose.style import cosine, ngram_vector
    from inkwell.models.embedder import embed

    out = []
    missing = [t for t in texts if t not in _EMBEDDINGS]
    if profile.embedding is not None and missing:
        for text, vector in zip(missing, embed(missing)):
            _EMBEDDINGS[text] = vector
    for text in texts:
        ngram = cosine(ngram_vector(text), profile.ngrams)
        meaning = float(_EMBEDDINGS[text] @ np.asarray(profile.embedding)) if profile.embedding is not None else 0.0
        out.append((ngram, meaning))
    return out


def attribution(profiles: dict, held: dict, language: str) -> dict:
    """Nearest-profile accuracy of each half and of the calibrated score; mean own vs other scores."""
    from inkwell.compose.style import calibrated

    hits = {"ngram": 0, "embedding": 0, "score": 0}
    own, other, total = [], [], 0
    for author, texts in held.items():
        table = {name: raw_matches(texts, profile) for name, profile in profiles.items()}
        for i in range(len(texts)):
            parts = {name: rows[i] for name, rows in table.items()}
            scores = {
                name: calibrated(ng, em if language == "en" else None, language) for name, (ng, em) in parts.items()
            }
            hits["ngram"] += max(parts, key=lambda n: parts[n][0]) == author
            hits["embedding"] += max(parts, key=lambda n: parts[n][1]) == author
            hits["score"] += max(scores, key=scores.get) == author
            own.append(scores[author])
            other += [s for name, s in scores.items() if name != author]
            total += 1
    result = {k: round(v / total, 3) for k, v in hits.items()}
    result.update(texts=total, writers=len(profiles), own=round(sum(own) / len(own), 3))
    result["other"] = round(sum(other) / len(other), 3)
    return result


def learn(name: str, texts: list, topics: list[str] | None = None):
    from inkwell.compose.style import Sample, learn_profile

    samples = [Sample(t, topics[i] if topics else "") for i, t in enumerate(texts)]
    return learn_profile(name, samples=samples)


# ---------------------------------------------------------------- generation


REMARK = {
    "name": "remark",
    "description": "A short remark on a topic (the benchmark's prompt).",
    "fields": {"topic": {"type": "str", "required": True}},
    "chat": "Write a short remark about {{ topic }}. Reply with the remark only.",
    "completion": {"example": "Topic: {{ topic }}\nRemark: {{ output }}", "stop": ["\nTopic:"]},
}


def generate(engine, template, requests: list[tuple[dict, list]], max_new_tokens: int) -> list[str]:
    """One text per (fields, shots) request, in one batched engine call per shot count."""
    from inkwell.generate.content import prepare, write_many

    rendered, settings = [], None
    for fields, shots in requests:
        prompt, settings = prepare(
            engine,
            template,
            fields,
            shots=shots,
            overrides={"max_new_tokens": max_new_tokens, "temperature": 0.7, "seed": SEED},
        )
        rendered.append(prompt)
    outcomes = write_many(engine, template, rendered, settings)
    return [outcome[0].text.strip() if isinstance(outcome, list) and outcome else "" for outcome in outcomes]


def generation(args, profiles: dict, held: dict, samples: dict, figures: dict) -> None:
    from inkwell.compose.style import nearest_style, style_shots, train_style_lora
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.prompts.template import ContentTemplate

    template = ContentTemplate.model_validate(REMARK)
    authors = sorted(held, key=lambda a: -len(samples[a]))[: args.gen_authors]
    note = lambda m: print(f"  {m}", file=sys.stderr)  # noqa: E731
    requests = {a: [{"topic": topic_of(t)} for t in held[a][: args.prompts]] for a in authors}
    systems: dict[str, dict[str, list[str]]] = {"no style": {}, "--style exemplars": {}}
    started = time.perf_counter()
    engine = open_engine(EngineSpec(args.model), note)
    for a in authors:
        systems["no style"][a] = generate(engine, template, [(f, []) for f in requests[a]], args.max_new_tokens)
        shots = [(f, style_shots(profiles[a], template, f)) for f in requests[a]]
        systems["--style exemplars"][a] = generate(engine, template, shots, args.max_new_tokens)
    engine.close()
    print(f"generation without LoRA: {time.perf_counter() - started:.0f} s")
    if args.lora_authors:
        systems["--style with LoRA"] = {}
        for a in authors[: args.lora_authors]:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as home:
                from inkwell.home import models_dir

                os.environ["INKWELL_MODEL_CACHE"] = str(models_dir())  # the prepared models stay where they are
                os.environ["INKWELL_HOME"] = home  # the LoRA and its rows go to a throwaway home
                from inkwell.compose.style import Sample

                profile = train_style_lora(
                    profiles[a], [Sample(t) for t in samples[a]], steps=args.lora_steps, say=lambda m: None
                )
                # torch: the ONNX path would build (and cache) a merged model per adapter
                engine = open_engine(EngineSpec(args.model, adapter=profile.adapter, backend="torch"), note)
                shots = [(f, style_shots(profiles[a], template, f)) for f in requests[a]]
                systems["--style with LoRA"][a] = generate(engine, template, shots, args.max_new_tokens)
                engine.close()
                profiles[a].adapter = None
            print(f"LoRA for {a}: {args.lora_steps} steps + generation in {time.perf_counter() - started:.0f} s")
    print("\n| system | authors | outputs | mean style match (own profile) | own profile ranked first |")
    print("|---|---|---|---|---|")
    figures["generation"] = {}
    examples = {}
    names = list(profiles)
    for system, outputs in systems.items():
        own, first, count = 0.0, 0, 0
        for a, texts in outputs.items():
            for best, scores in nearest_style(texts, [profiles[n] for n in names]):
                own += scores[names.index(a)]
                first += best == profiles[a].name
                count += 1
            examples.setdefault(a, {})[system] = texts[0]
        row = {
            "authors": len(outputs),
            "outputs": count,
            "mean": round(own / count, 3),
            "first": round(first / count, 3),
        }
        figures["generation"][system] = row
        print(f"| {system} | {row['authors']} | {count} | {row['mean']:.3f} | {row['first']:.2f} |")
    for a, by_system in examples.items():
        print(f"\n{a}, prompt '{requests[a][0]['topic']}':")
        for system, text in by_system.items():
            print(f"  {system}: {' '.join(text.split())[:160]}")


def topic_of(text: str) -> str:
    from inkwell.compose.style import topic_of as topic

    return topic(text, "en")


# ---------------------------------------------------------------- ranking


def ranking(liked_count: int, pool_per_category: int, figures: dict) -> None:
    from inkwell.compose.rank import Candidate, Reader, ndcg_at, rank_candidates
    from inkwell.data.fortune_files import read_fortunes

    rng = random.Random(SEED)
    liked, pool = {}, []
    for category in CATEGORIES:
        quotes = sorted({q for q in read_fortunes(FORTUNES / category) if 20 <= len(q) <= 300})
        rng.shuffle(quotes)
        liked[category] = quotes[:liked_count]
        pool += [
            Candidate(f"{category}:{i}", q) for i, q in enumerate(quotes[liked_count : liked_count + pool_per_category])
        ]
    readers = {
        "keyword": lambda c: Reader(keywords=[c]),
        f"{liked_count} liked texts": lambda c: Reader(liked=liked[c]),
        f"keyword + {liked_count} liked": lambda c: Reader(keywords=[c], liked=liked[c]),
    }
    print("\n| reader (interest = a fortunes file) | NDCG@5 | precision@5 | pool |")
    print("|---|---|---|---|")
    figures["ranking"] = {}
    for label, make in readers.items():
        ndcg, precision = [], []
        for category in CATEGORIES:
            ranked = rank_candidates(make(category), pool)
            relevance = [1.0 if r.id.startswith(category + ":") else 0.0 for r in ranked]
            ndcg.append(ndcg_at(relevance, 5))
            precision.append(sum(relevance[:5]) / 5)
        row = {"ndcg5": round(sum(ndcg) / len(ndcg), 3), "p5": round(sum(precision) / len(precision), 3)}
        figures["ranking"][label] = row
        print(f"| {label} | {row['ndcg5']:.3f} | {row['p5']:.2f} | {len(pool)} quotes, {len(CATEGORIES)} files |")
    print(f"(random order: precision@5 = {1 / len(CATEGORIES):.2f})")
    example = rank_candidates(Reader(keywords=["food"], liked=liked["food"]), pool)[0]
    print(f"example, reader 'food': [{example.id}] {example.score:.3f} {'; '.join(example.reasons)}")


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="Held-out prompts per generating author.")
    parser.add_argument("--gen-authors", type=int, default=4, help="Authors whose style the model writes in.")
    parser.add_argument("--lora-authors", type=int, default=1, help="Of those, how many get a style LoRA (0: none).")
    parser.add_argument("--lora-steps", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--liked", type=int, default=5, help="Liked texts per reader in the ranking test.")
    parser.add_argument("--pool", type=int, default=10, help="Candidates per category in the ranking pool.")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--skip-generation", action="store_true")
    args = parser.parse_args()
    print(cpu_flags())
    from inkwell.compose.style import CALIBRATION

    figures: dict = {"calibration_in_code": CALIBRATION}
    started = time.perf_counter()
    rng = random.Random(SEED)

    # English writers: calibration authors (12-24 quotes) and measured authors (>= 25), disjoint.
    quotes = english_authors()
    measured = {a: q for a, q in quotes.items() if len(q) >= MIN_QUOTES}
    calibrating = {a: q for a, q in quotes.items() if CALIBRATION_QUOTES <= len(q) < MIN_QUOTES}
    halves = {a: split(q, rng) for a, q in {**calibrating, **measured}.items()}
    samples = {a: train for a, (train, _) in halves.items()}
    held = {a: test for a, (_, test) in halves.items()}
    profiles = {a: learn(re.sub(r"[^A-Za-z0-9]+", "-", a).strip("-") or "x", samples[a]) for a in halves}
    print(
        f"english: {len(measured)} measured authors, {len(calibrating)} calibration authors "
        f"({time.perf_counter() - started:.0f} s to learn {len(profiles)} profiles)"
    )

    # Chinese poets: the two measured, the rest (>= 10 poems) for calibration.
    poems = chinese_poets()
    zh_halves = {p: split(v, rng) for p, v in poems.items() if len(v) >= 10}
    zh_profiles = {
        p: learn(f"poet{i}", [b for _, b in tr], [t for t, _ in tr]) for i, (p, (tr, _)) in enumerate(zh_halves.items())
    }
    zh_held = {p: [b for _, b in te] for p, (_, te) in zh_halves.items()}
    print(f"chinese: poets {', '.join(zh_halves)} (measured: {', '.join(ZH_POETS)})")

    fitted = {
        "en": fit_calibration({a: profiles[a] for a in calibrating}, {a: held[a] for a in calibrating}, "en"),
        "zh": fit_calibration(
            {p: zh_profiles[p] for p in zh_halves if p not in ZH_POETS},
            {p: zh_held[p] for p in zh_halves if p not in ZH_POETS},
            "zh",
        ),
    }
    figures["calibration_fitted"] = {k: [round(x, 2) for x in v] for k, v in fitted.items()}
    print(f"calibration fitted (bias, w_ngram, w_embedding): {figures['calibration_fitted']}  in code: {CALIBRATION}")

    en = attribution({a: profiles[a] for a in measured}, {a: held[a] for a in measured}, "en")
    zh = attribution({p: zh_profiles[p] for p in ZH_POETS}, {p: zh_held[p] for p in ZH_POETS}, "zh")
    figures["attribution"] = {"en": en, "zh": zh}
    print(
        "\n| held-out real texts | writers | texts | n-gram only | embedding only | style-match score | "
        "mean score, own writer | mean score, other writers |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| English fortunes authors (>= {MIN_QUOTES} quotes) | {en['writers']} | {en['texts']} | {en['ngram']:.3f} | "
        f"{en['embedding']:.3f} | {en['score']:.3f} | {en['own']:.3f} | {en['other']:.3f} |"
    )
    print(
        f"| Chinese poets {' / '.join(ZH_POETS)} | 2 | {zh['texts']} | {zh['ngram']:.3f} | (not used) | "
        f"{zh['score']:.3f} | {zh['own']:.3f} | {zh['other']:.3f} |"
    )
    print(f"(chance: {1 / en['writers']:.3f} English, 0.5 Chinese)")

    ranking(args.liked, args.pool, figures)
    if not args.skip_generation:
        gen_profiles = {a: profiles[a] for a in measured}
        generation(args, gen_profiles, {a: held[a] for a in measured}, samples, figures)
    figures["seconds"] = round(time.perf_counter() - started)
    print(f"\ntotal {figures['seconds']} s")
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
