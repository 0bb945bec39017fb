"""Known poems (evaluate/known_poems.py): a written poem that reproduces a poem of the reference files is flagged,
and `inkwell write poem` says so on standard error and in --json; without the files nothing is checked and --json
says why. The reference files here are small fortune files in a temporary folder (INKWELL_FORTUNES_DIR)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run

from inkwell.evaluate import known_poems
from inkwell.evaluate.known_poems import COPIED_ZH, KnownPoems, flag_known_poems
from inkwell.evaluate.text import word_tokens
from inkwell.generate.jobs import Outcome

SPRING = "\x1b[32m《春晓》\x1b[m\n\x1b[33m作者：孟浩然\x1b[m\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n"
NIGHT = "\x1b[32m《静夜思》\x1b[m\n\x1b[33m作者：李白\x1b[m\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"


@pytest.fixture
def fortunes(tmp_path, monkeypatch):
    """A fortunes folder holding a two-poem tang300 file (the packages' format: entries between % lines)."""
    folder = tmp_path / "fortunes"
    folder.mkdir()
    (folder / "tang300").write_text(SPRING + "%\n" + NIGHT, encoding="utf-8")
    monkeypatch.setenv("INKWELL_FORTUNES_DIR", str(folder))
    known_poems._load.cache_clear()
    yield folder
    known_poems._load.cache_clear()


def test_a_recited_poem_is_flagged_with_its_title(fortunes):
    known = KnownPoems.load()
    assert known is not None and len(known.poems) == 2
    match = known.find("春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。")
    assert match.flagged and match.copied == 20
    assert (match.title, match.author, match.source) == ("《春晓》", "孟浩然", "fortunes-zh/tang300")
    assert "春晓" in match.describe() and "20 characters" in match.describe()


def test_a_new_poem_and_a_short_allusion_are_not_flagged(fortunes):
    known = KnownPoems.load()
    assert not known.find("落日照江村，渔舟泊柳根。炊烟随晚风，犬吠到柴门。").flagged
    allusion = known.find("床前明月光，窗外秋风凉。")  # one famous line (5 characters) is allusion, not recital
    assert allusion.copied == 5 and not allusion.flagged
    couplet = known.find("床前明月光，疑是地上霜。今夜客难眠。")
    assert couplet.copied == COPIED_ZH and couplet.flagged


class Record:
    def __init__(self, text: str):
        self.text, self.extra = text, {}


class Job:
    def __init__(self, name: str):
        self.template = type("T", (), {"name": name})()


def test_the_write_step_flags_poems_only(fortunes):
    said: list[str] = []
    texts = ["春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。", "窗前一丛竹，风过叶声清。"]
    step = flag_known_poems(lambda engine, job, **kw: Outcome([Record(t) for t in texts]), said.append)
    outcome = step(None, Job("poem"))
    assert outcome.records[0].extra["known_poem"]["flagged"] is True
    assert outcome.records[1].extra["known_poem"]["flagged"] is False
    assert len(outcome.warnings) == 1 and "《春晓》" in outcome.warnings[0] and "(version 1)" in outcome.warnings[0]
    headline = step(None, Job("headline"))
    assert all("known_poem" not in r.extra for r in headline.records) and not said


def test_without_the_reference_poems_nothing_is_checked(monkeypatch):
    monkeypatch.setattr(KnownPoems, "files", staticmethod(lambda: []))
    known_poems._load.cache_clear()
    try:
        said: list[str] = []
        step = flag_known_poems(lambda engine, job, **kw: Outcome([Record("春眠不觉晓，处处闻啼鸟。")]), said.append)
        outcome = step(None, Job("poem"))
        flag = outcome.records[0].extra["known_poem"]
        assert flag["checked"] is False and "fortunes-zh" in flag["reason"]
        assert not outcome.warnings and said and "skipped" in said[0]
    finally:
        known_poems._load.cache_clear()


def test_write_poem_flags_a_recited_poem_on_stderr_and_in_json(capsys, tiny_chat_model, fortunes):
    argv = ["write", "poem", "--model", str(tiny_chat_model), "--set", "topic=spring", "--json", "--no-stream"]
    argv += ["--seed", "5", "--dtype", "fp32", "--device", "cpu", "--max-new-tokens", "40"]
    out, err = run(capsys, argv)
    first = json.loads(out)
    assert first["known_poem"]["checked"] is True and first["known_poem"]["flagged"] is False
    assert "reproduces" not in err
    # the same poem again, now that it is a "known" one: the random model's words, copied in full
    (fortunes / "songs-poems").write_text(first["text"] + "\n", encoding="utf-8")
    known_poems._load.cache_clear()
    out, err = run(capsys, argv)
    again = json.loads(out)
    assert again["text"] == first["text"]
    flag = again["known_poem"]
    assert flag["flagged"] is True and flag["copied"] == len(word_tokens(first["text"])) >= COPIED_ZH
    assert flag["source"] == "fortunes/songs-poems"
    assert "warning: the poem reproduces a known poem (fortunes/songs-poems)" in err
