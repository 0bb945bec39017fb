"""Several OpenAI-compatible servers as one (`--base-url URL1,URL2,...`), against scripted stub servers on
127.0.0.1 (no model): requests spread within each server's limit, a lone request goes to the first healthy
server, 429 / 503 / dropped connections move a request to another server, a failing server is marked down
and health-checked back, every server down ends in one clear error, and `inkwell batch` over a fleet that
loses a server mid-job writes every row exactly once. Bad `--base-url` values are one-line errors."""

from __future__ import annotations

import json
import socket
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inkwell.errors import InkwellError
from inkwell.generate import fleet as fleet_module
from inkwell.generate import remote as remote_module
from inkwell.generate.remote import RemoteEngine, parse_base_urls
from inkwell.generate.settings import GenerationSettings

CHAT = [{"role": "user", "content": "hi"}]
SETTINGS = GenerationSettings(max_new_tokens=5, temperature=0)


class Stub:
    """An OpenAI-style server answering from its `mode`: ok (after `delay` s), 503, 429 (with `retry_after`), 400,
    drop (close the connection without an answer, as a killed server does); every POST after the first
    `drop_after` is dropped. `get_mode` is the same for GET /models. Counts what it was sent and the most
    requests it had in flight at once."""

    def __init__(self, name: str):
        self.name = name
        self.mode = "ok"
        self.get_mode = "ok"
        self.delay = 0.0
        self.retry_after = "0"
        self.drop_after: int | None = None
        self.posts = 0
        self.gets = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fail(self, mode: str) -> bool:
                if mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return True
                if mode in ("503", "429", "400"):
                    error = {"error": {"message": f"{stub.name} says {mode}"}}
                    self._send(int(mode), error, {"Retry-After": stub.retry_after})
                    return True
                return False

            def do_GET(self):
                with stub.lock:
                    stub.gets += 1
                if not self._fail(stub.get_mode):
                    models = [{"id": "stub", "object": "model", "context_length": 256, "chat": True}]
                    self._send(200, {"object": "list", "data": models})

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                with stub.lock:
                    stub.posts += 1
                    stub.in_flight += 1
                    stub.most_in_flight = max(stub.most_in_flight, stub.in_flight)
                try:
                    dying = stub.drop_after is not None and stub.posts > stub.drop_after
                    if self._fail("drop" if dying else stub.mode):
                        return
                    time.sleep(stub.delay)
                    message = {"role": "assistant", "content": f"hello from {stub.name}"}
                    self._send(
                        200,
                        {
                            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 3, "completion_tokens": 3},
                        },
                    )
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Nothing listens at its address any more (connections are refused)."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stubs():
    made = [Stub(name) for name in ("a", "b", "c")]
    yield made
    for stub in made:
        try:
            stub.stop()
        except OSError:
            pass


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    """The waits the engine asks for when every server is backed off (recorded, not slept)."""
    slept: list[float] = []
    monkeypatch.setattr(
        remote_module, "time", types.SimpleNamespace(perf_counter=time.perf_counter, sleep=slept.append)
    )
    return slept


@pytest.fixture
def quick_checks(monkeypatch):
    """Health checks of a down server after 50 ms instead of seconds."""
    monkeypatch.setattr(fleet_module, "RECHECK_FIRST", 0.05)
    monkeypatch.setattr(fleet_module, "BACKOFF_FIRST", 0.02)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine_for(stubs, notes: list[str] | None = None, **kwargs) -> RemoteEngine:
    urls = ",".join(s if isinstance(s, str) else s.url for s in stubs)
    return RemoteEngine(urls, "stub", notice=(notes.append if notes is not None else None), **kwargs)


# ---------------------------------------------------------------- --base-url


def test_base_urls_are_normalised_and_checked():
    assert parse_base_urls(" http://a:8000 , https://b.example/v1/ ,") == ["http://a:8000/v1", "https://b.example/v1"]
    for bad, why in [
        ("gpu-box:8000", "http:// or https://"),
        ("ftp://a/v1", "http:// or https://"),
        ("http://", "no host"),
        ("http://a:99999/v1", "port"),
        ("http://a:0/v1", "port"),
        ("http://a:8000/v1?x=1", "no spaces, ? or #"),
        ("http://a:1/v1,http://a:1", "twice"),
        (" , ", "names no server"),
    ]:
        with pytest.raises(InkwellError, match="--base-url") as info:
            parse_base_urls(bad)
        assert why in str(info.value) and info.value.field == "base-url"
        assert "http://gpu-1:8000/v1,http://gpu-2:8000/v1" in str(info.value) or why == "twice"


def test_a_bad_base_url_is_one_error_from_the_cli(tmp_path, capsys):
    from inkwell.cli import main

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": 1, "text": "news"}\n')
    args = ["batch", "headline", "-i", str(rows), "-o", str(tmp_path / "out.jsonl"), "--no-moderation"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1,gpu-2:8000", "--no-progress"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid --base-url 'gpu-2:8000'" in err and "fix:" in err
    assert "Traceback" not in err and not (tmp_path / "out.jsonl").exists()


# ---------------------------------------------------------------- spreading


def test_requests_spread_over_every_server_within_its_limit(stubs):
    for stub in stubs:
        stub.delay = 0.05  # long enough that requests overlap
    engine = engine_for(stubs, batch_size=2)
    assert engine.batch_size == 6 and engine.capabilities.concurrent
    results = engine.generate([CHAT] * 12, SETTINGS)
    engine.close()
    assert [r.prompt_index for r in results] == list(range(12))
    assert {r.text for r in results} == {"hello from a", "hello from b", "hello from c"}
    assert sum(s.posts for s in stubs) == 12 and all(s.posts > 0 for s in stubs)
    assert all(s.most_in_flight <= 2 for s in stubs)  # the per-server limit (--batch-size) holds


def test_a_lone_request_goes_to_the_first_healthy_server(stubs):
    engine = engine_for(stubs)
    assert engine.generate([CHAT], SETTINGS)[0].text == "hello from a"
    engine.close()
    assert [(s.posts, s.gets) for s in stubs] == [(1, 1), (0, 0), (0, 0)]  # the others are not even asked

    notes: list[str] = []
    dead = f"http://127.0.0.1:{closed_port()}"
    engine = engine_for([dead, *stubs[1:]], notes)  # the first is not answering: the next one takes over
    assert engine.generate([CHAT], SETTINGS)[0].text == "hello from b"
    engine.close()
    assert any("not answering" in n and dead in n for n in notes) and stubs[2].posts == 0


def test_no_server_answering_at_the_start_is_one_error():
    urls = [f"http://127.0.0.1:{closed_port()}" for _ in range(2)]
    with pytest.raises(InkwellError, match="no server in --base-url answers") as info:
        engine_for(urls, [])
    assert info.value.field == "base-url" and all(u in str(info.value) for u in urls)


# ---------------------------------------------------------------- failures


def test_a_busy_server_hands_the_request_to_another_without_waiting(stubs, no_sleep):
    stubs[0].mode, stubs[0].retry_after = "429", "20"
    engine = engine_for(stubs[:2])
    assert engine.generate([CHAT], SETTINGS)[0].text == "hello from b"
    engine.close()
    assert stubs[0].posts == 1 and stubs[1].posts == 1 and no_sleep == []  # b was free: nothing to wait for


def test_a_failing_server_is_marked_down_and_its_requests_go_elsewhere(stubs, quick_checks):
    notes: list[str] = []
    stubs[0].mode = "503"
    stubs[1].delay = 0.02
    engine = engine_for(stubs[:2], notes, batch_size=2)
    results = engine.generate([CHAT] * 8, SETTINGS)
    assert all(r.text == "hello from b" for r in results) and len(results) == 8
    assert any("is down" in n and stubs[0].url in n and "503" in n for n in notes)
    # marked down, then left alone: at most the failures that mark it plus what was in flight then (batch_size 2)
    assert stubs[0].posts <= fleet_module.DOWN_AFTER + 2

    stubs[0].mode = "ok"  # it recovers: the next health check lets it take requests again
    time.sleep(0.1)
    results = engine.generate([CHAT] * 8, SETTINGS)
    engine.close()
    assert any("answers again" in n for n in notes)
    assert any(r.text == "hello from a" for r in results)
    assert any("requests answered per server" in n for n in notes)


def test_dropped_connections_and_a_stopped_server_lose_no_request(stubs, quick_checks):
    notes: list[str] = []
    for stub in stubs:
        stub.delay = 0.01
    engine = engine_for(stubs, notes, batch_size=2)
    engine.generate([CHAT] * 3, SETTINGS)  # every server checked and up
    stubs[2].mode = "drop"  # answers nothing, as a server killed mid-request ...
    results = engine.generate([CHAT] * 12, SETTINGS)
    stubs[2].stop()  # ... and then nothing listens there at all
    results += engine.generate([CHAT] * 12, SETTINGS)
    engine.close()
    assert len(results) == 24 and {r.text for r in results} <= {"hello from a", "hello from b"}
    assert any("is down" in n and stubs[2].url in n for n in notes)


def test_every_server_down_is_one_clear_error_and_the_rest_fail_at_once(stubs, no_sleep):
    engine = engine_for(stubs[:2])
    engine.generate([CHAT] * 2, SETTINGS)  # a (first listing) up; b not needed yet
    for stub in stubs[:2]:
        stub.mode = stub.get_mode = "503"
    with pytest.raises(InkwellError, match="every server in --base-url is down") as info:
        engine.generate([CHAT], SETTINGS)
    assert info.value.field == "base-url" and "--resume" in str(info.value)
    assert stubs[0].url in str(info.value) and stubs[1].url in str(info.value)
    asked = (stubs[0].posts + stubs[0].gets, stubs[1].posts + stubs[1].gets)
    with pytest.raises(InkwellError, match="every server in --base-url is down"):
        engine.generate([CHAT], SETTINGS)  # no new attempts: the job's remaining rows fail at once
    assert (stubs[0].posts + stubs[0].gets, stubs[1].posts + stubs[1].gets) == asked
    engine.close()


# ---------------------------------------------------------------- batch jobs


def test_batch_over_a_fleet_that_loses_a_server_writes_every_row_once(stubs, quick_checks, tmp_path, capsys, caplog):
    from inkwell.cli import main

    for stub in stubs:
        stub.delay = 0.05
    stubs[2].drop_after = 3  # c answers three rows, then dies mid-request on every one sent to it
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "text": f"news item {i}"}) + "\n" for i in range(30)))
    out = tmp_path / "out.jsonl"
    urls = ",".join(s.url for s in stubs)
    args = ["batch", "headline", "-i", str(rows), "-o", str(out), "--no-progress", "--no-moderation", "--no-log"]
    main([*args, "--backend", "openai", "--base-url", urls, "--model", "stub", "--batch-size", "2"])
    err = capsys.readouterr().err
    ids = [json.loads(line)["id"] for line in out.open(encoding="utf-8")]  # (not splitlines: texts hold U+2028)
    assert ids == [f"r{i}" for i in range(30)]  # every row, once, in input order
    assert "wrote 30 rows" in err and "0 failed" in err
    assert f"{stubs[2].url}/v1 is down" in caplog.text  # the note (on stderr outside pytest: the logger's)
    assert stubs[0].posts > 3 and stubs[1].posts > 3 and stubs[2].posts > 3  # c was sent rows it never answered
    assert not (tmp_path / "out.jsonl.part").exists()


def test_an_interrupted_fleet_batch_resumes_without_losing_or_repeating_rows(stubs, tmp_path):
    from inkwell.generate.batch import run_batch
    from inkwell.prompts.library import get_template

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "text": f"news item {i}"}) + "\n" for i in range(30)))
    out, part = tmp_path / "out.jsonl", tmp_path / "out.jsonl.part"
    engine = engine_for(stubs, batch_size=2)
    template, overrides = get_template("headline"), {"max_new_tokens": 5}
    seen: list[str] = []

    def interrupt_at_the_tenth(row, _item, _batch_id):  # as Ctrl-C while the tenth row is being written
        seen.append(row.id)
        if len(seen) == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(engine, template, rows, out, progress=False, overrides=overrides, on_result=interrupt_at_the_tenth)
    assert not out.exists() and [json.loads(line)["id"] for line in part.open()] == [f"r{i}" for i in range(9)]
    report = run_batch(engine, template, rows, out, resume=True, progress=False, overrides=overrides)
    engine.close()
    assert (report.skipped_done, report.written) == (9, 21)
    assert [json.loads(line)["id"] for line in out.open()] == [f"r{i}" for i in range(30)]


def test_eval_spreads_rows_and_generates_again_the_rows_a_server_failed(stubs, tmp_path, capsys, caplog):
    from inkwell.cli import main

    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"r{i}", "prompt": f"Say {i}.", "reference": "hello"}) + "\n" for i in range(8))
    )
    for stub in stubs[:2]:
        stub.delay = 0.05
    urls = ",".join(s.url for s in stubs[:2])
    args = ["eval", "--data", str(data), "--out", str(tmp_path / "eval"), "--metrics", "chrf", "--bootstrap", "0"]
    args += ["--backend", "openai", "--base-url", urls, "--batch-size", "2", "--system", "s=stub", "--json"]
    main(args)
    first = json.loads(capsys.readouterr().out)
    assert stubs[0].posts > 0 and stubs[1].posts > 0 and stubs[0].posts + stubs[1].posts == 8
    assert "requests answered per server" in caplog.text
    generations = tmp_path / "eval" / "generations" / "s.jsonl"
    assert all("error" not in json.loads(line) for line in generations.open())
    assert first["systems"]["s"]["generated"] == 8

    stubs[0].mode = stubs[1].mode = "400"  # a row the servers refuse is an error record ...
    (tmp_path / "eval" / "generations" / "s.jsonl").write_text(
        "".join(line for i, line in enumerate(generations.open()) if i != 3)  # (row r3 to generate again)
    )
    main(args)
    capsys.readouterr()
    assert any("error" in json.loads(line) for line in generations.open())
    stubs[0].mode = stubs[1].mode = "ok"  # ... generated again on the next run, not kept as the answer
    main(args)
    again = json.loads(capsys.readouterr().out)
    assert again["systems"]["s"] == {"generated": 1, "cached": 7, "failed": 0}


# ---------------------------------------------------------------- three real servers, one killed


def _serve(model, home, logs, port: int):
    import os
    import subprocess
    import sys

    env = {**os.environ, "INKWELL_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "inkwell", "serve", "--model", str(model), "--port", str(port)]
    command += ["--dtype", "fp32", "--device", "cpu", "--no-moderation", "--no-log", "--batch-size", "2"]
    with open(logs, "wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _answered(url: str) -> tuple[int, int]:
    """(chat requests answered, requests in flight) from a server's Prometheus /metrics."""
    import httpx

    answered = in_flight = 0
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("inkwell_requests_total{") and 'status="200"' in line:
            answered += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("inkwell_requests_in_flight "):
            in_flight = int(float(line.rsplit(" ", 1)[1]))
    return answered, in_flight


@pytest.mark.slow
def test_batch_over_three_inkwell_servers_survives_one_killed(tiny_chat_model, tmp_path):
    """Three `inkwell serve` processes on the tiny model; `inkwell batch` spreads 30 rows over them; one server
    is SIGKILLed while it decodes a row: the job ends with every row once, and every server wrote some."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    ports = [closed_port() for _ in range(3)]
    servers = [
        _serve(tiny_chat_model, tmp_path / f"home{i}", tmp_path / f"serve{i}.log", p) for i, p in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + 180
        for url, proc in zip(urls, servers):
            while True:
                assert proc.poll() is None, (tmp_path / "serve0.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the servers did not start"
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        rows = tmp_path / "rows.jsonl"
        rows.write_text("".join(json.dumps({"id": f"r{i}", "text": f"news item {i}"}) + "\n" for i in range(30)))
        out = tmp_path / "out.jsonl"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "inkwell", "batch", "headline", "-i", str(rows), "-o", str(out)]
        command += ["--backend", "openai", "--base-url", ",".join(urls), "--model", "tiny-chat", "--batch-size", "2"]
        # long enough rows that rows are still waiting when the kill lands (the job took 1.9 s at 64 tokens, and
        # the killed server's last row could finish before the kill: no request failed, no "is down" note)
        command += [
            "--max-new-tokens",
            "200",
            "--min-new-tokens",
            "200",
            "--no-progress",
            "--no-moderation",
            "--no-log",
        ]
        job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        while True:  # the third server has answered rows and is decoding another: kill it now
            assert job.poll() is None, f"the job ended before the kill:\n{job.stderr.read()[-2000:]}"
            killed_answered, in_flight = _answered(urls[2])
            if killed_answered >= 2 and in_flight:
                break
            time.sleep(0.02)
        servers[2].send_signal(signal.SIGKILL)
        servers[2].wait(30)
        assert not out.exists()  # mid-job: the output is renamed into place only at the end

        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr[-3000:]
        ids = [json.loads(line)["id"] for line in out.open(encoding="utf-8")]  # (not splitlines: texts hold U+2028)
        assert ids == [f"r{i}" for i in range(30)]  # every row, exactly once, in input order
        assert "wrote 30 rows" in stderr and "0 failed" in stderr
        assert f"{urls[2]}/v1 is down" in stderr  # the note that its rows go to the others
        survivors = [_answered(url)[0] for url in urls[:2]]
        assert all(n > 0 for n in survivors) and killed_answered > 0  # every server wrote some rows
        assert sum(survivors) + killed_answered >= 30
    finally:
        for proc in servers:
            if proc.poll() is None:
                proc.terminate()
        for proc in servers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
