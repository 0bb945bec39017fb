"""Hostile files: inputs built to break parsers (thousands of nested brackets, NUL bytes, a 100 MB line, a CSV
field past the CSV module's limit), fed to the commands that read files and to the server's request bodies.
Each gets a one-line error naming the file (and line) with exit status 2, or is read as the data it is (a
data command lists the bad row and goes on); never a traceback, never a 5xx, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from serve.serve_helpers import API_KEY, start_server

from inkwell.cli import main

pytestmark = pytest.mark.reliability

DEEP = 100_000  # levels: far past Python's recursion limit (1,000)


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:  # any other exception would be a traceback for the user
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out + err


def _deep_json() -> str:
    return '{"text": ' + "[" * DEEP + "]" * DEEP + "}"


def _files(tmp: Path) -> dict[str, Path]:
    files = {
        "deep.jsonl": '{"text": "fine"}\n' + _deep_json() + "\n",
        "deep.json": "[" * DEEP + "]" * DEEP,
        "deep.yaml": "name: " + "[" * DEEP + "]" * DEEP + "\n",
    }
    out = {}
    for name, text in files.items():
        (tmp / name).write_text(text)
        out[name] = tmp / name
    return out


@pytest.mark.parametrize(
    ("argv", "bad", "where"),
    [
        (["score", "--pred", "{deep.jsonl}", "--ref", "{deep.jsonl}"], "deep.jsonl", ":2:"),
        (["score", "--pred", "{deep.json}", "--ref", "{deep.json}"], "deep.json", ":1:"),
        (["moderate", "hello", "--policy", "{deep.yaml}"], "deep.yaml", ""),
        (["train", "{deep.yaml}", "--check"], "deep.yaml", ""),
        (["write", "--template-file", "{deep.yaml}"], "deep.yaml", ""),
        (["data", "stats", "{deep.jsonl}", "--json"], "deep.jsonl", ":2"),  # listed, and the good row counted
    ],
)
def test_deeply_nested_files_get_a_one_line_error(argv, bad, where, tmp_path, capsys):
    files = _files(tmp_path)
    code, text = _run(capsys, [_fill(part, files) for part in argv])
    assert "Traceback" not in text and "RecursionError" not in text
    assert f"{files[bad]}{where}" in text, text
    assert "nested too deeply" in text
    assert code in ((0,) if argv[0] == "data" else (2,)), text


def _fill(part: str, files: dict[str, Path]) -> str:
    for name, path in files.items():
        part = part.replace("{" + name + "}", str(path))
    return part


def test_nul_bytes_and_a_100mb_line_are_data_or_a_named_bad_row(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    with rows.open("wb") as handle:
        handle.write(b'{"text": "first"}\n')
        handle.write(b'{"text": "a\x00b"}\n')  # a raw NUL inside a string: not JSON, named
        handle.write(b'{"text": "' + b"x" * (100 * 1024 * 1024) + b'"}\n')  # 100 MB: valid, read as data
        handle.write(b'{"text": "last \\u0000 escaped"}\n')  # an escaped NUL: valid JSON text
    out = tmp_path / "clean.jsonl"
    code, text = _run(capsys, ["data", "clean", str(rows), "--out", str(out), "--max-chars", "1000"])
    assert code == 0 and "Traceback" not in text, text[-2000:]
    kept = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    # the long row is over --max-chars; the raw NUL row is invalid; cleaning drops the escaped NUL (a control
    # character) and the doubled space it leaves
    assert kept == ["first", "last escaped"]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_csv_field_past_the_csv_limit_is_a_named_bad_row(tmp_path, capsys):
    table = tmp_path / "rows.csv"
    long = "z" * 300_000  # past the csv module's default limit (128 KiB), within Inkwell's (16 MiB)
    table.write_text("text,label\nshort,a\n" + "y" * (17 * 1024 * 1024) + ",b\n" + long + ",c\nafter,d\n")
    out = tmp_path / "out.jsonl"
    code, text = _run(capsys, ["data", "ingest", str(table), "--out", str(out)])
    assert code in (0, 1) and "Traceback" not in text, text[-2000:]
    assert f"{table}:3" in text and "field larger than field limit" in text
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["short", long, "after"]


def test_a_deeply_nested_request_body_is_a_400(fuzz_like_server):
    body = '{"messages": ' + "[" * DEEP + "]" * DEEP + "}"
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    for path in ("/v1/chat/completions", "/v1/completions", "/studio/api/pieces"):
        response = httpx.post(fuzz_like_server.url + path, content=body, headers=headers, timeout=60)
        assert response.status_code == 400, (path, response.text[:300])
        assert "nested too deeply" in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def fuzz_like_server(tiny_chat_model, tmp_path_factory):

    server = start_server(tiny_chat_model, tmp_path_factory.mktemp("hostile"), api_keys=[API_KEY])
    yield server
    server.stop()
