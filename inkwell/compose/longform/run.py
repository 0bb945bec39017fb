"""`inkwell write long`: plan → draft → revise → assemble, each stage written to the run folder as it
finishes, so a run can be read, edited and resumed.

    piece/
      request.json        what was asked (kind, topic, words, lang, model, options)
      plan.json           stage 1: the outline (edit it, then `--from plan` writes to it)
      sections/01.json    stage 2: one file per section: candidates, scores, the chosen text, memory, sources
      revise.json         stage 3: the revised sections and every change made
      piece.md            stage 4: the piece
      piece.json          the piece with per-section provenance

`--resume` goes on from the first missing file (a run killed mid-way loses at most the section it was
writing); `--from STAGE` keeps what comes before STAGE and writes the rest again. All writes are atomic.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inkwell.compose.longform import assemble, checks
from inkwell.compose.longform.draft import DraftOptions, draft_section
from inkwell.compose.longform.memory import Memory, Similar
from inkwell.compose.longform.plan import Outline, check_request, load_outline, make_outline, model_asker
from inkwell.compose.longform.revise import model_bridge, revise
from inkwell.errors import InkwellError
from inkwell.home import atomic_write

STAGES = ("plan", "draft", "revise", "assemble")
OFF_TOPIC = 0.1  # revise: English sentences less similar than this to "topic: section" are dropped (MiniLM cosine)
Say = Callable[[str], None]


@dataclass
class LongRequest:
    kind: str
    topic: str
    words: int = 1500
    lang: str = "en"
    title: str | None = None
    sections: int | None = None  # how many sections (default: one per ~250 words)
    outline: str | None = None  # a given outline file (plan stage skipped)
    sources: list[str] = field(default_factory=list)  # folders/files grounding the piece
    strict: bool = False  # revise: remove sentences with numbers/names found in no source
    transitions: bool = True  # revise: model-written bridges between sections (instruct models)
    model: str | None = None  # what wrote it (recorded; the engine is opened by the caller)
    options: DraftOptions = field(default_factory=DraftOptions)

    def check(self) -> None:
        if not self.topic.strip():
            raise InkwellError("the topic is empty", field="topic", hint='give --topic "what the piece is about"')
        check_request(self.kind, self.words, self.lang)
        self.options.check()
        if self.sections is not None and not 1 <= self.sections <= 30:
            raise InkwellError("--sections must be between 1 and 30", field="sections")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LongRequest:
        data = dict(data)
        data["options"] = DraftOptions(**data.get("options", {}))
        return cls(**data)


# A chooser sees a section's candidates and decides: ("take", record) to go on with the record (its chosen
# candidate or edited text set), or ("back", j) to go back to section j. `more()` samples more candidates.
Chooser = Callable[[int, dict, Callable[[], dict]], tuple[str, Any]]


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    request = property(lambda self: self.path / "request.json")
    plan = property(lambda self: self.path / "plan.json")
    sections_dir = property(lambda self: self.path / "sections")
    revise = property(lambda self: self.path / "revise.json")
    piece_md = property(lambda self: self.path / "piece.md")
    piece_json = property(lambda self: self.path / "piece.json")

    def section(self, index: int) -> Path:
        return self.sections_dir / f"{index + 1:02d}.json"

    def write_json(self, path: Path, data: Any) -> None:
        with atomic_write(path) as f:
            f.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")

    def read_json(self, path: Path) -> Any:
        from inkwell.files import read_json

        return read_json(path, field="out", what="run file")

    def drop_from(self, stage: str) -> None:
        """Forget the files of `stage` and every stage after it."""
        order = STAGES.index(stage)
        if order <= 0:
            self.plan.unlink(missing_ok=True)
        if order <= 1:
            shutil.rmtree(self.sections_dir, ignore_errors=True)
        if order <= 2:
            self.revise.unlink(missing_ok=True)
        self.piece_md.unlink(missing_ok=True)
        self.piece_json.unlink(missing_ok=True)


def prepare_folder(out: Path, request: LongRequest, resume: bool, start_from: str | None) -> RunFolder:
    """The run folder for this request: new, or an earlier run of the same request to resume or redo from a
    stage. A folder holding something else, or a run of another request, is an error naming the difference."""
    folder = RunFolder(out)
    if start_from is not None and start_from not in STAGES:
        raise InkwellError(f"unknown stage '{start_from}'", field="from", hint=f"use one of {', '.join(STAGES)}")
    if out.exists() and not out.is_dir():
        raise InkwellError(f"{out} is a file, not a run folder", field="out", hint="give a folder for --out")
    if not folder.request.exists():
        if out.exists() and any(out.iterdir()):
            raise InkwellError(
                f"{out} is not empty and holds no long-form run", field="out", hint="give a new or empty folder"
            )
        if start_from is not None:
            raise InkwellError(f"{out} holds no run to write again from '{start_from}'", field="from")
        folder.write_json(folder.request, request.to_json())
        return folder
    if not (resume or start_from):
        raise InkwellError(
            f"{out} already holds a run",
            field="out",
            hint="--resume goes on with it, --from STAGE writes again from a stage, or give another --out",
        )
    before = folder.read_json(folder.request)
    now = request.to_json()
    keys = ("kind", "topic", "words", "lang", "title", "sections", "outline", "sources")
    changed = [k for k in keys if before.get(k) != now.get(k)]
    if changed and start_from != "plan":
        raise InkwellError(
            f"{out} holds a run of another request ({changed[0]}: {before.get(changed[0])!r}, now "
            f"{now.get(changed[0])!r})",
            field=changed[0],
            hint="ask for the same piece, use --from plan to plan it again, or give another --out",
        )
    if start_from == "plan" and changed:
        folder.drop_from("plan")  # a new request: a new plan
    elif start_from:
        folder.drop_from(STAGES[STAGES.index(start_from) + 1] if start_from == "plan" else start_from)
    folder.write_json(folder.request, now)
    return folder


class LongWriter:
    """One long-form run over an open engine (see the module docstring for the folder)."""

    def __init__(
        self,
        engine: Any,
        request: LongRequest,
        folder: RunFolder,
        *,
        similar: Similar | None = None,
        sources: Callable[[str], list[dict]] | None = None,
        say: Say | None = None,
        chooser: Chooser | None = None,
        on_stage: Callable[[str, int | None], None] | None = None,
    ):
        self.engine = engine
        self.request = request
        self.folder = folder
        self.similar = similar
        self.sources = sources
        self.say = say or (lambda _m: None)
        self.chooser = chooser
        self.on_stage = on_stage or (lambda _stage, _index: None)  # called after each file is written
        self.timings: dict[str, float] = {}
        self._went_back = 0  # the section a chooser went back to

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        outline = self.plan()
        drafts = self.draft(outline)
        revised = self.revise(outline, drafts)
        piece = self.assemble(outline, drafts, revised)
        self.timings["total_s"] = round(time.perf_counter() - started, 2)
        return piece

    # ------------------------------------------------------------ stage 1

    def plan(self) -> Outline:
        folder = self.folder
        if folder.plan.exists():
            outline = load_outline(folder.plan)
            self.say(f"plan: {folder.plan} ({len(outline.sections)} sections, kept)")
            return outline
        t0 = time.perf_counter()
        r = self.request
        if r.outline:
            outline = load_outline(Path(r.outline))
            notes: dict = {"repairs": [], "from": r.outline}
        else:
            outline, notes = make_outline(
                r.kind,
                r.topic,
                r.words,
                r.lang,
                model_asker(self.engine, r.options.seed),
                title=r.title,
                sections=r.sections,
                source_points=self._source_points if self.sources else None,
            )
        folder.write_json(folder.plan, outline.model_dump())
        folder.write_json(folder.path / "plan-notes.json", notes)
        self.timings["plan_s"] = round(time.perf_counter() - t0, 2)
        self.say(f"plan: {len(outline.sections)} sections, {outline.words} words -> {folder.plan}")
        self.on_stage("plan", None)
        return outline

    def _source_points(self, title: str) -> list[str]:
        assert self.sources is not None
        found = self.sources(f"{self.request.topic} {title}")
        return [checks.sentences(f["text"])[0][:200] for f in found[:2] if checks.sentences(f["text"])]

    # ------------------------------------------------------------ stage 2

    def draft(self, outline: Outline) -> list[dict]:
        folder = self.folder
        memory = Memory()
        drafts: list[dict] = []
        t0 = time.perf_counter()
        index = 0
        while index < len(outline.sections):
            path = folder.section(index)
            if path.exists():
                record = folder.read_json(path)
                if record.get("title") != outline.sections[index].title:
                    raise InkwellError(
                        f"{path} was written for section '{record.get('title')}', but plan.json now says "
                        f"'{outline.sections[index].title}'",
                        field="from",
                        hint="the plan changed: run again with --from draft",
                    )
            else:
                record = self._write_section(outline, index, memory, drafts)
                if record is None:  # the writer went back
                    index = self._went_back
                    drafts = drafts[:index]
                    memory = Memory()
                    for i, d in enumerate(drafts):
                        memory.remember(i, d["text"], self.similar)
                    continue
                folder.write_json(path, record)
                self.say(
                    f"draft: section {index + 1}/{len(outline.sections)} '{record['title']}' "
                    f"{checks.word_count(record['text'])}/{record['words_budget']} words "
                    f"(best of {len(record['candidates'])})"
                )
                self.on_stage("draft", index)
            drafts.append(record)
            memory.remember(index, record["text"], self.similar)
            index += 1
        self.timings["draft_s"] = round(time.perf_counter() - t0, 2)
        return drafts

    def _write_section(self, outline: Outline, index: int, memory: Memory, drafts: list[dict]) -> dict | None:
        earlier = "\n\n".join(d["text"] for d in drafts)
        rounds = 0

        def sample() -> dict:
            nonlocal rounds
            record = draft_section(
                self.engine,
                outline,
                index,
                memory,
                self.request.options,
                self.similar,
                self.sources,
                earlier_text=earlier,
                round_=rounds,
            )
            rounds += 1
            return record

        record = sample()
        if self.chooser is None:
            return record
        action, value = self.chooser(index, record, sample)
        if action == "back":
            self._went_back = int(value)
            for later in range(int(value), len(outline.sections)):
                self.folder.section(later).unlink(missing_ok=True)
            return None
        return value

    # ------------------------------------------------------------ stage 3

    def revise(self, outline: Outline, drafts: list[dict]) -> list[dict]:
        folder = self.folder
        if folder.revise.exists():
            return folder.read_json(folder.revise)["sections"]
        t0 = time.perf_counter()
        r = self.request
        support = " ".join([r.topic, outline.title, *(s.title for s in outline.sections)])
        support += " " + " ".join(p for s in outline.sections for p in s.points)
        support += " " + " ".join(f["text"] for d in drafts for f in d.get("sources", []))
        bridge = None
        if r.transitions and self.engine.loaded.chat:
            bridge = model_bridge(self.engine, outline.lang, r.options.seed)
        revised = revise(
            outline,
            [d["text"] for d in drafts],
            support=support,
            strict=r.strict,
            check_names=bool(r.sources),
            bridge=bridge,
            similar=self.similar,
            off_topic=OFF_TOPIC,
        )
        folder.write_json(folder.revise, {"sections": revised})
        changes = sum(len(s["changes"]) for s in revised)
        unsupported = sum(len(s["unsupported"]) for s in revised)
        self.timings["revise_s"] = round(time.perf_counter() - t0, 2)
        self.say(f"revise: {changes} changes, {unsupported} unsupported numbers/names -> {folder.revise}")
        self.on_stage("revise", None)
        return revised

    # ------------------------------------------------------------ stage 4

    def assemble(self, outline: Outline, drafts: list[dict], revised: list[dict]) -> dict:
        folder = self.folder
        text = assemble.markdown(outline, revised)
        piece = assemble.provenance(outline, drafts, revised, self.request.to_json())
        piece["timings"] = self.timings
        with atomic_write(folder.piece_md) as f:
            f.write(text)
        folder.write_json(folder.piece_json, piece)
        self.say(
            f"assemble: {piece['words']} words (target {outline.words}, S_l {piece['measures']['length_score']}) "
            f"-> {folder.piece_md}"
        )
        self.on_stage("assemble", None)
        return piece


def write_long(
    engine: Any,
    request: LongRequest,
    out: Path,
    *,
    resume: bool = False,
    start_from: str | None = None,
    say: Say | None = None,
    chooser: Chooser | None = None,
    similar: Similar | None | str = "auto",
    on_stage: Callable[[str, int | None], None] | None = None,
) -> dict[str, Any]:
    """Write (or go on writing) the piece into `out`; returns piece.json's content."""
    request.check()
    folder = prepare_folder(Path(out), request, resume, start_from)
    measure: Similar | None = default_similar(request.lang) if isinstance(similar, str) else similar
    sources = source_search(request.sources, folder.path / "sources-index", say) if request.sources else None
    writer = LongWriter(
        engine,
        request,
        folder,
        similar=measure,
        sources=sources,
        say=say,
        chooser=chooser,  # type: ignore[arg-type]
        on_stage=on_stage,
    )
    return writer.run()


def default_similar(lang: str) -> Similar | None:
    """Embedding similarity for English (the bundled MiniLM); None (lexical) for Chinese, which it cannot read."""
    if lang != "en":
        return None
    from inkwell.compose.longform.memory import embedding_similar
    from inkwell.models.embedder import embed

    return embedding_similar(embed)


def source_search(sources: list[str], index_dir: Path, say: Say | None, k: int = 2) -> Callable[[str], list[dict]]:
    """--sources: folders or files (indexed into the run folder, only changed files again on a resume), or the
    name of a knowledge folder (`inkwell kb add`). Returns query -> the k best passages as JSON."""
    from inkwell.knowledge import KnowledgeBase

    paths = [Path(s) for s in sources if Path(s).exists()]
    names = [s for s in sources if not Path(s).exists()]
    bases = [KnowledgeBase.open(name) for name in names]  # an unknown name is an error naming it
    if paths:
        local = KnowledgeBase.at(index_dir)
        report = local.add(paths)
        for warning in report.get("warnings", []):
            (say or print)(f"warning: {warning}")
        bases.append(local)

    def search(query: str) -> list[dict]:
        hits = [hit for kb in bases for hit in kb.search(query, k=k)]
        hits.sort(key=lambda h: -h.score)
        return [h.to_json() for h in hits[:k]]

    return search
