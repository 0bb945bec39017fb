"""Words for the BM25 index. SQLite's FTS5 `unicode61` tokenizer splits on spaces and punctuation, so a run of
Chinese characters (no spaces) would be one huge token and a question would never match a passage. Chinese
is therefore pre-segmented into space-separated words before it is indexed and before it is searched.

Two segmenters, measured on the Debian FAQ in Chinese (benchmarks/bench_knowledge.py: 50 questions, BM25 only):
overlapping character bigrams (软件包 -> 软件 件包) found the answer passage in the top 5 for 40 of 50
questions (recall@1 0.52, MRR 0.64); jieba words (`cut_for_search`, 软件包 -> 软件 软件包) for 38 (recall@1
0.44, MRR 0.57). Bigrams match a phrase however question and passage happen to be cut, where words match only
when a segmenter cuts both the same way; and they need no dictionary. So
bigrams are the default and Inkwell does not depend on jieba; `KnowledgeBase.create(name, segmenter="jieba")`
uses it where it is installed (the benchmark measures both).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from inkwell.errors import InkwellError
from inkwell.knowledge.chunk import has_cjk

SEGMENTERS = ("jieba", "bigram")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RUN = re.compile(f"[{_HAN}]+")
_WORD = re.compile(r"[^\W_]+")  # what FTS5 unicode61 calls a token (underscore separates)

# Words that carry no topic: dropping them from a query keeps an OR query from matching every passage.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves get got use used using want need
    does doesn don t s can't cannot i'm way ways one also may might must shall
    的 了 吗 呢 吧 啊 呀 是 在 我 你 他 她 它 我们 你们 他们 和 与 或 及 一个 什么 怎么 怎样 如何 为什么 哪些 哪个 可以 能 能否
    会 要 有 没有 这 那 这个 那个 这些 那些 就 也 都 还 又 被 把 让 给 对 从 到 为 以 及其 之 其 该 中 上 下 吗 么 呢 个 些 请问""".split()
)


def default_segmenter() -> str:
    return "bigram"  # measured better than jieba on the Debian FAQ (see the module docstring)


@lru_cache(maxsize=1)
def _jieba():
    try:
        import jieba
    except ImportError:
        raise InkwellError(
            "the jieba segmenter is not installed", field="segmenter", hint="pip install jieba, or use bigram"
        ) from None
    jieba.setLogLevel(logging.WARNING)  # it prints "Building prefix dict..." on first use
    jieba.initialize()
    return jieba


def segment(text: str, method: str) -> str:
    """The text with its Chinese runs split into space-separated words (other text unchanged)."""
    if not has_cjk(text):
        return text
    if method == "jieba":
        return " ".join(word for word in _jieba().cut_for_search(text) if word.strip())
    return _HAN_RUN.sub(lambda m: " " + " ".join(_bigrams(m.group(0))) + " ", text)


def _bigrams(run: str) -> list[str]:
    return [run] if len(run) < 2 else [run[i : i + 2] for i in range(len(run) - 1)]


def query_terms(query: str, method: str) -> list[str]:
    """The distinct content words of a query, as the index holds them (case-folded, stopwords dropped)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(segment(query, method).casefold()):
        if word not in STOPWORDS and not (len(word) == 1 and not _HAN_RUN.match(word) and not word.isdigit()):
            seen.setdefault(word)
    return list(seen)


def fts_query(terms: list[str]) -> str | None:
    """An FTS5 MATCH expression: any of the terms, each quoted (so `and`, `or`, `-` are plain words)."""
    return " OR ".join(f'"{term}"' for term in terms) or None
