"""Client storms on a live `inkwell serve` (tiny model, continuous batching, an API key): 32 clients at once,
streaming chat completions, of which a quarter hang up mid-stream and a few send garbage. Every request ends in
a documented status, the server's gauges return to 0, the next request answers, and a second storm leaves the
server's memory (RSS) where the first left it."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import psutil
import pytest
from reliability_helpers import ServeProcess

pytestmark = pytest.mark.reliability

API_KEY = "sk-storm-test"
CLIENTS = 32
TOKENS = 128  # each stream's length (min_tokens too, so no stream ends early): long enough to hang up in the middle
HANG_UP_AFTER = 2  # chunks a disconnecting client reads first (the role, then text: moderation releases it in pieces)
DOCUMENTED = {200, 400, 401, 422, 429, 499}  # 499: the client hung up (the server counts it so)
CHAT = {"messages": [{"role": "user", "content": "Write a poem about a lamp."}], "max_tokens": TOKENS}
# Garbage: each must be refused with a 4xx, never a 5xx, and must not disturb the streams running beside it.
GARBAGE = [
    ("invalid JSON", b'{"messages": [', {}),
    ("messages of the wrong type", json.dumps({**CHAT, "messages": "hi"}).encode(), {}),
    ("max_tokens of the wrong type", json.dumps({**CHAT, "max_tokens": "ten"}).encode(), {}),
    ("a repetition_penalty that overflows the logits", json.dumps({**CHAT, "repetition_penalty": 5e-324}).encode(), {}),
    ("no API key", json.dumps(CHAT).encode(), {"Authorization": ""}),
]


@pytest.fixture(scope="module")
def storm_server(tiny_chat_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("storm")
    server = ServeProcess(
        tiny_chat_model, root / "home", root / "logs", "--api-key", API_KEY, "--max-concurrency", "64"
    ).wait_ready()
    yield server
    server.stop()


def gauges(url: str) -> dict[str, float]:
    """The server's Prometheus text as {name{labels}: value}."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(inkwell_[^\s]+)\s+(\S+)$", text, re.MULTILINE)}


# What each client does: garbage first, then a quarter that hang up, then whole streams.
ROLES = [g[0] for g in GARBAGE] + ["hang-up"] * (CLIENTS // 4)
ROLES += ["stream"] * (CLIENTS - len(ROLES))


def one_client(url: str, index: int, start: threading.Barrier, outcomes: list) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    garbage = GARBAGE[index] if index < len(GARBAGE) else None
    hang_up = ROLES[index] == "hang-up"
    streamed = {"stream": True, "stream_options": {"include_usage": True}, "min_tokens": TOKENS, "seed": index}
    body = json.dumps({**CHAT, **streamed}).encode()
    if garbage is not None:
        body = garbage[1]
        headers = {k: v for k, v in {**headers, **garbage[2]}.items() if v}
    start.wait(30)
    outcome = {"client": index, "role": ROLES[index]}
    try:
        with httpx.Client(timeout=120) as client:
            with client.stream("POST", f"{url}/v1/chat/completions", content=body, headers=headers) as response:
                outcome["status"] = response.status_code
                if response.status_code != 200:
                    response.read()
                    outcome["error"] = response.json().get("error", {}).get("code")
                    return
                chunks = 0
                for line in response.iter_lines():
                    if not line:
                        continue
                    if line == "data: [DONE]":
                        outcome["done"] = True
                        break
                    event = json.loads(line.removeprefix("data: "))
                    if "error" in event:
                        outcome["error"] = event["error"]
                    if event.get("usage"):
                        outcome["tokens"] = event["usage"]["completion_tokens"]
                    chunks += 1
                    if hang_up and chunks > HANG_UP_AFTER:
                        outcome["status"] = 499  # leaving the `with` closes the connection mid-stream
                        break
                outcome["chunks"] = chunks
    except httpx.HTTPError as exc:  # a transport failure is no documented status: the test reports it
        outcome["status"] = f"{type(exc).__name__}: {exc}"
    finally:
        outcomes.append(outcome)


def storm(url: str) -> list[dict]:
    outcomes: list[dict] = []
    start = threading.Barrier(CLIENTS)
    threads = [threading.Thread(target=one_client, args=(url, i, start, outcomes)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert len(outcomes) == CLIENTS, "a client thread did not finish"
    return sorted(outcomes, key=lambda o: o["client"])


def settled(url: str, timeout: float = 20) -> dict[str, float]:
    """Wait until nothing runs, waits or holds a slot; the gauges then."""
    deadline = time.monotonic() + timeout
    while True:
        now = gauges(url)
        idle = all(now[f"inkwell_requests_{g}"] == 0 for g in ("running", "waiting", "in_flight"))
        if idle or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def check_storm(url: str, outcomes: list[dict], before: dict[str, float]) -> dict[str, float]:
    by_status: dict = {}
    for outcome in outcomes:
        by_status.setdefault(outcome["status"], []).append(outcome["role"])
    assert set(by_status) <= DOCUMENTED, by_status
    for outcome in outcomes:
        role = outcome["role"]
        if role == "no API key":
            assert outcome["status"] == 401, outcome
        elif role not in ("stream", "hang-up"):
            assert outcome["status"] == 400, outcome  # garbage is the client's error, named as such
        elif outcome["status"] == 200:  # a whole stream: every token, then [DONE], no error event
            assert outcome.get("done") and "error" not in outcome and outcome.get("tokens") == TOKENS, outcome
    after = settled(url)
    for gauge in ("running", "waiting", "in_flight"):
        assert after[f"inkwell_requests_{gauge}"] == 0, (gauge, after)
    hung_up = sum(1 for o in outcomes if o["status"] == 499)
    cancelled = after["inkwell_requests_cancelled_total"] - before.get("inkwell_requests_cancelled_total", 0)
    assert cancelled == hung_up, (cancelled, hung_up)  # each hang-up stopped its rows, nothing else was cancelled
    server_errors = sum(v for k, v in after.items() if k.startswith("inkwell_requests_total") and 'status="5' in k)
    assert server_errors == 0, after
    return after


def test_client_storms_end_in_documented_statuses_and_leave_no_trace(storm_server, figures):
    url = storm_server.url
    process = psutil.Process(storm_server.proc.pid)
    rss, summaries = [], []
    before = gauges(url)
    for _ in range(2):
        started = time.monotonic()
        outcomes = storm(url)
        seconds = time.monotonic() - started
        before = check_storm(url, outcomes, before)
        # the next normal request answers
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json={**CHAT, "max_tokens": 8},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=60,
        )
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] is not None
        rss.append(process.memory_info().rss)
        counts: dict = {}
        for outcome in outcomes:
            counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        summaries.append(f"{dict(sorted(counts.items()))} in {seconds:.1f} s")
    growth = rss[1] / rss[0] - 1
    figures["client storms"] = (
        f"2 x {CLIENTS} clients: {'; '.join(summaries)}; server RSS {rss[0] / 2**20:.0f} MiB after the first, "
        f"{rss[1] / 2**20:.0f} MiB after the second ({growth:+.1%})"
    )
    assert abs(growth) <= 0.05, figures["client storms"]
