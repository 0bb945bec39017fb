"""Reading evaluation inputs: the eval rows (`--data`), `--system` specs, and prediction / reference files
for `inkwell score`. Every error names the file, line, column or system it is about."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.data import formats
from inkwell.data.formats import read_jsonl
from inkwell.errors import InkwellError

SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class EvalRow:
    id: str
    line: int
    reference: str
    prompt: str | None = None  # the `prompt` column (no template)
    fields: dict[str, Any] = field(default_factory=dict)  # template fields (with --template)
    keywords: list[str] | None = None

    def display_prompt(self) -> str:
        if self.prompt is not None:
            return self.prompt
        return ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}" for k, v in self.fields.items()
        )


def _json_lines(path: Path, what: str, field_name: str):
    """(line, object) per row; the first bad line (not UTF-8, not JSON, not an object) is an error naming it."""
    for row in read_jsonl(path, on_error="raise", field=field_name, what=f"{what} file"):
        yield row.line, row.record


def parse_keywords(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def read_eval_rows(
    path: str | Path,
    *,
    ref_field: str = "reference",
    template_fields: list[str] | None = None,
    keywords_field: str = "keywords",
) -> list[EvalRow]:
    """Rows of the eval set. With a template (`template_fields` = its field names) each row's template
    fields are taken (flat, or nested under `fields`); without one each row needs a `prompt`."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        raise InkwellError(f"eval data must be JSONL (one JSON object per line), got {path}", field="data")
    rows: list[EvalRow] = []
    seen: dict[str, int] = {}
    for number, record in _json_lines(path, "eval data", "data"):
        if ref_field not in record or record[ref_field] is None:
            raise InkwellError(
                f"{path}:{number}: no '{ref_field}' column (the reference output to compare with)",
                field=ref_field,
                hint="add it to every row, or name the column with --ref-field",
            )
        reference = record[ref_field]
        reference = reference if isinstance(reference, str) else json.dumps(reference, ensure_ascii=False)
        row_id = str(record.get("id", number))
        if row_id in seen:
            raise InkwellError(f"{path}:{number}: duplicate id '{row_id}' (first on line {seen[row_id]})", field="id")
        seen[row_id] = number
        row = EvalRow(id=row_id, line=number, reference=reference, keywords=parse_keywords(record.get(keywords_field)))
        if template_fields is not None:
            given = formats.template_fields(record, drop=())
            row.fields = {k: v for k, v in given.items() if k in template_fields}
        else:
            prompt = record.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise InkwellError(
                    f"{path}:{number}: no 'prompt' column",
                    field="prompt",
                    hint="give each row a 'prompt', or pass --template NAME to build prompts from its fields",
                )
            row.prompt = prompt
        rows.append(row)
    if not rows:
        raise InkwellError(f"eval data {path} is empty: it holds no rows", field="data")
    return rows


def read_texts(
    path: str | Path, *, what: str, field_name: str, text_field: str = "text"
) -> tuple[list[str], list[dict]]:
    """(texts, rows) from a JSONL file whose lines each hold a string `text` field."""
    path = Path(path).expanduser()
    texts, rows = [], []
    for number, record in _json_lines(path, what, field_name):
        value = record.get(text_field)
        if value is None:
            raise InkwellError(
                f"{path}:{number}: no '{text_field}' field",
                field=field_name,
                hint=f'each line needs {{"{text_field}": "..."}}',
            )
        texts.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        rows.append(record)
    if not texts:
        raise InkwellError(f"{what} file {path} is empty: it holds no rows", field=field_name)
    return texts, rows


# ---------------------------------------------------------------- --system NAME=MODEL[:ADAPTER][@shots.jsonl]


@dataclass
class SystemSpec:
    name: str
    model: str | None  # registry name, HF folder or .gguf; None = the default (or the adapter's base)
    adapter: str | None = None
    shots: str | None = None
    raw: str = ""

    def describe(self) -> str:
        text = self.model or "(default model)"
        if self.adapter:
            text += f" + adapter {self.adapter}"
        if self.shots:
            text += f" with shots {self.shots}"
        return text

    def training_folder(self) -> Path | None:
        """The adapter or model folder when it is a training run (holds metrics.jsonl)."""
        for candidate in (self.adapter, self.model):
            if candidate and (Path(candidate).expanduser() / "metrics.jsonl").is_file():
                return Path(candidate).expanduser()
        return None


def split_system(text: str) -> tuple[str, str, str | None]:
    """NAME=REST[@shots.jsonl] -> (name, rest, shots); checks the name and that the shots file exists."""
    name, rest = (part.strip() for part in text.split("=", 1))
    if not SYSTEM_NAME.match(name):
        raise InkwellError(
            f"invalid system name '{name}'",
            field="system",
            hint="use letters, digits, '-', '_' and '.' (it names files in the output folder)",
        )
    shots = None
    if "@" in rest:
        rest, shots = rest.rsplit("@", 1)
        if not Path(shots).expanduser().is_file():
            raise InkwellError(f"system '{name}': shots file not found: {shots}", field="system")
    return name, rest, shots


def parse_system(text: str) -> SystemSpec:
    """NAME=MODEL[:ADAPTER][@shots.jsonl]. The ':' split is on the last ':' and only when what follows is a
    folder, so model paths may contain ':'."""
    from inkwell.models.registry import EMBEDDED_MODELS

    if "=" not in text:
        raise InkwellError(
            f"--system expects NAME=MODEL[:ADAPTER][@shots.jsonl], got '{text}'",
            field="system",
            hint="e.g. --system base=smollm2-135m-instruct@shots.jsonl --system tuned=smollm2-135m-instruct:runs/lora",
        )
    name, rest, shots = split_system(text)
    model, adapter = rest.strip(), None
    if ":" in model:
        head, tail = model.rsplit(":", 1)
        if tail and Path(tail).expanduser().is_dir():
            model, adapter = head, tail
        elif tail and (head in EMBEDDED_MODELS or Path(head).expanduser().exists() or head == ""):
            raise InkwellError(f"system '{name}': adapter folder not found: {tail}", field="system")
    if adapter and not (Path(adapter).expanduser() / "adapter_config.json").exists():
        raise InkwellError(
            f"system '{name}': '{adapter}' is not a PEFT adapter folder (no adapter_config.json)", field="system"
        )
    if model and model not in EMBEDDED_MODELS and ("/" in model or model.startswith(".") or model.endswith(".gguf")):
        if not Path(model).expanduser().exists():
            raise InkwellError(f"system '{name}': model path not found: {model}", field="system")
    return SystemSpec(name=name, model=model or None, adapter=adapter, shots=shots, raw=text)


def read_loss_curve(folder: Path) -> list[dict]:
    """Lines of a training run's metrics.jsonl that have a step and a loss (val_loss optional)."""
    points = []
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return points
    for line in read_jsonl(path, on_error="skip"):  # a torn or foreign line is no point of the curve
        row = line.record or {}
        if isinstance(row.get("step"), (int, float)) and (
            isinstance(row.get("loss"), (int, float)) or isinstance(row.get("val_loss"), (int, float))
        ):
            points.append({k: row.get(k) for k in ("step", "loss", "val_loss")})
    return points
