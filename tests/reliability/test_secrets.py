"""Secrets: a live `inkwell serve` with a recognisable random API key answers authenticated, unauthenticated and
failing requests; afterwards no artefact of the run holds the key: not a byte of any file under INKWELL_HOME
(the SQLite history database, its journal files, the moderation audit), the server's stdout and stderr, nor
any response body. The database does record the key's id, so the search looks where the key would be."""

from __future__ import annotations

import hashlib
import secrets

import httpx
import pytest
from reliability_helpers import ServeProcess

pytestmark = pytest.mark.reliability


def test_the_api_key_is_in_no_artefact_of_a_run(tiny_chat_model, tmp_path, figures):
    key = f"sk-reliability-{secrets.token_hex(16)}"
    wrong = key[:-4] + "beef"  # a near miss: it must not be echoed either
    home, logs = tmp_path / "home", tmp_path / "logs"
    server = ServeProcess(tiny_chat_model, home, logs, "--api-key", key).wait_ready()
    bodies: list[bytes] = []
    statuses = []
    chat = {"messages": [{"role": "user", "content": "Write a poem about a lamp."}], "max_tokens": 12}
    requests = [
        ("GET", "/v1/models", key, None),
        ("GET", "/v1/templates", key, None),
        ("POST", "/v1/chat/completions", key, chat),
        ("POST", "/v1/chat/completions", key, {**chat, "stream": True}),
        ("POST", "/v1/completions", key, {"prompt": "Poems", "max_tokens": 8, "seed": 1}),
        ("POST", "/v1/content/headline", key, {"fields": {"text": "A lamp for readers."}, "max_tokens": 8}),
        ("POST", "/v1/chat/completions", None, chat),  # no key
        ("POST", "/v1/chat/completions", wrong, chat),  # a wrong key
        ("POST", "/v1/chat/completions", key, {**chat, "max_tokens": "ten"}),  # failing: invalid body
        ("POST", "/v1/chat/completions", key, {**chat, "model": "no-such-model"}),  # failing: unknown model
        ("POST", "/v1/content/no-such-template", key, {"fields": {}}),  # failing: unknown template
        ("GET", "/metrics", None, None),
        ("GET", "/health", None, None),
    ]
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for method, path, secret, body in requests:
                headers = {"Authorization": f"Bearer {secret}"} if secret else {}
                response = client.request(method, path, json=body, headers=headers)
                statuses.append(response.status_code)
                bodies.append(response.content + str(response.headers).encode())
            # a malformed header that carries the key
            response = client.post("/v1/chat/completions", json=chat, headers={"Authorization": f"Basic {key}"})
            statuses.append(response.status_code)
            bodies.append(response.content + str(response.headers).encode())
    finally:
        exit_status = server.stop()  # SIGTERM: the store is closed and the logs flushed
    assert statuses == [200, 200, 200, 200, 200, 200, 401, 401, 400, 404, 404, 200, 200, 401], statuses
    assert exit_status is not None

    artefacts = {
        str(p.relative_to(tmp_path)): p.read_bytes() for p in [*home.rglob("*"), *logs.rglob("*")] if p.is_file()
    }
    artefacts |= {f"response body {i}": body for i, body in enumerate(bodies)}
    assert any(name.endswith("inkwell.db") for name in artefacts), sorted(artefacts)
    key_id = "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    assert any(key_id.encode() in data for data in artefacts.values()), "the history does not record the key's id"
    searched = sum(len(data) for data in artefacts.values())
    for needle in (key, wrong, key.removeprefix("sk-reliability-")):
        found = [name for name, data in artefacts.items() if needle.encode() in data]
        assert not found, f"the API key is in {found}"
    figures["secrets"] = (
        f"{len(statuses)} requests ({statuses.count(200)} answered, {sum(s in (401, 400, 404) for s in statuses)} "
        f"refused); key found in 0 of {len(artefacts)} artefacts ({searched / 1024:.0f} KiB searched)"
    )
