"""`inkwell data clean`: each step, and near-duplicate removal of planted paraphrases that keeps distinct rows."""

from __future__ import annotations

import json

import pytest

from inkwell.cli import main
from inkwell.data.clean import CleanConfig, clean_file
from inkwell.data.dedup import NearDupIndex, exact_key, shingles
from inkwell.data.text import detect_language, normalize_whitespace, strip_markup

DISTINCT = [
    "Our bamboo water bottle keeps drinks cold for 24 hours and is fully recyclable.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A journey of a thousand miles begins with a single step.",
    "Write a product description for a stainless steel kettle with a wooden handle.",
    "Merino wool hiking socks keep feet warm, dry and blister-free on long trails.",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
    "The meeting has been moved to Thursday afternoon in the small conference room.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Please remember to bring your own lunch to the company picnic on Saturday.",
]
PARAPHRASES = [  # near duplicates of rows above: small rewordings, punctuation, case
    "Our bamboo water bottle keeps your drinks cold for 24 hours, and it is fully recyclable!",
    "The quick brown fox leaps over the lazy dog near the river bank.",
    "A journey of a thousand miles starts with a single step.",
    "床前明月光，疑似地上霜。举头望明月，低头思故乡！",
    "THE MEETING HAS BEEN MOVED TO THURSDAY AFTERNOON, IN THE SMALL CONFERENCE ROOM.",
]


def write_rows(path, texts):
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    return path


def kept_texts(path):
    return [json.loads(x)["text"] for x in path.read_text(encoding="utf-8").splitlines()]


def test_near_dup_removes_planted_paraphrases_and_keeps_distinct_rows(tmp_path):
    src = write_rows(tmp_path / "in.jsonl", DISTINCT + PARAPHRASES + [DISTINCT[1]])
    out = tmp_path / "out.jsonl"
    report = clean_file(src, out, progress=False)
    assert kept_texts(out) == DISTINCT
    assert report.removed["exact-dup"] == 1 and report.removed["near-dup"] == len(PARAPHRASES)


def test_similarity_of_planted_pairs_and_distinct_pairs():
    def jaccard(a, b):
        sa, sb = shingles(a), shingles(b)
        return len(sa & sb) / len(sa | sb)

    pairs = [
        (DISTINCT[0], PARAPHRASES[0]),
        (DISTINCT[1], PARAPHRASES[1]),
        (DISTINCT[2], PARAPHRASES[2]),
        (DISTINCT[5], PARAPHRASES[3]),
        (DISTINCT[7], PARAPHRASES[4]),
    ]
    assert all(jaccard(a, b) >= 0.7 for a, b in pairs)
    assert max(jaccard(a, b) for i, a in enumerate(DISTINCT) for b in DISTINCT[i + 1 :]) < 0.3
    index = NearDupIndex(0.7)
    for i, text in enumerate(DISTINCT):
        assert index.match(i, text) == []
    assert [index.query(p) for p in PARAPHRASES] == [[0], [1], [2], [5], [7]]


def test_each_step_and_its_counts(tmp_path, capsys):
    rows = [
        {"text": "<p>Hello&nbsp;<b>world</b></p><script>alert(1)</script>"},  # markup
        {"text": "ＦＵＬＬ　ｗｉｄｔｈ　text"},  # nfkc
        {"text": "too   many\t spaces\n\n\n\nhere\u200b"},  # whitespace
        {"text": "hi"},  # too short
        {"text": "Привет, как дела? Это русский текст."},  # language
        {"instruction": "Say **hi** to [Bob](http://bob.example)", "output": "Hi Bob."},  # alpaca, markdown
        {"messages": [{"role": "user", "content": "中文问题是什么？"}, {"role": "assistant", "content": "这是答案。"}]},
        "not an object",
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    main(
        ["data", "clean", str(src), "--out", str(out), "--min-chars", "5", "--lang", "en,zh", "--no-progress", "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert report["rows_in"] == 8 and report["rows_out"] == 5 and report["invalid"] == 1
    steps = report["steps"]
    assert steps["markup"]["changed"] == 2 and steps["nfkc"]["changed"] == 1  # Chinese "？" is kept
    assert steps["length"]["removed"] == 1 and steps["language"]["removed"] == 1
    written = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert written[0]["text"] == "Hello world"
    assert written[1]["text"] == "FULL width text"
    assert written[2]["text"] == "too many spaces\n\nhere"
    assert written[3] == {"instruction": "Say hi to Bob", "output": "Hi Bob."}
    assert written[4]["messages"][0]["content"] == "中文问题是什么？"

    main(["data", "clean", str(src), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert "  markup      changed 2" in err and "  near-dup    removed 0" in err and "kept 7 of 8 rows" in err


@pytest.mark.parametrize(
    "text, lang",
    [
        ("The quick brown fox.", "en"),
        ("床前明月光", "zh"),
        ("我用Python写代码", "zh"),
        ("An English sentence quoting 床前明月光 once in a while, which is fine.", "en"),
        ("ひらがなとカタカナと漢字", "ja"),
        ("안녕하세요 세계", "ko"),
        ("Привет мир", "other"),
        ("12345 !!!", "unknown"),
    ],
)
def test_language_by_script_share(text, lang):
    assert detect_language(text) == lang


def test_markup_keeps_plain_angle_brackets_and_old_quotes():
    assert strip_markup("<doogie> hi all, a < b and c > d") == "<doogie> hi all, a < b and c > d"
    assert strip_markup("I said, `Yes?'  He said, `No.'") == "I said, `Yes?'  He said, `No.'"
    assert strip_markup("# Title\n\nSome **bold**, *it* and `code`, 2*3*4") == "Title\n\nSome bold, it and code, 2*3*4"
    assert normalize_whitespace(" a \r\n\r\n\r\n b\u00a0c ") == "a\n\nb c"


def test_exact_key_ignores_case_and_spacing():
    assert exact_key("Hello   World") == exact_key("hello world") != exact_key("hello, world")


def test_invalid_options(tmp_path):
    from inkwell.errors import InkwellError

    src = write_rows(tmp_path / "in.jsonl", ["a"])
    with pytest.raises(InkwellError, match="unknown language"):
        clean_file(src, tmp_path / "o.jsonl", CleanConfig(languages=["xx"]), progress=False)
    with pytest.raises(InkwellError, match="overwrite the input"):
        clean_file(src, src, progress=False)
