"""The template library: built-in templates shipped with the package, then the user's templates folder
(INKWELL_HOME/templates, which may override a built-in by name), then any file passed explicitly."""

from __future__ import annotations

import difflib
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.home import user_templates_dir
from inkwell.prompts.template import ContentTemplate, load_template_file

BUILTIN_DIR = Path(__file__).parent / "templates"


def _scan(folder: Path) -> dict[str, ContentTemplate]:
    found: dict[str, ContentTemplate] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.y*ml")):
            template = load_template_file(path)
            found[template.name] = template
    return found


def all_templates() -> dict[str, ContentTemplate]:
    templates = _scan(BUILTIN_DIR)
    templates.update(_scan(user_templates_dir()))
    return templates


def get_template(name: str | None = None, template_file: str | Path | None = None) -> ContentTemplate:
    """A template by name, or the one in `template_file` (which wins when both are given)."""
    if template_file:
        path = Path(template_file).expanduser()
        if not path.exists():
            raise InkwellError(f"template file not found: {path}", field="template-file")
        return load_template_file(path)
    if not name:
        raise InkwellError("no template given", field="template", hint="name one (see `inkwell templates list`)")
    templates = all_templates()
    if name in templates:
        return templates[name]
    close = difflib.get_close_matches(name, list(templates), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "see `inkwell templates list`"
    raise InkwellError(
        f"unknown template '{name}'; known templates: {', '.join(sorted(templates))}", field="template", hint=hint
    )
