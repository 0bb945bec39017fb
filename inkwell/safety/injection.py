"""Prompt-injection heuristics for *inputs*: text that tries to overrule the instructions around it.

Patterns run on folded text (lower case, full-width and look-alike letters mapped), so "ＩＧＮＯＲＥ ALL
previous instructions" is caught too. They are deliberately phrase-level: the words "ignore" or "system" alone
are everyday English and must not trip a filter that runs on every request.
"""

from __future__ import annotations

import re

# Phrase patterns that begin at a word start; joined under one `\b` so the regex engine rejects most
# positions with a single character test (one pass instead of one per pattern).
_EN_WORDS = [
    # "ignore all previous instructions", "disregard the above rules", "forget your system prompt"
    r"(?:ignore|disregard|forget|override|bypass|skip)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+|of\s+)*"
    r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system|developer|safety)\s+"
    r"(?:instructions?|prompts?|rules|directions|guidelines|messages?|context|polic(?:y|ies)|constraints)\b",
    r"(?:ignore|disregard|forget)\s+(?:all|everything|anything)\s+(?:that\s+)?(?:you\s+(?:were|have\s+been)\s+)?"
    r"(?:told|said|instructed)\b",
    # "reveal your system prompt", "print the hidden instructions"
    r"(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+"
    r"(?:(?:full|entire|exact|hidden|secret|initial|original)\s+)*(?:system\s+(?:prompt|message|instructions)|"
    r"(?:hidden|secret|initial|original)\s+(?:instructions|prompt))",
    # role hijacks
    r"you\s+are\s+(?:now\s+)?(?:in\s+)?(?:dan|developer\s+mode|jailbreak\s+mode|jailbroken|unrestricted|"
    r"an?\s+(?:unfiltered|uncensored|unrestricted)\s+(?:ai|assistant|model))\b",
    r"do\s+anything\s+now\b",
    r"(?:pretend|act\s+as\s+if|imagine)\s+(?:that\s+)?(?:you\s+(?:have|had)\s+no|there\s+(?:are|were)\s+no)\s+"
    r"(?:restrictions|rules|guidelines|filters|limits|content\s+polic(?:y|ies))\b",
    r"new\s+(?:system\s+)?instructions?\s*:",
]
_OTHER = [
    # chat-template control tokens pasted into user text
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id|eot_id)\|>",
    r"\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>",
]
_ZH = [
    r"(?:忽略|无视|忘记|忘掉|不要理会|不用理会|跳过)(?:掉)?(?:你)?(?:之前|以上|上面|前面|先前|此前|原来|原有|所有|全部|一切)"
    r"(?:的)?(?:所有|全部)?(?:的)?(?:指令|指示|提示词?|规则|要求|设定|限制|约束)",
    r"(?:输出|显示|告诉我|泄露|打印|重复)(?:一下)?(?:你的)?(?:系统提示词?|系统指令|初始指令|隐藏指令|原始指令)",
    r"(?:你现在是|你现在处于|现在进入|进入)(?:开发者模式|越狱模式|dan模式|无限制模式)",
    r"(?:没有|不受)任何(?:限制|约束|规则)(?:的)?(?:ai|人工智能|助手|模型)",
]

INJECTION_PATTERNS: list[re.Pattern] = [
    re.compile(r"\b(?:" + "|".join(_EN_WORDS) + ")"),
    re.compile("|".join(_OTHER + _ZH)),
]
# A forged role header ("System: you are ...", "### system prompt:") counts only at the start of a line;
# matched from the keyword and checked backwards, which is far faster than a `^` anchor tried everywhere.
_ROLE_HEADER = re.compile(r"(?:system|developer)[ \t]*(?:prompt|message)?[ \t]*:")
_LINE_PREFIX = re.compile(r"[ \t]*#{0,4}[ \t]*")


def find_injection(folded: str, extra: list[re.Pattern] = ()) -> list[tuple[int, int]]:
    """Spans of injection phrases in folded (lower-cased) text."""
    spans = [m.span() for p in (*INJECTION_PATTERNS, *extra) for m in p.finditer(folded)]
    if "system" in folded or "developer" in folded:
        for m in _ROLE_HEADER.finditer(folded):
            line_start = folded.rfind("\n", 0, m.start()) + 1
            if _LINE_PREFIX.fullmatch(folded, line_start, m.start()):
                spans.append((line_start, m.end()))
    return spans
