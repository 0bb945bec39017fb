"""The remote backend's retry path against a tiny scripted HTTP stub on 127.0.0.1 (no model needed):
429 / 503 are retried honouring Retry-After, and too many failures end in an InkwellError."""

from __future__ import annotations

import json
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inkwell.errors import InkwellError
from inkwell.generate import remote as remote_module
from inkwell.generate.remote import MAX_ATTEMPTS, RemoteEngine
from inkwell.generate.settings import GenerationSettings

COMPLETION = {
    "id": "cmpl-1",
    "object": "chat.completion",
    "model": "stub",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello there"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
}
STREAM = [
    {"choices": [{"index": 0, "delta": {"content": "hello "}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "there"}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
]


class Stub:
    """Answers POSTs from a script of statuses (then 200), and records each attempt."""

    def __init__(self):
        self.script: list[int] = []
        self.posts: list[str] = []
        self.retry_after = "0"
        self.get_script: list[int] = []
        self.gets = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                stub.gets += 1
                if stub.get_script:
                    status = stub.get_script.pop(0)
                    self._send(status, b'{"error": {"message": "warming up"}}', {"Retry-After": "0"})
                    return
                body = json.dumps(
                    {"object": "list", "data": [{"id": "stub", "object": "model", "context_length": 256, "chat": True}]}
                ).encode()
                self._send(200, body, {"Content-Type": "application/json"})

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.posts.append(self.path)
                status = stub.script.pop(0) if stub.script else 200
                if status != 200:
                    error = {"error": {"message": f"stub says {status}", "type": "overloaded"}}
                    self._send(
                        status,
                        json.dumps(error).encode(),
                        {"Content-Type": "application/json", "Retry-After": stub.retry_after},
                    )
                elif request.get("stream"):
                    body = "".join(f"data: {json.dumps(e)}\n\n" for e in STREAM) + "data: [DONE]\n\n"
                    self._send(200, body.encode(), {"Content-Type": "text/event-stream"})
                else:
                    self._send(200, json.dumps(COMPLETION).encode(), {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.close()


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The back-off sleeps the remote engine asks for (recorded, not slept: the test stays fast)."""
    slept: list[float] = []
    fake_time = types.SimpleNamespace(perf_counter=time.perf_counter, sleep=slept.append)
    monkeypatch.setattr(remote_module, "time", fake_time)
    return slept


CHAT = [{"role": "user", "content": "hi"}]
SETTINGS = GenerationSettings(max_new_tokens=5, temperature=0)


@pytest.mark.parametrize("stream", [False, True])
def test_retries_429_then_503_then_succeeds(stub, waits, stream):
    engine = RemoteEngine(stub.url, "stub")
    stub.script = [429, 503]
    deltas: list[str] = []
    on_delta = (lambda _i, text: deltas.append(text)) if stream else None
    result = engine.generate([CHAT], SETTINGS, on_delta=on_delta)[0]
    engine.close()
    assert result.text == "hello there" and result.completion_tokens == 2 and result.prompt_tokens == 7
    assert stub.posts == ["/v1/chat/completions"] * 3  # two refusals, then the answer: three attempts
    assert len(waits) == 2 and all(0 <= w <= 30 for w in waits)  # one back-off per refusal, none after success
    assert deltas == (["hello ", "there"] if stream else [])


def test_a_longer_retry_after_is_honoured(stub, waits):
    engine = RemoteEngine(stub.url, "stub")
    stub.script, stub.retry_after = [429], "7"
    assert engine.generate([CHAT], SETTINGS)[0].text == "hello there"
    engine.close()
    assert len(stub.posts) == 2 and waits == [7.0]


def test_gives_up_after_max_attempts_with_a_clear_error(stub, waits):
    engine = RemoteEngine(stub.url, "stub")
    stub.script = [429] + [503] * (MAX_ATTEMPTS + 3)
    with pytest.raises(InkwellError) as info:
        engine.generate(["a text prompt"], SETTINGS)
    engine.close()
    message = str(info.value)
    assert "503" in message and stub.url + "/v1" in message and "stub says 503" in message
    assert info.value.field == "backend"
    assert stub.posts == ["/v1/completions"] * MAX_ATTEMPTS and len(waits) == MAX_ATTEMPTS - 1
    assert len(stub.script) == 4  # it stopped asking: the rest of the script was never used


def test_listing_models_is_retried_too(stub, waits):
    stub.get_script = [503, 429]
    engine = RemoteEngine(stub.url, "stub")
    engine.close()
    assert stub.gets == 3 and len(waits) == 2 and engine.loaded.context_length == 256
    stub.get_script = [503] * MAX_ATTEMPTS
    with pytest.raises(InkwellError, match="answered 503: warming up"):
        RemoteEngine(stub.url, "stub")


def test_non_retryable_status_fails_at_once(stub, waits):
    engine = RemoteEngine(stub.url, "stub")
    stub.script = [400]
    with pytest.raises(InkwellError, match="answered 400: stub says 400"):
        engine.generate([CHAT], SETTINGS)
    engine.close()
    assert len(stub.posts) == 1 and waits == []


def test_cli_shows_the_error_without_a_traceback(stub, waits, capsys):
    from inkwell.cli import main

    stub.script = [503] * (MAX_ATTEMPTS + 1)
    with pytest.raises(SystemExit) as info:
        main(
            [
                "write",
                "headline",
                "--set",
                "text=Bamboo bottles",
                "--backend",
                "openai",
                "--base-url",
                stub.url,
                "--model",
                "stub",
                "--max-new-tokens",
                "5",
                "--no-moderation",
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and "answered 503" in err and stub.url in err and "Traceback" not in err
