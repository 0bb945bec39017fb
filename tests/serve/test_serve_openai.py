"""The server through the official `openai` client: models, completions, chat, streaming, every error case."""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import openai
import pytest
from serve_helpers import API_KEY, hooked_loader, start_server

CHAT = [{"role": "user", "content": "Write a product description for a bamboo water bottle."}]


def test_list_models_shows_base_and_adapters_with_parent(live_server):
    models = {m.id: m for m in live_server.client().models.list().data}
    assert set(models) == {"tiny-chat", "alpha", "beta"}
    assert models["tiny-chat"].parent is None
    assert models["alpha"].parent == "tiny-chat" and models["beta"].parent == "tiny-chat"
    assert models["alpha"].context_length == 512


def test_completion(live_server):
    out = live_server.client().completions.create(
        model="tiny-chat", prompt="The quick brown fox", max_tokens=8, temperature=0, seed=1
    )
    assert out.object == "text_completion" and out.model == "tiny-chat"
    choice = out.choices[0]
    assert choice.finish_reason in ("stop", "length") and isinstance(choice.text, str)
    assert out.usage.completion_tokens <= 8 and out.usage.prompt_tokens > 0
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_completion_many_prompts_and_n(live_server):
    out = live_server.client().completions.create(
        model="tiny-chat", prompt=["Poems", "Stories"], max_tokens=4, n=2, seed=3, temperature=0.9
    )
    assert [c.index for c in out.choices] == [0, 1, 2, 3]


def test_chat(live_server):
    out = live_server.client().chat.completions.create(model="tiny-chat", messages=CHAT, max_tokens=10, seed=2)
    assert out.object == "chat.completion"
    assert out.choices[0].message.role == "assistant"
    assert isinstance(out.choices[0].message.content, str)
    assert 0 < out.usage.completion_tokens <= 10


def test_streaming_chat_concatenates_to_the_non_streamed_text(live_server):
    client = live_server.client()
    args = dict(model="tiny-chat", messages=CHAT, max_tokens=24, seed=7, temperature=0.9, stop=["\n\n"])
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_completion_ends_with_done(live_server):
    with httpx.stream(
        "POST",
        f"{live_server.url}/v1/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "alpha", "prompt": "Inkwell writes", "max_tokens": 6, "stream": True},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, param",
    [
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
    ],
)
def test_invalid_parameters_are_400_naming_the_field(live_server, args, param):
    with pytest.raises(openai.BadRequestError) as info:
        live_server.client().chat.completions.create(model="tiny-chat", messages=CHAT, **{"max_tokens": 5, **args})
    assert info.value.status_code == 400
    error = info.value.body
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert set(error) >= {"message", "type", "param", "code"}


def test_prompt_plus_max_tokens_beyond_the_context_is_400_with_both_numbers(live_server):
    long_prompt = "Poems, stories, headlines and news articles. " * 60
    with pytest.raises(openai.BadRequestError) as info:
        live_server.client().completions.create(model="tiny-chat", prompt=long_prompt, max_tokens=300)
    message = info.value.body["message"]
    assert info.value.body["code"] == "context_length_exceeded"
    assert "512" in message and "300" in message


def test_unknown_model_is_404(live_server):
    with pytest.raises(openai.NotFoundError) as info:
        live_server.client().chat.completions.create(model="gpt-9", messages=CHAT, max_tokens=3)
    assert info.value.body["code"] == "model_not_found" and "alpha" in info.value.body["message"]


def test_missing_or_wrong_key_is_401_but_health_and_metrics_are_open(live_server):
    with pytest.raises(openai.AuthenticationError) as info:
        live_server.client(key="sk-wrong").models.list()
    assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
    r = httpx.post(f"{live_server.url}/v1/chat/completions", json={"model": "tiny-chat", "messages": CHAT})
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{live_server.url}/health").status_code == 200
    assert httpx.get(f"{live_server.url}/metrics").status_code == 200


def test_malformed_body_is_400(live_server):
    r = httpx.post(
        f"{live_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "tiny-chat", "messages": "hello"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("messages")


def test_requests_are_logged_with_the_key_id_never_the_key(live_server):
    live_server.client().chat.completions.create(model="beta", messages=CHAT, max_tokens=4, seed=1)
    conn = sqlite3.connect(live_server.state.config.db_path)
    rows = conn.execute("SELECT source, api_key_id, adapter, output FROM generations ORDER BY id DESC").fetchall()
    assert rows[0][0] == "serve" and rows[0][1].startswith("key-") and rows[0][2].endswith("lora-beta")
    dump = "\n".join(conn.iterdump())
    assert API_KEY not in dump


# ---------------------------------------------------------------- limits, failures, loading (own servers)


def test_rate_limit_is_429_with_retry_after(tiny_chat_model, tmp_path):
    server = start_server(tiny_chat_model, tmp_path, rate_limit="2/min", api_keys=[API_KEY])
    try:
        client = server.client()
        client.models.list()
        client.models.list()
        with pytest.raises(openai.RateLimitError) as info:
            client.models.list()
        assert info.value.status_code == 429 and int(info.value.response.headers["retry-after"]) >= 1
        assert info.value.body["code"] == "rate_limit_exceeded"
    finally:
        server.stop()


def test_concurrency_limit_is_429_with_retry_after(tiny_chat_model, tmp_path):
    server = start_server(tiny_chat_model, tmp_path, max_concurrency=1, loader=hooked_loader(delay=0.02))
    try:
        body = {"model": "tiny-chat", "prompt": "Poems", "max_tokens": 300, "min_tokens": 300, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=30) as first:
            lines = first.iter_lines()  # keep a reference: a dropped iterator closes the stream
            next(lines)  # the first request holds the only slot
            with pytest.raises(openai.RateLimitError) as info:
                server.client().completions.create(model="tiny-chat", prompt="Poems", max_tokens=2)
        assert info.value.response.headers["retry-after"] == "1"
        assert info.value.body["code"] == "concurrency_limit_exceeded"
    finally:
        server.stop()


def test_a_full_generation_queue_is_429_queue_full_with_retry_after(tiny_chat_model, tmp_path):
    # batch_size 8 and max_queue 1: one request with n=8 fills the batch, a second waits, a third is told to back off
    server = start_server(tiny_chat_model, tmp_path, max_queue=1, loader=hooked_loader(delay=0.02))
    try:
        body = {"model": "tiny-chat", "prompt": "Poems", "max_tokens": 300, "min_tokens": 300, "n": 8, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=30) as first:
            lines = first.iter_lines()
            next(lines)  # eight rows decoding: the batch is full
            waiting = threading.Thread(
                target=lambda: server.client().completions.create(model="tiny-chat", prompt="Poems", max_tokens=2),
                daemon=True,
            )
            waiting.start()
            deadline = time.monotonic() + 20
            while server.state.scheduler.waiting < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(openai.RateLimitError) as info:
                server.client().chat.completions.create(model="tiny-chat", messages=CHAT, max_tokens=2)
            assert info.value.body["code"] == "queue_full" and info.value.body["type"] == "server_busy"
            assert int(info.value.response.headers["retry-after"]) >= 1
            content = httpx.post(
                f"{server.url}/v1/content/headline", json={"fields": {"text": "Bamboo"}, "max_tokens": 2}, timeout=30
            )  # the content endpoint says the same
            assert content.status_code == 429 and content.json()["error"]["code"] == "queue_full"
            assert int(content.headers["retry-after"]) >= 1
        waiting.join(30)  # the stream was closed (client gone): the waiting request ran
        assert not waiting.is_alive()
    finally:
        server.stop()


def test_engine_failure_is_500_without_internals(tiny_chat_model, tmp_path):
    server = start_server(tiny_chat_model, tmp_path, loader=hooked_loader(fail_at=1))
    try:
        with pytest.raises(openai.InternalServerError) as info:
            server.client().chat.completions.create(model="tiny-chat", messages=CHAT, max_tokens=3)
        assert info.value.status_code == 500
        assert "secret" not in info.value.response.text and "CUDA" not in info.value.response.text
        assert info.value.body["type"] == "server_error"
    finally:
        server.stop()


def test_error_after_streaming_started_is_an_sse_error_event_then_done(tiny_chat_model, tmp_path):
    server = start_server(tiny_chat_model, tmp_path, loader=hooked_loader(fail_at=4))
    try:
        # greedy: a sampled start can be bytes of an unfinished character, held back, so the failure at the
        # fourth pass would come before any text (a 500, not the mid-stream error this test is about)
        body = {"model": "tiny-chat", "messages": CHAT, "max_tokens": 5, "stream": True, "temperature": 0}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            lines = [line for line in r.iter_lines() if line]
        assert '"content"' in lines[1]  # text went out before the failure
        assert lines[-2].startswith('data: {"error"') and "secret" not in lines[-2]
        assert lines[-1] == "data: [DONE]"
        with pytest.raises(openai.APIError):  # the official client raises on the error event
            list(
                server.client().chat.completions.create(
                    model="tiny-chat", messages=CHAT, max_tokens=5, stream=True, temperature=0
                )
            )
    finally:
        server.stop()


def test_health_is_503_while_loading_then_200(tiny_chat_model, tmp_path):
    from serve_helpers import LiveServer

    from inkwell.serve.app import create_app
    from inkwell.serve.state import ServeConfig, ServerState, load_engine

    release = threading.Event()

    def slow_loader(config):
        release.wait(30)
        return load_engine(config)

    state = ServerState(
        ServeConfig(model=str(tiny_chat_model), dtype="fp32", device="cpu", db_path=str(tmp_path / "s.db")),
        loader=slow_loader,
    )
    server = LiveServer(state, create_app(state))
    server.thread.start()
    try:
        while not (server.server.started and server.server.servers):
            time.sleep(0.02)
        url = f"http://127.0.0.1:{server.server.servers[0].sockets[0].getsockname()[1]}"
        r = httpx.get(f"{url}/health")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = httpx.post(f"{url}/v1/completions", json={"model": "tiny-chat", "prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_loading"
        release.set()
        assert state.wait_ready(30)
        assert httpx.get(f"{url}/health").status_code == 200
    finally:
        release.set()
        server.stop()


# ---------------------------------------------------------------- templates and content


def test_templates_and_content(live_server):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    names = {t["name"] for t in httpx.get(f"{live_server.url}/v1/templates", headers=headers).json()["data"]}
    assert {"headline", "lesson-quiz"} <= names
    r = httpx.post(
        f"{live_server.url}/v1/content/headline",
        headers=headers,
        timeout=60,
        json={"fields": {"text": "Bamboo bottles are in."}, "max_tokens": 8, "seed": 1, "model": "alpha"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["template"] == "headline" and body["model"] == "alpha" and not body["structured"]
    assert isinstance(body["choices"][0]["text"], str) and body["usage"]["completion_tokens"] > 0


def test_content_errors(live_server):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    url = live_server.url
    r = httpx.post(f"{url}/v1/content/no-such-template", headers=headers, json={"fields": {}})
    assert r.status_code == 404 and r.json()["error"]["param"] == "template"
    r = httpx.post(f"{url}/v1/content/headline", headers=headers, json={"fields": {}})
    assert r.status_code == 400 and "text" in r.json()["error"]["message"]
    r = httpx.post(
        f"{url}/v1/content/headline", headers=headers, json={"fields": {"text": "x"}, "settings": {"top_kk": 3}}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_kk"
    # A random tiny model never writes valid JSON: a structured template answers 422, never invalid data.
    r = httpx.post(
        f"{url}/v1/content/lesson-quiz",
        headers=headers,
        timeout=60,
        json={"fields": {"topic": "fractions"}, "max_tokens": 8, "json_retries": 0},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "structured_output_invalid"


def test_metrics_cover_latency_tokens_and_errors(live_server):
    client = live_server.client()
    client.chat.completions.create(model="tiny-chat", messages=CHAT, max_tokens=4, seed=1)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=CHAT, max_tokens=4)
    text = httpx.get(f"{live_server.url}/metrics").text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and not line.startswith("#")
    }
    for name in (
        "inkwell_requests_running",
        "inkwell_requests_waiting",
        "inkwell_time_to_first_token_seconds_count",
        "inkwell_inter_token_latency_seconds_count",
        "inkwell_e2e_request_latency_seconds_count",
    ):
        assert name in values
    assert values["inkwell_time_to_first_token_seconds_count"] >= 1
    assert values["inkwell_prompt_tokens_total"] > 0 and values["inkwell_generation_tokens_total"] >= 4
    assert values['inkwell_request_errors_total{type="model_not_found"}'] >= 1
    assert values['inkwell_requests_total{endpoint="chat",status="200"}'] >= 1


def test_native_engine_serves_a_gguf_with_streaming_and_concurrency(tiny_chat_model, tmp_path, monkeypatch):
    """`--engine native` on a llama GGUF: the scheduler's continuous batch is the native one; streamed text
    equals the whole text, and concurrent greedy requests get what they get alone."""
    from inkwell.generate.native import unavailable_here
    from inkwell.models.gguf_write import write_gguf

    if unavailable_here():
        pytest.skip(unavailable_here())
    monkeypatch.setenv("INKWELL_MODEL_CACHE", str(tmp_path / "cache"))
    gguf = write_gguf(tiny_chat_model, tmp_path / "tiny-q4_1.gguf", "q4_1").path
    server = start_server(gguf, tmp_path, engine="native")
    try:
        assert type(server.state.engine).__name__ == "NativeEngine" and server.state.scheduler.continuous
        client = server.client()
        model = client.models.list().data[0].id
        args = dict(model=model, messages=CHAT, max_tokens=16, temperature=0)
        whole = client.chat.completions.create(**args).choices[0].message.content
        chunks = list(client.chat.completions.create(**args, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
        prompts = [[{"role": "user", "content": f"Write about item {i}."}] for i in range(4)]
        alone = [
            client.chat.completions.create(model=model, messages=p, max_tokens=12, temperature=0)
            .choices[0]
            .message.content
            for p in prompts
        ]
        results: list = [None] * 4

        def ask(i):
            results[i] = (
                client.chat.completions.create(model=model, messages=prompts[i], max_tokens=12, temperature=0)
                .choices[0]
                .message.content
            )

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
        assert results == alone
    finally:
        server.stop()
