"""The studio's data in the store (migration 6): pieces, their variants and edited versions, verdicts, blind
comparisons, feedback training jobs, promotions and per-owner defaults.

Every read and write takes the owner (an API key's id, 'local' on a server without keys) and only ever sees
that owner's rows: another owner's piece is "not found", never "forbidden", so ids reveal nothing.

    studio = StudioData(Store())
    piece = studio.new_piece("key-1", template="poem", fields={...}, system="base", settings={...},
                             request=[...], prompt="<|im_start|>...")
    variant = studio.add_variant("key-1", piece, system="base", text="...")
    studio.add_version("key-1", piece, "edited text")          # an edit of the chosen variant
    studio.set_verdict("key-1", piece, status="accepted", rating=5, tags=["on-brand"])
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from inkwell.errors import InkwellError
from inkwell.store.db import Store

STATUSES = ("draft", "accepted", "rejected")
WINNERS = ("left", "right", "tie")
JOB_STATUSES = ("running", "finished", "failed", "promoted", "discarded")


class NotFound(InkwellError):
    """No such row for this owner (other owners' rows are not found either)."""


@dataclass(frozen=True)
class PieceFilter:
    query: str | None = None  # full-text (any script: trigram index; shorter than 3 characters: substring)
    template: str | None = None
    system: str | None = None
    status: str | None = None
    min_rating: int | None = None
    since: float | None = None  # unix seconds
    until: float | None = None
    limit: int = 50
    offset: int = 0


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class StudioData:
    """The studio's tables over one Store (not thread-safe by itself: the server holds its store lock)."""

    def __init__(self, store: Store):
        self.store = store
        self.conn = store.conn

    # ------------------------------------------------------------ pieces

    def new_piece(
        self,
        owner: str,
        *,
        template: str,
        fields: dict,
        system: str,
        settings: dict,
        request: Any,
        prompt: str,
        parent_piece: int | None = None,
        parent_version: int | None = None,
    ) -> int:
        now = time.time()
        with self.conn:
            cursor = self.conn.execute(
                """INSERT INTO pieces (created_at, updated_at, owner, template, fields, system, settings, request,
                   prompt, parent_piece, parent_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    now,
                    now,
                    owner,
                    template,
                    _dumps(fields),
                    system,
                    _dumps(settings),
                    _dumps(request),
                    prompt,
                    parent_piece,
                    parent_version,
                ),
            )
            piece_id = int(cursor.lastrowid or 0)
            self._index(piece_id)
        return piece_id

    def _owned(self, owner: str, piece_id: int) -> sqlite_row:
        row = self.conn.execute("SELECT * FROM pieces WHERE id = ? AND owner = ?", (int(piece_id), owner)).fetchone()
        if row is None:
            raise NotFound(f"no piece {piece_id}", field="piece_id")
        return row

    def add_variant(
        self,
        owner: str,
        piece_id: int,
        *,
        system: str,
        text: str,
        generation_id: int | None = None,
        finish_reason: str | None = None,
    ) -> int:
        """A new variant ("swipe"); the first one of a piece becomes its chosen variant."""
        piece = self._owned(owner, piece_id)
        now = time.time()
        with self.conn:
            cursor = self.conn.execute(
                """INSERT INTO variants (piece_id, created_at, system, text, generation_id, finish_reason)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (piece["id"], now, system, text, generation_id, finish_reason),
            )
            variant_id = int(cursor.lastrowid or 0)
            if piece["chosen_variant"] is None:
                self.conn.execute(
                    "UPDATE pieces SET chosen_variant = ?, updated_at = ? WHERE id = ?", (variant_id, now, piece["id"])
                )
            else:
                self.conn.execute("UPDATE pieces SET updated_at = ? WHERE id = ?", (now, piece["id"]))
            self._index(piece["id"])
        return variant_id

    def choose(self, owner: str, piece_id: int, variant_id: int) -> None:
        piece = self._owned(owner, piece_id)
        found = self.conn.execute(
            "SELECT id FROM variants WHERE id = ? AND piece_id = ?", (int(variant_id), piece["id"])
        ).fetchone()
        if found is None:
            raise NotFound(f"piece {piece_id} has no variant {variant_id}", field="variant_id")
        with self.conn:
            self.conn.execute(
                "UPDATE pieces SET chosen_variant = ?, updated_at = ? WHERE id = ?",
                (int(variant_id), time.time(), piece["id"]),
            )
            self._index(piece["id"])

    def add_version(self, owner: str, piece_id: int, text: str, parent_id: int | None = None) -> int:
        """An edit of the chosen variant. `parent_id`: the version edited (default: the latest one of that
        variant, or the variant's own text when there is none)."""
        piece = self._owned(owner, piece_id)
        variant_id = piece["chosen_variant"]
        if variant_id is None:
            raise InkwellError("the piece has no text to edit yet", field="piece_id", hint="generate a variant first")
        if parent_id is not None:
            parent = self.conn.execute(
                "SELECT id FROM versions WHERE id = ? AND piece_id = ?", (int(parent_id), piece["id"])
            ).fetchone()
            if parent is None:
                raise NotFound(f"piece {piece_id} has no version {parent_id}", field="parent_id")
        else:
            latest = self._latest_version(piece["id"], variant_id)
            parent_id = latest["id"] if latest else None
        now = time.time()
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO versions (piece_id, variant_id, parent_id, created_at, text) VALUES (?, ?, ?, ?, ?)",
                (piece["id"], variant_id, parent_id, now, text),
            )
            self.conn.execute("UPDATE pieces SET updated_at = ? WHERE id = ?", (now, piece["id"]))
            self._index(piece["id"])
        return int(cursor.lastrowid or 0)

    def _latest_version(self, piece_id: int, variant_id: int):
        return self.conn.execute(
            "SELECT * FROM versions WHERE piece_id = ? AND variant_id = ? ORDER BY id DESC LIMIT 1",
            (piece_id, variant_id),
        ).fetchone()

    def set_verdict(
        self,
        owner: str,
        piece_id: int,
        *,
        status: str | None = None,
        rating: int | None = None,
        tags: list[str] | None = None,
        clear_rating: bool = False,
    ) -> None:
        piece = self._owned(owner, piece_id)
        if status is not None and status not in STATUSES:
            raise InkwellError(f"unknown status '{status}'", field="status", hint="use " + ", ".join(STATUSES))
        if rating is not None and not 1 <= int(rating) <= 5:
            raise InkwellError(f"rating {rating} is outside 1-5", field="rating")
        sets, args = ["updated_at = ?"], [time.time()]
        if status is not None:
            sets.append("status = ?")
            args.append(status)
        if rating is not None or clear_rating:
            sets.append("rating = ?")
            args.append(int(rating) if rating is not None else None)
        if tags is not None:
            sets.append("tags = ?")
            args.append(_dumps(sorted(dict.fromkeys(t.strip() for t in tags if t.strip()))))
        with self.conn:
            self.conn.execute(f"UPDATE pieces SET {', '.join(sets)} WHERE id = ?", (*args, piece["id"]))

    def piece(self, owner: str, piece_id: int) -> dict[str, Any]:
        """The whole piece: its fields, verdict, variants and versions, and `text` (the latest version of the
        chosen variant, or that variant's own text)."""
        piece = _piece_dict(self._owned(owner, piece_id))
        piece["variants"] = [
            dict(r) for r in self.conn.execute("SELECT * FROM variants WHERE piece_id = ? ORDER BY id", (piece["id"],))
        ]
        piece["versions"] = [
            dict(r) for r in self.conn.execute("SELECT * FROM versions WHERE piece_id = ? ORDER BY id", (piece["id"],))
        ]
        piece["text"] = self._current_text(piece["id"], piece["chosen_variant"])
        piece["original"] = next(
            (v["text"] for v in piece["variants"] if v["id"] == piece["chosen_variant"]), None
        )  # the chosen variant as the model wrote it
        return piece

    def _current_text(self, piece_id: int, variant_id: int | None) -> str:
        if variant_id is None:
            return ""
        latest = self._latest_version(piece_id, variant_id)
        if latest is not None:
            return latest["text"]
        row = self.conn.execute("SELECT text FROM variants WHERE id = ?", (variant_id,)).fetchone()
        return row["text"] if row else ""

    def _index(self, piece_id: int) -> None:
        """Keep the full-text index on the piece's current text and fields (called inside a transaction)."""
        row = self.conn.execute("SELECT fields, chosen_variant FROM pieces WHERE id = ?", (piece_id,)).fetchone()
        fields = " ".join(str(v) for v in json.loads(row["fields"]).values() if v is not None)
        text = self._current_text(piece_id, row["chosen_variant"])
        self.conn.execute("DELETE FROM pieces_fts WHERE rowid = ?", (piece_id,))
        self.conn.execute("INSERT INTO pieces_fts (rowid, text, fields) VALUES (?, ?, ?)", (piece_id, text, fields))

    def search(self, owner: str, where: PieceFilter | None = None) -> tuple[list[dict[str, Any]], int]:
        """(one page of the owner's pieces, newest first, with their current text; the total that match)."""
        where = where or PieceFilter()
        clauses, args = ["p.owner = ?"], [owner]
        query = (where.query or "").strip()
        if query:
            if len(query) >= 3:  # the trigram index needs three characters; a phrase query, quotes doubled
                clauses.append("p.id IN (SELECT rowid FROM pieces_fts WHERE pieces_fts MATCH ?)")
                args.append('"' + query.replace('"', '""') + '"')
            else:
                clauses.append(
                    "p.id IN (SELECT rowid FROM pieces_fts WHERE text LIKE ? ESCAPE '\\' OR fields LIKE ? ESCAPE '\\')"
                )
                pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                args += [pattern, pattern]
        for column, value in (("template", where.template), ("system", where.system), ("status", where.status)):
            if value:
                clauses.append(f"p.{column} = ?")
                args.append(value)
        if where.min_rating is not None:
            clauses.append("p.rating >= ?")
            args.append(int(where.min_rating))
        if where.since is not None:
            clauses.append("p.created_at >= ?")
            args.append(float(where.since))
        if where.until is not None:
            clauses.append("p.created_at < ?")
            args.append(float(where.until))
        sql_where = " AND ".join(clauses)
        total = self.conn.execute(f"SELECT COUNT(*) FROM pieces p WHERE {sql_where}", args).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT p.* FROM pieces p WHERE {sql_where} ORDER BY p.updated_at DESC, p.id DESC LIMIT ? OFFSET ?",
            (*args, int(where.limit), int(where.offset)),
        ).fetchall()
        out = []
        for row in rows:
            piece = _piece_dict(row)
            piece["text"] = self._current_text(piece["id"], piece["chosen_variant"])
            out.append(piece)
        return out, int(total)

    def all_pieces(self, owner: str | None = None, since: float | None = None, template: str | None = None):
        """Every piece (one owner's, or everyone's for the operator's CLI), oldest first, whole."""
        clauses, args = [], []
        if owner is not None:
            clauses.append("owner = ?")
            args.append(owner)
        if since is not None:
            clauses.append("created_at >= ?")
            args.append(float(since))
        if template:
            clauses.append("template = ?")
            args.append(template)
        sql = "SELECT id, owner FROM pieces" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id"
        return [self.piece(r["owner"], r["id"]) for r in self.conn.execute(sql, args).fetchall()]

    # ------------------------------------------------------------ blind comparisons

    def new_comparison(
        self,
        owner: str,
        *,
        template: str,
        fields: dict,
        request: Any,
        prompt: str,
        left_system: str,
        right_system: str,
        left_text: str,
        right_text: str,
        round: str | None = None,
    ) -> int:
        with self.conn:
            cursor = self.conn.execute(
                """INSERT INTO comparisons (created_at, owner, template, fields, request, prompt, left_system,
                   right_system, left_text, right_text, round) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    time.time(),
                    owner,
                    template,
                    _dumps(fields),
                    _dumps(request),
                    prompt,
                    left_system,
                    right_system,
                    left_text,
                    right_text,
                    round,
                ),
            )
        return int(cursor.lastrowid or 0)

    def judge(self, owner: str, comparison_id: int, winner: str) -> dict[str, Any]:
        if winner not in WINNERS:
            raise InkwellError(f"unknown winner '{winner}'", field="winner", hint="use left, right or tie")
        row = self.comparison(owner, comparison_id)
        if row["winner"] is not None:
            raise InkwellError(f"comparison {comparison_id} is already judged", field="comparison_id")
        with self.conn:
            self.conn.execute(
                "UPDATE comparisons SET winner = ?, judged_at = ? WHERE id = ?", (winner, time.time(), row["id"])
            )
        return self.comparison(owner, comparison_id)

    def comparison(self, owner: str, comparison_id: int) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT * FROM comparisons WHERE id = ? AND owner = ?", (int(comparison_id), owner)
        ).fetchone()
        if row is None:
            raise NotFound(f"no comparison {comparison_id}", field="comparison_id")
        return _comparison_dict(row)

    def comparisons(
        self, owner: str | None, *, pending: bool | None = None, round: str | None = None
    ) -> list[dict[str, Any]]:
        """Oldest first. `pending`: only unjudged (True) or only judged (False) ones."""
        clauses, args = [], []
        if owner is not None:
            clauses.append("owner = ?")
            args.append(owner)
        if pending is not None:
            clauses.append("winner IS NULL" if pending else "winner IS NOT NULL")
        if round is not None:
            clauses.append("round = ?")
            args.append(round)
        sql = "SELECT * FROM comparisons" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id"
        return [_comparison_dict(r) for r in self.conn.execute(sql, args)]

    # ------------------------------------------------------------ feedback training jobs, adapters, promotions

    def new_job(self, owner: str, *, stage: str, base: str, run_path: str, data: dict) -> int:
        with self.conn:
            cursor = self.conn.execute(
                """INSERT INTO feedback_jobs (created_at, owner, stage, base, run_path, status, data)
                   VALUES (?, ?, ?, ?, ?, 'running', ?)""",
                (time.time(), owner, stage, base, run_path, _dumps(data)),
            )
        return int(cursor.lastrowid or 0)

    def update_job(self, job_id: int, **values: Any) -> None:
        allowed = {"status", "pid", "report", "error", "data"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"feedback_jobs has no settable column {sorted(unknown)}")
        if "status" in values and values["status"] not in JOB_STATUSES:
            raise ValueError(f"unknown job status {values['status']}")
        for key in ("report", "data"):
            if key in values and values[key] is not None:
                values[key] = _dumps(values[key])
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.conn:
            self.conn.execute(f"UPDATE feedback_jobs SET {sets} WHERE id = ?", (*values.values(), int(job_id)))

    def job(self, owner: str | None, job_id: int) -> dict[str, Any]:
        sql, args = "SELECT * FROM feedback_jobs WHERE id = ?", [int(job_id)]
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        row = self.conn.execute(sql, args).fetchone()
        if row is None:
            raise NotFound(f"no training job {job_id}", field="job_id")
        return _job_dict(row)

    def jobs(self, owner: str | None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM feedback_jobs", []
        if owner is not None:
            sql += " WHERE owner = ?"
            args.append(owner)
        return [_job_dict(r) for r in self.conn.execute(sql + " ORDER BY id DESC", args)]

    def register_adapter(self, owner: str, name: str, path: str, job_id: int | None = None) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO studio_adapters (owner, name, path, job_id) VALUES (?, ?, ?, ?)",
                (owner, name, path, job_id),
            )

    def adapters(self, owner: str | None = None) -> dict[str, dict[str, Any]]:
        """name -> {owner, path, job_id}: adapters trained from feedback (owner None: everyone's)."""
        sql, args = "SELECT * FROM studio_adapters", []
        if owner is not None:
            sql += " WHERE owner = ?"
            args.append(owner)
        return {r["name"]: dict(r) for r in self.conn.execute(sql, args)}

    def default_system(self, owner: str) -> str | None:
        row = self.conn.execute("SELECT system FROM studio_defaults WHERE owner = ?", (owner,)).fetchone()
        return row["system"] if row else None

    def decide(self, owner: str, job_id: int, action: str, system: str) -> dict[str, Any]:
        """Promote (the job's adapter becomes the owner's default system) or discard; recorded either way."""
        if action not in ("promote", "discard"):
            raise InkwellError(f"unknown action '{action}'", field="action", hint="use promote or discard")
        job = self.job(owner, job_id)
        if job["status"] != "finished":
            raise InkwellError(
                f"training job {job_id} is {job['status']}; only a finished job can be promoted or discarded",
                field="job_id",
            )
        previous = self.default_system(owner)
        with self.conn:
            self.conn.execute(
                "INSERT INTO promotions (created_at, owner, job_id, action, system, previous) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), owner, int(job_id), action, system, previous),
            )
            self.conn.execute(
                "UPDATE feedback_jobs SET status = ? WHERE id = ?",
                ("promoted" if action == "promote" else "discarded", int(job_id)),
            )
            if action == "promote":
                self.conn.execute(
                    "INSERT INTO studio_defaults (owner, system) VALUES (?, ?) "
                    "ON CONFLICT(owner) DO UPDATE SET system = excluded.system",
                    (owner, system),
                )
        return {"job_id": int(job_id), "action": action, "system": system, "previous": previous}


sqlite_row = Any  # sqlite3.Row: typed loosely, its columns are read by name


def _piece_dict(row) -> dict[str, Any]:
    piece = dict(row)
    for key in ("fields", "settings", "request", "tags"):
        piece[key] = json.loads(piece[key])
    return piece


def _comparison_dict(row) -> dict[str, Any]:
    data = dict(row)
    data["fields"] = json.loads(data["fields"])
    data["request"] = json.loads(data["request"])
    return data


def _job_dict(row) -> dict[str, Any]:
    data = dict(row)
    data["data"] = json.loads(data["data"] or "{}")
    data["report"] = json.loads(data["report"]) if data["report"] else None
    return data
