"""A knowledge folder's index: one SQLite database holding every chunk, an FTS5 table for BM25 and the chunks'
embeddings (float32 blobs), searched by BM25, by embedding cosine, or by both fused (reciprocal-rank fusion).

    kb = KnowledgeBase.create("support")                 # INKWELL_HOME/knowledge/support/index.sqlite
    kb.add([Path("faq/")])                               # {"added": 12, "updated": 0, "unchanged": 0, ...}
    for p in kb.search("How do I reset my password?"):   # Passage(text, source, start, end, heading, ...)
        print(p.score, p.source, p.heading)

Re-adding a folder re-reads only the files whose sha256 changed and drops the files gone from it; each add
is one transaction, so a kill mid-add leaves the previous index as it was.

The embedder (all-MiniLM-L6-v2) is English-only: for a query in Chinese its cosine carries little signal, so
hybrid search weights the dense ranking down (CJK_DENSE_WEIGHT, measured: to zero) and relies on BM25 over
segmented words (segment.py).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.home import inkwell_home
from inkwell.knowledge.chunk import Chunk, chunk_document, has_cjk
from inkwell.knowledge.ingest import collect, read_bytes, read_document
from inkwell.knowledge.segment import SEGMENTERS, default_segmenter, fts_query, query_terms, segment

DB_NAME = "index.sqlite"
SCHEMA_VERSION = 1
MODES = ("hybrid", "bm25", "dense")
RRF_K = 60  # reciprocal-rank fusion: score = sum of weight / (RRF_K + rank); 60 is the usual constant
POOL = 50  # candidates taken from each ranking before fusing
# How much the embedding ranking counts for a query written in Chinese (English queries: 1.0). MiniLM is an
# English model: on the Debian FAQ's 50 Chinese questions it found the answer in its top 5 for 12, BM25 for 40,
# and any weight above 0 pulled hybrid below BM25 alone (1.0: 19/50; 0.25: 30/50 while tuning): a chunk both
# lists rank gets lifted over BM25's better ones. So Chinese queries rank by BM25 only (docs/grounding.md).
CJK_DENSE_WEIGHT = 0.0
MAX_K = 100

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    path TEXT PRIMARY KEY,          -- absolute path as added
    checksum TEXT NOT NULL,         -- sha256 of the file's bytes
    kind TEXT NOT NULL,             -- markdown | text | html | pdf | faq
    size INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    added_at REAL NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL REFERENCES files(path),
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,         -- character offsets in the file's extracted text
    end INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    checksum TEXT NOT NULL,
    embedding BLOB NOT NULL         -- float32 x 384, unit length
);
CREATE INDEX chunks_path ON chunks(path);
-- rowid = chunks.id; Chinese pre-segmented into words (segment.py): unicode61 would see one token per run
CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, body, tokenize = 'unicode61 remove_diacritics 2');
"""


@dataclass
class Passage:
    """One retrieved chunk: its text and where it comes from (file, character offsets, heading, checksum)."""

    text: str
    source: str  # the file's path
    start: int  # character offsets in the file's extracted text
    end: int
    heading: str  # heading path, outermost first ("Chapter 8 > 8.1 dpkg")
    checksum: str  # sha256 of the file when it was indexed
    score: float  # the ranking's score (hybrid: fused RRF; bm25: -bm25, higher is better; dense: cosine)
    chunk_id: str  # "<first 12 hex of the checksum>:<ordinal>": stable while the file is unchanged
    relevance: float = 0.0  # how well it answers the query, 0..1 (cosine; for Chinese, query-word coverage)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")  # a folder name on every system; the API publishes it


def knowledge_dir() -> Path:
    return inkwell_home() / "knowledge"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise InkwellError(
            f"'{name}' is not a knowledge folder name",
            field="kb",
            hint="use letters, digits, '-' and '_' (e.g. support-faq)",
        )
    return name


# Embedding matrices by (database, write generation): searches between adds reuse one load.
_MATRICES: dict[str, tuple[str, Any, list[int]]] = {}


class KnowledgeBase:
    """A knowledge folder: an index of chunks stored in one SQLite file in `folder`."""

    def __init__(self, folder: Path, name: str | None = None):
        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.path = self.folder / DB_NAME

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, name: str) -> KnowledgeBase:
        """An existing knowledge folder under INKWELL_HOME/knowledge; InkwellError (field `kb`) if missing."""
        folder = knowledge_dir() / check_name(name)
        if not (folder / DB_NAME).exists():
            known = [kb["name"] for kb in cls.list()]
            listing = f"known: {', '.join(known)}" if known else "there are none yet"
            raise InkwellError(
                f"no knowledge folder '{name}' ({listing})", field="kb", hint=f"create it: inkwell kb add {name} DOCS/"
            )
        return cls(folder, name)

    @classmethod
    def create(cls, name: str, *, segmenter: str | None = None) -> KnowledgeBase:
        """The knowledge folder `name`, made empty if it does not exist yet."""
        return cls.at(knowledge_dir() / check_name(name), segmenter=segmenter, name=name)

    @classmethod
    def at(cls, folder: Path, *, segmenter: str | None = None, name: str | None = None) -> KnowledgeBase:
        """An index stored in any folder (made if missing), e.g. a long-form run's own sources."""
        kb = cls(Path(folder), name)
        kb.folder.mkdir(parents=True, exist_ok=True)
        with kb._connect() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                method = segmenter or default_segmenter()
                if method not in SEGMENTERS:
                    raise InkwellError(f"unknown segmenter '{method}'", field="segmenter", hint="jieba or bigram")
                conn.executescript(
                    f"BEGIN; {SCHEMA}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                )  # one step: a half-made index is never left behind
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("segmenter", method), ("generation", "0"), ("created_at", str(time.time()))],
                )
        return kb

    @classmethod
    def list(cls) -> builtins.list[dict]:
        """Every knowledge folder under INKWELL_HOME/knowledge: name, files, chunks, segmenter, updated_at."""
        root = knowledge_dir()
        out = []
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if (folder / DB_NAME).exists():
                try:
                    out.append({"name": folder.name, **cls(folder).stats()})
                except InkwellError:
                    out.append({"name": folder.name, "error": "unreadable index"})
        return out

    @classmethod
    def remove(cls, name: str) -> None:
        """Delete a knowledge folder (its index only: the documents it was made from are untouched)."""
        kb = cls.open(name)
        shutil.rmtree(kb.folder)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation (closed after it: the server searches from many threads)."""
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # transactions are explicit
        except sqlite3.Error as exc:
            raise InkwellError(f"cannot open the knowledge index {self.path}: {exc}", field="kb") from None
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            raise InkwellError(
                f"the knowledge index {self.path} is damaged or not an Inkwell index ({exc})",
                field="kb",
                hint=f"remove it and add the documents again: inkwell kb rm {self.name}",
            ) from None
        finally:
            conn.close()

    def _meta(self, conn: sqlite3.Connection, key: str) -> str:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else ""

    def stats(self) -> dict:
        with self._connect() as conn:
            files, chunks = conn.execute("SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM files").fetchone()
            updated = conn.execute("SELECT MAX(added_at) FROM files").fetchone()[0]
            return {
                "files": files,
                "chunks": chunks,
                "segmenter": self._meta(conn, "segmenter"),
                "updated_at": updated,
                "path": str(self.folder),
            }

    def files(self) -> builtins.list[dict]:
        with self._connect() as conn:
            return [dict(r) for r in conn.execute("SELECT path, checksum, kind, size, chunks, added_at FROM files")]

    # ------------------------------------------------------------ adding and removing

    def add(self, paths: builtins.list[Path], *, progress: Callable[[str], None] | None = None) -> dict:
        """Index the files under `paths`: new files are added, changed ones (sha256) re-indexed, unchanged ones
        skipped; files gone from a folder that is added again are dropped. One transaction. Returns counts
        (added, updated, unchanged, removed, chunks) and warnings."""
        from inkwell.models.embedder import embed

        found = collect([Path(p) for p in paths])
        with self._connect() as conn:
            known = {r["path"]: r["checksum"] for r in conn.execute("SELECT path, checksum FROM files")}
        report: dict[str, Any] = {"kb": self.name, "added": 0, "updated": 0, "unchanged": 0, "removed": 0, "chunks": 0}
        work: builtins.list[tuple[str, Any, list[Chunk], int]] = []  # (path, document, chunks, size)
        for path in found.files:
            data = read_bytes(path)
            if known.get(str(path)) == hashlib.sha256(data).hexdigest():
                report["unchanged"] += 1
                continue
            doc = read_document(path, data)
            chunks = chunk_document(doc)
            if not chunks:
                raise InkwellError(f"{path} holds no text", field="path", hint="remove the empty file, or fill it")
            work.append((str(path), doc, chunks, len(data)))
            report["updated" if str(path) in known else "added"] += 1
        listed = {str(p) for p in found.files}
        gone = [p for p in known if p not in listed and any(Path(p).is_relative_to(f) for f in found.folders)]
        texts = [_embedding_text(c) for _, _, chunks, _ in work for c in chunks]
        if progress and texts:
            progress(f"embedding {len(texts)} chunks of {len(work)} files")
        vectors = embed(texts)
        with self._connect() as conn:
            method = self._meta(conn, "segmenter")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._drop(conn, gone + [path for path, *_ in work if path in known])
                row = 0
                for name, doc, chunks, size in work:
                    self._write_file(conn, name, doc, chunks, vectors[row : row + len(chunks)], size, method)
                    row += len(chunks)
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        report["removed"] = len(gone)
        report["chunks"] = len(texts)
        report["warnings"] = found.warnings
        return report

    def _write_file(self, conn, path: str, doc, chunks: builtins.list[Chunk], vectors, size: int, method: str) -> None:
        import numpy as np

        conn.execute(
            "INSERT INTO files (path, checksum, kind, size, chunks, added_at) VALUES (?, ?, ?, ?, ?, ?)",
            (path, doc.checksum, doc.kind, size, len(chunks), time.time()),
        )
        for chunk, vector in zip(chunks, vectors):
            cursor = conn.execute(
                "INSERT INTO chunks (path, ordinal, start, end, heading, text, checksum, embedding)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    path,
                    chunk.ordinal,
                    chunk.start,
                    chunk.end,
                    chunk.heading,
                    chunk.text,
                    doc.checksum,
                    np.asarray(vector, dtype=np.float32).tobytes(),
                ),
            )
            conn.execute(
                "INSERT INTO chunks_fts (rowid, heading, body) VALUES (?, ?, ?)",
                (cursor.lastrowid, segment(chunk.heading, method), segment(chunk.text, method)),
            )

    def _drop(self, conn, paths: builtins.list[str]) -> None:
        for path in paths:
            conn.execute("DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE path = ?)", (path,))
            conn.execute("DELETE FROM chunks WHERE path = ?", (path,))
            conn.execute("DELETE FROM files WHERE path = ?", (path,))

    def remove_paths(self, paths: builtins.list[Path]) -> dict:
        """Drop the indexed files at `paths` (a file, or every file under a folder); the files themselves stay."""
        with self._connect() as conn:
            known = [r[0] for r in conn.execute("SELECT path FROM files")]
            targets = [Path(p).expanduser().absolute() for p in paths]
            gone = [k for k in known if any(Path(k) == t or Path(k).is_relative_to(t) for t in targets)]
            if not gone:
                raise InkwellError(
                    f"knowledge folder '{self.name}' holds no file at {', '.join(map(str, targets))}",
                    field="path",
                    hint=f"see its files: inkwell kb list {self.name}",
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._drop(conn, gone)
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return {"kb": self.name, "removed": len(gone), "files": gone}

    # ------------------------------------------------------------ searching

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> builtins.list[Passage]:
        """The `k` chunks that best answer `query`: by BM25, by embedding cosine, or both fused (hybrid)."""
        if mode not in MODES:
            raise InkwellError(f"unknown search mode '{mode}'", field="mode", hint="hybrid, bm25 or dense")
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InkwellError(f"k must be between 1 and {MAX_K}, got {k}", field="k")
        if not query or not query.strip():
            raise InkwellError("the query is empty", field="query")
        cjk = has_cjk(query)
        with self._connect() as conn:
            method = self._meta(conn, "segmenter")
            terms = query_terms(query, method)
            lexical = self._bm25(conn, terms) if mode != "dense" else []
            cosines: dict[int, float] = {}
            dense: builtins.list[tuple[int, float]] = []
            weight = CJK_DENSE_WEIGHT if cjk else 1.0
            if mode == "dense" or (mode == "hybrid" and weight > 0):
                cosines = self._cosines(conn, query)
                dense = sorted(cosines.items(), key=lambda item: -item[1])[:POOL]
            if mode == "bm25":
                ranked = lexical
            elif mode == "dense":
                ranked = dense
            else:
                ranked = _fuse([(lexical, 1.0), (dense, weight)])
            top = ranked[:k]
            rows = {
                r["id"]: r
                for r in conn.execute(
                    f"SELECT id, path, ordinal, start, end, heading, text, checksum FROM chunks WHERE id IN "
                    f"({','.join('?' * len(top))})",
                    [i for i, _ in top],
                )
            }
            out = []
            for chunk_id, score in top:
                r = rows[chunk_id]
                if cjk or not cosines:
                    relevance = _coverage(terms, f"{r['heading']} {r['text']}", method)
                else:
                    relevance = max(0.0, cosines.get(chunk_id, 0.0))
                out.append(
                    Passage(
                        text=r["text"],
                        source=r["path"],
                        start=r["start"],
                        end=r["end"],
                        heading=r["heading"],
                        checksum=r["checksum"],
                        score=round(float(score), 6),
                        chunk_id=f"{r['checksum'][:12]}:{r['ordinal']}",
                        relevance=round(float(relevance), 4),
                    )
                )
            return out

    def _bm25(self, conn, terms: builtins.list[str]) -> builtins.list[tuple[int, float]]:
        match = fts_query(terms)
        if match is None:
            return []
        rows = conn.execute(
            "SELECT rowid, bm25(chunks_fts) AS rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (match, POOL),
        )
        return [(r[0], -float(r[1])) for r in rows]  # bm25() is lower-is-better; flipped so higher is better

    def _cosines(self, conn, query: str) -> dict[int, float]:
        import numpy as np

        from inkwell.models.embedder import embed

        generation = self._meta(conn, "created_at") + "/" + self._meta(conn, "generation")
        cached = _MATRICES.get(str(self.path))
        if cached is None or cached[0] != generation:
            ids, blobs = [], []
            for r in conn.execute("SELECT id, embedding FROM chunks ORDER BY id"):
                ids.append(r[0])
                blobs.append(r[1])
            matrix = (
                np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1)
                if ids
                else np.zeros((0, 384), np.float32)
            )
            cached = (generation, matrix, ids)
            _MATRICES[str(self.path)] = cached
        _, matrix, ids = cached
        if not ids:
            return {}
        scores = matrix @ embed([query])[0]
        return dict(zip(ids, (float(s) for s in scores)))


def add_to(name: str, paths: list[Path], *, progress: Callable[[str], None] | None = None) -> dict:
    """`inkwell kb add`: the folder made if new, the documents added; a new folder whose first add fails is
    not left behind empty."""
    new = not (knowledge_dir() / check_name(name) / DB_NAME).exists()
    kb = KnowledgeBase.create(name)
    try:
        return kb.add(paths, progress=progress)
    except BaseException:
        if new:
            shutil.rmtree(kb.folder, ignore_errors=True)
        raise


def _embedding_text(chunk: Chunk) -> str:
    """What is embedded: the heading path, then the chunk (a passage's topic is often only in its heading)."""
    last = chunk.heading.split(" > ")[-1] if chunk.heading else ""
    return chunk.text if not last or chunk.text.startswith(last) else f"{chunk.heading}\n{chunk.text}"


def _fuse(rankings: list[tuple[list[tuple[int, float]], float]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: each list adds weight / (RRF_K + rank) for every chunk it ranks (rank from 1)."""
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def _coverage(terms: list[str], text: str, method: str) -> float:
    """Share of the query's content words that the passage holds (the relevance of a Chinese query)."""
    if not terms:
        return 0.0
    words = set(query_terms(text, method))
    return sum(term in words for term in terms) / len(terms)


def describe(report: dict) -> str:
    """One line for the person at the terminal."""
    return (
        f"knowledge folder '{report['kb']}': {report['added']} added, {report['updated']} updated, "
        f"{report['unchanged']} unchanged, {report['removed']} removed ({report['chunks']} new chunks)"
    )
