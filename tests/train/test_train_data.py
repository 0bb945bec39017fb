"""Training data readers: every format is recognised, and every bad row is skipped with a report (or
stops the run) naming file:line and the field, never with a traceback."""

from __future__ import annotations

import pytest
from conftest import write_jsonl  # tests/train/conftest.py (pytest puts this folder on sys.path)

from inkwell.errors import InkwellError
from inkwell.train.data import DataReport, expand, read_rows, split_off


def _read(files, fmt="auto", on_error="skip", template=None, allowed=None):
    report = DataReport(on_error=on_error)
    rows = read_rows(files, fmt, report, template, None, allowed)
    return rows, report


def test_formats_are_told_apart_by_their_keys(tmp_path):
    files = [
        write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Say hi.", "output": "Hi."}]),
        write_jsonl(
            tmp_path / "m.jsonl",
            [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}],
        ),
        write_jsonl(
            tmp_path / "s.jsonl",
            [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}],
        ),
        write_jsonl(tmp_path / "p.jsonl", [{"prompt": "2+2=", "completion": "4"}]),
        write_jsonl(
            tmp_path / "t.jsonl",
            [{"template": "headline", "fields": {"text": "It rained all week."}, "output": "Rain again"}],
        ),
        write_jsonl(tmp_path / "x.jsonl", [{"text": "Plain text."}]),
    ]
    rows, report = _read(files)
    assert [r.kind for r in rows] == ["alpaca", "messages", "messages", "prompt_completion", "template", "text"]
    assert rows[2].value["messages"][1] == {"role": "assistant", "content": "Yo"}
    assert not report.problems
    assert all(len(f["sha256"]) == 64 for f in report.files)


def test_bad_rows_are_skipped_with_file_line_and_field(tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"instruction": "Fine.", "output": "Yes."},
            {"instruction": "No answer."},
            {"instruction": "Empty answer.", "output": "   "},
            "{not json",
            {"instruction": 5, "output": "x"},
            "[1, 2]",
            {"instruction": "Also fine.", "output": "Sure."},
        ],
    )
    rows, report = _read([path])
    assert len(rows) == 2
    problems = [str(p) for p in report.problems]
    assert problems == [
        f"{path}:2: field 'output': is missing",
        f"{path}:3: field 'output': is empty",
        f"{path}:4: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{path}:5: field 'instruction': must be a string, got int",
        f"{path}:6: expected a JSON object, got list",
    ]
    assert "skipped 5" in report.summary()


def test_on_error_error_stops_at_the_first_bad_row(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": ""}])
    with pytest.raises(InkwellError, match=r"a.jsonl:2: field 'completion': is empty"):
        _read([path], on_error="error")


def test_messages_need_an_assistant_turn_and_known_roles(tmp_path):
    path = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"messages": [{"role": "user", "content": "Hi"}]},
            {"messages": [{"role": "robot", "content": "Hi"}, {"role": "assistant", "content": "x"}]},
            {"messages": []},
        ],
    )
    rows, report = _read([path])
    assert not rows
    assert [p.field for p in report.problems] == ["messages", "messages[0].role", "messages"]
    assert "has no assistant message" in report.problems[0].reason


def test_template_rows_are_checked_against_the_template(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"fields": {"product": "mug"}, "output": "A mug."},
            {"fields": {"audience": "cooks"}, "output": "No product."},
            {"fields": {"product": "mug", "tone": "angry"}, "output": "Bad tone."},
            {"product": "bowl", "output": "Flat rows work too."},
        ],
    )
    rows, report = _read([path], fmt="template", template="product-description")
    assert [r.value["fields"]["product"] for r in rows] == ["mug", "bowl"]
    assert [p.field for p in report.problems] == ["fields.product", "fields.tone"]
    assert "must be one of friendly, luxury" in report.problems[1].reason


def test_unknown_template_in_the_config_is_one_clear_error(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"fields": {"product": "mug"}, "output": "A mug."}])
    with pytest.raises(InkwellError, match="data.template: unknown template 'product-descripton'"):
        _read([path], fmt="template", template="product-descripton")


def test_text_folders_read_txt_md_and_jsonl(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.txt").write_text("One document.")
    (folder / "deep" / "b.md").write_text("# Two\nSecond document.")
    (folder / "empty.txt").write_text("  \n")
    write_jsonl(folder / "c.jsonl", [{"text": "Third."}, {"text": ""}])
    (folder / "ignored.csv").write_text("a,b")
    rows, report = _read(expand([str(folder)], None, "data.train"), allowed=("text",))
    assert sorted(r.value["text"].strip() for r in rows) == ["# Two\nSecond document.", "One document.", "Third."]
    assert len(report.problems) == 2


def test_pretraining_refuses_chat_rows_naming_the_row(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "x", "output": "y"}])
    with pytest.raises(InkwellError, match=r"a.jsonl:1: this stage reads text rows, this file holds alpaca rows"):
        _read([path], allowed=("text",))


def test_missing_files_name_the_config_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InkwellError, match=r"data.val: file not found: nope.jsonl"):
        expand(["nope.jsonl"], tmp_path / "configs", "data.val")


def test_split_off_is_seeded_and_keeps_one_for_training():
    items = list(range(10))
    train, val = split_off(items, 0.2, seed=1)
    assert len(val) == 2 and sorted(train + val) == items
    assert split_off(items, 0.2, seed=1) == (train, val)
    assert split_off([1, 2], 0.9, seed=0)[0]  # never empties the training set
