"""`inkwell data augment`: WordNet synonyms (a fake database, and Debian's real one when installed) and LM
paraphrase / back-translation through an engine; augmented rows are marked with their source."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest

from inkwell.cli import main
from inkwell.data import wordnet as wn
from inkwell.data.augment import augment_file, source_key
from inkwell.errors import InkwellError
from inkwell.generate.engine import GenerationResult
from inkwell.generate.rewrite import lm_rewrite

LICENSE = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2 Princeton University  \n"


def build_wordnet(folder: Path, synsets: dict[str, list[list[str]]]) -> Path:
    """A tiny WordNet in the real file format: synsets[pos] is a list of synsets (lists of words)."""
    folder.mkdir(parents=True, exist_ok=True)
    for pos, name in wn.POS_FILES.items():
        data = LICENSE
        senses: dict[str, list[int]] = {}
        for words in synsets.get(pos, []):
            offset = len(data.encode("utf-8"))
            fields = " ".join(f"{w} 0" for w in words)
            data += f"{offset:08d} 00 {pos} {len(words):02x} {fields} 000 | gloss  \n"
            for w in words:
                senses.setdefault(w.lower(), []).append(offset)
        (folder / f"data.{name}").write_text(data, encoding="utf-8")
        index = LICENSE + "".join(
            f"{lemma} {pos} {len(offs)} 0 {len(offs)} 0 {' '.join(f'{o:08d}' for o in offs)}  \n"
            for lemma, offs in sorted(senses.items())
        )
        (folder / f"index.{name}").write_text(index, encoding="utf-8")
    return folder


@pytest.fixture
def fake_wordnet(tmp_path, monkeypatch):
    folder = build_wordnet(
        tmp_path / "wn",
        {
            "a": [["quick", "speedy", "fast"], ["happy", "felicitous", "glad"], ["quick", "agile"]],
            "n": [["bottle"], ["automobile", "auto", "machine", "motorcar"], ["zebra"], ["aardvark", "ant_bear"]],
            "v": [["run"], ["run", "scat", "scamper"]],
        },
    )
    monkeypatch.setenv("INKWELL_WORDNET_DIR", str(folder))
    return wn.WordNet()


def test_wordnet_reader_binary_search(fake_wordnet):
    assert fake_wordnet.synonyms("quick") == ("speedy", "fast", "agile")
    assert fake_wordnet.synonyms("automobile") == ("auto", "machine", "motorcar")
    assert fake_wordnet.synonyms("aardvark") == ()  # multi-word synonyms are left out
    assert (
        fake_wordnet.synonyms("zebra") == () and fake_wordnet.synonyms("zzz") == () and fake_wordnet.synonyms("a") == ()
    )
    assert fake_wordnet.synonyms("run") == ("scat", "scamper")
    assert fake_wordnet.senses("happy", "a") and not fake_wordnet.senses("happy", "n")


def test_missing_wordnet_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("INKWELL_WORDNET_DIR", str(tmp_path))
    monkeypatch.setattr(wn, "WORDNET_DIRS", ())
    with pytest.raises(InkwellError, match="apt-get install wordnet"):
        wn.WordNet()


def rows_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_synonym_augmentation_marks_rows_and_keeps_targets(tmp_path, fake_wordnet):
    src = rows_file(
        tmp_path / "in.jsonl",
        [
            {"id": "1", "instruction": "Describe the quick automobile", "output": "A quick automobile is a happy one."},
            {"text": "床前明月光"},
            {"text": "Nothing here to swap"},
        ],
    )
    out = tmp_path / "out.jsonl"
    report = augment_file(src, out, n=2, rate=1.0, seed=3, wordnet=fake_wordnet, progress=False)
    rows = read(out)
    assert [("augmented" in r) for r in rows] == [False, True, True, False, False]
    original, first, second = rows[0], rows[1], rows[2]
    assert first["output"] == original["output"]  # targets are not rewritten
    assert first["instruction"] != original["instruction"] and first["instruction"].startswith("Describe the ")
    words = first["instruction"].split()
    assert words[2] in ("speedy", "fast", "agile") and words[3] in ("auto", "machine", "motorcar")
    assert first["augmented"] == {
        "method": "synonym",
        "source": source_key(original, "alpaca"),
        "variant": 0,
        "replaced": 2,
    }
    assert second["augmented"]["variant"] == 1 and "id" not in first
    assert report.augmented == 2 and report.skipped == {
        "not English (WordNet synonyms are English)": 1,
        "no word with a synonym was picked": 1,
    }
    again = tmp_path / "again.jsonl"
    augment_file(src, again, n=2, rate=1.0, seed=3, wordnet=fake_wordnet, progress=False, keep_original=False)
    assert read(again) == rows[1:3]  # same seed, same variants


def test_real_wordnet_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("INKWELL_WORDNET_DIR", raising=False)
    try:
        wn.find_wordnet_dir()
    except InkwellError:
        pytest.skip("WordNet data files not installed; install with apt-get install wordnet")
    src = rows_file(
        tmp_path / "in.jsonl",
        [{"text": "The quick driver parked the beautiful automobile beside the river.", "label": "travel"}],
    )
    out = tmp_path / "out.jsonl"
    main(
        [
            "data",
            "augment",
            str(src),
            "--out",
            str(out),
            "--rate",
            "1",
            "--n",
            "3",
            "--only-augmented",
            "--json",
            "--no-progress",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    rows = read(out)
    assert report["augmented"] == len(rows) >= 1
    assert all(r["label"] == "travel" and r["augmented"]["method"] == "synonym" for r in rows)
    assert all(r["text"] != "The quick driver parked the beautiful automobile beside the river." for r in rows)


class FakeEngine:
    """Chat engine that 'paraphrases' by reversing the words and 'translates' by tagging the language."""

    def __init__(self):
        self.loaded = SimpleNamespace(chat=True)
        self.calls: list[list] = []

    def generate(self, prompts, settings):
        self.calls.append(prompts)
        out = []
        for i, prompt in enumerate(prompts):
            instruction, _, text = prompt[-1]["content"].partition("\n\n")
            if "Rewrite" in instruction:
                new = "" if text == "skip me" else '"' + " ".join(reversed(text.split())) + '"'
            elif "into Chinese" in instruction:
                new = f"ZH({text})"
            else:
                new = text.replace("ZH(", "").replace(")", "") + " again"
            out.append(GenerationResult(new, 1, 1, "stop", 0.0, i, 0, settings.seed))
        return out


def test_lm_paraphrase_and_back_translation(tmp_path):
    src = rows_file(
        tmp_path / "in.jsonl",
        [
            {"prompt": "hello there", "completion": "hi"},
            {"prompt": "skip me", "completion": "x"},
            {"text": "third row"},
        ],
    )
    engine = FakeEngine()
    out = tmp_path / "para.jsonl"
    report = augment_file(
        src,
        out,
        method="paraphrase",
        rewrite=partial(lm_rewrite, engine),
        batch_size=2,
        keep_original=False,
        progress=False,
    )
    rows = read(out)
    assert [r.get("prompt") or r.get("text") for r in rows] == ["there hello", "row third"]
    assert rows[0]["completion"] == "hi" and rows[0]["augmented"]["method"] == "paraphrase"
    assert report.skipped == {"model gave no usable rewrite": 1} and len(engine.calls) == 2  # batches of 2, then 1

    out = tmp_path / "bt.jsonl"
    augment_file(
        src,
        out,
        method="back-translate",
        rewrite=partial(lm_rewrite, FakeEngine()),
        keep_original=False,
        progress=False,
    )
    assert [r.get("prompt") or r.get("text") for r in read(out)] == [
        "hello there again",
        "skip me again",
        "third row again",
    ]


def test_lm_methods_need_an_engine(tmp_path):
    src = rows_file(tmp_path / "in.jsonl", [{"text": "x"}])
    with pytest.raises(InkwellError, match="needs a model"):
        augment_file(src, tmp_path / "o.jsonl", method="paraphrase", progress=False)
    with pytest.raises(InkwellError, match="unknown augmentation method"):
        augment_file(src, tmp_path / "o.jsonl", method="shuffle", progress=False)


def test_lm_paraphrase_with_the_tiny_engine(tmp_path, tiny_engine):
    src = rows_file(tmp_path / "in.jsonl", [{"text": "The quick brown fox jumps over the lazy dog."}])
    out = tmp_path / "out.jsonl"
    report = augment_file(
        src, out, method="paraphrase", rewrite=partial(lm_rewrite, tiny_engine, max_new_tokens=8), progress=False
    )
    rows = read(out)
    assert rows[0] == {"text": "The quick brown fox jumps over the lazy dog."}
    assert report.augmented + sum(report.skipped.values()) == 1
    assert all(r["augmented"]["method"] == "paraphrase" for r in rows[1:])
