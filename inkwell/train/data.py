"""Training data readers: files and folders in, checked rows out, with every bad row reported by file:line.

Formats (one JSON object per line in .jsonl; a .json file may hold a list of them), named and detected as
everywhere else by `inkwell.data.formats` (train spells prompt/completion as prompt_completion):

    alpaca             {"instruction": ..., "input": ... (optional), "output": ..., "system": ... (optional)}
    messages           {"messages": [{"role": "system|user|assistant", "content": ...}, ...]}
                       (ShareGPT's {"conversations": [{"from": "human|gpt|system", "value": ...}]} is read too)
    prompt_completion  {"prompt": ..., "completion": ...}          plain text, no chat template
    template           {"fields": {...}, "output": ...} or flat {field: ..., "output": ...}, rendered with an
                       Inkwell template (data.template, or a "template" key on the row)
    text               {"text": ...} lines, or .txt / .md files (one document per file)

`auto` tells the format of each file from the keys of its first row (or its extension for .txt/.md).
A line that is not UTF-8 or not a JSON object, a malformed line, a missing field, an empty response is a
`Problem`: skipped and listed in the report (data.on_error: skip), or a clear error naming file:line and the
field (on_error: error). Nothing here needs a model or a tokenizer, so all of it runs before anything heavy
is loaded.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.data.formats import chat_turns, detect_format, read_jsonl, template_fields, turn_parts
from inkwell.errors import InkwellError
from inkwell.files import NotUTF8, read_text

TEXT_SUFFIXES = (".txt", ".md")
ROW_SUFFIXES = (".jsonl", ".json")
ROLES = ("system", "user", "assistant")
# The data vocabulary's formats -> the row kinds SFT and pretraining read (a text/label row is text to them).
KINDS = {
    "alpaca": "alpaca",
    "messages": "messages",
    "prompt/completion": "prompt_completion",
    "template": "template",
    "text": "text",
    "text/label": "text",
}


@dataclass
class Row:
    """One training example as written in the file, checked and normalised (not yet tokenised)."""

    source: str  # "path:line"
    kind: str  # alpaca | messages | prompt_completion | template | text
    value: dict[str, Any]


@dataclass
class Problem:
    source: str  # "path:line"
    field: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: " + (f"field '{self.field}': " if self.field else "") + self.reason


@dataclass
class DataReport:
    """What was read: files (with sha256), how many rows were kept, and every problem."""

    on_error: str = "skip"
    files: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, source: str, field_name: str | None, reason: str) -> None:
        found = Problem(source, field_name, reason)
        if self.on_error == "error":
            raise InkwellError(
                str(found), field="data", hint="fix that row, or set data.on_error: skip to skip bad rows"
            )
        self.problems.append(found)

    def summary(self, limit: int = 10) -> str:
        rows = sum(f["rows"] for f in self.files)
        lines = [f"data: {rows} rows from {len(self.files)} file(s); skipped {len(self.problems)}"]
        lines += [f"  skipped {p}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more (all listed in inkwell-run.json)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"files": self.files, "skipped": [str(p) for p in self.problems]}


# ---------------------------------------------------------------- finding files


def locate(spec: str, config_dir: Path | None, key: str) -> Path:
    """A relative path is looked up beside the config file first, then in the current folder."""
    path = Path(spec).expanduser()
    candidates = [path] if path.is_absolute() else ([config_dir / path] if config_dir else []) + [Path.cwd() / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise InkwellError(
        f"{key}: file not found: {spec} (looked for {tried})",
        field=key,
        hint="check the path (relative paths start beside the config file); "
        "if the config's header names a command that makes this file, run it first",
    )


def expand(specs: list[str], config_dir: Path | None, key: str) -> list[Path]:
    """Files named in the config; a folder stands for every .jsonl/.json/.txt/.md file under it."""
    files: list[Path] = []
    for spec in specs:
        path = locate(spec, config_dir, key)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in ROW_SUFFIXES + TEXT_SUFFIXES)
            if not found:
                raise InkwellError(f"{key}: folder {path} holds no .jsonl, .json, .txt or .md files", field=key)
            files.extend(found)
        elif path.suffix in ROW_SUFFIXES + TEXT_SUFFIXES:
            files.append(path)
        else:
            raise InkwellError(f"{key}: {path} is not a .jsonl, .json, .txt or .md file", field=key)
    return files


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- reading


def read_rows(
    files: list[Path],
    fmt: str,
    report: DataReport,
    template: str | None = None,
    config_dir: Path | None = None,
    allowed: tuple[str, ...] | None = None,
) -> list[Row]:
    """Read and check every row of every file. `allowed` limits the formats (pretrain: text only)."""
    templates = _TemplateCache(config_dir)
    if template:  # the config's template must exist: one error up front, not one per row
        try:
            templates.get(template)
        except InkwellError as exc:
            raise InkwellError(f"data.template: {exc}", field="data.template") from None
    rows: list[Row] = []
    for path in files:
        kept_before, count = len(rows), 0
        if path.suffix in TEXT_SUFFIXES:
            if fmt not in ("auto", "text"):
                raise InkwellError(
                    f"{path}: a {path.suffix} file is raw text, but data.format is {fmt}",
                    field="data.format",
                    hint="use data.format: text (or auto), or give .jsonl rows",
                )
            count = 1
            text = _whole_text(path, report)
            if text is not None and text.strip():
                rows.append(Row(f"{path}:1", "text", {"text": text}))
            elif text is not None:
                report.problem(f"{path}:1", None, "the file is empty")
        else:
            file_kind = None if fmt == "auto" else fmt
            for source, raw in _json_rows(path, report):
                count += 1
                if raw is None:
                    continue
                kind = file_kind or _detect(raw, template, source, report)
                if kind is None:
                    continue
                file_kind = file_kind or kind  # the first readable row decides the file's format
                if allowed and kind not in allowed:
                    raise InkwellError(
                        f"{source}: this stage reads {' or '.join(allowed)} rows, this file holds {kind} rows",
                        field="data.format",
                    )
                row = _check(kind, raw, source, report, template, templates)
                if row is not None:
                    rows.append(row)
        report.files.append({"path": str(path), "sha256": sha256(path), "rows": count, "kept": len(rows) - kept_before})
    return rows


def _whole_text(path: Path, report: DataReport) -> str | None:
    """A .txt/.md file's text, or None when it is not UTF-8 (reported at the line of the first bad byte)."""
    try:
        return read_text(path, field="data")
    except NotUTF8 as exc:
        report.problem(exc.where, None, exc.reason)
        return None


def _json_rows(path: Path, report: DataReport, shape: str | None = None):
    """(source, row object) per row of a .jsonl/.json file. A line that is not UTF-8, not JSON or not an object
    is reported (skipped, or an error with data.on_error: error) and comes back as (source, None)."""
    for raw in read_jsonl(path, on_error="skip", field="data", what="data file"):
        if raw.record is None:
            if raw.json_type is not None:
                report.problem(
                    raw.where, None, f"expected a JSON object{' with ' + shape if shape else ''}, got {raw.json_type}"
                )
            else:
                report.problem(raw.where, None, raw.error)
        yield raw.where, raw.record


def _detect(raw: dict, template: str | None, source: str, report: DataReport) -> str | None:
    """The row's kind, or None (reported) when it is not one SFT and pretraining read."""
    found = detect_format(raw, template=template)
    if found == "preference":
        report.problem(source, None, "a preference row (prompt, chosen, rejected): train it with stage: dpo")
        return None
    if found is None:
        report.problem(
            source,
            None,
            f"cannot tell the format from the keys {sorted(raw)}; "
            "set data.format (alpaca, messages, prompt_completion, template, text)",
        )
    return KINDS.get(found)


def _text(
    raw: dict, key: str, source: str, report: DataReport, *, required: bool = True, empty_ok: bool = False
) -> str | None:
    """A string field, or a reported problem (None)."""
    if key not in raw or raw[key] is None:
        if required:
            report.problem(source, key, "is missing")
            return None
        return ""
    value = raw[key]
    if not isinstance(value, str):
        report.problem(source, key, f"must be a string, got {type(value).__name__}")
        return None
    if not value.strip() and not empty_ok:
        report.problem(source, key, "is empty")
        return None
    return value


def _check(
    kind: str, raw: dict, source: str, report: DataReport, template: str | None, templates: _TemplateCache
) -> Row | None:
    if kind == "alpaca":
        instruction = _text(raw, "instruction", source, report)
        extra = _text(raw, "input", source, report, required=False, empty_ok=True) if instruction is not None else None
        output = _text(raw, "output", source, report) if extra is not None else None
        system = _text(raw, "system", source, report, required=False, empty_ok=True) if output is not None else None
        if system is None:
            return None
        return Row(
            source,
            kind,
            {
                "instruction": instruction.strip(),
                "input": extra.strip(),
                "output": output.strip(),
                "system": system.strip(),
            },
        )
    if kind == "prompt_completion":
        prompt = _text(raw, "prompt", source, report)
        completion = _text(raw, "completion", source, report) if prompt is not None else None
        return None if completion is None else Row(source, kind, {"prompt": prompt, "completion": completion})
    if kind == "text":
        text = _text(raw, "text", source, report)
        return None if text is None else Row(source, kind, {"text": text})
    if kind == "messages":
        return _check_messages(raw, source, report)
    if kind == "template":
        return _check_template_row(raw, source, report, template, templates)
    raise AssertionError(kind)


def _check_messages(raw: dict, source: str, report: DataReport) -> Row | None:
    key, turns = chat_turns(raw)
    messages = parse_messages(turns, source, key, report)
    if messages is None:
        return None
    answers = [m for m in messages if m["role"] == "assistant"]
    if not answers:
        report.problem(source, key, "has no assistant message to learn from")
        return None
    if any(not m["content"].strip() for m in answers):
        report.problem(source, key, "an assistant message is empty")
        return None
    return Row(source, "messages", {"messages": messages})


def parse_messages(turns: Any, source: str, key: str, report: DataReport) -> list[dict] | None:
    """A non-empty list of {role, content} messages (ShareGPT's {from, value} too), or a reported problem (None)."""
    if not isinstance(turns, list) or not turns:
        report.problem(source, key, "must be a non-empty list of messages")
        return None
    messages = []
    for index, turn in enumerate(turns):
        where = f"{key}[{index}]"
        if not isinstance(turn, dict):
            report.problem(source, where, "must be an object with role and content")
            return None
        role, content = turn_parts(turn)
        if role not in ROLES:
            report.problem(
                source,
                f"{where}.role",
                f"must be one of system, user, assistant, got {turn.get('role', turn.get('from'))!r}",
            )
            return None
        if not isinstance(content, str):
            report.problem(source, f"{where}.content", "must be a string")
            return None
        messages.append({"role": role, "content": content})
    return messages


class _TemplateCache:
    """Templates by name or file, loaded once."""

    def __init__(self, config_dir: Path | None):
        self.config_dir = config_dir
        self.loaded: dict[str, Any] = {}

    def get(self, spec: str):
        from inkwell.prompts.library import get_template

        if spec not in self.loaded:
            is_file = spec.endswith((".yaml", ".yml"))
            if is_file:
                self.loaded[spec] = get_template(template_file=locate(spec, self.config_dir, "data.template"))
            else:
                self.loaded[spec] = get_template(spec)
        return self.loaded[spec]


def _check_template_row(
    raw: dict, source: str, report: DataReport, default: str | None, templates: _TemplateCache
) -> Row | None:
    name = raw.get("template", default)
    if not isinstance(name, str) or not name:
        report.problem(source, "template", 'no template: set data.template or give each row a "template" key')
        return None
    try:
        template = templates.get(name)
    except InkwellError as exc:
        report.problem(source, "template", str(exc).splitlines()[0])
        return None
    output = _text(raw, "output", source, report)
    if output is None:
        return None
    if raw.get("fields") is not None and not isinstance(raw["fields"], dict):
        report.problem(source, "fields", "must be an object of template fields")
        return None
    fields = template_fields(raw)
    try:
        resolved = template.resolve_fields(fields)
    except InkwellError as exc:
        report.problem(source, f"fields.{exc.field}" if exc.field else "fields", str(exc).replace("\n  fix: ", "; "))
        return None
    return Row(source, "template", {"template": template, "fields": resolved, "output": output.strip()})


def read_shaped_rows(files: list[Path], report: DataReport, check, shape: str, key: str = "data.train") -> list[Row]:
    """Rows of one fixed shape (dpo pairs, classify examples): every JSON object goes through
    `check(raw, source, report) -> Row | None`; raw text files are refused (they have no such fields)."""
    rows: list[Row] = []
    for path in files:
        if path.suffix in TEXT_SUFFIXES:
            raise InkwellError(
                f"{key}: {path} is raw text, but this stage reads .jsonl/.json rows of {shape}", field=key
            )
        kept_before, count = len(rows), 0
        for source, raw in _json_rows(path, report, shape):
            count += 1
            if raw is None:
                continue
            row = check(raw, source, report)
            if row is not None:
                rows.append(row)
        report.files.append({"path": str(path), "sha256": sha256(path), "rows": count, "kept": len(rows) - kept_before})
    return rows


def text_field(raw: dict, key: str, source: str, report: DataReport, *, required: bool = True) -> str | None:
    """A non-empty string field, or a reported problem (None): the check every row reader makes."""
    return _text(raw, key, source, report, required=required)


# ---------------------------------------------------------------- splits


def split_off(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Hold out `fraction` of the items (at least one when fraction > 0 and there are two or more), seeded."""
    if fraction <= 0 or len(items) < 2:
        return items, []
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = min(len(items) - 1, max(1, round(len(items) * fraction)))
    held = set(order[:n_val])
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]
