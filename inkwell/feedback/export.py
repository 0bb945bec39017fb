"""Creators' feedback in the studio's tables -> training rows the `sft` and `dpo` recipes read as written.

Rules (a rejected piece gives no rows at all):

* SFT, from pieces that are accepted, or edited and not rejected: the target is the piece's current text (the
  latest edit). Chat models (the request is a list of messages):
  `{"messages": request + [{"role": "assistant", "content": text}]}`; base models (the request is a string):
  `{"prompt": request, "completion": text}`.
* DPO `{"prompt": request, "chosen", "rejected"}` from
  (edit)        the edit over the model's original, when they differ;
  (variant)     the piece's current text over each other variant ("swipe") of it, when the creator took a
                position: the piece is accepted or edited, or its chosen variant is not the first one. A draft
                still showing the first of several variants says nothing (the studio writes up to 4 at once);
  (comparison)  a blind comparison's winner over its loser (ties and unjudged ones are skipped);
  (longform)    a long piece's section the writer took (or their edit of it) over each candidate passed over
                beside it (store/longform.py's tree); an edited section is also an SFT row.

Every row also carries `prompt_text` (the exact text the engine saw), `kind` and `piece_id` or
`comparison_id`. The train readers pick a row's format from its keys (inkwell.data.formats.detect_format) and
read only the fields of that format, so these extra keys train as written (tests/feedback check it with the
real readers). The request is kept as the engine took it, so rendering a chat row's prompt messages with the
model's chat template gives `prompt_text` back.

PII (e-mails, phones, cards, secrets, ...) is replaced by placeholders such as `[EMAIL]` in every exported
prompt and text unless `redact=False`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.home import atomic_write
from inkwell.store.studio import StudioData

KINDS = ("edit", "variant", "comparison", "longform")  # where a DPO row comes from


@dataclass
class ExportedRows:
    """The rows of one export and how many came from where."""

    sft: list[dict] = field(default_factory=list)
    dpo: list[dict] = field(default_factory=list)
    # sft, edit, variant, comparison: rows of each kind; pieces / comparisons: read; rejected: pieces skipped
    counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- redaction


def redact_text(text: str) -> str:
    """`text` with every PII finding (inkwell.safety.pii) replaced by its placeholder, e.g. `[EMAIL]`."""
    from inkwell.safety.pii import detect_pii
    from inkwell.safety.redact import redact

    found: list[Any] = detect_pii(text)  # PiiMatch is a frozen SpanLike (its fields read-only)
    return redact(text, found).text if found else text


def redact_request(request: Any) -> Any:
    """A request (chat messages or a prompt string) with PII redacted in every message's content."""
    if isinstance(request, str):
        return redact_text(request)
    return [{**m, "content": redact_text(m["content"])} if isinstance(m.get("content"), str) else m for m in request]


# ---------------------------------------------------------------- which pieces say something


def has_signal(piece: dict) -> bool:
    """Whether the creator took a position on this piece: accepted it, edited it, or picked a variant other
    than the first (the first of a piece is chosen by default). Rejected pieces never count."""
    if piece["status"] == "rejected" or not piece["variants"]:
        return False
    explicit_pick = piece["chosen_variant"] != piece["variants"][0]["id"]
    return piece["status"] == "accepted" or bool(piece["versions"]) or explicit_pick


def usable_pieces(
    data: StudioData, owner: str | None, *, since: float | None = None, template: str | None = None
) -> list[dict]:
    """The pieces that give training rows (see has_signal) and have a non-empty current text, oldest first:
    the pool a training job splits into train and held-out pieces."""
    return [p for p in data.all_pieces(owner, since=since, template=template) if has_signal(p) and p["text"].strip()]


def split_pieces(pieces: Sequence[dict | int], holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(train ids, held-out ids), each sorted. The held-out pieces are the `holdout` share (at least one when
    there are two or more pieces and holdout > 0; never all of them) whose seeded hash of the id is smallest,
    so the split does not depend on the order given and a piece held out once mostly stays held out as new
    pieces arrive (a later job's blind round then never shows a prompt it trained on)."""
    if not 0 <= holdout < 1:
        raise InkwellError(f"holdout {holdout} is outside [0, 1)", field="holdout", hint="e.g. 0.2 holds out a fifth")
    ids = sorted({int(p["id"]) if isinstance(p, dict) else int(p) for p in pieces})
    if holdout == 0 or len(ids) < 2:
        return ids, []
    count = min(len(ids) - 1, max(1, round(len(ids) * holdout)))

    def rank(piece_id: int) -> str:
        return hashlib.sha256(f"{seed}:{piece_id}".encode()).hexdigest()

    held = set(sorted(ids, key=rank)[:count])
    return [i for i in ids if i not in held], sorted(held)


# ---------------------------------------------------------------- rows


def sft_row(request: Any, text: str) -> dict:
    """The SFT row of a request and its target text: messages for chat models, prompt/completion otherwise."""
    if isinstance(request, list):
        return {"messages": [*request, {"role": "assistant", "content": text}]}
    return {"prompt": request, "completion": text}


def export_rows(
    data: StudioData,
    owner: str | None,
    *,
    since: float | None = None,
    template: str | None = None,
    redact: bool = True,
    pieces: list[int] | None = None,
) -> ExportedRows:
    """The SFT and DPO rows of one owner's feedback (owner None: everyone's, for the operator's CLI).
    `since` (unix seconds) and `template` filter pieces and comparisons by when they were made and their
    template; `pieces` limits the piece rows to these ids (comparisons are still all included)."""
    out = ExportedRows()
    counts: Counter[str] = Counter({k: 0 for k in ("sft", *KINDS, "pieces", "comparisons", "rejected")})
    wanted = set(pieces) if pieces is not None else None
    clean = redact_text if redact else _same
    clean_request = redact_request if redact else _same

    for piece in data.all_pieces(owner, since=since, template=template):
        if wanted is not None and piece["id"] not in wanted:
            continue
        counts["pieces"] += 1
        if piece["status"] == "rejected":
            counts["rejected"] += 1
            continue
        if not has_signal(piece):
            continue
        request, prompt_text = clean_request(piece["request"]), clean(piece["prompt"])
        text = clean(piece["text"])
        meta = {"prompt_text": prompt_text, "piece_id": piece["id"]}
        if text.strip() and (piece["status"] == "accepted" or piece["versions"]):
            out.sft.append({**sft_row(request, text), **meta, "kind": "edit" if piece["versions"] else "accepted"})
            counts["sft"] += 1
        if not text.strip():
            continue
        seen: set[str] = set()
        original = clean(piece["original"] or "")
        others = [("edit", original)]
        others += [("variant", clean(v["text"])) for v in piece["variants"] if v["id"] != piece["chosen_variant"]]
        for kind, rejected in others:
            # the DPO reader refuses an empty answer and a pair whose two answers are the same text
            if not rejected.strip() or rejected.strip() == text.strip() or rejected.strip() in seen:
                continue
            seen.add(rejected.strip())
            out.dpo.append({"prompt": request, "chosen": text, "rejected": rejected, **meta, "kind": kind})
            counts[kind] += 1

    for comparison in data.comparisons(owner, pending=False):
        if since is not None and comparison["created_at"] < since:
            continue
        if template and comparison["template"] != template:
            continue
        counts["comparisons"] += 1
        if comparison["winner"] not in ("left", "right"):
            continue  # a tie prefers neither
        won, lost = ("left", "right") if comparison["winner"] == "left" else ("right", "left")
        chosen, rejected = clean(comparison[f"{won}_text"]), clean(comparison[f"{lost}_text"])
        if not chosen.strip() or not rejected.strip() or chosen.strip() == rejected.strip():
            continue
        out.dpo.append(
            {
                "prompt": clean_request(comparison["request"]),
                "chosen": chosen,
                "rejected": rejected,
                "prompt_text": clean(comparison["prompt"]),
                "comparison_id": comparison["id"],
                "kind": "comparison",
            }
        )
        counts["comparison"] += 1
    if template is None:  # long-form sections belong to no template
        _longform_rows(data, owner, since, out, counts, clean, clean_request)
    out.counts = dict(counts)
    return out


def _longform_rows(data: StudioData, owner, since, out: ExportedRows, counts: Counter, clean, clean_request) -> None:
    from inkwell.store.longform import LongformData

    for choice in LongformData(data.store).choices(owner):
        if since is not None and choice["created_at"] < since or not choice["prompt"]:
            continue
        request, text = clean_request(choice["prompt"]), clean(choice["chosen"])
        meta = {"longform_run": choice["run_id"], "node_id": choice["node_id"], "kind": "longform"}
        if choice["edited_from"] is not None and text.strip():
            out.sft.append({**sft_row(request, text), **meta})
            counts["sft"] += 1
        seen: set[str] = set()
        for rejected in map(clean, choice["rejected"]):
            if not rejected.strip() or rejected.strip() == text.strip() or rejected.strip() in seen:
                continue
            seen.add(rejected.strip())
            out.dpo.append({"prompt": request, "chosen": text, "rejected": rejected, **meta})
            counts["longform"] += 1


def _same(value: Any) -> Any:
    return value


# ---------------------------------------------------------------- files


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows as UTF-8 JSON lines, atomically (a temporary file beside `path`, fsync, rename): a reader
    never sees half a file. Returns the number of rows written."""
    count = 0
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
