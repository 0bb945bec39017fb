"""The SQLite store at INKWELL_HOME/inkwell.db: every generation is logged unless the user opts out.

Schema changes are numbered migrations applied in order; PRAGMA user_version records the last one applied
(the same scheme simonw/llm uses), so an old database upgrades itself on open.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from inkwell.home import db_path

# Append only: never edit a migration that has shipped; add a new one.
MIGRATIONS: list[str] = [
    # 1: generations
    """
    CREATE TABLE generations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        source TEXT NOT NULL,            -- write | generate | batch | serve
        model TEXT NOT NULL,
        adapter TEXT,
        template TEXT,
        fields TEXT,                     -- JSON
        settings TEXT NOT NULL,          -- JSON
        prompt TEXT NOT NULL,            -- the exact text the model saw
        output TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        latency_s REAL NOT NULL,
        finish_reason TEXT,
        batch_id TEXT,
        row_id TEXT
    );
    CREATE INDEX generations_created ON generations(created_at);
    """,
    # 2: moderation decisions (inputs and outputs of write / batch / serve / moderate)
    """
    CREATE TABLE moderation_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        source TEXT NOT NULL,            -- write | batch | serve | moderate
        direction TEXT NOT NULL,         -- input | output
        action TEXT NOT NULL,            -- allow | flag | redact | block
        categories TEXT NOT NULL,        -- JSON list
        findings TEXT NOT NULL,          -- JSON list of {type, start, end, text}
        text_sha256 TEXT NOT NULL,       -- the text itself is not kept here
        policy TEXT,
        generation_id INTEGER
    );
    """,
    # 3: human ratings of evaluation outputs (inkwell rate)
    """
    CREATE TABLE ratings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        eval_dir TEXT NOT NULL,
        example_id TEXT NOT NULL,
        system TEXT NOT NULL,
        rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
        rater TEXT,
        note TEXT
    );
    CREATE INDEX ratings_eval ON ratings(eval_dir, system);
    """,
    # 4: which API key made a served generation (its id, never the key)
    """
    ALTER TABLE generations ADD COLUMN api_key_id TEXT;
    """,
    # 5: training runs, so `inkwell models list` can show the models and adapters trained here
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        path TEXT NOT NULL UNIQUE,       -- the run's output folder (absolute)
        stage TEXT,
        method TEXT,
        base_model TEXT,
        metrics TEXT                     -- JSON: final metrics
    );
    """,
    # 6: the studio (inkwell/store/studio.py): pieces with their variants and edited versions, verdicts,
    # blind comparisons, training jobs started from feedback, promotions, and full-text search over pieces
    """
    CREATE TABLE pieces (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        owner TEXT NOT NULL,             -- the API key's id ('local' when the server has no keys)
        template TEXT NOT NULL,
        fields TEXT NOT NULL,            -- JSON, as resolved by the template
        system TEXT NOT NULL,            -- 'base', an adapter's name, or a remote backend's name
        settings TEXT NOT NULL,          -- JSON: GenerationSettings.to_dict()
        request TEXT NOT NULL,           -- JSON: the prompt as given to the engine (chat messages or text)
        prompt TEXT NOT NULL,            -- the exact text the engine saw (chat template applied)
        chosen_variant INTEGER,
        status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'accepted', 'rejected')),
        rating INTEGER CHECK (rating BETWEEN 1 AND 5),
        tags TEXT NOT NULL DEFAULT '[]', -- JSON list
        parent_piece INTEGER,            -- branched from this piece ...
        parent_version INTEGER           -- ... at this version
    );
    CREATE INDEX pieces_owner ON pieces(owner, updated_at);
    CREATE TABLE variants (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        piece_id INTEGER NOT NULL REFERENCES pieces(id),
        created_at REAL NOT NULL,
        system TEXT NOT NULL,
        text TEXT NOT NULL,              -- the model's output, never changed (edits are versions)
        generation_id INTEGER,           -- its row in generations
        finish_reason TEXT
    );
    CREATE INDEX variants_piece ON variants(piece_id);
    CREATE TABLE versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        piece_id INTEGER NOT NULL REFERENCES pieces(id),
        variant_id INTEGER NOT NULL REFERENCES variants(id),
        parent_id INTEGER,               -- the version it was edited from (NULL: the variant's own text)
        created_at REAL NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX versions_piece ON versions(piece_id);
    CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        owner TEXT NOT NULL,
        template TEXT NOT NULL,
        fields TEXT NOT NULL,            -- JSON
        request TEXT NOT NULL,           -- JSON: the prompt as given to both engines
        prompt TEXT NOT NULL,            -- the exact text both engines saw
        left_system TEXT NOT NULL,       -- as shown (the order is random)
        right_system TEXT NOT NULL,
        left_text TEXT NOT NULL,
        right_text TEXT NOT NULL,
        winner TEXT CHECK (winner IN ('left', 'right', 'tie')),
        judged_at REAL,
        round TEXT                       -- a promotion round's id (NULL: the creator's own comparison)
    );
    CREATE INDEX comparisons_owner ON comparisons(owner, id);
    CREATE TABLE feedback_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        owner TEXT NOT NULL,
        stage TEXT NOT NULL,             -- sft | dpo
        base TEXT NOT NULL,              -- the system it was trained from
        run_path TEXT NOT NULL,          -- the run's output folder
        status TEXT NOT NULL,            -- running | finished | failed | promoted | discarded
        pid INTEGER,
        data TEXT NOT NULL,              -- JSON: the exported files, their row counts, the held-back prompts
        report TEXT,                     -- JSON: the evaluation report once finished
        error TEXT
    );
    CREATE TABLE promotions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        owner TEXT NOT NULL,
        job_id INTEGER NOT NULL REFERENCES feedback_jobs(id),
        action TEXT NOT NULL CHECK (action IN ('promote', 'discard')),
        system TEXT NOT NULL,            -- the adapter's served name
        previous TEXT                    -- the owner's default system before
    );
    CREATE TABLE studio_defaults (
        owner TEXT PRIMARY KEY,
        system TEXT NOT NULL
    );
    CREATE TABLE studio_adapters (
        owner TEXT NOT NULL,
        name TEXT NOT NULL,              -- served as this system name (unique per server)
        path TEXT NOT NULL,
        job_id INTEGER,
        PRIMARY KEY (name)
    );
    -- trigram: substring search in any script (Chinese has no spaces to split words on)
    CREATE VIRTUAL TABLE pieces_fts USING fts5(text, fields, tokenize = 'trigram');
    """,
    # 7: long-form writing (store/longform.py): a run per piece, and the tree of what was written: every
    # candidate section, the writer's choices and edits; going back and choosing again makes a branch.
    """
    CREATE TABLE longform_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        owner TEXT NOT NULL,
        kind TEXT NOT NULL,              -- article | report | story | study-guide
        topic TEXT NOT NULL,
        folder TEXT,                     -- the run folder (`inkwell write long --out`), NULL in the studio
        request TEXT NOT NULL,           -- JSON: the request (words, lang, system, options)
        plan TEXT,                       -- JSON: the outline
        head INTEGER                     -- the node the writer stands at (NULL: before the first section)
    );
    CREATE INDEX longform_runs_owner ON longform_runs(owner, updated_at);
    CREATE TABLE longform_nodes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES longform_runs(id),
        parent_id INTEGER REFERENCES longform_nodes(id),  -- the section before it (NULL: the first section)
        created_at REAL NOT NULL,
        section INTEGER NOT NULL,        -- the outline section it writes (0-based)
        kind TEXT NOT NULL CHECK (kind IN ('candidate', 'edit')),
        text TEXT NOT NULL,
        chosen INTEGER NOT NULL DEFAULT 0,  -- the writer chose it (an edit is chosen when made)
        source_id INTEGER,               -- an edit: the node it was edited from
        meta TEXT NOT NULL DEFAULT '{}'  -- JSON: scores, seed, the prompt it was written from
    );
    CREATE INDEX longform_nodes_run ON longform_nodes(run_id, parent_id);
    """,
    # 8: what rides along with a generation beyond the columns (GenerationRecord.extra, JSON): a grounded
    # text's citations and the passages it was written from (compose/grounded.py), a report's fact check
    """
    ALTER TABLE generations ADD COLUMN metadata TEXT;
    """,
]


class Store:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.migrate()

    def migrate(self) -> int:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS, start=1):
            if number > version:
                with self.conn:
                    self.conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        return len(MIGRATIONS)

    @property
    def version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def log_generation(
        self,
        *,
        source: str,
        model: str,
        prompt: str,
        output: str,
        settings: dict,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        adapter: str | None = None,
        template: str | None = None,
        fields: dict | None = None,
        finish_reason: str | None = None,
        batch_id: str | None = None,
        row_id: str | None = None,
    ) -> int:
        with self.conn:
            cursor = self.conn.execute(
                """INSERT INTO generations (created_at, source, model, adapter, template, fields, settings, prompt,
                   output, prompt_tokens, completion_tokens, latency_s, finish_reason, batch_id, row_id)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    time.time(),
                    source,
                    model,
                    adapter,
                    template,
                    json.dumps(fields, ensure_ascii=False) if fields is not None else None,
                    json.dumps(settings, ensure_ascii=False),
                    prompt,
                    output,
                    prompt_tokens,
                    completion_tokens,
                    latency_s,
                    finish_reason,
                    batch_id,
                    row_id,
                ),
            )
        return int(cursor.lastrowid)

    def log_record(self, record: Any) -> int:
        """Log a `generate.record.GenerationRecord`: the one call every command and the server make."""
        generation_id = self.log_generation(**record.to_store())
        if record.api_key_id is not None:
            with self.conn:
                self.conn.execute(
                    "UPDATE generations SET api_key_id = ? WHERE id = ?", (record.api_key_id, generation_id)
                )
        if record.extra:  # migration 8
            with self.conn:
                self.conn.execute(
                    "UPDATE generations SET metadata = ? WHERE id = ?",
                    (json.dumps(record.extra, ensure_ascii=False, default=str), generation_id),
                )
        return generation_id

    def log_served_generation(self, *, api_key_id: str | None, **record: Any) -> int:
        """`log_generation` for the server: the same record plus the API key's id (migration 4)."""
        generation_id = self.log_generation(**record)
        if api_key_id is not None:
            with self.conn:
                self.conn.execute("UPDATE generations SET api_key_id = ? WHERE id = ?", (api_key_id, generation_id))
        return generation_id

    def record_run(
        self,
        path: str | Path,
        *,
        stage: str | None,
        method: str | None,
        base_model: str | None,
        metrics: dict | None = None,
    ) -> None:
        """Remember a finished training run (a re-run into the same folder replaces the entry)."""
        with self.conn:
            self.conn.execute(
                """INSERT INTO runs (created_at, path, stage, method, base_model, metrics) VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT(path) DO UPDATE SET created_at=excluded.created_at, stage=excluded.stage,
                   method=excluded.method, base_model=excluded.base_model, metrics=excluded.metrics""",
                (
                    time.time(),
                    str(Path(path).resolve()),
                    stage,
                    method,
                    base_model,
                    json.dumps(metrics or {}, ensure_ascii=False, default=str),
                ),
            )

    def runs(self) -> list[dict[str, Any]]:
        """Recorded training runs, newest first."""
        out = []
        for row in self.conn.execute("SELECT * FROM runs ORDER BY created_at DESC"):
            data = dict(row)
            data["metrics"] = json.loads(data["metrics"] or "{}")
            out.append(data)
        return out

    def history(self, search: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first; `search` matches prompt, output, template or model (case-insensitive substring)."""
        sql = "SELECT * FROM generations"
        args: list[Any] = []
        if search:
            sql += " WHERE prompt LIKE ? ESCAPE '\\' OR output LIKE ? ESCAPE '\\' OR template LIKE ? ESCAPE '\\' OR model LIKE ? ESCAPE '\\'"
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args += [pattern] * 4
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        return [_row(r) for r in self.conn.execute(sql, args)]

    # ------------------------------------------------------------ moderation audit (migration 2)

    def log_moderation(
        self,
        *,
        source: str,
        direction: str,
        action: str,
        categories: list[str],
        findings: list[dict],
        text_sha256: str,
        policy: str | None = None,
        generation_id: int | None = None,
    ) -> int:
        """One moderation decision. Only the text's SHA-256 is kept, never the text itself."""
        with self.conn:
            cursor = self.conn.execute(
                """INSERT INTO moderation_audit (created_at, source, direction, action, categories, findings,
                   text_sha256, policy, generation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    time.time(),
                    source,
                    direction,
                    action,
                    json.dumps(categories, ensure_ascii=False),
                    json.dumps(findings, ensure_ascii=False),
                    text_sha256,
                    policy,
                    generation_id,
                ),
            )
        return int(cursor.lastrowid)

    def link_moderation(self, audit_id: int, generation_id: int) -> None:
        """Attach a decision to the generation it judged (the generation is logged after its moderation)."""
        with self.conn:
            self.conn.execute("UPDATE moderation_audit SET generation_id = ? WHERE id = ?", (generation_id, audit_id))

    def moderation_log(
        self, *, source: str | None = None, action: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first, optionally only one source (write | batch | serve | moderate) or action."""
        sql = "SELECT * FROM moderation_audit"
        where, args = [], []
        if source:
            where.append("source = ?")
            args.append(source)
        if action:
            where.append("action = ?")
            args.append(action)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        rows = []
        for r in self.conn.execute(sql, args):
            data = dict(r)
            data["categories"] = json.loads(data["categories"])
            data["findings"] = json.loads(data["findings"])
            rows.append(data)
        return rows

    # ------------------------------------------------------------ human ratings (inkwell rate)

    def add_rating(
        self,
        *,
        eval_dir: str,
        example_id: str,
        system: str,
        rating: int,
        rater: str | None = None,
        note: str | None = None,
    ) -> int:
        """Record one 1-5 rating of one system's output for one example of an evaluation folder."""
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO ratings (created_at, eval_dir, example_id, system, rating, rater, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), eval_dir, str(example_id), system, int(rating), rater, note),
            )
        return int(cursor.lastrowid)

    def ratings(self, eval_dir: str, rater: str | None = None) -> list[dict[str, Any]]:
        """All ratings for an evaluation folder (optionally one rater's), oldest first."""
        sql = "SELECT * FROM ratings WHERE eval_dir = ?"
        args: list[Any] = [eval_dir]
        if rater is not None:
            sql += " AND rater IS ?"
            args.append(rater)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def rating_summary(self, eval_dir: str) -> dict[str, dict[str, Any]]:
        """system -> {"mean", "n"}, counting each (example, system, rater) once: its latest rating."""
        rows = self.conn.execute(
            """SELECT system, AVG(rating) AS mean, COUNT(*) AS n FROM ratings r
               WHERE eval_dir = ? AND id = (SELECT MAX(id) FROM ratings s WHERE s.eval_dir = r.eval_dir
                   AND s.example_id = r.example_id AND s.system = r.system AND s.rater IS r.rater)
               GROUP BY system ORDER BY system""",
            (eval_dir,),
        )
        return {r["system"]: {"mean": float(r["mean"]), "n": int(r["n"])} for r in rows}


def _row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for key in ("fields", "settings", "metadata"):
        if data.get(key):
            data[key] = json.loads(data[key])
    return data
