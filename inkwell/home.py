"""Where Inkwell keeps its state: INKWELL_HOME (default ~/.cache/inkwell) and atomic file writes."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path


def inkwell_home() -> Path:
    """The folder holding the model cache, user templates and the history database."""
    home = Path(os.environ.get("INKWELL_HOME") or Path.home() / ".cache" / "inkwell").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_dir() -> Path:
    """The prepared-model cache. INKWELL_MODEL_CACHE moves it (e.g. to share one cache between homes)."""
    override = os.environ.get("INKWELL_MODEL_CACHE")
    path = Path(override).expanduser() if override else inkwell_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_templates_dir() -> Path:
    return inkwell_home() / "templates"


def db_path() -> Path:
    return inkwell_home() / "inkwell.db"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Write to a temporary file beside `path`, then rename it over `path` in one step,
    so readers never see a half-written file (and a crash leaves the old file intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    _drop_stale_temps(path.parent, prefix)
    # the writer's pid in the name: a later write can tell a dead writer's leftover from a live one's file
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _drop_stale_temps(folder: Path, prefix: str) -> None:
    """Remove the temporary files a killed writer of the same target left (`.NAME.PID.XXXX.tmp` whose PID no
    longer runs): a kill between mkstemp and the rename would otherwise leave them there for good."""
    for stale in folder.glob(glob.escape(prefix) + "*.tmp"):
        pid = stale.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                stale.unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process: alive
        return True
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or not a pid at all
        return False
    return True


def drop_torn_tail(path: str | os.PathLike) -> None:
    """After a kill mid-write, an append-only JSONL file may end in an incomplete line: cut it back to its
    last newline so a resumed job sees only whole records."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)
