"""Concurrency through an async HTTP client: parallel streams, disconnects freeing their slot, and two
adapters at once each matching their sequential results."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from serve_helpers import API_KEY, hooked_loader, start_server

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
CHAT = [{"role": "user", "content": "Write a short ad for a solar phone charger."}]


async def _stream_chat(client: httpx.AsyncClient, url: str, body: dict) -> tuple[str, bool]:
    text, done = "", False
    async with client.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, headers=HEADERS) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                for choice in json.loads(line[6:])["choices"]:
                    text += choice["delta"].get("content") or ""
    return text, done


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def test_parallel_streams_all_complete_in_shared_batches(live_server):
    count = 8
    before = live_server.state.scheduler.batches

    async def main():
        async with httpx.AsyncClient(timeout=60) as client:
            bodies = [{"model": "tiny-chat", "messages": CHAT, "max_tokens": 12, "seed": i} for i in range(count)]
            return await asyncio.gather(*[_stream_chat(client, live_server.url, body) for body in bodies])

    results = asyncio.run(main())
    assert all(done for _, done in results)
    assert live_server.state.scheduler.batches - before < count  # requests shared engine calls


def test_adapters_at_once_match_their_sequential_results(live_server):
    body = {"messages": CHAT, "max_tokens": 12, "seed": 5, "temperature": 0.9}
    client = live_server.client()
    sequential = {
        m: client.chat.completions.create(model=m, **body).choices[0].message.content
        for m in ("alpha", "beta", "tiny-chat")
    }
    assert len(set(sequential.values())) == 3  # the adapters really change the model

    async def main():
        async with httpx.AsyncClient(timeout=60) as http:

            async def one(model):
                r = await http.post(
                    f"{live_server.url}/v1/chat/completions", json={"model": model, **body}, headers=HEADERS
                )
                return r.json()["choices"][0]["message"]["content"]

            async def streamed(model):
                return (await _stream_chat(http, live_server.url, {"model": model, **body}))[0]

            return await asyncio.gather(
                one("alpha"), one("beta"), streamed("alpha"), streamed("beta"), one("tiny-chat")
            )

    alpha, beta, alpha_stream, beta_stream, base = asyncio.run(main())
    assert (alpha, beta, base) == (sequential["alpha"], sequential["beta"], sequential["tiny-chat"])
    assert (alpha_stream, beta_stream) == (sequential["alpha"], sequential["beta"])


def test_served_adapter_matches_the_merged_adapter(live_server, lora_adapters, tiny_chat_model):
    from inkwell.generate.engine import Engine
    from inkwell.generate.settings import GenerationSettings
    from inkwell.models.load import load_model

    merged = Engine(load_model(str(tiny_chat_model), adapter=lora_adapters["beta"], dtype="fp32", device="cpu"))
    local = merged.generate([CHAT], GenerationSettings(max_new_tokens=10, seed=9, temperature=0.8))[0].text
    served = live_server.client().chat.completions.create(
        model="beta", messages=CHAT, max_tokens=10, seed=9, temperature=0.8
    )
    assert served.choices[0].message.content == local


def test_a_client_that_disconnects_frees_its_slot(tiny_chat_model, tmp_path):
    server = start_server(tiny_chat_model, tmp_path, max_concurrency=1, loader=hooked_loader(delay=0.02))
    url = server.url
    try:
        body = {"model": "tiny-chat", "prompt": "Poems", "max_tokens": 400, "min_tokens": 400}

        async def leave_mid_stream():
            async with httpx.AsyncClient(timeout=30) as client:
                async with client.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}) as r:
                    lines = r.aiter_lines()
                    for _ in range(3):
                        await lines.__anext__()
                    assert _metric(url, "inkwell_requests_in_flight") == 1
                    assert _metric(url, "inkwell_requests_running") == 1
            # leaving the block closes the connection mid-stream

        asyncio.run(leave_mid_stream())
        deadline = time.monotonic() + 10
        while _metric(url, "inkwell_requests_in_flight") or _metric(url, "inkwell_requests_running"):
            assert time.monotonic() < deadline, "the slot was not freed"
            time.sleep(0.05)
        assert _metric(url, "inkwell_requests_cancelled_total") == 1
        # The slot is free (max_concurrency=1) and the engine stopped decoding the abandoned rows.
        started = time.monotonic()
        r = httpx.post(
            f"{url}/v1/completions", json={"model": "tiny-chat", "prompt": "Poems", "max_tokens": 3}, timeout=30
        )
        assert r.status_code == 200 and time.monotonic() - started < 5

        # A non-streaming client that gives up is cancelled too.
        try:
            httpx.post(f"{url}/v1/completions", json=body, timeout=0.5)
        except httpx.TimeoutException:
            pass
        deadline = time.monotonic() + 10
        while _metric(url, "inkwell_requests_cancelled_total") < 2 or _metric(url, "inkwell_requests_in_flight"):
            assert time.monotonic() < deadline, "the non-streaming request was not cancelled"
            time.sleep(0.05)
    finally:
        server.stop()
