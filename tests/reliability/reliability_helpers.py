"""Helpers for the reliability battery: `inkwell` commands as real child processes (so that they can be
killed or their logs read), and a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an `inkwell` child process: its own INKWELL_HOME, one thread (the tiny models are
    fastest so and the CI cores are shared), this checkout first on the path."""
    return {
        **os.environ,
        "INKWELL_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def inkwell_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "inkwell", *args]


class ServeProcess:
    """`inkwell serve` in a child process with stdout and stderr captured to files in `logs`."""

    def __init__(self, model: Path, home: Path, logs: Path, *args: str, env: dict[str, str] | None = None):
        logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path, self.stderr_path = logs / "serve.stdout", logs / "serve.stderr"
        command = inkwell_command(
            "serve", "--model", str(model), "--port", str(self.port), "--dtype", "fp32", "--device", "cpu", *args
        )
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(command, env=env or child_env(home), stdout=out, stderr=err)

    def wait_ready(self, timeout: float = 120) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"inkwell serve exited early:\n{self.stderr_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("inkwell serve did not become ready")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM (a graceful drain), SIGKILL if it hangs; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
