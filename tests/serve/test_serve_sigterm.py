"""`inkwell serve` as a real process: ready after loading, and SIGTERM drains an in-flight stream, then exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def test_sigterm_drains_in_flight_streams_then_exits(tiny_chat_model, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "INKWELL_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inkwell",
            "serve",
            "--model",
            str(tiny_chat_model),
            "--port",
            str(port),
            "--dtype",
            "fp32",
            "--device",
            "cpu",
            "--drain-timeout",
            "30",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = {"model": "tiny-chat", "prompt": "Poems", "max_tokens": 500, "min_tokens": 500, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            next(lines)
            proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert '"finish_reason": "length"' in rest[-2]  # all 500 tokens: the stream was not cut
        # uvicorn re-raises the signal once it has drained and shut down, so the exit status says "SIGTERM".
        assert proc.wait(30) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
        output = proc.stdout.read()
        assert "Waiting for connections to close" in output or "Waiting for background tasks" in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
