"""`inkwell write long`: a long piece by plan → sections → revision (inkwell/compose/longform/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from inkwell.cli.common import (
    AdapterOpt,
    BackendOpt,
    BaseUrlOpt,
    Decoding,
    DeviceOpt,
    DtypeOpt,
    EngineOpt,
    EngineOptions,
    JsonOut,
    ModelOpt,
    PrecisionOpt,
    RemoteKeyOpt,
    open_engine_for,
    print_json,
    say,
    with_decoding,
)


@with_decoding
def write_long(
    kind: Annotated[str, typer.Argument(help="article | report | story | study-guide")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The run folder: every stage is written there.")],
    topic: Annotated[str, typer.Option("--topic", help="What the piece is about.")] = "",
    words: Annotated[int, typer.Option("--words", help="Target length (Chinese: characters).")] = 1500,
    lang: Annotated[str, typer.Option("--lang", help="en | zh")] = "en",
    title: Annotated[str | None, typer.Option("--title", help="The piece's title [default: the topic].")] = None,
    sections: Annotated[int | None, typer.Option("--sections", help="Sections [default: one per ~250 words].")] = None,
    outline: Annotated[Path | None, typer.Option("--outline", help="Your outline (JSON, as plan.json).")] = None,
    sources: Annotated[
        list[str] | None, typer.Option("--sources", help="A folder/file to ground the piece in, or a `kb` name.")
    ] = None,
    candidates: Annotated[int, typer.Option("--candidates", help="Candidates per section (best kept).")] = 3,
    window: Annotated[int | None, typer.Option("--window", help="Prompt tokens per section at most.")] = None,
    likelihood: Annotated[bool, typer.Option("--likelihood", help="Rerank with the model's likelihood too.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Drop sentences whose numbers no source has.")] = False,
    transitions: Annotated[bool, typer.Option("--transitions/--no-transitions", help="Bridge sections.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Go on with the run in --out.")] = False,
    from_: Annotated[
        str | None, typer.Option("--from", help="Write again from: plan | draft | revise | assemble.")
    ] = None,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Choose each section yourself.")] = False,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    decoding: Decoding = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    engine: EngineOpt = "auto",
    precision: PrecisionOpt = "auto",
    as_json: JsonOut = False,
    backend: BackendOpt = "local",
    base_url: BaseUrlOpt = None,
    api_key: RemoteKeyOpt = None,
):
    """Write a long piece: plan, then section by section with memory, then revise and assemble (resumable).

    Example: inkwell write long article --topic "how tides work" --words 1500 --out tides/
    """
    from inkwell.compose.longform import DraftOptions, LongRequest
    from inkwell.compose.longform import write_long as run

    options = DraftOptions.from_decoding(decoding, candidates=candidates, window=window, likelihood=likelihood)
    request = LongRequest(
        kind,
        topic,
        words,
        lang,
        title,
        sections,
        str(outline) if outline else None,
        list(sources or []),
        strict,
        transitions,
        model,
        options,
    )
    request.check()  # before a model loads
    with open_engine_for(
        EngineOptions(
            model, adapter, dtype, device, engine, precision, backend=backend, base_url=base_url, api_key=api_key
        )
    ) as loaded:
        chooser = _interactive(out) if interactive else None
        piece = run(loaded, request, out, resume=resume, start_from=from_, say=say, chooser=chooser)
    if as_json:
        print_json({k: v for k, v in piece.items() if k != "sections"} | {"folder": str(out)})
    else:
        typer.echo((out / "piece.md").read_text(encoding="utf-8"))


def _interactive(out: Path) -> Any:
    """The terminal chooser, recorded in the store's tree of versions."""
    from inkwell.compose.longform.run import RunFolder
    from inkwell.compose.longform.session import recorded
    from inkwell.store import Store
    from inkwell.store.longform import LongformData

    folder = RunFolder(out)
    data = LongformData(Store())
    request = folder.read_json(folder.request) if folder.request.exists() else {}
    run_id = data.run_for_folder("local", str(out.resolve()))
    if run_id is None:
        run_id = data.new_run(
            "local",
            kind=request.get("kind", "article"),
            topic=request.get("topic", ""),
            folder=str(out.resolve()),
            request=request,
        )
    say(f"interactive: long-form run {run_id} in the store (every choice is kept)")
    return recorded(TerminalChooser(), data, "local", run_id)


class TerminalChooser:
    """Shows a section's candidates and asks: a number takes one, `e N` edits one, `m` asks for more, `b N`
    goes back to section N (a new branch; nothing is lost), `v N` shows one in full, `q` stops (`--resume`)."""

    HELP = "[1-{k}] take · e N edit · m more · v N view · b N back to section N · q quit"

    def __init__(self, read=None, write=None):
        self.read = read or (lambda prompt: input(prompt))
        self.write = write or (lambda text: print(text, file=sys.stderr))

    def __call__(self, index: int, record: dict, more) -> tuple[str, Any]:
        from inkwell.compose.longform.session import take

        while True:
            self._show(index, record)
            answer = self.read(self.HELP.format(k=len(record["candidates"])) + "\n> ").strip()
            word, _, arg = answer.partition(" ")
            pick = self._number(arg or word, len(record["candidates"]))
            if word.isdigit() and pick is not None:
                return take(record, pick)
            if word == "m":
                record = more()
            elif word == "v" and pick is not None:
                self.write(record["candidates"][pick]["text"])
            elif word == "e" and pick is not None:
                edited = self._edit(record["candidates"][pick]["text"])
                if edited.strip():
                    return take(record, pick, edited.strip())
            elif word == "b" and arg.isdigit() and 1 <= int(arg) <= index + 1:
                return "back", int(arg) - 1
            elif word == "q":
                raise typer.Exit(0)
            else:
                self.write(f"? {answer!r}")

    def _show(self, index: int, record: dict) -> None:
        self.write(f"\n== section {index + 1}: {record['title']} (about {record['words_budget']} words) ==")
        for i, c in enumerate(record["candidates"]):
            preview = " ".join(c["text"].split())[:240]
            self.write(
                f"[{i + 1}] score {c['score']:.2f} · {c['words']} words{'  (ranked best)' if i == record['chosen'] else ''}\n    {preview}"
            )

    @staticmethod
    def _number(text: str, count: int) -> int | None:
        return int(text) - 1 if text.isdigit() and 1 <= int(text) <= count else None

    def _edit(self, text: str) -> str:
        if sys.stdin.isatty():
            import click

            edited = click.edit(text)
            return edited if edited is not None else ""
        self.write("type the new text; end with a line holding only '.'")
        lines = []
        while (line := self.read("")) != ".":
            lines.append(line)
        return "\n".join(lines)
