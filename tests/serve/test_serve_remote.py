"""The remote backend (`--backend openai`) against `inkwell serve` itself."""

from __future__ import annotations

import json
import socket

import pytest
from serve_helpers import API_KEY

from inkwell.errors import InkwellError
from inkwell.generate.settings import GenerationSettings

CHAT = [{"role": "user", "content": "Write a tweet about organic green tea."}]


@pytest.fixture
def remote(live_server):
    from inkwell.generate.remote import RemoteEngine

    engine = RemoteEngine(live_server.url, "tiny-chat", API_KEY, batch_size=4)
    yield engine
    engine.close()


def test_remote_engine_reads_the_model_from_the_server(remote):
    assert remote.loaded.name == "tiny-chat" and remote.loaded.chat is True
    assert remote.loaded.context_length == 512
    assert remote.base_url.endswith("/v1") and remote.approximate_counts  # no local tokenizer for "tiny-chat"
    assert remote.count_tokens(CHAT) > 0


def test_remote_generate_matches_the_server_engine(remote, live_server):
    settings = GenerationSettings(max_new_tokens=10, seed=4, temperature=0.9, num_return_sequences=2)
    results = remote.generate([CHAT, "Poems, stories"], settings)
    assert [(r.prompt_index, r.sample_index) for r in results] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    local = live_server.state.scheduler.run([CHAT], GenerationSettings(max_new_tokens=10, seed=4, temperature=0.9))
    assert results[0].text == local[0].text and results[0].completion_tokens == local[0].completion_tokens
    assert results[0].seed == 4 and results[1].seed == 5


def test_remote_streaming_deltas_concatenate_to_the_text(remote):
    deltas: dict[int, str] = {}
    results = remote.generate(
        [CHAT],
        GenerationSettings(max_new_tokens=12, seed=1),
        on_delta=lambda i, t: deltas.__setitem__(i, deltas.get(i, "") + t),
    )
    assert deltas.get(0, "") == results[0].text and results[0].completion_tokens > 0


def test_remote_write_content_and_adapter_by_name(live_server):
    from inkwell.generate.content import write
    from inkwell.generate.remote import RemoteEngine
    from inkwell.prompts.library import get_template

    engine = RemoteEngine(live_server.url + "/v1", "alpha", API_KEY)
    items = write(
        engine, get_template("headline"), {"text": "Bamboo bottles"}, overrides={"max_new_tokens": 6, "seed": 2}
    )
    assert items[0].generation.completion_tokens > 0


def test_remote_errors_are_clear(live_server):
    from inkwell.generate.remote import RemoteEngine

    with pytest.raises(InkwellError, match="no model 'gpt-9'"):
        RemoteEngine(live_server.url, "gpt-9", API_KEY)
    with pytest.raises(InkwellError, match="401") as info:
        RemoteEngine(live_server.url, "tiny-chat", "sk-wrong")
    assert info.value.field == "api-key"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(InkwellError, match="cannot reach"):
        RemoteEngine(f"http://127.0.0.1:{closed_port}", "tiny-chat")
    engine = RemoteEngine(live_server.url, "tiny-chat", API_KEY)
    with pytest.raises(InkwellError, match="400") as info:
        engine.generate(["Poems, stories and headlines. " * 30], GenerationSettings(max_new_tokens=450))
    assert "maximum context length is 512" in str(info.value)


def test_cli_write_and_batch_against_the_server(live_server, tmp_path, capsys):
    from inkwell.cli import main

    remote = [
        "--backend",
        "openai",
        "--base-url",
        live_server.url,
        "--api-key",
        API_KEY,
        "--model",
        "tiny-chat",
        "--max-new-tokens",
        "5",
        "--seed",
        "1",
        "--no-moderation",
    ]
    main(["write", "headline", "--set", "text=Bamboo bottles", "--json", *remote])
    record = json.loads(capsys.readouterr().out)
    assert record["model"] == "tiny-chat" and record["usage"]["completion_tokens"] > 0

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "text": f"news item {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    main(["batch", "headline", "-i", str(rows), "-o", str(out), "--no-progress", *remote])
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["0", "1", "2"]

    with pytest.raises(SystemExit) as info:
        main(["write", "headline", "--set", "text=x", "--backend", "openai"])
    assert info.value.code == 2 and "--base-url" in capsys.readouterr().err
