"""Moderation policies: a YAML file of categories, each with rules and one action.

```yaml
name: my-policy
extends: default            # start from another policy (name or path); omit to replace it entirely
redact_mode: placeholder    # placeholder | mask | hash
disable: [profanity]        # drop inherited categories
categories:
  brand-safety:
    action: flag            # allow | flag | redact | block
    applies_to: [output]    # input and/or output (default both)
    rules:
      - kind: terms         # terms | regex | pii | invisible | injection | classifier
        terms: [competitorco, 竞品公司]
        file: more-terms.txt
```
With `extends`, a category that already exists is merged: its rules are appended (unless `replace: true`)
and `action`, `applies_to`, `description`, `replacement` override the inherited values when given.
The file is validated with pydantic, so a typo names the exact key that is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inkwell.errors import InkwellError
from inkwell.files import read_yaml

Action = Literal["allow", "flag", "redact", "block"]
Direction = Literal["input", "output"]
ACTIONS: tuple[str, ...] = ("allow", "flag", "redact", "block")  # in rising severity
SHIPPED_DIR = Path(__file__).parent / "policies"
DEFAULT_POLICY = SHIPPED_DIR / "default.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TermsRule(_Strict):
    kind: Literal["terms"]
    terms: list[str] = Field(default_factory=list)
    file: str | None = None  # one term per line, relative to the policy file
    lang: str | None = None  # documentation only: en | zh | ...
    type: str = "term"


class RegexRule(_Strict):
    kind: Literal["regex"]
    patterns: list[str]
    normalize: bool = True  # match on folded text (case, full-width and look-alikes undone); false: the raw text
    type: str = "regex"


class PiiRule(_Strict):
    kind: Literal["pii"]
    types: list[str] | None = None  # default: every detector


class InvisibleRule(_Strict):
    kind: Literal["invisible"]
    classes: list[Literal["zero-width", "bidi-control", "tag-character"]] = Field(
        default_factory=lambda: ["zero-width", "bidi-control", "tag-character"]
    )


class InjectionRule(_Strict):
    kind: Literal["injection"]
    extra_patterns: list[str] = Field(default_factory=list)
    type: str = "injection"


class ClassifierRule(_Strict):
    kind: Literal["classifier"]
    model: str  # a sequence-classification model folder (e.g. trained by the `classify` stage)
    labels: list[str]  # which predicted labels count as a hit
    threshold: float = Field(0.5, ge=0, le=1)
    type: str = "classifier"


Rule = Annotated[
    TermsRule | RegexRule | PiiRule | InvisibleRule | InjectionRule | ClassifierRule, Field(discriminator="kind")
]


class CategorySpec(_Strict):
    description: str | None = None
    action: Action | None = None
    applies_to: list[Direction] | None = None
    replacement: str | None = None  # redaction text for this category's findings; "" deletes; {TYPE} allowed
    replace: bool = False  # with `extends`: drop the inherited rules instead of appending
    rules: list[Rule] = Field(default_factory=list)


class PolicySpec(_Strict):
    name: str | None = None
    version: int = 1
    description: str | None = None
    extends: str | None = None
    redact_mode: Literal["placeholder", "mask", "hash"] | None = None
    disable: list[str] = Field(default_factory=list)
    categories: dict[str, CategorySpec] = Field(default_factory=dict)


class ResolvedCategory(BaseModel):
    name: str
    description: str = ""
    action: Action
    applies_to: list[Direction]
    replacement: str | None = None
    rules: list[Rule]
    rule_dirs: list[Path]  # per rule: the folder its relative `file:` / `model:` paths are read from


class ResolvedPolicy(BaseModel):
    name: str
    source: str
    redact_mode: Literal["placeholder", "mask", "hash"] = "placeholder"
    categories: dict[str, ResolvedCategory]


def user_policies_dir() -> Path:
    from inkwell.home import inkwell_home

    return inkwell_home() / "policies"


def user_default_policy() -> Path:
    """INKWELL_HOME/policy.yaml, when present, replaces the shipped default for every command."""
    from inkwell.home import inkwell_home

    return inkwell_home() / "policy.yaml"


def find_policy(spec: str | os.PathLike | None, relative_to: Path | None = None) -> Path:
    """A policy name or path -> the file. None: INKWELL_HOME/policy.yaml, else the shipped default."""
    if spec is None or str(spec) == "":
        user = user_default_policy()
        return user if user.exists() else DEFAULT_POLICY
    text = str(spec)
    candidates = []
    path = Path(text).expanduser()
    if relative_to is not None and not path.is_absolute():
        candidates.append(relative_to / path)
    candidates.append(path)
    if "/" not in text and not text.endswith((".yaml", ".yml")):
        candidates += [user_policies_dir() / f"{text}.yaml", SHIPPED_DIR / f"{text}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    known = sorted(
        {p.stem for folder in (SHIPPED_DIR, user_policies_dir()) if folder.is_dir() for p in folder.glob("*.yaml")}
    )
    raise InkwellError(
        f"moderation policy not found: {text}",
        field="policy",
        hint=f"give a YAML file path or one of: {', '.join(known)}",
    )


def _read_spec(path: Path) -> PolicySpec:
    data = read_yaml(path, field="policy") or {}  # not UTF-8 or not YAML: an error naming file:line
    if not isinstance(data, dict):
        raise InkwellError(f"{path}: a policy file is a mapping with a `categories` key", field="policy")
    try:
        return PolicySpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise InkwellError(
            f"{path}: invalid policy ({problems})", field="policy", hint="see docs/safety.md for the policy format"
        ) from None


def resolve_policy(path: Path, _depth: int = 0) -> ResolvedPolicy:
    """Read a policy file, following `extends`, into one flat list of categories."""
    if _depth > 8:
        raise InkwellError(f"{path}: `extends` goes more than 8 levels deep (a cycle?)", field="policy")
    spec = _read_spec(path)
    if spec.extends:
        base = resolve_policy(find_policy(spec.extends, relative_to=path.parent), _depth + 1)
        categories = {k: v for k, v in base.categories.items() if k not in spec.disable}
        redact_mode = spec.redact_mode or base.redact_mode
    else:
        categories, redact_mode = {}, spec.redact_mode or "placeholder"
    for name, cat in spec.categories.items():
        inherited = categories.get(name)
        if inherited is None:
            if cat.action is None:
                raise InkwellError(
                    f"{path}: category '{name}' has no action",
                    field="policy",
                    hint="add `action: allow | flag | redact | block`",
                )
            categories[name] = ResolvedCategory(
                name=name,
                description=cat.description or "",
                action=cat.action,
                applies_to=cat.applies_to or ["input", "output"],
                replacement=cat.replacement,
                rules=list(cat.rules),
                rule_dirs=[path.parent] * len(cat.rules),
            )
        else:
            keep = [] if cat.replace else list(inherited.rules)
            keep_dirs = [] if cat.replace else list(inherited.rule_dirs)
            categories[name] = inherited.model_copy(
                update={
                    "description": cat.description if cat.description is not None else inherited.description,
                    "action": cat.action or inherited.action,
                    "applies_to": cat.applies_to or inherited.applies_to,
                    "replacement": cat.replacement if cat.replacement is not None else inherited.replacement,
                    "rules": keep + list(cat.rules),
                    "rule_dirs": keep_dirs + [path.parent] * len(cat.rules),
                }
            )
    return ResolvedPolicy(name=spec.name or path.stem, source=str(path), redact_mode=redact_mode, categories=categories)
