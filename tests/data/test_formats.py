"""The one row vocabulary (`inkwell.data.formats`): every format detected and read the same way by data, train,
eval and batch; the readers' line numbers, byte-order marks, encoding and JSON errors, ragged CSV records,
and both error policies."""

from __future__ import annotations

import json

import pytest

from inkwell.data.formats import (
    as_messages,
    detect_format,
    format_name,
    read_csv,
    read_jsonl,
    read_records,
    template_fields,
)
from inkwell.data.ingest import ingest
from inkwell.data.rows import content_text, validate
from inkwell.errors import InkwellError
from inkwell.files import NotUTF8, read_text
from inkwell.train.data import DataReport, read_rows

SHAREGPT = {
    "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello"},
    ]
}
MESSAGES = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
}
ROWS = {
    "preference": {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."},
    "messages": MESSAGES,
    "alpaca": {"instruction": "Translate", "input": "猫", "output": "cat"},
    "prompt/completion": {"prompt": "Q: 2+2?", "completion": " 4"},
    "template": {"template": "headline", "fields": {"text": "Rain all weekend."}, "output": "Wet weekend"},
    "text/label": {"text": "great phone", "label": "pos"},
    "text": {"text": "just text", "id": 3},
}


def write_lines(path, lines):
    path.write_bytes(
        b"".join(
            (x if isinstance(x, bytes) else (x if isinstance(x, str) else json.dumps(x)).encode()) + b"\n"
            for x in lines
        )
    )
    return path


# ------------------------------------------------------------------ formats


@pytest.mark.parametrize("name", list(ROWS))
def test_every_format_is_detected_and_valid(name):
    assert detect_format(ROWS[name]) == name
    assert validate(ROWS[name], name) is None
    assert content_text(ROWS[name], name).strip()


def test_sharegpt_is_messages_both_ways():
    assert detect_format(SHAREGPT) == "messages" and validate(SHAREGPT, "messages") is None
    assert as_messages({**SHAREGPT, "id": 7}) == {**MESSAGES, "id": 7}
    assert as_messages(MESSAGES) is MESSAGES
    assert content_text(SHAREGPT, "messages") == "Be brief.\nHi\nHello"
    bad = {"conversations": [{"from": "robot", "value": "x"}]}
    assert "conversations[0].role 'robot'" in validate(bad, "messages")


def test_flat_template_rows_need_a_template_and_aliases_name_the_same_formats():
    flat = {"product": "pen", "output": "A pen."}
    assert detect_format(flat) is None and detect_format(flat, template="product-description") == "template"
    assert template_fields(flat) == {"product": "pen"}
    assert template_fields({"fields": {"a": 1}, "b": 2}) == {"a": 1}
    assert [format_name(n) for n in ("prompt_completion", "text_label", "chat", "sharegpt", "dpo", "auto")] == [
        "prompt/completion",
        "text/label",
        "messages",
        "messages",
        "preference",
        None,
    ]
    assert "'output' is empty" in validate({"fields": {}, "output": " "}, "template")
    assert "'rejected'" in validate({"prompt": "p", "chosen": "a"}, "preference")


def test_ingest_takes_sharegpt_preference_and_json_lists(tmp_path):
    src = write_lines(tmp_path / "chat.jsonl", [SHAREGPT, MESSAGES])
    out = tmp_path / "out.jsonl"
    report = ingest([src], out, progress=False)
    assert report.schema == "messages" and report.written == 2
    assert [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()] == [MESSAGES, MESSAGES]
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([ROWS["preference"], ROWS["preference"]], indent=2), encoding="utf-8")
    assert ingest([pairs], out, progress=False).schema == "preference"


def test_train_reads_sharegpt_and_reports_a_line_that_is_not_utf8(tmp_path):
    path = write_lines(tmp_path / "chat.jsonl", [SHAREGPT, b'{"text": "caf\xe9"}', ROWS["text/label"]])
    report = DataReport()
    rows = read_rows([path], "auto", report)
    assert [r.kind for r in rows] == ["messages"]  # the file is messages (first row); text/label is another format
    assert rows[0].value["messages"][1] == {"role": "user", "content": "Hi"}
    assert str(report.problems[0]).startswith(f"{path}:2: not UTF-8 (byte 0xe9 at column 14)")
    prefs = write_lines(tmp_path / "pairs.jsonl", [ROWS["preference"]])
    report = DataReport()
    assert read_rows([prefs], "auto", report) == [] and "stage: dpo" in str(report.problems[0])


# ------------------------------------------------------------------ whole text


def test_read_text_strips_a_bom_and_names_the_line_of_a_bad_byte(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfhello\n")
    assert read_text(path, field="file") == "hello\n"
    path.write_bytes("line one\nline two\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(NotUTF8) as info:
        read_text(path, field="file")
    assert str(info.value).startswith(f"{path}:3: not UTF-8 (byte 0xe9 at column 4)")
    assert info.value.field == "file" and "save the file as UTF-8" in str(info.value)
    with pytest.raises(InkwellError, match="file not found"):
        read_text(tmp_path / "missing.txt", field="file")
    with pytest.raises(InkwellError, match="is a folder"):
        read_text(tmp_path, field="file")


# ------------------------------------------------------------------ JSONL


BAD_JSONL = [
    b'\xef\xbb\xbf{"text": "one"}',  # 1 with a byte-order mark
    b"",  # 2 blank
    b'{"text": "caf\xe9"}',  # 3 not UTF-8
    b'{"text": ',  # 4 not JSON
    b"[1, 2]",  # 5 not an object
    b'{"text": "six"}',  # 6
]


def test_jsonl_skip_policy_reports_each_bad_line_and_goes_on(tmp_path):
    path = write_lines(tmp_path / "rows.jsonl", BAD_JSONL)
    rows = list(read_jsonl(path, on_error="skip"))
    assert [(r.line, r.record) for r in rows if r.record] == [(1, {"text": "one"}), (6, {"text": "six"})]
    problems = [f"{r.where}: {r.error}" for r in rows if r.error]
    assert problems == [
        f"{path}:3: not UTF-8 (byte 0xe9 at column 14)",
        f"{path}:4: not valid JSON (Expecting value at column 10)",
        f"{path}:5: not a JSON object (a list)",
    ]
    assert rows[3].json_type == "list"


@pytest.mark.parametrize(
    "line, reason, fix",
    [
        (b'{"text": "caf\xe9"}', "not UTF-8", "save the file as UTF-8"),
        (b'{"text": ', "not valid JSON", "one JSON object"),
        (b'"just a string"', "not a JSON object (a str)", "one JSON object"),
    ],
)
def test_jsonl_raise_policy_names_file_line_and_the_fix(tmp_path, line, reason, fix):
    path = write_lines(tmp_path / "rows.jsonl", [{"text": "ok"}, line])
    with pytest.raises(InkwellError) as info:
        list(read_jsonl(path, on_error="raise", field="data"))
    assert str(info.value).startswith(f"{path}:2: {reason}") and fix in str(info.value) and info.value.field == "data"


def test_strict_encoding_stops_even_when_skipping(tmp_path):
    path = write_lines(tmp_path / "rows.jsonl", [b"{bad", b'{"text": "caf\xe9"}'])
    rows = read_jsonl(path, on_error="skip", strict_encoding=True)
    assert next(rows).error.startswith("not valid JSON")
    with pytest.raises(NotUTF8, match=r"rows.jsonl:2: not UTF-8"):
        next(rows)


def test_json_file_holding_a_list(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text("\ufeff" + json.dumps([{"text": "a"}, 5, {"text": "b"}]), encoding="utf-8")
    rows = list(read_jsonl(path, on_error="skip"))
    assert [r.record for r in rows] == [{"text": "a"}, None, {"text": "b"}]
    assert rows[1].where == f"{path}:[1]" and rows[1].error == "not a JSON object (a int)"
    path.write_text('[{"text": "a"},\n  {"text": }]', encoding="utf-8")
    with pytest.raises(InkwellError, match=r"rows.json:2: not valid JSON"):
        list(read_jsonl(path))
    path.write_text('{"text": "a"}\n{"text": "b"}\n', encoding="utf-8")  # a .json file of JSON lines
    assert [r.record["text"] for r in read_jsonl(path)] == ["a", "b"]


def test_missing_jsonl_file(tmp_path):
    with pytest.raises(InkwellError, match="shots file not found"):
        list(read_jsonl(tmp_path / "nope.jsonl", what="shots file"))
    with pytest.raises(ValueError):
        list(read_jsonl(tmp_path / "nope.jsonl", on_error="ignore"))


# ------------------------------------------------------------------ CSV


def test_csv_column_map_bom_and_line_numbers(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(
        '\ufeffid,body,category\n1,"Great, would buy",pos\n\n2,"Broke\nafter a day",neg\n3,ok,neu\n'.encode()
    )
    rows = list(read_csv(path, column_map={"text": "body", "label": "category"}))
    assert [(r.line, r.record) for r in rows] == [
        (2, {"text": "Great, would buy", "label": "pos", "id": "1"}),
        (4, {"text": "Broke\nafter a day", "label": "neg", "id": "2"}),
        (6, {"text": "ok", "label": "neu", "id": "3"}),
    ]
    with pytest.raises(InkwellError, match="no column"):
        list(read_csv(path, column_map={"text": "review"}))


def test_ragged_csv_records_under_both_policies(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id,product,tone\nx1,pen,playful\nx2,cup\nx3,mug,dry,EXTRA\n", encoding="utf-8")
    rows = list(read_csv(path, on_error="skip"))
    assert [(r.line, r.error) for r in rows] == [
        (2, None),
        (3, "fewer values than header columns"),
        (4, "more values than header columns"),
    ]
    assert rows[2].record["id"] == "x3"  # what could be read is kept: the id names the failed row
    filled = list(read_csv(path, on_error="skip", fill_missing=True))
    assert filled[1].error is None and filled[1].record == {"id": "x2", "product": "cup", "tone": ""}
    with pytest.raises(InkwellError, match=r"rows.csv:3: fewer values than header columns") as info:
        list(read_csv(path))
    assert "needs 3 values" in str(info.value)


def test_csv_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,product\n1,pen\n2,caf\xe9\n3,mug\n".encode("latin-1"))
    rows = list(read_csv(path, on_error="skip"))
    assert [(r.line, r.error) for r in rows] == [(2, None), (3, "not UTF-8 (byte 0xe9 at column 6)"), (4, None)]
    assert rows[1].record is None
    for options in ({"on_error": "raise"}, {"on_error": "skip", "strict_encoding": True}):
        with pytest.raises(NotUTF8, match=r"latin1.csv:3: not UTF-8"):
            list(read_csv(path, **options))
    path.write_bytes("caf\xe9,x\n1,2\n".encode("latin-1"))  # a header that cannot be read stops any policy
    with pytest.raises(NotUTF8, match=r"latin1.csv:1"):
        list(read_csv(path, on_error="skip"))
    path.write_bytes(b"")
    with pytest.raises(InkwellError, match="no header row"):
        list(read_csv(path, on_error="skip"))


def test_read_records_picks_the_reader_by_suffix(tmp_path):
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("text\tlabel\nhi\tpos\n", encoding="utf-8")
    assert [r.record for r in read_records(tsv)] == [{"text": "hi", "label": "pos"}]
    jsonl = write_lines(tmp_path / "rows.jsonl", [{"text": "hi"}])
    assert [r.record for r in read_records(jsonl, fill_missing=True)] == [{"text": "hi"}]
