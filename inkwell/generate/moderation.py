"""Moderation of template writing (`inkwell write`, `inkwell batch`): each written version is checked before
anyone sees it. Redactions apply to the text and to its parsed JSON, flags are noted, blocked versions are held
back (write) or become failed rows naming the category (batch). The server screens its streams itself
(serve/moderation.py)."""

from __future__ import annotations

from collections.abc import Callable

from inkwell.generate.batch import InputRow
from inkwell.generate.content import ContentResult
from inkwell.safety import Guard, ModerationResult
from inkwell.safety.guard import decision_summary, redact_value


def moderate_versions(
    guard: Guard, results: list[ContentResult], warnings: list[str]
) -> tuple[list[ContentResult], list[ModerationResult]]:
    """(versions to show, decisions that blocked the others). Kept versions are redacted in place and carry
    what moderation decided (`moderation`) and their audit row (`moderation_audit_id`); a flag adds a
    warning for the user."""
    kept, blocked = [], []
    for item in results:
        decision, item.moderation_audit_id = guard.check(item.text, "output")
        if decision.blocked:
            blocked.append(decision)
            continue
        if decision.action == "redact":
            item.text = decision.text
            if item.data is not None:
                item.data = redact_value(item.data, guard.policy)
        if decision.action == "flag":
            warnings.append(decision.describe())
        if decision.action != "allow":
            item.moderation = decision_summary(decision)
        kept.append(item)
    return kept, blocked


def batch_hooks(guard: Guard, say: Callable[[str], None]) -> dict:
    """`run_batch`'s hooks: screen each row's fields before it runs (a blocked row is reported and not run)
    and each output record before it is written (a blocked one becomes a failed row naming the category;
    redactions are what is written)."""

    def screen_input(row: InputRow) -> dict:
        return guard.screen_input(row.fields or {})  # raises ModerationBlocked naming the field and category

    def screen_output(record: dict) -> dict:
        decision, _ = guard.check(record["text"], "output")
        if decision.blocked:
            reason = decision.describe()
            say(f"blocked output for id {record['id']}: {reason}")
            record = {k: v for k, v in record.items() if k not in ("text", "data")}
            return {**record, "error": reason, "moderation": decision_summary(decision)}
        if decision.action == "redact":
            record = {**record, "text": decision.text}
            if "data" in record:
                record["data"] = redact_value(record["data"], guard.policy)
        if decision.action != "allow":
            record = {**record, "moderation": decision_summary(decision)}
        return record

    return {"screen_input": screen_input, "screen_output": screen_output}
