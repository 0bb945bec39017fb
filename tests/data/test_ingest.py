"""`inkwell data ingest`: schema detection, CSV column mapping, text folders, and broken rows reported by
file:line while the good rows are still written."""

from __future__ import annotations

import json

import pytest

from inkwell.cli import main
from inkwell.data.ingest import ingest
from inkwell.data.rows import detect_schema, validate
from inkwell.errors import InkwellError


def lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "record, schema",
    [
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, "messages"),
        ({"instruction": "Translate", "input": "猫", "output": "cat"}, "alpaca"),
        ({"prompt": "Q: 2+2?", "completion": " 4"}, "prompt/completion"),
        ({"text": "great phone", "label": "pos"}, "text/label"),
        ({"text": "just text", "id": 3}, "text"),
        ({"body": "x"}, None),
    ],
)
def test_detect_schema(record, schema):
    assert detect_schema(record) == schema
    if schema:
        assert validate(record, schema) is None


@pytest.mark.parametrize(
    "record, schema, reason",
    [
        ({"messages": []}, "messages", "non-empty list"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages", "messages[0].role 'bot'"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages", "messages[0].content must be a string"),
        ({"instruction": "", "output": "x"}, "alpaca", "'instruction' is empty"),
        ({"instruction": "x", "output": 5}, "alpaca", "'output' must be a string"),
        ({"prompt": "x", "completion": ""}, "prompt/completion", "'completion' is empty"),
        ({"text": "x", "label": None}, "text/label", "'label'"),
        ({"text": "   "}, "text", "'text' is empty"),
    ],
)
def test_validation_reasons(record, schema, reason):
    assert reason in validate(record, schema)


def test_ingest_reports_each_broken_line_and_writes_the_good_rows(tmp_path, capsys):
    src = tmp_path / "chat.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    src.write_text(
        "\n".join(
            [
                json.dumps(good),  # 1 ok
                '{"messages": [{"role": "user", "content": "hi"}',  # 2 truncated JSON
                json.dumps({"messages": [{"role": "robot", "content": "x"}]}),  # 3 bad role
                "",  # 4 blank: ignored
                "[1, 2]",  # 5 not an object
                json.dumps({"prompt": "a", "completion": "b"}),  # 6 another schema
                json.dumps(good),  # 7 ok
                json.dumps({"foo": "bar"}),  # 8 unknown keys
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    src.open("ab").write(b'{"messages": "\xff\xfe"}\n')  # 9 not UTF-8
    out = tmp_path / "out.jsonl"
    main(["data", "ingest", str(src), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert "schema: messages" in err and "6 invalid rows skipped:" in err
    assert f"{src}:2: not valid JSON" in err
    assert f"{src}:3: messages[0].role 'robot' is not one of system, user, assistant, tool" in err
    assert f"{src}:5: not a JSON object (a list)" in err
    assert f"{src}:6: row looks like prompt/completion but the data is messages" in err
    assert f"{src}:8: no known schema (keys: foo)" in err
    assert f"{src}:9: not UTF-8" in err
    assert f"{src}:4" not in err and f"{src}:1:" not in err and f"{src}:7" not in err
    assert "wrote 2 rows from 1 file(s)" in err
    assert lines(out) == [good, good]


def test_ingest_json_report_and_forced_schema(tmp_path, capsys):
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps({"text": "a", "label": "x"}) + "\n" + json.dumps({"text": "b"}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    main(["data", "ingest", str(src), "-o", str(out), "--schema", "text", "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "text" and report["written"] == 2 and report["invalid"] == 0
    main(["data", "ingest", str(src), "-o", str(out), "--schema", "text/label", "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == 1 and report["invalid_rows"] == [{"where": f"{src}:2", "reason": "missing 'label'"}]


def test_ingest_csv_with_column_mapping(tmp_path):
    src = tmp_path / "reviews.csv"
    src.write_text(
        'id,body,stars,category\n1,"Great, would buy",5,pos\n2,"Broke\nafter a day",1,neg\n3,,3,neu\n4,ok,4\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    report = ingest([src], out, column_map={"text": "body", "label": "category"}, progress=False)
    assert report.schema == "text/label"
    assert lines(out) == [
        {"text": "Great, would buy", "label": "pos", "id": "1"},
        {"text": "Broke\nafter a day", "label": "neg", "id": "2"},
    ]
    assert report.invalid == [(f"{src}:5", "'text' is empty"), (f"{src}:6", "fewer values than header columns")]
    with pytest.raises(InkwellError, match="no column"):
        ingest([src], out, column_map={"text": "review"}, progress=False)


def test_ingest_text_and_markdown_folder(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("First paragraph.\nStill first.\n\nSecond one.\n", encoding="utf-8")
    (folder / "sub" / "b.md").write_text("# Title\n\nBody text.\n", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG")
    out = tmp_path / "out.jsonl"
    report = ingest([folder], out, progress=False)
    assert report.schema == "text" and report.files == 2 and report.skipped_files == [str(folder / "image.png")]
    assert [r["text"] for r in lines(out)] == ["First paragraph.\nStill first.\n\nSecond one.", "# Title\n\nBody text."]
    ingest([folder], out, unit="paragraph", progress=False)
    rows = lines(out)
    assert [r["text"] for r in rows] == ["First paragraph.\nStill first.", "Second one.", "# Title", "Body text."]
    assert rows[1]["source"] == f"{folder / 'a.txt'}:4"


def test_ingest_errors(tmp_path):
    with pytest.raises(InkwellError, match="source not found"):
        ingest([tmp_path / "missing.jsonl"], tmp_path / "o.jsonl", progress=False)
    (tmp_path / "x.xml").write_text("<a/>", encoding="utf-8")
    with pytest.raises(InkwellError, match="unsupported file type"):
        ingest([tmp_path / "x.xml"], tmp_path / "o.jsonl", progress=False)
    with pytest.raises(InkwellError, match="unknown schema"):
        ingest([tmp_path / "x.xml"], tmp_path / "o.jsonl", schema="tables", progress=False)
