"""The studio's data survives a kill: a process writing pieces, variants, edits and verdicts as fast as it can
is SIGKILLed three times at seeded random moments; after each kill the database opens, passes
`PRAGMA integrity_check`, and every piece that exists is whole (its chosen variant exists, its full-text row
matches its current text). Writes are transactions in WAL mode, so a kill loses at most the piece being written."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

SEED = int(os.environ.get("RELIABILITY_SEED", "7"))

WRITER = """
import sys
from inkwell.store import Store
from inkwell.store.studio import StudioData

data = StudioData(Store(sys.argv[1]))
n = 0
while True:
    n += 1
    piece = data.new_piece("creator", template="poem", fields={"topic": f"rain {n}"}, system="base",
                           settings={}, request=[{"role": "user", "content": "x"}], prompt="x")
    data.add_variant("creator", piece, system="base", text=f"draft {n} " * 20)
    data.add_variant("creator", piece, system="base", text=f"other {n} " * 20)
    data.add_version("creator", piece, f"edit {n} " * 20)
    data.set_verdict("creator", piece, status="accepted", rating=1 + n % 5, tags=["great"])
    print(n, flush=True)
"""


def test_the_studio_store_survives_kills_during_writes(tmp_path, figures):
    from inkwell.store import Store
    from inkwell.store.studio import StudioData

    db = tmp_path / "inkwell.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    chooser = random.Random(SEED)
    counts = []
    for kill in range(1, 4):
        child = subprocess.Popen(
            [sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
        )
        assert child.stdout is not None
        child.stdout.readline()  # it is writing
        time.sleep(chooser.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        store = Store(db)
        try:
            assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            data = StudioData(store)
            pieces = data.all_pieces("creator")
            for piece in pieces:
                assert piece["chosen_variant"] is None or piece["original"] is not None
                indexed = store.conn.execute("SELECT text FROM pieces_fts WHERE rowid = ?", (piece["id"],)).fetchone()
                assert indexed is not None and indexed[0] == piece["text"]
            complete = [p for p in pieces if p["status"] == "accepted"]
            assert len(pieces) - len(complete) <= kill  # at most the piece being written when each kill came
            counts.append(len(pieces))
        finally:
            store.close()
    assert counts == sorted(counts) and counts[-1] > counts[0]  # nothing written before a kill was lost
    figures["studio store kills"] = f"3 SIGKILLs while writing; pieces after each {counts}; integrity_check ok"
