"""Hostile files: inputs built to break parsers (thousands of nested brackets, NUL bytes, a 100 MB line, a CSV
field past the CSV module's limit), fed to the commands that read files and to the server's request bodies.
Each gets a one-line error naming the file (and line) with exit status 2, or is read as the data it is (a
data command lists the bad row and goes on); never a traceback, never a 5xx, nothing half-written. Knowledge
folders get their own: a gzip bomb, an archive, a broken PDF, links out of the added folder and a link loop."""

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


# ---------------------------------------------------------------- knowledge folders (`inkwell kb add`)


def _kb_add(capsys, name: str, *paths: Path) -> tuple[int, str]:
    return _run(capsys, ["kb", "add", name, *map(str, paths)])


def test_a_gzip_bomb_is_refused_by_its_unpacked_size(tmp_path, capsys, monkeypatch):
    import gzip

    monkeypatch.setenv("INKWELL_KB_MAX_MB", "2")
    bomb = tmp_path / "bomb.txt.gz"
    with gzip.open(bomb, "wb") as handle:  # 64 MB of text in about 64 KB
        for _ in range(64):
            handle.write(b"a" * (1 << 20))
    assert bomb.stat().st_size < 200_000
    code, out = _kb_add(capsys, "bombs", bomb)
    assert code == 2 and str(bomb) in out and "uncompressed" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) <= 2  # the error and its fix


def test_archives_and_broken_pdfs_are_named_and_nothing_is_half_added(tmp_path, capsys):
    import zipfile

    good = tmp_path / "docs" / "good.md"
    good.parent.mkdir()
    good.write_text("# Returns\n\nYou can return an item within 30 days of delivery.\n")
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "inside")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n" + bytes(range(256)) * 40)
    for bad in (archive, broken):
        code, out = _kb_add(capsys, "shop", good, bad)
        assert code == 2 and str(bad) in out and "Traceback" not in out, out
    code, out = _run(capsys, ["kb", "list"])
    assert "shop" not in out  # a failed first add leaves no folder behind
    code, out = _kb_add(capsys, "shop", good)
    assert code == 0, out


def test_links_out_of_an_added_folder_and_link_loops_are_not_followed(tmp_path, capsys):
    secret = tmp_path / "outside" / "secret.md"
    secret.parent.mkdir()
    secret.write_text("# Secret\n\nThe vault code is 4242.\n")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "faq.md").write_text("# Shipping\n\nParcels leave our warehouse within two days.\n")
    (folder / "leak.md").symlink_to(secret)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    code, out = _kb_add(capsys, "docs", folder)
    assert code == 0 and "leak.md" in out and "Traceback" not in out, out
    code, out = _run(capsys, ["kb", "search", "docs", "vault code", "--json"])
    assert code == 0 and "4242" not in out
