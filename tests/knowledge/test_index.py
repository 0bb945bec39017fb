"""The knowledge index: adding (only changed files re-read), removing, searching (BM25, embeddings, hybrid;
Chinese through BM25), a kill mid-add, and the API long-form writing uses. Uses the real (small) embedder,
loaded once per session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from kb_helpers import shop_folder

from inkwell.errors import InkwellError
from inkwell.knowledge import KnowledgeBase, Passage
from inkwell.knowledge.ingest import read_document


@pytest.fixture
def shop(tmp_path):
    folder = shop_folder(tmp_path)
    kb = KnowledgeBase.create("shop")
    report = kb.add([folder])
    return kb, folder, report


def test_add_search_and_passages_round_trip(shop):
    kb, folder, report = shop
    assert report["added"] == 3 and report["updated"] == 0 and report["chunks"] == 6
    for mode in ("hybrid", "bm25", "dense"):
        hits = kb.search("My parcel arrived broken, what now?", k=3, mode=mode)
        assert isinstance(hits[0], Passage)
        assert "broken" in hits[0].text, (mode, hits[0])
    best = kb.search("How long does delivery to Germany take?", k=1)[0]
    assert best.heading == "Shipping > Delivery times"
    # the passage points back into its file: the extracted text at its offsets, the file's checksum
    doc = read_document(folder / "shipping.md")
    assert best.source == str(folder / "shipping.md")
    assert doc.text[best.start : best.end] == best.text and best.checksum == doc.checksum
    assert best.chunk_id == f"{doc.checksum[:12]}:0"
    assert 0.3 < best.relevance <= 1
    data = best.to_json()
    assert set(data) >= {"text", "source", "start", "end", "heading", "checksum", "score", "chunk_id"}


def test_chinese_queries_find_chinese_passages_through_bm25(shop):
    kb, _, _ = shop
    hits = kb.search("商品坏了怎么办？", k=2)
    assert hits[0].heading == "退货政策 > 商品损坏"
    assert hits[0].relevance > 0  # query-word coverage for Chinese (the embedder is English-only)
    assert kb.search("商品坏了怎么办？", k=1, mode="bm25")[0].chunk_id == hits[0].chunk_id


def test_changing_one_file_reindexes_only_it(shop):
    kb, folder, _ = shop
    before = {row["path"]: row for row in kb.files()}
    again = kb.add([folder])
    assert (again["added"], again["updated"], again["unchanged"], again["removed"]) == (0, 0, 3, 0)
    assert again["chunks"] == 0  # nothing re-read or re-embedded
    (folder / "shipping.md").write_text(
        "# Shipping\n\n## Delivery times\n\nWe now deliver to Switzerland in 3 days.\n", encoding="utf-8"
    )
    changed = kb.add([folder])
    assert (changed["added"], changed["updated"], changed["unchanged"]) == (0, 1, 2)
    after = {row["path"]: row for row in kb.files()}
    shipping = str(folder / "shipping.md")
    assert after[shipping]["checksum"] != before[shipping]["checksum"]
    for path in after:
        if path != shipping:  # untouched files were not re-indexed
            assert after[path]["added_at"] == before[path]["added_at"]
    assert "Switzerland" in kb.search("Do you deliver to Switzerland?", k=1)[0].text
    assert not any("Lyon" in hit.text for hit in kb.search("warehouse Lyon", k=6, mode="bm25"))


def test_removed_files_are_dropped_by_re_add_or_rm(shop):
    kb, folder, _ = shop
    (folder / "zh.md").unlink()
    report = kb.add([folder])
    assert report["removed"] == 1 and kb.stats()["files"] == 2
    dropped = kb.remove_paths([folder / "shipping.md"])
    assert dropped["removed"] == 1 and kb.stats()["files"] == 1
    assert all("shipping" not in hit.source for hit in kb.search("delivery address", k=5))
    with pytest.raises(InkwellError, match="holds no file at"):
        kb.remove_paths([folder / "nothing.md"])


def test_open_list_remove_and_at(tmp_path, shop):
    with pytest.raises(InkwellError, match="no knowledge folder 'nope'") as info:
        KnowledgeBase.open("nope")
    assert info.value.field == "kb" and "shop" in str(info.value)  # names the ones there are
    with pytest.raises(InkwellError, match="not a knowledge folder name"):
        KnowledgeBase.create("../escape")
    assert [row["name"] for row in KnowledgeBase.list()] == ["shop"]
    assert KnowledgeBase.list()[0]["chunks"] == 6
    run_folder = tmp_path / "run" / "sources"
    own = KnowledgeBase.at(run_folder)  # long-form keeps an index in its run folder
    own.add([shop_folder(tmp_path / "copy") / "returns.md"])
    assert KnowledgeBase.at(run_folder).search("refund to my card", k=1)[0].heading.endswith("Returning an item")
    KnowledgeBase.remove("shop")
    assert KnowledgeBase.list() == []
    with pytest.raises(InkwellError):
        KnowledgeBase.remove("shop")


def test_bad_search_arguments(shop):
    kb, _, _ = shop
    for kwargs, field in [({"mode": "magic"}, "mode"), ({"k": 0}, "k"), ({"query": "  "}, "query")]:
        with pytest.raises(InkwellError) as info:
            kb.search(**{"query": "refund", **kwargs})
        assert info.value.field == field


def test_a_kill_mid_add_leaves_the_old_index(shop, tmp_path):
    kb, folder, _ = shop
    before = kb.files()
    for name in ("returns.md", "shipping.md"):
        (folder / name).write_text(f"# Changed\n\nThe {name} file changed completely.\n", encoding="utf-8")
    # A child adds the changed folder and is killed (SIGKILL) inside the transaction, after the old rows of the
    # changed files were deleted and the first new file was written.
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from inkwell.knowledge import KnowledgeBase
        from inkwell.knowledge import index
        original = index.KnowledgeBase._write_file
        calls = []
        def dying(self, *args, **kwargs):
            original(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        index.KnowledgeBase._write_file = dying
        KnowledgeBase.open("shop").add([Path({str(folder)!r})])
        """
    )
    child = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), capture_output=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert KnowledgeBase.open("shop").files() == before  # the old index, whole
    assert "Lyon" in kb.search("where is your warehouse", k=1)[0].text
    report = kb.add([folder])  # and the next add goes through
    assert report["updated"] == 2
