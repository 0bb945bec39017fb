"""The SQLite history store: migrations, logging, search, limits, WAL."""

from __future__ import annotations

import sqlite3

import pytest

from inkwell.store import db as store_db
from inkwell.store.db import MIGRATIONS, Store


def log(store: Store, output: str, **kw) -> int:
    values = dict(
        source="write",
        model="tiny",
        prompt="the prompt",
        output=output,
        settings={"temperature": 0.7},
        prompt_tokens=3,
        completion_tokens=4,
        latency_s=0.5,
    )
    values.update(kw)
    return store.log_generation(**values)


def test_default_path_is_under_inkwell_home(inkwell_home):
    store = Store()
    assert store.path == inkwell_home / "inkwell.db"
    assert store.path.exists()
    store.close()


def test_migrations_set_user_version(tmp_path):
    store = Store(tmp_path / "h.db")
    assert store.version == len(MIGRATIONS)
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "generations" in tables
    store.close()


def test_reopening_is_idempotent(tmp_path):
    path = tmp_path / "h.db"
    store = Store(path)
    first = log(store, "kept across reopen")
    store.close()
    again = Store(path)
    assert again.version == len(MIGRATIONS)
    assert again.migrate() == len(MIGRATIONS)  # a second migrate is a no-op
    assert [r["id"] for r in again.history()] == [first]
    again.close()


def test_new_migration_upgrades_an_old_database(tmp_path, monkeypatch):
    path = tmp_path / "h.db"
    Store(path).close()
    monkeypatch.setattr(store_db, "MIGRATIONS", [*MIGRATIONS, "ALTER TABLE generations ADD COLUMN extra TEXT"])
    store = Store(path)
    assert store.version == len(MIGRATIONS) + 1
    columns = {r[1] for r in store.conn.execute("PRAGMA table_info(generations)")}
    assert "extra" in columns
    store.close()


def test_wal_mode(tmp_path):
    store = Store(tmp_path / "h.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    store.close()


def test_log_and_history_round_trip(tmp_path):
    store = Store(tmp_path / "h.db")
    row_id = log(
        store,
        "hello world",
        template="poem",
        fields={"topic": "雨"},
        adapter="ad",
        finish_reason="stop",
        batch_id="b1",
        row_id="r1",
    )
    (row,) = store.history()
    assert row["id"] == row_id
    assert row["output"] == "hello world"
    assert row["fields"] == {"topic": "雨"}  # JSON decoded
    assert row["settings"] == {"temperature": 0.7}
    assert row["template"] == "poem" and row["adapter"] == "ad" and row["finish_reason"] == "stop"
    assert row["batch_id"] == "b1" and row["row_id"] == "r1"
    assert row["prompt_tokens"] == 3 and row["completion_tokens"] == 4
    assert row["created_at"] > 0
    store.close()


def test_history_is_newest_first_and_limited(tmp_path):
    store = Store(tmp_path / "h.db")
    ids = [log(store, f"output {i}") for i in range(5)]
    assert [r["id"] for r in store.history()] == ids[::-1]
    assert [r["id"] for r in store.history(limit=2)] == ids[::-1][:2]
    store.close()


def test_history_search_fields_and_case(tmp_path):
    store = Store(tmp_path / "h.db")
    a = log(store, "A Bamboo bottle")
    b = log(store, "x", prompt="write about bamboo")
    c = log(store, "x", template="bamboo-template")
    d = log(store, "x", model="bamboo-model")
    log(store, "nothing here")
    assert [r["id"] for r in store.history(search="BAMBOO")] == [d, c, b, a]
    assert store.history(search="absent") == []
    assert [r["id"] for r in store.history(search="bamboo", limit=1)] == [d]
    store.close()


@pytest.mark.parametrize(
    "needle, expected",
    [
        ("100%", ["100% cotton"]),
        ("a_b", ["a_b"]),
        ("%", ["100% cotton"]),
        ("_", ["a_b"]),
        ("back\\slash", ["back\\slash"]),
    ],
)
def test_history_search_is_literal(tmp_path, needle, expected):
    store = Store(tmp_path / "h.db")
    for text in ["100% cotton", "1000 cotton", "a_b", "axb", "back\\slash", "backslash"]:
        log(store, text)
    assert [r["output"] for r in store.history(search=needle)] == expected
    store.close()


def test_two_connections_see_each_other(tmp_path):
    path = tmp_path / "h.db"
    one, two = Store(path), Store(path)
    log(one, "from one")
    assert [r["output"] for r in two.history()] == ["from one"]
    one.close()
    two.close()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 1
