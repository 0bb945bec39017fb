"""Long-form writing in the store (migration 7): one run per piece and the tree of what was written.

Every candidate section is a node whose parent is the section before it; the writer's choice marks one, an
edit is a new node beside the one it was edited from. "Going back" moves the head to an earlier node, and
the next candidates grow a new branch from there, so nothing written is ever lost and every choice (chosen
vs. passed over, original vs. edited) is there for the feedback loop to learn from.

    data = LongformData(Store())
    run = data.new_run("local", kind="article", topic="tides", folder=None, request={...}, plan={...})
    ids = data.add_candidates("local", run, parent_id=None, section=0, items=[("text", {"score": .8}), ...])
    data.choose("local", run, ids[1]);  data.edit("local", run, ids[1], "better text")
    data.back("local", run, None)          # before the first section: a new branch from the start

Like the studio's tables, every call takes the owner, and another owner's run is "not found".
"""

from __future__ import annotations

import json
import time
from typing import Any

from inkwell.errors import InkwellError
from inkwell.store.db import Store
from inkwell.store.studio import NotFound  # one "not found" for every owner-scoped table (404 in the studio)

__all__ = ["LongformData", "NotFound"]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class LongformData:
    def __init__(self, store: Store):
        self.store = store
        self.conn = store.conn

    # ------------------------------------------------------------ runs

    def new_run(
        self, owner: str, *, kind: str, topic: str, folder: str | None, request: dict, plan: dict | None = None
    ) -> int:
        now = time.time()
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO longform_runs (created_at, updated_at, owner, kind, topic, folder, request, plan) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now, now, owner, kind, topic, folder, _dumps(request), None if plan is None else _dumps(plan)),
            )
        return int(cur.lastrowid or 0)

    def _run_row(self, owner: str, run_id: int):
        row = self.conn.execute("SELECT * FROM longform_runs WHERE id = ? AND owner = ?", (run_id, owner)).fetchone()
        if row is None:
            raise NotFound(f"no long-form run {run_id}", field="run_id")
        return row

    def run_for_folder(self, owner: str, folder: str) -> int | None:
        row = self.conn.execute(
            "SELECT id FROM longform_runs WHERE owner = ? AND folder = ? ORDER BY id DESC LIMIT 1", (owner, folder)
        ).fetchone()
        return None if row is None else int(row["id"])

    def set_plan(self, owner: str, run_id: int, plan: dict) -> None:
        self._run_row(owner, run_id)
        with self.conn:
            self.conn.execute(
                "UPDATE longform_runs SET plan = ?, updated_at = ? WHERE id = ?", (_dumps(plan), time.time(), run_id)
            )

    def run(self, owner: str, run_id: int) -> dict[str, Any]:
        """The run, its plan, the chain of sections from the start to the head, and the candidates waiting
        after the head (for the next section)."""
        row = self._run_row(owner, run_id)
        head = row["head"]
        return {
            "id": row["id"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "kind": row["kind"],
            "topic": row["topic"],
            "folder": row["folder"],
            "request": json.loads(row["request"]),
            "plan": None if row["plan"] is None else json.loads(row["plan"]),
            "head": head,
            "chain": self.chain(run_id, head),
            "next": self.children(run_id, head),
        }

    def runs(self, owner: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, created_at, updated_at, kind, topic, folder, head FROM longform_runs WHERE owner = ? "
            "ORDER BY updated_at DESC, id DESC LIMIT ?",
            (owner, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------ the tree

    def _node(self, run_id: int, node_id: int):
        row = self.conn.execute(
            "SELECT * FROM longform_nodes WHERE id = ? AND run_id = ?", (node_id, run_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"no node {node_id} in long-form run {run_id}", field="node_id")
        return row

    def add_candidates(
        self, owner: str, run_id: int, *, parent_id: int | None, section: int, items: list[tuple[str, dict]]
    ) -> list[int]:
        self._run_row(owner, run_id)
        if parent_id is not None:
            parent = self._node(run_id, parent_id)
            if parent["section"] != section - 1:
                raise InkwellError(
                    f"node {parent_id} writes section {parent['section'] + 1}, not the one before {section + 1}",
                    field="parent_id",
                )
        elif section != 0:
            raise InkwellError("only the first section has no parent node", field="parent_id")
        now = time.time()
        ids = []
        with self.conn:
            for text, meta in items:
                cur = self.conn.execute(
                    "INSERT INTO longform_nodes (run_id, parent_id, created_at, section, kind, text, meta) "
                    "VALUES (?, ?, ?, ?, 'candidate', ?, ?)",
                    (run_id, parent_id, now, section, text, _dumps(meta)),
                )
                ids.append(int(cur.lastrowid or 0))
            self._touch(run_id)
        return ids

    def choose(self, owner: str, run_id: int, node_id: int) -> None:
        """The writer takes this node: it is marked chosen and the head moves to it."""
        self._run_row(owner, run_id)
        node = self._node(run_id, node_id)
        self._check_reachable(run_id, node)
        with self.conn:
            self.conn.execute("UPDATE longform_nodes SET chosen = 1 WHERE id = ?", (node_id,))
            self.conn.execute("UPDATE longform_runs SET head = ? WHERE id = ?", (node_id, run_id))
            self._touch(run_id)

    def edit(self, owner: str, run_id: int, node_id: int, text: str) -> int:
        """The writer's own text for a node's section: a new node beside it, chosen, and the head."""
        self._run_row(owner, run_id)
        node = self._node(run_id, node_id)
        self._check_reachable(run_id, node)
        if not text.strip():
            raise InkwellError("the edited text is empty", field="text")
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO longform_nodes (run_id, parent_id, created_at, section, kind, text, chosen, source_id, "
                "meta) VALUES (?, ?, ?, ?, 'edit', ?, 1, ?, ?)",
                (run_id, node["parent_id"], time.time(), node["section"], text, node_id, node["meta"]),
            )
            new_id = int(cur.lastrowid or 0)
            self.conn.execute("UPDATE longform_runs SET head = ? WHERE id = ?", (new_id, run_id))
            self._touch(run_id)
        return new_id

    def back(self, owner: str, run_id: int, node_id: int | None) -> None:
        """Move the head back to an earlier node of the current chain (None: the start); what comes next
        grows a new branch."""
        row = self._run_row(owner, run_id)
        if node_id is not None:
            chain = [n["id"] for n in self.chain(run_id, row["head"])]
            if node_id not in chain:
                raise InkwellError(
                    f"node {node_id} is not on the current draft", field="node_id", hint="go back to a section written"
                )
        with self.conn:
            self.conn.execute("UPDATE longform_runs SET head = ? WHERE id = ?", (node_id, run_id))
            self._touch(run_id)

    def _check_reachable(self, run_id: int, node) -> None:
        """A node can be taken when it follows a section of the current draft (or is a first section): the
        next section's candidates, or another candidate for a section already written (a new branch)."""
        head = self.conn.execute("SELECT head FROM longform_runs WHERE id = ?", (run_id,)).fetchone()["head"]
        chain_ids = {n["id"] for n in self.chain(run_id, head)}
        if node["parent_id"] is not None and node["parent_id"] not in chain_ids:
            raise InkwellError(
                f"node {node['id']} does not follow the current draft",
                field="node_id",
                hint="go back to the section before it first",
            )

    def chain(self, run_id: int, node_id: int | None) -> list[dict[str, Any]]:
        """The nodes from the first section to `node_id`, in order."""
        out = []
        while node_id is not None:
            row = self._node(run_id, node_id)
            out.append(_node_dict(row))
            node_id = row["parent_id"]
        return out[::-1]

    def children(self, run_id: int, parent_id: int | None) -> list[dict[str, Any]]:
        where = "parent_id IS NULL" if parent_id is None else "parent_id = ?"
        args: tuple = (run_id,) if parent_id is None else (run_id, parent_id)
        rows = self.conn.execute(f"SELECT * FROM longform_nodes WHERE run_id = ? AND {where} ORDER BY id", args)
        return [_node_dict(r) for r in rows.fetchall()]

    def tree(self, owner: str, run_id: int) -> list[dict[str, Any]]:
        self._run_row(owner, run_id)
        rows = self.conn.execute("SELECT * FROM longform_nodes WHERE run_id = ? ORDER BY id", (run_id,))
        return [_node_dict(r) for r in rows.fetchall()]

    def choices(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Every decision a writer made, for the feedback loop: for each chosen node, the prompt it was written
        from, the text taken (the edit where there is one) and the candidates passed over beside it."""
        args: tuple = () if owner is None else (owner,)
        runs = self.conn.execute(
            "SELECT id, owner, kind, topic FROM longform_runs" + ("" if owner is None else " WHERE owner = ?"), args
        ).fetchall()
        out = []
        for run in runs:
            nodes = [
                _node_dict(r)
                for r in self.conn.execute(
                    "SELECT * FROM longform_nodes WHERE run_id = ? ORDER BY id", (run["id"],)
                ).fetchall()
            ]
            groups: dict[tuple, list[dict]] = {}
            for n in nodes:
                groups.setdefault((n["parent_id"], n["section"]), []).append(n)
            for siblings in groups.values():
                for taken in [n for n in siblings if n["chosen"]]:
                    passed = [n["text"] for n in siblings if not n["chosen"] and n["kind"] == "candidate"]
                    original = next((n["text"] for n in siblings if n["id"] == taken["source_id"]), None)
                    out.append(
                        {
                            "run_id": run["id"],
                            "owner": run["owner"],
                            "kind": run["kind"],
                            "topic": run["topic"],
                            "section": taken["section"],
                            "created_at": taken["created_at"],
                            "prompt": taken["meta"].get("prompt"),
                            "chosen": taken["text"],
                            "edited_from": original,
                            "rejected": passed,
                            "node_id": taken["id"],
                        }
                    )
        return out

    def _touch(self, run_id: int) -> None:
        self.conn.execute("UPDATE longform_runs SET updated_at = ? WHERE id = ?", (time.time(), run_id))


def _node_dict(row) -> dict[str, Any]:
    out = dict(row)
    out["meta"] = json.loads(out["meta"] or "{}")
    out["chosen"] = bool(out["chosen"])
    return out
