"""What `inkwell templates list` shows of each template: name, description, languages, fields (and which are
required), whether the output is structured JSON, and the file it came from."""

from __future__ import annotations

from inkwell.prompts.library import all_templates


def template_summaries() -> list[dict]:
    """Every template, built-in and the user's own (INKWELL_HOME/templates), as plain dicts."""
    return [
        {
            "name": t.name,
            "description": t.description,
            "languages": t.languages,
            "fields": list(t.fields),
            "required": [k for k, v in t.fields.items() if v.required],
            "structured": t.output_schema is not None,
            "source": t.source,
        }
        for t in all_templates().values()
    ]
