"""Tokenising text for metrics that count tokens (distinct-n, repetition, length, memorisation, Chinese ROUGE).

One language-agnostic tokenizer: each CJK character is a token (Chinese has no spaces, and word segmenters
such as jieba are not a dependency), runs of other letters/digits are word tokens, and each punctuation mark
is a token. Text is case-folded, so "The" and "the" count as the same token.
"""

from __future__ import annotations

import re

# CJK unified ideographs (+ extension A, compatibility), kana and hangul: one token per character.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_CJK_CHAR = re.compile(rf"[{_CJK}]")

LANGS = ("auto", "en", "zh")


def tokens(text: str) -> list[str]:
    """Word tokens (CJK: characters), case-folded, punctuation kept as single tokens."""
    return _TOKEN.findall(text.casefold())


def word_tokens(text: str) -> list[str]:
    """Like `tokens` without punctuation: what length statistics and distinct-n count."""
    return _WORD.findall(text.casefold())


def ngrams(items: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]


def cjk_share(texts: list[str]) -> float:
    """Share of non-space characters that are CJK."""
    total = cjk = 0
    for text in texts:
        stripped = "".join(text.split())
        total += len(stripped)
        cjk += len(_CJK_CHAR.findall(stripped))
    return cjk / total if total else 0.0


def detect_lang(texts: list[str]) -> str:
    """'zh' when at least a fifth of the characters are CJK, else 'en'."""
    return "zh" if cjk_share(texts) >= 0.2 else "en"


class CJKRougeTokenizer:
    """For rouge-score: its default tokenizer keeps only [a-z0-9] and so drops every Chinese character."""

    def tokenize(self, text: str) -> list[str]:
        return word_tokens(text)


def join_tokens(items: list[str]) -> str:
    """Tokens back to readable text: a space between two non-CJK tokens, none next to a CJK character."""
    out: list[str] = []
    for i, token in enumerate(items):
        if i and not _CJK_CHAR.match(token) and not _CJK_CHAR.match(items[i - 1]):
            out.append(" ")
        out.append(token)
    return "".join(out)
