"""Moderation in the server: the request's inputs before generation, the outputs after (or while streaming).

The serving layer calls these with the state's `Guard` (None: moderation off). A block raises
`ModerationBlocked`, which it answers as 422 (`errors.moderation_blocked`). `flag` and `redact` decisions are
surfaced in the `x-inkwell-moderation` header (`flag:profanity; redact:pii`) and a `moderation` field of the
choice.

Streaming: text cannot be judged before it exists, so each streamed row is screened cumulatively by
`StreamScreen`. Text is released to the client only after a check of everything generated so far passed,
and the end that is still undecided (an unfinished word, and wherever a rule's pattern runs into the end and
may still grow: `+1 555`, `john.smith@exa`, `kill` before `yourself`; `Policy.open_start`) is held back until
more text shows what it is. Ordinary prose is released word by word from the first word; on a block the
serving layer sends an SSE error event and `[DONE]`, and the blocked text is never sent. Intermediate checks
are not audited; the final decision of each row (or the block) is.
"""

from __future__ import annotations

from typing import Any

from inkwell.safety import Guard, ModerationBlocked, ModerationResult
from inkwell.safety.guard import decision_summary
from inkwell.safety.moderate import Finding

HEADER = "x-inkwell-moderation"
CHECK_EVERY = 16  # new characters between two checks of a streamed row (after its first release)
_CJK = 0x2E80  # code points from here on (CJK, kana, hangul) have no spaces between words


def screen_prompts(guard: Guard, prompts: list[str], single: bool) -> tuple[list[str], list[ModerationResult]]:
    """Completion prompts: a redacted copy and the decisions. Raises ModerationBlocked naming the field
    (`prompt` for a `single` string prompt, else `prompt[1]`)."""
    decisions: list[ModerationResult] = []
    out: list[str] = []
    for i, prompt in enumerate(prompts):
        text, results = guard.screen_input_report(prompt, "prompt" if single else f"prompt[{i}]")
        decisions += [r for _, r in results]
        out.append(text)
    return out, decisions


def screen_messages(guard: Guard, prompts: list) -> tuple[list, list[ModerationResult]]:
    """A chat request's one conversation (`[messages]`; only each message's `content` is checked): a redacted
    copy and the decisions. Raises ModerationBlocked naming the field (`messages[0].content`)."""
    decisions: list[ModerationResult] = []
    (messages,) = prompts
    screened = []
    for i, message in enumerate(messages):
        message = dict(message)
        if isinstance(message.get("content"), str):
            message["content"], results = guard.screen_input_report(message["content"], f"messages[{i}].content")
            decisions += [r for _, r in results]
        screened.append(message)
    return [screened], decisions


def screen_fields(guard: Guard, fields: dict) -> tuple[dict, list[ModerationResult]]:
    """Template fields (every string, inside lists and objects too): a redacted copy and the decisions."""
    screened, results = guard.screen_input_report(fields, "fields")
    return screened, [r for _, r in results]


def header_value(decisions: list[ModerationResult]) -> str | None:
    """`flag:self_harm; redact:pii` for the flag and redact decisions (None when everything was allowed)."""
    seen: dict[str, list[str]] = {}
    for result in decisions:
        if result.action in ("flag", "redact"):
            cats = [c for c in result.categories if result.category_actions.get(c) in ("flag", "redact")]
            for cat in cats:
                names = seen.setdefault(result.category_actions[cat], [])
                if cat not in names:
                    names.append(cat)
    parts = [f"{action}:{','.join(seen[action])}" for action in ("redact", "flag") if action in seen]
    return "; ".join(parts) or None


def headers_for(decisions: list[ModerationResult]) -> dict[str, str]:
    value = header_value(decisions)
    return {HEADER: value} if value else {}


def choice_note(result: ModerationResult | None) -> dict[str, Any]:
    """`{"moderation": {...}}` for a choice whose output was flagged or redacted, else `{}`."""
    if result is None or result.action not in ("flag", "redact"):
        return {}
    return {"moderation": decision_summary(result)}


def _word_end(text: str) -> int:
    """Where the text's last complete word ends: an unfinished Latin word at the very end may still grow
    (`ass` → `assembly`), so it is not judged yet. Text ending in CJK characters is complete as it is."""
    k = len(text)
    while k > 0 and text[k - 1].isalnum() and ord(text[k - 1]) < _CJK:
        k -= 1
    return k


class StreamScreen:
    """Cumulative output moderation for the rows of one streamed request.

    `feed(index, delta)` returns the text that may be sent now ("" while held back); `finish(index)` judges the
    whole row (audited) and returns the rest. Both raise ModerationBlocked; `result(index)` is the row's last
    decision. Checks cost a policy match over the row so far, so `due()` says when a check is worth running.
    """

    def __init__(self, guard: Guard, rows: int):
        self.guard = guard
        self.texts = [""] * rows
        self.sent = [0] * rows  # offset in the row's text up to which text was released
        self.checked = [0] * rows
        self.results: list[ModerationResult | None] = [None] * rows

    def add(self, index: int, delta: str) -> None:
        self.texts[index] += delta

    def due(self, index: int) -> bool:
        grown = len(self.texts[index]) - self.checked[index]
        if not self.sent[index]:  # nothing shown yet: check on every new token (time to first token)
            return grown > 0
        return grown >= CHECK_EVERY

    def release(self, index: int) -> str:
        """Check the row so far (not audited unless it blocks) and return what can be sent now."""
        text = self.texts[index]
        self.checked[index] = len(text)
        complete = text[: _word_end(text)]
        result = self.guard.policy.moderate(complete, "output")
        if result.blocked:
            self._block(complete)
        decided = min(len(complete), self.guard.policy.open_start(text, "output"))
        cut = self._cut(text, decided, result.findings, self.sent[index])
        return self._emit(index, cut, result)

    def finish(self, index: int) -> str:
        """The row is complete: judge all of it (audited), return what was still held back."""
        text = self.texts[index]
        result, _ = self.guard.check(text, "output")
        if result.blocked:
            raise ModerationBlocked(result)
        self.results[index] = result
        return self._emit(index, len(text), result)

    def result(self, index: int) -> ModerationResult | None:
        return self.results[index]

    # ------------------------------------------------------------ internals

    def _block(self, text: str):
        result, _ = self.guard.check(text, "output")  # audit the decision that stops the stream
        if not result.blocked:  # cannot differ (same text, same policy); kept for safety
            result = self.guard.policy.moderate(text, "output")
        raise ModerationBlocked(result)

    @staticmethod
    def _cut(text: str, judged: int, findings: list[Finding], sent: int) -> int:
        """How far the text can be released: inside the judged and decided part, at a space unless the text is
        CJK, and never inside a finding."""
        limit = judged
        if limit <= sent:
            return sent
        space = max((i for i in range(sent, limit) if text[i].isspace()), default=-1)
        if space >= 0:
            cut = space + 1
        elif ord(text[limit - 1]) >= _CJK:
            cut = limit
        else:
            return sent
        for f in findings:  # a span that crosses the cut waits until it can be released (redacted) whole
            if f.start < cut < f.end:
                cut = f.start
        return max(cut, sent)

    def _emit(self, index: int, cut: int, result: ModerationResult) -> str:
        start = self.sent[index]
        if cut <= start:
            return ""
        self.sent[index] = cut
        segment = self.texts[index][start:cut]
        redact = [
            f
            for f in result.findings
            if result.category_actions.get(f.category) == "redact" and f.end > start and f.start < cut
        ]
        if not redact:
            return segment
        shifted = [
            Finding(f.type, max(f.start, start) - start, min(f.end, cut) - start, f.text, f.category) for f in redact
        ]
        return self.guard.policy._redact(segment, shifted, result.category_actions, None)
