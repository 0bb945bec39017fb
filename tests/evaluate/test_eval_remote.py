"""`inkwell eval --backend openai` against a live `inkwell serve` (tiny model, fp32, CPU, 127.0.0.1 only):
the remote systems' greedy outputs must equal the same systems evaluated locally."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_helpers import API_KEY, build_lora, start_server  # noqa: E402

from inkwell.cli import main  # noqa: E402

PROMPTS = [
    "Write a tweet about organic green tea.",
    "Describe a bamboo water bottle.",
    "Name three poems.",
    "Summarise: the shop opens at nine.",
    "Say hello to a new customer.",
]


@pytest.fixture(scope="module")
def adapter(tiny_chat_model, tmp_path_factory) -> Path:
    return build_lora(tiny_chat_model, tmp_path_factory.mktemp("eval-remote") / "lora-alpha", 1)


@pytest.fixture(scope="module")
def server(tiny_chat_model, adapter, tmp_path_factory):
    live = start_server(
        tiny_chat_model,
        tmp_path_factory.mktemp("eval-serve"),
        adapters={"alpha": str(adapter)},
        api_keys=[API_KEY],
        max_concurrency=8,
    )
    yield live
    live.stop()


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"r{i}", "prompt": p, "reference": p.lower()}) + "\n" for i, p in enumerate(PROMPTS))
    )
    return path


COMMON = ["--metrics", "chrf,length,perplexity", "--bootstrap", "0", "--max-new-tokens", "12", "--batch-size", "4"]


def _outputs(out: Path) -> dict[str, dict[str, str]]:
    report = json.loads((out / "report.json").read_text())
    return {
        name: {ex["id"]: ex["outputs"][name]["text"] for ex in report["examples"]}
        for name in (s["name"] for s in report["systems"])
    }


def test_remote_eval_matches_local_eval(server, tiny_chat_model, adapter, data, tmp_path, capsys):
    local_out, remote_out = tmp_path / "local", tmp_path / "remote"
    main(
        [
            "eval",
            "--data",
            str(data),
            "--out",
            str(local_out),
            *COMMON,
            "--dtype",
            "fp32",
            "--device",
            "cpu",
            "--system",
            f"base={tiny_chat_model}",
            "--system",
            f"tuned={tiny_chat_model}:{adapter}",
        ]
    )
    remote = ["--backend", "openai", "--base-url", server.url, "--api-key", API_KEY]
    main(
        [
            "eval",
            "--data",
            str(data),
            "--out",
            str(remote_out),
            *COMMON,
            *remote,
            "--system",
            "base=tiny-chat",
            "--system",
            "tuned=alpha",
        ]
    )
    capsys.readouterr()

    local, remote_texts = _outputs(local_out), _outputs(remote_out)
    assert all(t for texts in remote_texts.values() for t in texts.values())  # real generations, no errors
    assert remote_texts == local  # greedy, fp32, the same weights and chat template: token for token
    assert remote_texts["base"] != remote_texts["tuned"]  # the adapter was really applied on the server

    report = json.loads((remote_out / "report.json").read_text())
    assert report["backend"] == "openai" and report["base_url"] == server.url + "/v1"
    assert "perplexity" not in report["metrics"] and "perplexity" not in report["scores"]["base"]
    assert any("Perplexity was skipped" in note for note in report["notes"])
    assert "Perplexity was skipped" in (remote_out / "report.md").read_text()
    assert all(s["generated"] == len(PROMPTS) and s["failed"] == 0 for s in report["systems"])
    local_report = json.loads((local_out / "report.json").read_text())
    assert "perplexity" in local_report["scores"]["base"]
    for metric in ("chrf", "length_mean"):
        assert report["scores"]["tuned"][metric]["value"] == local_report["scores"]["tuned"][metric]["value"]

    # the cache: a re-run (same server, URL spelled with /v1/) generates nothing ...
    main(
        [
            "eval",
            "--data",
            str(data),
            "--out",
            str(remote_out),
            *COMMON,
            "--backend",
            "openai",
            "--base-url",
            server.url + "/v1/",
            "--api-key",
            API_KEY,
            "--system",
            "base=tiny-chat",
            "--system",
            "tuned=alpha",
        ]
    )
    again = json.loads((remote_out / "report.json").read_text())
    assert [(s["generated"], s["cached"]) for s in again["systems"]] == [(0, len(PROMPTS))] * 2
    assert _outputs(remote_out) == remote_texts
    # ... and its keys differ from the local run's for the same rows (base_url + model name are in the key)
    keys = {json.loads(line)["key"] for line in (remote_out / "generations" / "base.jsonl").read_text().splitlines()}
    local_keys = {
        json.loads(line)["key"] for line in (local_out / "generations" / "base.jsonl").read_text().splitlines()
    }
    assert keys and not keys & local_keys


def test_remote_eval_errors(server, tiny_chat_model, adapter, data, tmp_path, capsys):
    remote = ["--backend", "openai", "--base-url", server.url, "--api-key", API_KEY, *COMMON]
    with pytest.raises(SystemExit) as info:  # a local adapter folder cannot be sent to a server
        main(
            [
                "eval",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "a"),
                *remote,
                "--system",
                f"tuned=tiny-chat:{adapter}",
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and "local folder" in err and "exposes the adapter as a model" in err
    with pytest.raises(SystemExit) as info:  # a model the server does not have: the server's list in the error
        main(["eval", "--data", str(data), "--out", str(tmp_path / "b"), *remote, "--system", "x=gpt-9"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "system 'x'" in err and "no model 'gpt-9'" in err and "alpha" in err
    with pytest.raises(SystemExit) as info:
        main(
            [
                "eval",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "c"),
                "--backend",
                "openai",
                "--system",
                "x=tiny-chat",
            ]
        )
    assert info.value.code == 2 and "--base-url" in capsys.readouterr().err
