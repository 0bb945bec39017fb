"""Moderation around generation: screen what goes into the model and what comes out, and audit every decision.

Used by `inkwell write` and `inkwell batch` today, and meant for the server:

    from inkwell.safety import Guard, ModerationBlocked, load_policy
    guard = Guard(load_policy(settings.policy), source="serve", store=Store())   # once, at start-up

    try:
        fields = guard.screen_input(request.fields)       # template fields: redacted copy; raises on `block`
        messages = guard.screen_messages(request.messages)  # or chat messages (only `content` is checked)
        ...generate...
        text, decision = guard.screen_output(text)        # redacted text; raises on `block`
    except ModerationBlocked as exc:
        return JSONResponse(exc.to_response(), status_code=exc.status_code)   # 422, names the category

`ModerationBlocked` is an `InkwellError`, so the CLI's error handling turns a blocked *input* into
`error: ...` and exit status 2 without extra code. Every decision, `allow` included, is written to the
store's `moderation_audit` table (text hash only; PII findings are stored as placeholders, not values).
"""

from __future__ import annotations

import hashlib
from typing import Any

from inkwell.errors import InkwellError
from inkwell.safety.moderate import ModerationResult, Policy
from inkwell.safety.pii import PII_TYPES
from inkwell.safety.redact import placeholder


class ModerationBlocked(InkwellError):
    """A text was blocked by the policy. `status_code` is what the API answers with."""

    status_code = 422

    def __init__(self, result: ModerationResult, where: str | None = None):
        self.result = result
        self.categories = result.blocking_categories or result.categories
        self.category = self.categories[0] if self.categories else None
        self.direction = result.direction
        self.where = where
        subject = f"{result.direction} field '{where}'" if where else result.direction
        hint = (
            "rephrase the request"
            if result.direction == "input"
            else "try again with another seed or prompt, or review the policy (--policy)"
        )
        super().__init__(
            f"{subject} blocked by moderation policy '{result.policy}' (category: {', '.join(self.categories)})",
            field=where or result.direction,
            hint=hint,
        )

    def to_response(self) -> dict[str, Any]:
        """The JSON body of the API's 422 answer: OpenAI's error shape (message, type, param, code) plus the
        categories, so existing clients show the message and moderation-aware ones can read the category."""
        return {
            "error": {
                "message": str(self).split("\n")[0],
                "type": "moderation_blocked",
                "param": self.where,
                "code": "content_policy_violation",
                "category": self.category,
                "categories": self.categories,
                "direction": self.direction,
                "policy": self.result.policy,
            }
        }


def audit_findings(result: ModerationResult) -> list[dict]:
    """Findings as stored in the audit table: personal data is replaced by its placeholder, so the audit log
    does not become a second copy of the data it protects."""
    out = []
    for f in result.findings:
        item = f.to_dict()
        if f.type in PII_TYPES:
            item["text"] = placeholder(f.type)
        out.append(item)
    return out


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Guard:
    """A policy bound to a caller (`source`: write | batch | serve | moderate) and, optionally, a store."""

    def __init__(self, policy: Policy, source: str, store=None):
        self.policy = policy
        self.source = source
        self.store = store

    # ---------------------------------------------------------------- one text

    def check(self, text: str, direction: str, generation_id: int | None = None) -> tuple[ModerationResult, int | None]:
        """Moderate and audit one text; returns the result and the audit row id (None without a store)."""
        result = self.policy.moderate(text, direction)
        audit_id = None
        if self.store is not None:
            audit_id = self.store.log_moderation(
                source=self.source,
                direction=direction if direction in ("input", "output") else "input",
                action=result.action,
                categories=result.categories,
                findings=audit_findings(result),
                text_sha256=text_sha256(text),
                policy=self.policy.name,
                generation_id=generation_id,
            )
        return result, audit_id

    def link(self, audit_id: int | None, generation_id: int | None) -> None:
        if self.store is not None and audit_id is not None and generation_id is not None:
            self.store.link_moderation(audit_id, generation_id)

    # ---------------------------------------------------------------- requests and responses

    def screen_input(self, value: Any, where: str | None = None) -> Any:
        """Moderate every string in `value` (a text, or template fields: dicts and lists of them).
        Returns a copy with redactions applied; raises ModerationBlocked naming the field and category."""
        return self.screen_input_report(value, where)[0]

    def screen_input_report(
        self, value: Any, where: str | None = None
    ) -> tuple[Any, list[tuple[str | None, ModerationResult]]]:
        results: list[tuple[str | None, ModerationResult]] = []

        def walk(item: Any, path: str | None) -> Any:
            if isinstance(item, str):
                result, _ = self.check(item, "input")
                results.append((path, result))
                if result.blocked:
                    raise ModerationBlocked(result, path)
                return result.text
            if isinstance(item, dict):
                return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in item.items()}
            if isinstance(item, list):
                return [walk(v, f"{path}[{i}]" if path else f"[{i}]") for i, v in enumerate(item)]
            return item

        return walk(value, where), results

    def screen_messages(self, messages: list[dict]) -> list[dict]:
        """Chat messages (`[{"role", "content"}]`): moderate each string `content`; returns a redacted copy and
        raises ModerationBlocked naming `messages[i].content` and the category."""
        out = []
        for i, message in enumerate(messages):
            message = dict(message)
            if isinstance(message.get("content"), str):
                message["content"] = self.screen_input(message["content"], f"messages[{i}].content")
            out.append(message)
        return out

    def screen_output(self, text: str, generation_id: int | None = None) -> tuple[str, ModerationResult]:
        """Moderate a model output: (text to return, decision). Raises ModerationBlocked on `block`."""
        result, _ = self.check(text, "output", generation_id)
        if result.blocked:
            raise ModerationBlocked(result)
        return result.text, result


def redact_value(value: Any, policy: Policy, direction: str = "output") -> Any:
    """Apply a policy's redactions to every string inside `value` (for parsed JSON of structured outputs)."""
    if isinstance(value, str):
        return policy.moderate(value, direction).text
    if isinstance(value, dict):
        return {k: redact_value(v, policy, direction) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, policy, direction) for v in value]
    return value


def decision_summary(result: ModerationResult) -> dict:
    """What goes into a JSON record under `moderation` (no finding texts: they may be personal data)."""
    return {
        "action": result.action,
        "categories": result.categories,
        "policy": result.policy,
        "findings": [{"type": f.type, "start": f.start, "end": f.end} for f in result.findings],
    }
