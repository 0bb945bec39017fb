"""Content templates: a typed description of one kind of content and how to prompt for it.

A template is a YAML data file (see templates/*.yaml). It declares its fields, a chat prompt for
instruction-tuned models, a completion prompt with few-shot slots for base models, default decoding
settings and an optional JSON Schema for structured output. Prompts are Jinja2 text rendered in a
sandbox with StrictUndefined, so a typo in a template fails loudly instead of printing nothing.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inkwell.errors import InkwellError
from inkwell.files import TOO_DEEP, read_text

# Sandboxed: user templates are data, not code. StrictUndefined: a misspelt name fails loudly.
JINJA = SandboxedEnvironment(
    undefined=StrictUndefined, keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True
)

FieldType = Literal["str", "int", "float", "bool", "list"]


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: FieldType = "str"
    required: bool = False
    default: Any = None
    choices: list[Any] | None = None
    description: str = ""


class CompletionPrompt(BaseModel):
    """How a base model is prompted: a header, then examples, then the query, all in one text."""

    model_config = ConfigDict(extra="forbid")

    header: str = ""  # rendered once, with the fields, before the examples
    example: str  # rendered per example with its fields and `output`; the query gets output=""
    separator: str = "\n\n"
    stop: list[str] = Field(default_factory=list)  # where one example ends and a new one would start


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: dict[str, Any]
    output: str


class ContentTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    languages: list[str] = Field(default_factory=lambda: ["en"])
    fields: dict[str, FieldSpec]
    system: str = ""  # chat system message (rendered with the fields)
    chat: str  # chat user message (rendered with the fields)
    completion: CompletionPrompt
    decoding: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    # Array lengths that follow the fields, e.g. {questions: num_questions, questions.options: num_options}:
    # `schema_for(fields)` pins minItems = maxItems, so constrained decoding writes exactly that many.
    output_counts: dict[str, str] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)  # built-in shots, used by base models by default
    # Grounding on a knowledge folder (`--kb`, compose/grounded.py): what to search for (default: the free-text
    # fields), and the reply given without the model when no passage is relevant (None: write without them).
    knowledge_query: str | None = None
    unknown_reply: str | None = None
    source: str = ""  # the file it came from (filled in by the loader)

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError("use letters, digits, '-' and '_' only")
        return value

    @model_validator(mode="after")
    def _counts_name_arrays_and_fields(self) -> ContentTemplate:
        for path, name in self.output_counts.items():
            if name not in self.fields:
                raise ValueError(f"output_counts.{path}: '{name}' is not a field")
            if self.output_schema is None or _array_at(self.output_schema, path) is None:
                raise ValueError(f"output_counts.{path}: no array at that path of output_schema")
        return self

    def schema_for(self, fields: dict[str, Any]) -> dict[str, Any] | None:
        """The output schema for these (resolved) fields: `output_counts` arrays pinned to the fields' numbers."""
        if self.output_schema is None or not self.output_counts:
            return self.output_schema
        import copy

        schema = copy.deepcopy(self.output_schema)
        for path, name in self.output_counts.items():
            value, node = fields.get(name), _array_at(schema, path)
            if isinstance(value, int) and value > 0 and node is not None:
                node["minItems"] = node["maxItems"] = value
        return schema

    # ------------------------------------------------------------ fields

    def resolve_fields(self, given: dict[str, Any]) -> dict[str, Any]:
        """Check and coerce user fields; fill defaults. Errors name the field and list the valid ones."""
        names = list(self.fields)
        listing = ", ".join(f"{n}{'*' if s.required else ''}" for n, s in self.fields.items())
        for key in given:
            if key not in self.fields:
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
                hint = f"did you mean '{close[0]}'?" if close else f"fields of {self.name}: {listing} (* = required)"
                raise InkwellError(f"template '{self.name}' has no field '{key}'", field=key, hint=hint)
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name in given and given[name] is not None and given[name] != "":
                out[name] = coerce(name, given[name], spec, self.name)
            elif spec.required:
                raise InkwellError(
                    f"template '{self.name}' needs the field '{name}'"
                    + (f" ({spec.description})" if spec.description else ""),
                    field=name,
                    hint=f"add --set {name}=...; fields of {self.name}: {listing} (* = required)",
                )
            else:
                out[name] = spec.default
        return out


def _array_at(schema: dict, path: str) -> dict | None:
    """The array schema at a dotted property path ("questions.options": through the items of `questions`)."""
    node: Any = schema
    for i, part in enumerate(path.split(".")):
        if i:
            node = node.get("items") if isinstance(node, dict) and node.get("type") == "array" else node
        node = node.get("properties", {}).get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node if isinstance(node, dict) and node.get("type") == "array" else None


def coerce(name: str, value: Any, spec: FieldSpec, template: str) -> Any:
    """Turn CLI strings (or JSON values) into the field's declared type and check allowed values."""

    def fail(rule: str) -> InkwellError:
        return InkwellError(f"field '{name}' of template '{template}' {rule}, got {value!r}", field=name)

    try:
        if spec.type == "int":
            value = int(value)
        elif spec.type == "float":
            value = float(value)
        elif spec.type == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise fail("must be true or false")
                value = value.lower() in ("true", "yes", "1")
            value = bool(value)
        elif spec.type == "list":
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            value = list(value)
        else:
            value = str(value)
    except (TypeError, ValueError):
        raise fail(f"must be of type {spec.type}") from None
    if spec.choices is not None and value not in spec.choices:
        raise InkwellError(
            f"field '{name}' of template '{template}' must be one of {', '.join(map(str, spec.choices))}, got {value!r}",
            field=name,
            hint=f"--set {name}={spec.choices[0]}",
        )
    return value


def load_template_file(path: Path) -> ContentTemplate:
    try:
        data = yaml.safe_load(read_text(path, field="template-file"))  # not UTF-8: an error naming file:line
    except RecursionError:
        raise InkwellError(f"template file {path} is not valid YAML: {TOO_DEEP}", field="template-file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InkwellError(f"template file {where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise InkwellError(f"cannot read template file {path}: {exc.strerror}", field="template-file") from None
    if not isinstance(data, dict):
        raise InkwellError(f"template file {path} must hold a mapping (name, description, fields, chat, completion)")
    try:
        template = ContentTemplate(**data, source=str(path))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InkwellError(f"template file {path} is invalid: {problems}") from None
    check_template_syntax(template)
    return template


def check_template_syntax(template: ContentTemplate) -> None:
    parts = {
        "system": template.system,
        "chat": template.chat,
        "completion.header": template.completion.header,
        "completion.example": template.completion.example,
        "knowledge_query": template.knowledge_query or "",
        "unknown_reply": template.unknown_reply or "",
    }
    for name, text in parts.items():
        try:
            JINJA.parse(text)
        except TemplateSyntaxError as exc:
            raise InkwellError(
                f"template '{template.name}' ({template.source or 'built-in'}): {name} line {exc.lineno}: {exc.message}"
            ) from None
