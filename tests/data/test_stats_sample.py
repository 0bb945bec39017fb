"""`inkwell data stats` (counts, histogram PNG, duplicates, PII) and `inkwell data sample` (Debian fortunes)."""

from __future__ import annotations

import json

import pytest

from inkwell.cli import main
from inkwell.data import sample as sample_mod
from inkwell.data.sample import find_files, read_fortunes, sample_rows, write_sample
from inkwell.data.stats import stats_file
from inkwell.errors import InkwellError


def test_stats_counts_everything(tmp_path, capsys):
    rows = [
        {"text": "Call me at 13812345678 or mail a@b.com", "label": "contact"},
        {"text": "Call me at 13812345678 or mail a@b.com", "label": "contact"},  # exact duplicate
        {"text": "The quick brown fox jumps over the lazy dog near the river bank.", "label": "animal"},
        {
            "text": "The quick brown fox leaps over the lazy dog near the river bank!",
            "label": "animal",
        },  # near duplicate
        {
            "text": "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
            "label": "poem",
            "augmented": {"method": "synonym"},
        },
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "oops\n", encoding="utf-8")
    plot = tmp_path / "lengths.png"
    main(["data", "stats", str(src), "--plot", str(plot), "--json", "--no-progress"])
    data = json.loads(capsys.readouterr().out)
    assert data["rows"] == 5 and data["invalid"] == 1 and data["schemas"] == {"text/label": 5}
    assert data["languages"] == {"en": 4, "zh": 1}
    assert data["duplicates"] == {"exact": 1, "near": 1}
    assert data["pii"]["phone"] == 2 and data["pii"]["email"] == 2 and data["rows_with_pii"] == 2
    assert data["labels"] == {"contact": 2, "animal": 2, "poem": 1} and data["augmented"] == 1
    tokens = data["tokens"]
    assert tokens["tokenizer"] == "approx" and tokens["min"] <= tokens["p50"] <= tokens["max"] and tokens["total"] > 40
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and data["plot"] == str(plot)

    main(["data", "stats", str(src), "--no-progress", "--no-pii"])
    out = capsys.readouterr().out
    assert "rows        5 (+1 invalid)" in out and "duplicates  exact 1, near 1" in out and "pii" not in out


def test_stats_with_a_tokenizer_function(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "a b c"}) + "\n", encoding="utf-8")
    stats = stats_file(src, count_tokens=lambda t: 42, tokenizer_name="fake", progress=False)
    assert stats.token_summary()["max"] == 42 and stats.token_summary()["tokenizer"] == "fake"


def test_fortune_parsing_strips_ansi_and_overstrikes(tmp_path, monkeypatch):
    folder = tmp_path / "fortunes"
    folder.mkdir()
    (folder / "song100").write_text(
        "\x1b[32m题目:《塞上》\x1b[m\n\x1b[33m作者:柳开\x1b[m\n鸣骹直上一千尺，天静无风声更干。\n%\n"
        "\x1b[32m题目:《无题》\x1b[m\n第二首。\n%\n",
        encoding="utf-8",
    )
    (folder / "wisdom").write_text("A _\bbold move.\n\t\t-- Someone\n%\n\n%\nSecond.\n", encoding="utf-8")
    monkeypatch.setenv("INKWELL_FORTUNES_DIR", str(folder))
    monkeypatch.setattr(sample_mod, "FORTUNE_DIRS", ())
    assert list(sample_rows("song100")) == [
        {
            "text": "鸣骹直上一千尺，天静无风声更干。",
            "title": "《塞上》",
            "author": "柳开",
            "source": "fortunes-zh/song100",
        },
        {"text": "第二首。", "title": "《无题》", "source": "fortunes-zh/song100"},
    ]
    assert list(read_fortunes(folder / "wisdom")) == ["A bold move.\n\t\t-- Someone", "Second."]
    out = tmp_path / "f.jsonl"
    assert write_sample("fortunes", out, progress=False) == 2  # only the English files present are read
    with pytest.raises(InkwellError, match=r"apt-get install fortunes-zh") as info:
        find_files("tang300")
    assert "not installed" in str(info.value)
    with pytest.raises(InkwellError, match="unknown sample"):
        find_files("limericks")


def installed(name: str):
    try:
        return find_files(name)
    except InkwellError:
        pytest.skip(f"'{name}' is not installed; install with apt-get install {sample_mod.SAMPLES[name].package}")


@pytest.mark.parametrize(
    "name, minimum, lang", [("fortunes", 10_000, "en"), ("song100", 90, "zh"), ("chinese", 5_000, "zh")]
)
def test_sample_real_debian_data(tmp_path, capsys, name, minimum, lang):
    installed(name)
    out = tmp_path / f"{name}.jsonl"
    main(["data", "sample", name, "--out", str(out), "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert report["rows"] == len(rows) >= minimum
    assert all(r["text"].strip() and "\x1b" not in r["text"] and "\b" not in r["text"] for r in rows)
    from inkwell.data.text import detect_language

    share = sum(detect_language(r["text"]) == lang for r in rows) / len(rows)
    assert share > 0.9
    if name == "song100":
        assert all(r.get("title", "").startswith("《") and r.get("author") for r in rows)
    main(["data", "sample", name, "--out", str(out), "--limit", "5", "--no-progress"])
    assert len(out.read_text(encoding="utf-8").splitlines()) == 5
