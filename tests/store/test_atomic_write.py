"""`atomic_write` (inkwell/home.py): readers never see a half-written file, and what a killed writer left
behind (its `.NAME.PID.XXXX.tmp`) is removed by the next write of the same file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from inkwell.home import atomic_write

HALF_WRITER = """
import sys, time
from inkwell.home import atomic_write
with atomic_write(sys.argv[1]) as handle:
    handle.write("half of a")
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_kill_mid_write_leaves_the_old_file_and_the_next_write_clears_the_leftover(tmp_path):
    target = tmp_path / "card.json"
    target.write_text("old")
    child = subprocess.Popen(
        [sys.executable, "-c", HALF_WRITER, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    leftovers = list(tmp_path.glob(".card.json.*.tmp"))
    assert len(leftovers) == 1 and f".card.json.{child.pid}." in leftovers[0].name
    assert target.read_text() == "old"  # the reader never saw the half
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new"
    assert not list(tmp_path.glob(".card.json.*.tmp"))  # the dead writer's file is gone, and ours renamed


def test_a_live_writers_temporary_file_and_other_targets_are_left_alone(tmp_path):
    target = tmp_path / "metrics.jsonl"
    live = tmp_path / f".metrics.jsonl.{os.getpid()}.abc123.tmp"  # this process: alive
    other = tmp_path / ".other.json.999999999.abc.tmp"  # another target's leftover
    live.write_text("in progress")
    other.write_text("x")
    with atomic_write(target) as handle:
        handle.write("{}\n")
    assert live.exists() and other.exists()


def test_a_failed_write_removes_its_own_temporary_file(tmp_path):
    target = tmp_path / "report.md"
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("partial")
        raise RuntimeError("disk full")
    assert not target.exists() and not list(tmp_path.iterdir())
