"""`inkwell kb`: knowledge folders - documents indexed for cited, grounded writing (inkwell/knowledge/).

inkwell kb add support docs/faq/ handbook.pdf      # index (re-run: only changed files are re-read)
inkwell kb search support "How do I return an item?"
inkwell write customer-service-reply --kb support --set message="..."
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inkwell.cli.common import JsonOut, print_json, say

NameArg = Annotated[str, typer.Argument(help="The knowledge folder's name (letters, digits, '-', '_').")]


def add(
    name: NameArg,
    paths: Annotated[list[Path], typer.Argument(help="Files and folders: .md .txt .html .pdf, FAQ .csv/.jsonl, .gz.")],
    as_json: JsonOut = False,
):
    """Index documents into a knowledge folder (made if new). Adding again re-reads only the files whose content
    changed, and drops files gone from a folder added again.

    Example: inkwell kb add support docs/faq/ returns-policy.md
    """
    from inkwell.knowledge.index import add_to, describe

    report = add_to(name, paths, progress=say)
    for warning in report["warnings"]:
        say(f"warning: {warning}")
    if as_json:
        print_json(report)
    else:
        typer.echo(describe(report))


def list_(
    name: Annotated[str | None, typer.Argument(help="Show this folder's files instead.")] = None,
    as_json: JsonOut = False,
):
    """The knowledge folders (or the files of one)."""
    from inkwell.knowledge import KnowledgeBase

    rows = KnowledgeBase.open(name).files() if name else KnowledgeBase.list()
    if as_json:
        print_json(rows)
    elif name:
        for row in rows:
            typer.echo(f"{row['chunks']:>5} chunks  {row['kind']:<8} {row['path']}")
    elif not rows:
        say("no knowledge folders yet: inkwell kb add NAME DOCS/")
    else:
        for row in rows:
            typer.echo(f"{row['name']:<24} {row.get('files', '-'):>5} files {row.get('chunks', '-'):>6} chunks")


def search(
    name: NameArg,
    query: Annotated[str, typer.Argument(help="What to look for (a question works best).")],
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="How many passages.")] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid | bm25 | dense (embeddings only).")] = "hybrid",
    as_json: JsonOut = False,
):
    """The passages of a knowledge folder that best answer a query, with where each comes from.

    Example: inkwell kb search support "Can I change my delivery address?" --k 3
    """
    from inkwell.knowledge import KnowledgeBase

    hits = KnowledgeBase.open(name).search(query, k=k, mode=mode)
    if as_json:
        print_json([hit.to_json() for hit in hits])
        return
    for number, hit in enumerate(hits, start=1):
        typer.echo(f"[{number}] {hit.source}:{hit.start}-{hit.end}  score {hit.score:.4f}  relevance {hit.relevance}")
        if hit.heading:
            typer.echo(f"    {hit.heading}")
        typer.echo("    " + " ".join(hit.text.split())[:300])


def rm(
    name: NameArg,
    paths: Annotated[list[Path] | None, typer.Argument(help="Drop only these files (or folders) from it.")] = None,
    as_json: JsonOut = False,
):
    """Delete a knowledge folder, or drop some files from it. Your documents are never touched."""
    from inkwell.knowledge import KnowledgeBase

    if paths:
        report = KnowledgeBase.open(name).remove_paths(paths)
    else:
        KnowledgeBase.remove(name)
        report = {"kb": name, "deleted": True}
    if as_json:
        print_json(report)
    elif paths:
        typer.echo(f"knowledge folder '{name}': dropped {report['removed']} file(s)")
    else:
        typer.echo(f"deleted knowledge folder '{name}'")


GROUP = (
    "Knowledge folders: index documents, search them, ground writing on them (--kb).",
    {"add": add, "list": list_, "search": search, "rm": rm},
)
