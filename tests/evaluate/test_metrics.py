"""Metric functions: parity with the reference libraries on fixed vectors, and hand-checked values."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from inkwell.errors import InkwellError
from inkwell.evaluate import metrics as M
from inkwell.evaluate.memorisation import CorpusIndex, suffix_array
from inkwell.evaluate.stats import bootstrap_ci, mean_reduce, resample_weights
from inkwell.evaluate.text import detect_lang, word_tokens

PREDS = [
    "The cat sat on the mat.",
    "A quick brown fox jumped over a lazy dog!",
    "Inkwell writes ads, emails and travel guides for small shops.",
    "It is raining cats and dogs today",
    "",
]
REFS = [
    "The cat is sitting on the mat.",
    "The quick brown fox jumps over the lazy dog.",
    "Inkwell writes ads, emails, reviews and travel guides.",
    "Heavy rain is falling today.",
    "Nothing here.",
]
ZH_PREDS = ["床前明月光，疑是地上霜。", "白日依山尽，黄河入海流。", "今天天气很好。"]
ZH_REFS = ["床前明月光，疑是地上霜。举头望明月。", "白日依山尽，黄河流入海。", "今天的天气非常好。"]


def scores_by_name(names, preds, refs, ctx=None):
    return {s.name: s for s in M.compute_metrics(names, preds, refs, ctx or M.MetricContext())}


# ---------------------------------------------------------------- sacrebleu / rouge-score parity


def test_bleu_and_chrf_equal_sacrebleu():
    assert M.corpus_bleu(PREDS, REFS) == pytest.approx(sacrebleu.corpus_bleu(PREDS, [REFS]).score, abs=1e-9)
    assert M.corpus_chrf(PREDS, REFS) == pytest.approx(sacrebleu.corpus_chrf(PREDS, [REFS]).score, abs=1e-9)
    zh = sacrebleu.corpus_bleu(ZH_PREDS, [ZH_REFS], tokenize="zh").score
    assert zh > 0 and M.corpus_bleu(ZH_PREDS, ZH_REFS, lang="zh") == pytest.approx(zh, abs=1e-9)
    got = scores_by_name(["bleu", "chrf"], PREDS, REFS)
    assert got["bleu"].value == pytest.approx(sacrebleu.corpus_bleu(PREDS, [REFS]).score, abs=1e-9)
    assert got["chrf"].value == pytest.approx(sacrebleu.corpus_chrf(PREDS, [REFS]).score, abs=1e-9)
    assert got["bleu"].scale == "0-100"
    # per-example values are sacrebleu's sentence scores
    for pred, ref, value in zip(PREDS, REFS, got["bleu"].per_example):
        assert value == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score, abs=1e-9)
    for pred, ref, value in zip(PREDS, REFS, got["chrf"].per_example):
        assert value == pytest.approx(sacrebleu.sentence_chrf(pred, [ref]).score, abs=1e-9)
    # the bootstrap reduce on the summed statistics gives back the corpus score
    bleu = got["bleu"]
    assert bleu.reduce(bleu.stats.sum(0), len(PREDS)) == pytest.approx(bleu.value)


def test_zh_bleu_uses_the_zh_tokenizer():
    ctx = M.MetricContext(lang="zh")
    got = scores_by_name(["bleu"], ZH_PREDS, ZH_REFS, ctx)
    assert got["bleu"].value == pytest.approx(sacrebleu.corpus_bleu(ZH_PREDS, [ZH_REFS], tokenize="zh").score)
    assert detect_lang(ZH_REFS) == "zh" and detect_lang(REFS) == "en"


def test_rouge_equals_rouge_score_on_english():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    expected = {
        k: np.mean([scorer.score(r, p)[k].fmeasure for p, r in zip(PREDS, REFS)])
        for k in ("rouge1", "rouge2", "rougeL")
    }
    got = M.rouge(PREDS, REFS)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12)
    registry = scores_by_name(["rouge"], PREDS, REFS)
    assert registry["rougeL"].value == pytest.approx(expected["rougeL"]) and registry["rouge1"].scale == "0-1"


def test_rouge_counts_chinese_characters():
    default = rouge_scorer.RougeScorer(["rouge1"]).score(ZH_REFS[0], ZH_PREDS[0])["rouge1"].fmeasure
    assert default == 0.0  # why the Chinese tokenizer exists
    got = M.rouge(ZH_PREDS, ZH_REFS, lang="zh")
    assert 0.5 < got["rouge1"] < 1.0
    assert M.rouge(["今天天气很好"], ["今天天气很好"], lang="zh")["rougeL"] == pytest.approx(1.0)


# ---------------------------------------------------------------- diversity, repetition, length


def test_distinct_and_repetition_by_hand():
    outputs = ["a b a b", "a c"]
    # unigrams: a b a b a c -> 3 unique of 6; bigrams: ab ba ab ac -> 3 unique of 4
    assert M.distinct_n(outputs, 1) == pytest.approx(3 / 6)
    assert M.distinct_n(outputs, 2) == pytest.approx(3 / 4)
    # "a b a b a b": trigrams aba bab aba bab -> 2 unique of 4
    assert M.repeated_ngram_rate("a b a b a b", 3) == pytest.approx(0.5)
    assert M.repeated_ngram_rate("one two three four", 3) == 0.0
    assert M.repeated_ngram_rate("short", 3) == 0.0
    assert word_tokens("Hello, World! 床前明月") == ["hello", "world", "床", "前", "明", "月"]
    lengths = scores_by_name(["length"], ["one two three", "一二"], ["one", "一二三"])
    assert lengths["length_mean"].value == pytest.approx(2.5)
    assert lengths["length_ratio"].value == pytest.approx(5 / 4)


def test_self_bleu_equals_sacrebleu_sentence_bleu_against_the_others():
    outputs = PREDS[:4] + ["The cat sat on the mat again.", "A quick brown fox."]
    got = M.self_bleu_scores(outputs)
    for i, hyp in enumerate(outputs):
        others = outputs[:i] + outputs[i + 1 :]
        assert got[i] == pytest.approx(sacrebleu.sentence_bleu(hyp, others).score, abs=1e-9), hyp
    same = M.self_bleu(["the same output text here"] * 3)
    assert same == pytest.approx(100.0)


# ---------------------------------------------------------------- keywords, JSON, classification


def test_keyword_coverage_and_json_validity():
    assert M.keyword_coverage("Our Bamboo bottle is light", ["bamboo", "light", "steel"]) == pytest.approx(2 / 3)
    assert M.keyword_coverage("anything", []) == 1.0
    schema = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}
    assert M.json_validity('{"title": "x"}', schema) == (True, True)
    assert M.json_validity('Sure! ```json\n{"name": 1}\n```', schema) == (True, False)
    assert M.json_validity("not json", schema) == (False, False)
    assert M.json_validity("[1, 2]") == (True, None)
    ctx = M.MetricContext(schema=schema, keywords=[["title"], ["x", "y"]])
    got = scores_by_name(["json", "keywords"], ['{"title": "x"}', "x"], ["", ""], ctx)
    assert got["json_valid"].value == 0.5 and got["schema_valid"].value == 0.5
    assert got["keyword_coverage"].value == pytest.approx((1 + 0.5) / 2)
    with pytest.raises(InkwellError, match="keywords"):
        M.compute_metrics(["keywords"], ["a"], ["b"], M.MetricContext())


def test_classification_matches_scikit_learn():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    refs = ["positive", "negative", "neutral", "positive", "negative", "positive"]
    preds = ["Positive.", "negative", "I think it is positive", "banana", "neutral", "positive"]
    report = M.classification_report(preds, refs)
    y_pred = ["positive", "negative", "positive", "(other)", "neutral", "positive"]
    assert report["y_pred"] == y_pred
    p, r, f, _ = precision_recall_fscore_support(
        refs, y_pred, labels=sorted(set(refs)), average="macro", zero_division=0
    )
    assert (report["precision"], report["recall"], report["f1"]) == pytest.approx((p, r, f))
    assert report["accuracy"] == pytest.approx(3 / 6)
    labels = sorted(set(refs))
    assert (
        report["confusion_matrix"]
        == confusion_matrix(refs, y_pred, labels=labels + ["(other)"])[: len(labels)].tolist()
    )
    got = scores_by_name(["classification"], preds, refs)
    for name in ("accuracy", "precision", "recall", "f1"):  # the bootstrap reduce agrees with scikit-learn
        score = got[name]
        assert score.reduce(score.stats.sum(0), len(preds)) == pytest.approx(score.value)


# ---------------------------------------------------------------- registry, bootstrap


def test_unknown_metric_and_aliases():
    assert M.resolve_metrics("bleu,ROUGE1,distinct-n") == ["bleu", "rouge", "distinct"]
    assert M.resolve_metrics(None) == M.DEFAULT_SCORE_METRICS
    with pytest.raises(InkwellError, match="unknown metric 'blue'") as info:
        M.resolve_metrics(["blue"])
    assert "bleu" in str(info.value)
    with pytest.raises(InkwellError, match="perplexity"):
        M.compute_metrics(["perplexity"], ["a"], ["b"])


def test_bootstrap_interval_brackets_the_mean_and_is_paired():
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 0.1, 200)
    weights = resample_weights(200, 500, seed=0)
    low, high = bootstrap_ci(values, mean_reduce, weights)
    assert low < values.mean() < high and high - low < 0.05
    assert np.array_equal(weights.matrix(), resample_weights(200, 500, seed=0).matrix())
    big = resample_weights(200, 500, seed=0)
    big._kept = None  # regenerated block by block: the same resamples
    assert bootstrap_ci(values, mean_reduce, big) == (low, high)


# ---------------------------------------------------------------- memorisation


def test_memorisation_finds_a_planted_span_and_nothing_in_unrelated_text():
    corpus = [
        "The lighthouse keeper climbed the spiral stairs every evening to light the great lamp above the sea.",
        "Bamboo bottles are light and sturdy.",
        "静夜思：床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    ]
    index = CorpusIndex.build(corpus)
    planted = "Once upon a time the lighthouse keeper climbed the spiral stairs every evening to light it."
    unrelated = "Quarterly revenue grew because customers preferred subscription pricing over licences."
    spans = index.longest_spans([planted, unrelated, "", "我想起床前明月光，疑是地上霜。"])
    assert (
        spans[0].length == 11
        and spans[0].text == "the lighthouse keeper climbed the spiral stairs every evening to light"
    )
    assert spans[1].length <= 1  # at most a shared common word
    assert spans[2].length == 0
    assert spans[3].length == 10 and spans[3].text == "床前明月光疑是地上霜"
    ctx = M.MetricContext(corpus_index=index, copy_threshold=10)
    got = scores_by_name(["memorisation"], [planted, unrelated], None, ctx)
    assert got["memorised_share"].value == 0.5 and got["copied_span_max"].value == 11


def test_memorisation_equals_brute_force_on_random_text():
    rng = random.Random(3)
    words = [f"w{i}" for i in range(12)]
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40))) for _ in range(15)]
    outputs = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 25))) for _ in range(30)]
    outputs.append(docs[2] + " unseen " + docs[4])
    index = CorpusIndex.build(docs)
    suffixes = [tuple(index.corpus[i:].tolist()) for i in index.sa]
    assert suffixes == sorted(suffixes)
    doc_tokens = [word_tokens(d) for d in docs]

    def brute(text):
        toks, best = word_tokens(text), 0
        for i in range(len(toks)):
            for doc in doc_tokens:
                for j in range(len(doc)):
                    k = 0
                    while i + k < len(toks) and j + k < len(doc) and toks[i + k] == doc[j + k]:
                        k += 1
                    best = max(best, k)
        return best

    assert [s.length for s in index.longest_spans(outputs)] == [brute(o) for o in outputs]
    assert list(suffix_array(np.array([2, 1, 2, 1, 0]))) == [4, 3, 1, 2, 0]


def test_memorisation_index_saves_and_loads(tmp_path):
    index = CorpusIndex.build(["alpha beta gamma delta epsilon"])
    index.save(tmp_path / "index.npz")
    again = CorpusIndex.load(tmp_path / "index.npz")
    assert again.longest_spans(["x beta gamma delta y"])[0].length == 3


# ---------------------------------------------------------------- perplexity


def test_perplexity_equals_exp_mean_nll_on_a_tiny_model(tiny_base_engine):
    import torch

    from inkwell.evaluate.perplexity import encode_for_scoring, perplexity

    model, tok = tiny_base_engine.model, tiny_base_engine.tokenizer
    texts = ["The quick brown fox jumps over the lazy dog.", "Inkwell writes content: ads, emails, reviews."]
    total, count = 0.0, 0
    for text in texts:
        ids, _ = encode_for_scoring(tok, text)
        ids = torch.tensor([ids])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss  # mean NLL over the n-1 predicted tokens
        total += float(loss) * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    result = perplexity(tiny_base_engine, tok, texts)
    assert result.tokens == count
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)

    # longer than the window: every token still scored exactly once, and the value stays close
    long_text = " ".join(texts * 6)
    full = perplexity(tiny_base_engine, tok, [long_text])
    windowed = perplexity(tiny_base_engine, tok, [long_text], max_length=32, stride=16)
    assert windowed.tokens == full.tokens
    assert windowed.perplexity == pytest.approx(full.perplexity, rel=0.2)

    # a context is fed but not scored
    conditioned = perplexity(tiny_base_engine, tok, [" jumps over the lazy dog."], contexts=["The quick brown fox"])
    target = tok(" jumps over the lazy dog.", add_special_tokens=False)["input_ids"]
    assert conditioned.tokens == len(target)


# ---------------------------------------------------------------- semantic similarity (loads all-MiniLM-L6-v2)


def test_semantic_similarity_ranks_a_paraphrase_above_unrelated_text():
    from inkwell.models.embedder import similarity

    close, far = similarity(
        ["A man is playing a guitar.", "The stock market fell sharply today."],
        ["Someone plays the guitar.", "Someone plays the guitar."],
    )
    assert close > 0.6 and far < 0.3 and close > far
