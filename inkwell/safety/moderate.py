"""Applying a policy to one text: every category's rules find spans, the strictest action wins.

`Policy.moderate(text, direction)` returns a `ModerationResult`: the action (`allow < flag < redact < block`),
the categories that matched, the findings as `{type, start, end, text}` spans of the original text, and the
text with the spans of `redact` categories replaced. Nothing here touches the database; `guard.py` logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from inkwell.errors import InkwellError
from inkwell.safety.injection import INJECTION_PATTERNS, find_injection
from inkwell.safety.normalize import Folded, fold, invisible_kind, is_invisible
from inkwell.safety.partial import open_start
from inkwell.safety.pii import PII_TYPES, check_types, detect_pii, open_pii_start
from inkwell.safety.policy import (
    ACTIONS,
    ClassifierRule,
    InjectionRule,
    InvisibleRule,
    PiiRule,
    RegexRule,
    ResolvedCategory,
    ResolvedPolicy,
    TermsRule,
    find_policy,
    resolve_policy,
)
from inkwell.safety.redact import redact
from inkwell.safety.terms import compile_terms, read_terms_file

SEVERITY = {action: rank for rank, action in enumerate(ACTIONS)}


@dataclass(frozen=True)
class Finding:
    type: str  # pii type (email, phone, ...), term, regex, injection, zero-width, bidi-control, classifier ...
    start: int  # span in the original text
    end: int
    text: str
    category: str

    def to_dict(self) -> dict:
        return {"type": self.type, "start": self.start, "end": self.end, "text": self.text}


@dataclass
class ModerationResult:
    action: str
    categories: list[str]
    findings: list[Finding]
    text: str  # the text after redaction; the input itself unless the action is `redact`
    policy: str
    direction: str
    category_actions: dict[str, str] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def blocking_categories(self) -> list[str]:
        return [c for c in self.categories if self.category_actions.get(c) == "block"]

    def to_dict(self) -> dict:
        data = {"action": self.action, "categories": self.categories, "findings": [f.to_dict() for f in self.findings]}
        if self.action == "redact":
            data["redacted"] = self.text
        return data

    def describe(self) -> str:
        """One line for people: what happened and which categories caused it."""
        cats = (
            self.blocking_categories
            if self.blocked
            else [c for c in self.categories if self.category_actions.get(c) == self.action]
        )
        names = ", ".join(cats or self.categories)
        verb = {"block": "blocked", "redact": "redacted", "flag": "flagged", "allow": "allowed"}[self.action]
        return f"{self.direction} {verb} by moderation policy '{self.policy}' (category: {names})"


class Matcher(Protocol):
    def find(self, text: str, folded: Folded) -> list[tuple[str, int, int]]: ...

    def open_start(self, text: str, folded: Folded) -> int | None:
        """Where a finding may still be growing at the end of an unfinished text (None: nowhere)."""
        ...


def _open_folded(patterns, folded: Folded) -> int | None:
    start = open_start(patterns, folded.text)
    return None if start is None else folded.span(start, start + 1)[0]


class _TermsMatcher:
    def __init__(self, rule: TermsRule, folder: Path):
        terms = list(rule.terms)
        if rule.file:
            path = Path(rule.file).expanduser()
            path = path if path.is_absolute() else folder / path
            if not path.is_file():
                raise InkwellError(f"terms file not found: {path}", field="policy")
            terms += read_terms_file(path)
        self.type = rule.type
        self.pattern = compile_terms(terms)

    def find(self, text, folded):
        if self.pattern is None:
            return []
        return [(self.type, *folded.span(*m.span())) for m in self.pattern.finditer(folded.text)]

    def open_start(self, text, folded):
        return None if self.pattern is None else _open_folded([self.pattern], folded)


class _RegexMatcher:
    def __init__(self, rule: RegexRule, patterns: list[str], normalize: bool):
        self.type = rule.type
        self.normalize = normalize
        try:
            self.patterns = [re.compile(p, re.IGNORECASE if normalize else 0) for p in patterns]
        except re.error as exc:
            raise InkwellError(f"invalid regular expression in policy: {exc}", field="policy") from None

    def find(self, text, folded):
        hits = []
        for pattern in self.patterns:
            if self.normalize:
                hits += [
                    (self.type, *folded.span(*m.span())) for m in pattern.finditer(folded.text) if m.end() > m.start()
                ]
            else:
                hits += [(self.type, m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start()]
        return hits

    def open_start(self, text, folded):
        return _open_folded(self.patterns, folded) if self.normalize else open_start(self.patterns, text)


class _InjectionMatcher:
    def __init__(self, rule: InjectionRule):
        self.type = rule.type
        try:
            self.extra = [re.compile(p, re.IGNORECASE) for p in rule.extra_patterns]
        except re.error as exc:
            raise InkwellError(f"invalid regular expression in policy: {exc}", field="policy") from None

    def find(self, text, folded):
        return [(self.type, *folded.span(s, e)) for s, e in find_injection(folded.text, self.extra) if e > s]

    def open_start(self, text, folded):
        return _open_folded([*INJECTION_PATTERNS, *self.extra], folded)


class _PiiMatcher:
    def __init__(self, rule: PiiRule):
        self.types = check_types(rule.types)

    def find(self, text, folded):
        return [(m.type, m.start, m.end) for m in detect_pii(text, self.types)]

    def open_start(self, text, folded):
        return open_pii_start(text, self.types)


_JOINERS = {"\u200c", "\u200d"}


class _InvisibleMatcher:
    def __init__(self, rule: InvisibleRule):
        self.classes = set(rule.classes)

    def find(self, text, folded):
        if text.isascii():
            return []
        hits: list[tuple[str, int, int]] = []
        for i, ch in enumerate(text):
            if ch in _JOINERS and 0 < i < len(text) - 1 and not (text[i - 1].isascii() or text[i + 1].isascii()):
                continue  # joiners inside emoji sequences (👩‍💻) and Indic/Persian words are legitimate
            if is_invisible(ch) and invisible_kind(ch) in self.classes:
                kind = invisible_kind(ch)
                if hits and hits[-1][2] == i and hits[-1][0] == kind:  # one finding per run
                    hits[-1] = (kind, hits[-1][1], i + 1)
                else:
                    hits.append((kind, i, i + 1))
        return hits

    def open_start(self, text, folded):
        return None  # one character is one finding: nothing grows


_CLASSIFIERS: dict[str, tuple] = {}


class _ClassifierMatcher:
    """A sequence-classification model (any transformers folder, e.g. from the `classify` stage). Loaded on
    first use so policies without one never import torch."""

    def __init__(self, rule: ClassifierRule, folder: Path):
        path = Path(rule.model).expanduser()
        self.path = path if path.is_absolute() else folder / path
        if not self.path.exists():
            raise InkwellError(
                f"classifier model not found: {self.path}",
                field="policy",
                hint="train one with the classify stage, or remove the classifier rule",
            )
        self.labels = set(rule.labels)
        self.threshold = rule.threshold
        self.type = rule.type

    def _load(self):
        key = str(self.path.resolve())
        if key not in _CLASSIFIERS:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(key)
            model = AutoModelForSequenceClassification.from_pretrained(key)
            model.eval()
            _CLASSIFIERS[key] = (tokenizer, model)
        return _CLASSIFIERS[key]

    def find(self, text, folded):
        import torch

        if not text.strip():
            return []
        tokenizer, model = self._load()
        with torch.no_grad():
            batch = tokenizer([text], return_tensors="pt", truncation=True, max_length=512)
            probs = torch.softmax(model(**batch).logits[0].float(), dim=-1).tolist()
        names = model.config.id2label
        return [
            (self.type, 0, len(text))
            for i, p in enumerate(probs)
            if names.get(i, str(i)) in self.labels and p >= self.threshold
        ]

    def open_start(self, text, folded):
        return None  # judges the whole text, not spans: what was released passed it


def _matcher(rule, folder: Path) -> Matcher:
    if isinstance(rule, TermsRule):
        return _TermsMatcher(rule, folder)
    if isinstance(rule, RegexRule):
        return _RegexMatcher(rule, rule.patterns, rule.normalize)
    if isinstance(rule, InjectionRule):
        return _InjectionMatcher(rule)
    if isinstance(rule, PiiRule):
        return _PiiMatcher(rule)
    if isinstance(rule, InvisibleRule):
        return _InvisibleMatcher(rule)
    if isinstance(rule, ClassifierRule):
        return _ClassifierMatcher(rule, folder)
    raise InkwellError(f"unknown rule kind {rule!r}", field="policy")


@dataclass
class _Category:
    spec: ResolvedCategory
    matchers: list[Matcher]


class Policy:
    """A compiled policy. Build with `load_policy()`; `moderate()` is safe to call from many threads."""

    def __init__(self, resolved: ResolvedPolicy):
        self.resolved = resolved
        self.name = resolved.name
        self.source = resolved.source
        self.redact_mode = resolved.redact_mode
        self.categories = {
            name: _Category(cat, [_matcher(rule, folder) for rule, folder in zip(cat.rules, cat.rule_dirs)])
            for name, cat in resolved.categories.items()
        }

    def moderate(self, text: str, direction: str = "input", *, salt: str | None = None) -> ModerationResult:
        """`direction`: input | output | any (every category regardless of `applies_to`)."""
        if direction not in ("input", "output", "any"):
            raise InkwellError(f"unknown direction '{direction}'", field="direction", hint="use input, output or any")
        folded = fold(text)
        findings: list[Finding] = []
        actions: dict[str, str] = {}
        for name, cat in self.categories.items():
            if direction != "any" and direction not in cat.spec.applies_to:
                continue
            hits = {hit for matcher in cat.matchers for hit in matcher.find(text, folded)}
            if hits:
                actions[name] = cat.spec.action
                findings += [
                    Finding(kind, start, end, text[start:end], name)
                    for kind, start, end in sorted(hits, key=lambda h: (h[1], h[2]))
                ]
        action = max(actions.values(), key=SEVERITY.__getitem__, default="allow")
        categories = sorted(actions, key=lambda c: (-SEVERITY[actions[c]], c))
        findings.sort(key=lambda f: (f.start, f.end, f.type))
        out = text
        if action == "redact":
            out = self._redact(text, findings, actions, salt)
        return ModerationResult(action, categories, findings, out, self.name, direction, actions)

    def open_start(self, text: str, direction: str = "output") -> int:
        """How far an unfinished text (a stream) is decided: the earliest offset where any rule of a category
        for `direction` has a match that runs into the end and may still grow (len(text) when none does)."""
        folded = fold(text)
        starts = [
            start
            for cat in self.categories.values()
            if direction == "any" or direction in cat.spec.applies_to
            for matcher in cat.matchers
            if (start := matcher.open_start(text, folded)) is not None
        ]
        return min(starts, default=len(text))

    def _redact(self, text: str, findings: list[Finding], actions: dict[str, str], salt: str | None) -> str:
        @dataclass
        class _Span:
            type: str
            start: int
            end: int

        spans, templates = [], {}
        for f in findings:
            if actions[f.category] != "redact":
                continue
            cat = self.categories[f.category].spec
            label = f.type if f.type in PII_TYPES else f.category  # [EMAIL], or [PROFANITY] for a term
            if cat.replacement is not None:
                label = f"{f.category}:{f.type}"
                templates[label] = cat.replacement.replace("{TYPE}", f.type.upper()).replace("{type}", f.type)
            spans.append(_Span(label, f.start, f.end))
        return redact(text, spans, self.redact_mode, salt=salt, templates=templates).text

    def summary(self) -> list[dict]:
        return [
            {
                "category": name,
                "action": c.spec.action,
                "applies_to": c.spec.applies_to,
                "rules": [r.kind for r in c.spec.rules],
                "description": c.spec.description,
            }
            for name, c in self.categories.items()
        ]


_POLICIES: dict[tuple[str, float], Policy] = {}


def load_policy(spec: str | Path | None = None) -> Policy:
    """A policy by name or path (None: INKWELL_HOME/policy.yaml if present, else the shipped default).
    Compiled policies are cached by file and modification time, so a server pays the cost once."""
    path = find_policy(spec)
    key = (str(path), path.stat().st_mtime)
    if key not in _POLICIES:
        _POLICIES[key] = Policy(resolve_policy(path))
    return _POLICIES[key]


def moderate(text: str, policy: Policy | str | Path | None = None, direction: str = "input") -> ModerationResult:
    """Moderate one text with a policy (object, name or path)."""
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    return policy.moderate(text, direction)
