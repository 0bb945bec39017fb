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
                    time.time(), source, model, adapter, template,
                    json.dumps(fields, ensure_ascii=False) if fields is not None else None,
                    json.dumps(settings, ensure_ascii=False), prompt, output, prompt_tokens, completion_tokens,
                    latency_s, finish_reason, batch_id, row_id,
                ),
            )
        return int(cursor.lastrowid)

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


def _row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for key in ("fields", "settings"):
        if data.get(key):
            data[key] = json.loads(data[key])
    return data
