"""Reading a knowledge folder's files into plain text with its headings: Markdown, plain text, HTML, PDF, FAQ
tables (CSV/TSV/JSONL with question and answer columns), each optionally gzip-compressed (`.txt.gz`).

    files, warnings = collect([Path("docs/")])      # walk folders; refuse archives, links that leave the folder
    doc = read_document(path)                       # -> Document(text, headings, checksum)

The extracted `text` is what chunk offsets point into: `doc.text[chunk.start:chunk.end] == chunk.text`, and
reading the same bytes again gives the same text. Every problem with a file is an InkwellError that names the
file and the fix; files a walk skips (unknown types, archives, links) come back as warnings.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.files import UTF8_HINT, utf8_problem

# suffix -> kind. `.gz` wraps any of them (the Debian FAQ ships debian-faq.en.txt.gz).
KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".csv": "faq",
    ".tsv": "faq",
    ".jsonl": "faq",
}
# Archives hold many files under one name: unpack them into the folder instead (only .gz of one file is read).
ARCHIVES = (".zip", ".tar", ".tgz", ".tbz", ".tbz2", ".txz", ".bz2", ".xz", ".7z", ".rar", ".zst", ".lz", ".lzma")
MAX_FILE_MB = 50.0  # per file, compressed and uncompressed: a whole book is a few MB; more is likely a mistake
QUESTION_COLUMNS = ("question", "q", "问题")
ANSWER_COLUMNS = ("answer", "a", "答案")
SUPPORTED = ", ".join(sorted(KINDS)) + " (and any of them .gz)"


@dataclass
class Heading:
    level: int  # 1 = top (Markdown `#`, HTML h1); FAQ questions are level 1
    title: str
    start: int  # where the heading's own text starts in Document.text


@dataclass
class Document:
    path: Path
    kind: str
    text: str
    headings: list[Heading]
    checksum: str  # sha256 of the file's bytes as stored (compressed for .gz)


@dataclass
class Collected:
    """The files a walk found (in order, each once) and what it skipped, said as warnings."""

    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # the folders given: files gone from them are dropped


def max_bytes() -> int:
    """The size limit per file; INKWELL_KB_MAX_MB raises it."""
    try:
        return int(float(os.environ.get("INKWELL_KB_MAX_MB") or MAX_FILE_MB) * 1024 * 1024)
    except ValueError:
        return int(MAX_FILE_MB * 1024 * 1024)


def kind_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".gz") and not name.endswith((".tar.gz",)):
        name = name[:-3]
    return KINDS.get(Path(name).suffix)


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(ARCHIVES) or name.endswith(".tar.gz")


def _archive_error(path: Path) -> InkwellError:
    return InkwellError(
        f"{path} is an archive; knowledge folders read single files only (.gz of one file is fine)",
        field="path",
        hint=f"unpack it into a folder and add that folder: inkwell kb add NAME {path.parent}/unpacked/",
    )


def collect(paths: list[Path]) -> Collected:
    """The readable files under `paths` (files as given, folders walked in name order). A file named directly
    must be readable (archives, unknown types and missing paths are errors); inside a folder, those are skipped
    with a warning, and so are symbolic links that point outside the folder or back into a folder already
    walked (a loop). Hidden files and folders (.git, .DS_Store) are skipped silently."""
    out = Collected()
    seen: set[Path] = set()
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            broken = " (a broken symbolic link)" if path.is_symlink() else ""
            raise InkwellError(f"{path} not found{broken}", field="path", hint="check the path")
        if path.is_dir():
            before = len(out.files)
            out.folders.append(path.absolute())
            _walk(path, out, seen)
            if len(out.files) == before:
                raise InkwellError(
                    f"folder {path} holds no files Inkwell can read",
                    field="path",
                    hint=f"add files of these types: {SUPPORTED}",
                )
            continue
        if is_archive(path):
            raise _archive_error(path)
        if kind_of(path) is None:
            raise InkwellError(
                f"{path}: Inkwell cannot read '{path.suffix or path.name}' files", field="path", hint=f"use {SUPPORTED}"
            )
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            out.files.append(path.absolute())
    return out


def _walk(root: Path, out: Collected, seen: set[Path]) -> None:
    root_real = root.resolve()
    walked = {root_real}
    links: dict[Path, bool] = {}  # file found -> found through a symbolic link
    unknown: dict[str, int] = {}

    def visit(folder: Path) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            out.warnings.append(f"skipped folder {folder}: {exc.strerror}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):  # RuntimeError: Python's "symlink loop"
                out.warnings.append(f"skipped {path}: a symbolic link loop or a broken link")
                continue
            if entry.is_symlink() and not real.is_relative_to(root_real):
                out.warnings.append(f"skipped {path}: a symbolic link to {real}, outside {root}")
                continue
            if real.is_dir():
                if real in walked or real in folder.resolve().parents:
                    out.warnings.append(f"skipped {path}: a symbolic link loop (it leads back to {real})")
                    continue
                walked.add(real)
                visit(path)
            elif real.is_file():
                if is_archive(path):
                    out.warnings.append(f"skipped {path}: an archive (unpack it into the folder to add its files)")
                elif kind_of(path) is None:
                    suffix = path.suffix.lower() or "(no suffix)"
                    unknown[suffix] = unknown.get(suffix, 0) + 1
                elif real not in seen:
                    seen.add(real)
                    links[real] = entry.is_symlink()
                    out.files.append(path.absolute())
                elif links.get(real) and not entry.is_symlink():  # a file and a link to it count once, as the file
                    links[real] = False
                    out.files = [path.absolute() if p.resolve() == real else p for p in out.files]

    visit(root)
    if unknown:
        kinds = ", ".join(f"{suffix} x{count}" for suffix, count in sorted(unknown.items()))
        out.warnings.append(
            f"skipped {sum(unknown.values())} files under {root} of types Inkwell does not read: {kinds}"
        )


# ---------------------------------------------------------------- reading one file


def read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing files over the size limit (before reading them)."""
    limit = max_bytes()
    try:
        size = path.stat().st_size
        if size > limit:
            raise _too_big(path, size, limit)
        return path.read_bytes()
    except PermissionError:
        raise InkwellError(
            f"cannot read {path}: permission denied", field="path", hint="check its permissions"
        ) from None
    except OSError as exc:
        raise InkwellError(f"cannot read {path}: {exc.strerror or exc}", field="path") from None


def _too_big(path: Path, size: int, limit: int, what: str = "") -> InkwellError:
    return InkwellError(
        f"{path} is {size / 1e6:.1f} MB{what}, over the {limit / 1024 / 1024:.0f} MB limit for one knowledge file",
        field="path",
        hint="split it into smaller files, or raise the limit with INKWELL_KB_MAX_MB=200",
    )


def read_document(path: Path, data: bytes | None = None) -> Document:
    """Extract one file's text and headings. `data`: its bytes when already read (so checksum and text agree)."""
    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        raise InkwellError(f"{path}: Inkwell cannot read '{path.suffix}' files", field="path", hint=f"use {SUPPORTED}")
    raw = read_bytes(path) if data is None else data
    checksum = hashlib.sha256(raw).hexdigest()
    content = _gunzip(path, raw) if path.name.lower().endswith(".gz") else raw
    if not content.strip():
        raise _empty(path)
    headings: list[Heading] = []
    if kind == "pdf":
        text = _pdf(path, content)
    elif kind == "html":
        text, headings = _html(path, content)
    else:
        decoded = _decode(path, content)
        if kind == "markdown":
            text, headings = decoded, markdown_headings(decoded)
        elif kind == "faq":
            text, headings = _faq(path, decoded)
        else:
            text, headings = decoded, []
    if not text.strip():
        raise _empty(path)
    return Document(path, kind, text, headings, checksum)


def _empty(path: Path) -> InkwellError:
    return InkwellError(f"{path} holds no text", field="path", hint="remove the empty file, or fill it")


def _gunzip(path: Path, raw: bytes) -> bytes:
    limit = max_bytes()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
            data = handle.read(limit + 1)  # never more: a small .gz may unpack to gigabytes
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InkwellError(
            f"{path} is not a readable gzip file ({exc})", field="path", hint="re-download or re-compress it"
        ) from None
    if len(data) > limit:
        raise _too_big(path, len(data), limit, " uncompressed")
    return data


def _decode(path: Path, content: bytes) -> str:
    if b"\x00" in content[:8192]:
        raise InkwellError(
            f"{path} looks like a binary file, not text (it holds NUL bytes)",
            field="path",
            hint="give its text: export it as .txt, .md, .html or .pdf",
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, reason = utf8_problem(content, exc)
        raise InkwellError(f"{path}:{line}: {reason}", field="path", hint=UTF8_HINT) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------- Markdown

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")


def markdown_headings(text: str) -> list[Heading]:
    """`#` headings (and underlined `===`/`---` ones) outside fenced code blocks."""
    headings: list[Heading] = []
    offset, fenced, previous = 0, False, None  # previous: (start, text) of the last plain line
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced, previous = not fenced, None
        elif not fenced:
            atx = _ATX.match(line)
            setext = _SETEXT.match(line)
            if atx:
                headings.append(Heading(len(atx.group(1)), atx.group(2).strip(), offset + line.index(atx.group(1))))
                previous = None
            elif setext and previous is not None and previous[1].strip():
                headings.append(Heading(1 if setext.group(1)[0] == "=" else 2, previous[1].strip(), previous[0]))
                previous = None
            else:
                previous = (offset, line) if line.strip() else None
        offset += len(line) + 1
    return headings


# ---------------------------------------------------------------- HTML

_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "footer", "header", "hr", "li", "main", "ol", "p", "section", "summary", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SKIP = {"script", "style", "noscript", "head", "nav", "template", "svg", "button", "select", "textarea", "iframe"}
# navigation bars and tables of contents repeat every chapter's titles: they would outrank the chapters themselves
_SKIP_CLASSES = {"toc", "navheader", "navfooter", "navigation", "breadcrumbs", "sidebar"}


def _html(path: Path, content: bytes) -> tuple[str, list[Heading]]:
    from lxml import etree
    from lxml import html as lxml_html

    if b"\x00" in content[:8192]:
        raise InkwellError(f"{path} looks like a binary file, not HTML", field="path", hint="save it as HTML text")
    try:
        root = lxml_html.document_fromstring(content)
    except (etree.ParserError, ValueError):
        raise _empty(path) from None
    builder = _TextBuilder()
    builder.visit(root)
    builder.flush()
    return builder.text(), builder.headings


class _TextBuilder:
    """Blocks of text separated by blank lines; inline whitespace collapsed, <pre> kept line by line."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.length = 0
        self.headings: list[Heading] = []
        self.buffer: list[str] = []
        self.heading_level: int | None = None

    def text(self) -> str:
        return "\n\n".join(self.blocks)

    def _append(self, block: str) -> int:
        start = self.length + (2 if self.blocks else 0)
        self.blocks.append(block)
        self.length = start + len(block)
        return start

    def flush(self) -> None:
        block = re.sub(r"\s+", " ", "".join(self.buffer)).strip()
        self.buffer = []
        if block:
            start = self._append(block)
            if self.heading_level is not None:
                self.headings.append(Heading(self.heading_level, block, start))

    def visit(self, element) -> None:
        tag = element.tag if isinstance(element.tag, str) else None  # comments, processing instructions
        classes = set((element.get("class") or "").split()) if tag else set()
        if tag is None or tag.lower() in _SKIP or classes & _SKIP_CLASSES:
            return
        tag = tag.lower().split("}")[-1]  # XHTML: {namespace}p
        if tag == "pre":
            self.flush()
            lines = [line.rstrip() for line in element.text_content().split("\n")]
            block = "\n".join(lines).strip("\n")
            if block.strip():
                self._append(block)
            return
        level = _HEADINGS.get(tag)
        is_block = level is not None or tag in _BLOCKS
        if is_block:
            self.flush()
        if level is not None:
            self.heading_level = level
        if element.text:
            self.buffer.append(element.text)
        for child in element:
            self.visit(child)
            if child.tail:
                self.buffer.append(child.tail)
        if is_block:
            self.flush()
        if level is not None:
            self.heading_level = None


# ---------------------------------------------------------------- PDF


def _pdf(path: Path, content: bytes) -> str:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # it warns about every odd but readable object
    fix = "check that it opens in a PDF viewer; re-export or re-download it"
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InkwellError(
                f"{path} is a password-protected PDF", field="path", hint="save an unprotected copy and add that"
            )
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except InkwellError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types for broken files; all mean "cannot read"
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InkwellError(f"{path} is not a readable PDF ({reason})", field="path", hint=fix) from None
    text = "\n\n".join(page for page in pages if page)
    if not text.strip():
        raise InkwellError(
            f"{path} has no text to extract (a scanned PDF holds only images)",
            field="path",
            hint="run OCR on it first (e.g. ocrmypdf), or add a text version",
        )
    return text.replace("\r\n", "\n")


# ---------------------------------------------------------------- FAQ tables


def _faq(path: Path, text: str) -> tuple[str, list[Heading]]:
    """One question/answer pair per row; each question is a level-1 heading, so each pair is its own chunk."""
    rows = _faq_rows(path, text)
    parts: list[str] = []
    headings: list[Heading] = []
    offset = 0
    for question, answer in rows:
        block = f"{question}\n{answer}"
        headings.append(Heading(1, question, offset))
        parts.append(block)
        offset += len(block) + 2
    if not parts:
        raise _empty(path)
    return "\n\n".join(parts), headings


def _faq_rows(path: Path, text: str) -> list[tuple[str, str]]:
    name = path.name.lower().removesuffix(".gz")
    hint = "an FAQ table needs a `question` and an `answer` column (CSV header or JSONL keys)"
    rows: list[tuple[int, dict]] = []
    if name.endswith(".jsonl"):
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise InkwellError(f"{path}:{number}: not a JSON object", field="path", hint=hint) from None
            if not isinstance(record, dict):
                raise InkwellError(f"{path}:{number}: not a JSON object", field="path", hint=hint)
            rows.append((number, record))
    else:
        csv.field_size_limit(16 * 1024 * 1024)
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if name.endswith(".tsv") else ",")
        try:
            rows = [(reader.line_num, record) for record in reader]
        except csv.Error as exc:
            raise InkwellError(f"{path}:{reader.line_num}: {exc}", field="path", hint=hint) from None
    out = []
    for number, record in rows:
        lowered = {str(k).strip().lower(): v for k, v in record.items() if k is not None}
        question = next((lowered[c] for c in QUESTION_COLUMNS if c in lowered), None)
        answer = next((lowered[c] for c in ANSWER_COLUMNS if c in lowered), None)
        if question is None or answer is None:
            raise InkwellError(
                f"{path}:{number}: no question/answer columns (found: {', '.join(lowered)})", field="path", hint=hint
            )
        question, answer = str(question or "").strip(), str(answer or "").strip()
        if question and answer:
            out.append((" ".join(question.split()), answer.replace("\r\n", "\n")))
    return out
