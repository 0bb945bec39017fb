"""Reading documents (Markdown, HTML, PDF, FAQ tables, .gz) and cutting them into cited chunks: headings,
sentences, Chinese, offsets, and every bad input refused by name."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from kb_helpers import CHINESE, RETURNS, shop_folder, text_pdf

from inkwell.errors import InkwellError
from inkwell.knowledge.chunk import MAX_WORDS, MIN_WORDS, chunk_document, sentence_spans, size
from inkwell.knowledge.ingest import collect, markdown_headings, read_document

# ---------------------------------------------------------------- headings and offsets


def test_markdown_headings_outside_code_fences():
    text = "# Title\n\nIntro.\n\n```\n# not a heading\n```\n\n## Part two\n\nBody.\n\nSetext\n======\n"
    headings = markdown_headings(text)
    assert [(h.level, h.title) for h in headings] == [(1, "Title"), (2, "Part two"), (1, "Setext")]
    for h in headings:
        assert text[h.start :].lstrip("# ").startswith(h.title)


def test_markdown_chunks_keep_the_heading_path_and_offsets(tmp_path):
    path = tmp_path / "returns.md"
    path.write_text(RETURNS, encoding="utf-8")
    doc = read_document(path)
    chunks = chunk_document(doc)
    assert [c.heading for c in chunks] == [
        "Returns and refunds > Returning an item",
        "Returns and refunds > Broken items",
    ]  # the top heading alone (no text under it) gives no chunk
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text  # offsets round-trip
    assert "30 days" in chunks[0].text and "photo" in chunks[1].text
    assert len(doc.checksum) == 64


def test_html_blocks_headings_and_navigation_skipped(tmp_path):
    html = """<html><head><title>T</title><style>p {color: red}</style></head><body>
    <div class="navheader">Prev Next</div>
    <div class="toc"><p>Table of Contents</p><a href="#a">1.1 What?</a></div>
    <h1>Chapter 1. Basics</h1>
    <h2><a id="a"></a>1.1. What is <b>Debian</b>?</h2>
    <p>Debian is a   free
       operating system.</p><p>It runs on <i>many</i> machines.</p>
    <pre>apt-get install foo
  second line</pre>
    <script>alert(1)</script>
    </body></html>"""
    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    doc = read_document(path)
    assert "Table of Contents" not in doc.text and "Prev Next" not in doc.text and "alert" not in doc.text
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Chapter 1. Basics"), (2, "1.1. What is Debian?")]
    assert "Debian is a free operating system." in doc.text  # inline whitespace collapsed
    assert "apt-get install foo\n  second line" in doc.text  # <pre> kept line by line
    (chunk,) = chunk_document(doc)  # the chapter heading alone gives no chunk
    assert chunk.heading == "Chapter 1. Basics > 1.1. What is Debian?"
    assert doc.text[chunk.start : chunk.end] == chunk.text
    assert read_document(path).text == doc.text  # the same bytes, the same text (offsets stay valid)


def test_long_sections_are_cut_at_sentences_into_target_sizes(tmp_path):
    sentences = [f"Sentence number {i} says something useful about packages and their versions." for i in range(120)]
    path = tmp_path / "long.md"
    path.write_text("# Long\n\n" + " ".join(sentences) + "\n", encoding="utf-8")
    doc = read_document(path)
    chunks = chunk_document(doc)
    assert len(chunks) >= 4
    assert all(MIN_WORDS * 0.8 <= size(c.text) <= MAX_WORDS for c in chunks), [size(c.text) for c in chunks]
    assert all(c.text.endswith(".") for c in chunks)  # cut at sentence ends
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)
    assert all(c.heading == "Long" for c in chunks)


def test_chinese_sentences_and_chunk_sizes(tmp_path):
    assert [
        "第一句。",
        "第二句！",
        "第三句？",
        "最后",
    ] == ["第一句。第二句！第三句？最后"[a:b] for a, b in sentence_spans("第一句。第二句！第三句？最后")]
    body = "".join(f"这是第{i}句话，讲的是软件包的版本和依赖关系。" for i in range(60))  # ~1300 characters
    path = tmp_path / "zh.md"
    path.write_text("# 说明\n\n" + body + "\n", encoding="utf-8")
    doc = read_document(path)
    chunks = chunk_document(doc)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert 240 <= len(chunk.text) <= 400, len(chunk.text)  # ~300-400 Chinese characters
        assert chunk.text.endswith("。")
        assert doc.text[chunk.start : chunk.end] == chunk.text


def test_chinese_markdown_headings(tmp_path):
    path = tmp_path / "zh.md"
    path.write_text(CHINESE, encoding="utf-8")
    chunks = chunk_document(read_document(path))
    assert [c.heading for c in chunks] == ["退货政策 > 如何退货", "退货政策 > 商品损坏"]


def test_faq_tables_one_chunk_per_question(tmp_path):
    csv_path = tmp_path / "faq.csv"
    csv_path.write_text(
        'Question,Answer\n"Can I return an item?","Yes, within 30 days."\n"Do you ship abroad?","To Europe only."\n',
        encoding="utf-8",
    )
    jsonl_path = tmp_path / "faq.jsonl"
    jsonl_path.write_text(
        "\n".join(json.dumps({"question": q, "answer": a}) for q, a in [("Q one?", "A one."), ("Q two?", "A two.")]),
        encoding="utf-8",
    )
    for path in (csv_path, jsonl_path):
        doc = read_document(path)
        chunks = chunk_document(doc)
        assert len(chunks) == 2
        assert chunks[0].heading.endswith("?") and chunks[0].text.startswith(chunks[0].heading)
        assert all(doc.text[c.start : c.end] == c.text for c in chunks)
    bad = tmp_path / "bad.csv"
    bad.write_text("title,body\nx,y\n", encoding="utf-8")
    with pytest.raises(InkwellError, match=r"bad\.csv:\d+: no question/answer columns"):
        read_document(bad)


def test_gzip_text_and_pdf(tmp_path):
    gz = tmp_path / "faq.en.txt.gz"
    gz.write_bytes(gzip.compress(b"Plain text. It was compressed."))
    assert read_document(gz).text == "Plain text. It was compressed."
    pdf = tmp_path / "guide.pdf"
    pdf.write_bytes(text_pdf("Refunds take five business days."))
    assert read_document(pdf).text == "Refunds take five business days."


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n", "is not a readable PDF"),
        ("empty.md", b"   \n\n", "holds no text"),
        ("binary.txt", b"abc\x00\x01\x02def", "looks like a binary file"),
        ("latin1.md", "caf\u00e9 cr\u00e8me".encode("latin-1"), "not UTF-8"),
        ("bad.txt.gz", b"not gzip at all", "is not a readable gzip file"),
    ],
)
def test_bad_files_are_refused_by_name(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InkwellError, match=message) as info:
        read_document(path)
    assert str(path) in str(info.value) and info.value.field == "path"


def test_size_limit_also_for_what_a_gzip_unpacks_to(tmp_path, monkeypatch):
    monkeypatch.setenv("INKWELL_KB_MAX_MB", "0.01")  # 10 KB
    big = tmp_path / "big.md"
    big.write_text("word " * 5000, encoding="utf-8")
    with pytest.raises(InkwellError, match="over the 0 MB limit|over the"):
        read_document(big)
    bomb = tmp_path / "bomb.txt.gz"
    bomb.write_bytes(gzip.compress(b"a" * 200_000))  # a few hundred bytes, 200 KB unpacked
    with pytest.raises(InkwellError, match="uncompressed"):
        read_document(bomb)


def test_collect_walks_folders_and_refuses_archives_and_unknown_types(tmp_path):
    folder = shop_folder(tmp_path)
    (folder / "logo.png").write_bytes(b"\x89PNG")
    (folder / "old.zip").write_bytes(b"PK")
    (folder / ".hidden.md").write_text("# Secret\n\nHidden.", encoding="utf-8")
    found = collect([folder])
    assert sorted(p.name for p in found.files) == ["returns.md", "shipping.md", "zh.md"]
    assert any("archive" in w and "old.zip" in w for w in found.warnings)
    assert any(".png x1" in w for w in found.warnings)
    with pytest.raises(InkwellError, match="is an archive"):
        collect([folder / "old.zip"])
    with pytest.raises(InkwellError, match="cannot read '.png'"):
        collect([folder / "logo.png"])
    with pytest.raises(InkwellError, match="not found"):
        collect([tmp_path / "missing"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InkwellError, match="holds no files Inkwell can read"):
        collect([empty])


def test_symlink_loops_and_links_outside_are_not_followed(tmp_path):
    folder = shop_folder(tmp_path / "inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nNot for the index.", encoding="utf-8")
    os.symlink(folder, folder / "loop")  # a folder linking to itself
    os.symlink(tmp_path / "inside", folder / "up")  # ... and to its parent
    os.symlink(outside, folder / "elsewhere")
    os.symlink(outside / "secret.md", folder / "secret.md")
    os.symlink(folder / "self-a", folder / "self-b")
    os.symlink(folder / "self-b", folder / "self-a")  # a link loop between two names
    os.symlink(folder / "returns.md", folder / "returns-again.md")  # a link inside: the file counts once
    found = collect([folder])
    assert sorted(p.name for p in found.files) == ["returns.md", "shipping.md", "zh.md"]
    warnings = "\n".join(found.warnings)
    assert "loop" in warnings and "outside" in warnings
    assert "elsewhere" in warnings and "secret.md" in warnings
