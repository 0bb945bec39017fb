"""Feedback -> training rows, row by row against the store, on a scripted studio session (tests/feedback/conftest.py):
which pieces give which rows, prompts kept exactly as the engine saw them, filters, PII redaction, the held-out
split, and the written files read back by the real train readers."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run
from feedback_helpers import EMAIL, new_piece, write_config

from inkwell.errors import InkwellError
from inkwell.feedback.export import export_rows, split_pieces, usable_pieces, write_jsonl


def _by(rows, key, value):
    return [r for r in rows if r.get(key) == value]


def test_rows_row_by_row(session, chat_engine):
    data, ids = session.data, session.ids
    rows = export_rows(data, "alice", redact=False)

    # SFT: the accepted/edited pieces, target = the current text (the edit)
    assert sorted(r["piece_id"] for r in rows.sft) == sorted([ids["edited"], ids["picked"], ids["pii"], ids["product"]])
    for row in rows.sft:
        piece = data.piece("alice", row["piece_id"])
        assert row["messages"] == piece["request"] + [{"role": "assistant", "content": piece["text"]}]
        assert row["prompt_text"] == piece["prompt"]
        assert row["kind"] == ("edit" if piece["versions"] else "accepted")
    edited = data.piece("alice", ids["edited"])
    assert _by(rows.sft, "piece_id", ids["edited"])[0]["messages"][-1]["content"] == "Rain on the roof, slow and grey."

    # DPO (edit): chosen = the edit, rejected = the model's original
    (edit_row,) = _by(_by(rows.dpo, "piece_id", ids["edited"]), "kind", "edit")
    assert edit_row["chosen"] == "Rain on the roof, slow and grey." == edited["text"]
    assert edit_row["rejected"] == edited["original"] == edited["variants"][0]["text"]
    assert edit_row["prompt"] == edited["request"]

    # DPO (variant): the picked variant over the other one; nothing from its own edit (there is none)
    picked = data.piece("alice", ids["picked"])
    (variant_row,) = _by(rows.dpo, "piece_id", ids["picked"])
    assert variant_row["kind"] == "variant"
    assert variant_row["chosen"] == picked["variants"][1]["text"]
    assert variant_row["rejected"] == picked["variants"][0]["text"]

    # DPO (comparison): winner over loser; the tie and the unjudged one give nothing
    comparison_rows = _by(rows.dpo, "kind", "comparison")
    assert [(r["comparison_id"], r["chosen"], r["rejected"]) for r in comparison_rows] == [
        (session.comparisons["left"], "left text (left)", "right text (left)"),
        (session.comparisons["right"], "right text (right)", "left text (right)"),
    ]
    # rejected pieces and an untouched draft (3 variants, no pick, no verdict) give no rows; nor does bob's piece
    for name in ("rejected", "untouched", "bob"):
        assert not _by(rows.sft + rows.dpo, "piece_id", ids[name]), name
    assert rows.counts == {
        "sft": 4,
        "edit": 3,
        "variant": 1,
        "comparison": 2,
        "longform": 0,
        "pieces": 6,
        "comparisons": 3,
        "rejected": 1,
    }


def test_prompts_are_exactly_what_the_engine_saw(session, chat_engine):
    rows = export_rows(session.data, "alice", redact=False)
    for row in rows.sft:
        assert chat_engine.render(row["messages"][:-1]) == row["prompt_text"]
    for row in rows.dpo:
        assert chat_engine.render(row["prompt"]) == row["prompt_text"]
        if "piece_id" in row:
            assert row["prompt_text"] == session.data.piece("alice", row["piece_id"])["prompt"]


def test_base_model_rows_are_prompt_completion(studio, base_engine):
    piece = new_piece(studio, base_engine, "local", "poem", {"topic": "autumn rain"})
    studio.add_version("local", piece, "Rain on the roof.")
    rows = export_rows(studio, "local")
    stored = studio.piece("local", piece)
    assert isinstance(stored["request"], str)
    assert rows.sft == [
        {
            "prompt": stored["request"],
            "completion": "Rain on the roof.",
            "prompt_text": stored["prompt"],
            "piece_id": piece,
            "kind": "edit",
        }
    ]
    assert base_engine.render(rows.sft[0]["prompt"]) == rows.sft[0]["prompt_text"]
    assert rows.dpo[0]["prompt"] == stored["request"] and rows.dpo[0]["rejected"] == stored["original"]


def test_owner_since_and_template_filters(session):
    data, ids = session.data, session.ids
    bob = export_rows(data, "bob")
    assert [r["piece_id"] for r in bob.sft] == [ids["bob"]] and not _by(bob.dpo, "kind", "comparison")
    everyone = export_rows(data, None)
    assert {r["piece_id"] for r in everyone.sft} >= {ids["bob"], ids["edited"]}

    products = export_rows(data, "alice", template="product-description")
    assert [r["piece_id"] for r in products.sft] == [ids["product"]]
    assert not _by(products.dpo, "kind", "comparison")  # the comparisons are of poems

    # make the first piece and the first comparison old; `since` leaves them out
    with data.conn:
        data.conn.execute("UPDATE pieces SET created_at = 1000 WHERE id = ?", (ids["edited"],))
        data.conn.execute("UPDATE comparisons SET created_at = 1000 WHERE id = ?", (session.comparisons["left"],))
    recent = export_rows(data, "alice", since=2000)
    assert not _by(recent.sft + recent.dpo, "piece_id", ids["edited"])
    assert [r["comparison_id"] for r in _by(recent.dpo, "kind", "comparison")] == [session.comparisons["right"]]
    only = export_rows(data, "alice", pieces=[ids["picked"]])
    assert [r["piece_id"] for r in only.sft] == [ids["picked"]]


def test_pii_is_redacted_by_default(session):
    ids = session.ids
    redacted = export_rows(session.data, "alice")
    (row,) = _by(redacted.sft, "piece_id", ids["pii"])
    assert EMAIL not in json.dumps(redacted.sft + redacted.dpo)
    assert row["messages"][-1]["content"] == "Write to me at [EMAIL] when the swallows return."
    kept = export_rows(session.data, "alice", redact=False)
    assert EMAIL in _by(kept.sft, "piece_id", ids["pii"])[0]["messages"][-1]["content"]


def test_written_files_train_as_written(session, tmp_path, tiny_chat_model, capsys):
    """Every exported row, metadata keys included, is read and kept by the sft and dpo readers."""
    from inkwell.train import check_data
    from inkwell.train.config import load_config

    rows = export_rows(session.data, "alice")
    for stage in ("sft", "dpo"):
        path = tmp_path / f"{stage}.jsonl"
        assert write_jsonl(path, getattr(rows, stage)) == len(getattr(rows, stage))
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == getattr(rows, stage)
        config = write_config(tmp_path / f"{stage}.yaml", stage, tiny_chat_model, path)
        report = check_data(load_config(config))
        assert not report.problems, report.summary()
        assert sum(f["kept"] for f in report.files) == len(lines)
        _, err = run(capsys, ["train", str(config), "--check"])
        assert "config and data are valid" in err and "skipped 0" in err


def test_write_jsonl_is_atomic_and_utf8(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("old\n")
    with pytest.raises(TypeError):
        write_jsonl(path, [{"ok": "床前明月光"}, {"bad": object()}])
    assert path.read_text() == "old\n"  # a failed write leaves the old file
    assert list(tmp_path.iterdir()) == [path]  # and no temporary file
    write_jsonl(path, [{"ok": "床前明月光"}])
    assert path.read_bytes().decode("utf-8") == '{"ok": "床前明月光"}\n'


def test_split_pieces():
    ids = list(range(1, 11))
    train, held = split_pieces(ids, 0.2, seed=0)
    assert len(held) == 2 and sorted(train + held) == ids and not set(train) & set(held)
    assert split_pieces(list(reversed(ids)), 0.2, seed=0) == (train, held)  # order-free, deterministic
    assert any(split_pieces(ids, 0.2, seed=s) != (train, held) for s in range(1, 6))  # the seed matters
    assert len(split_pieces([1, 2], 0.01, seed=0)[1]) == 1  # at least one held out from two
    assert split_pieces([7], 0.5, seed=0) == ([7], [])
    assert split_pieces([1, 2, 3], 0.0, seed=0) == ([1, 2, 3], [])
    # most held-out pieces stay held out as new pieces arrive
    _, later = split_pieces(list(range(1, 13)), 0.2, seed=0)
    assert set(held) <= set(later)
    with pytest.raises(InkwellError) as info:
        split_pieces(ids, 1.5, seed=0)
    assert info.value.field == "holdout"


def test_usable_pieces(session):
    ids = session.ids
    usable = {p["id"] for p in usable_pieces(session.data, "alice")}
    assert usable == {ids["edited"], ids["picked"], ids["pii"], ids["product"]}


def test_long_form_choices_and_edits_become_rows(studio, chat_engine):
    from inkwell.store.longform import LongformData

    tree = LongformData(studio.store)
    run = tree.new_run("alice", kind="article", topic="tides", folder=None, request={})
    prompt = [{"role": "user", "content": "Write section 1 of an article about tides."}]
    first = tree.add_candidates("alice", run, parent_id=None, section=0, items=[(t, {"prompt": prompt}) for t in "ABC"])
    tree.choose("alice", run, first[1])
    second = tree.add_candidates("alice", run, parent_id=first[1], section=1, items=[("D", {"prompt": prompt})] * 2)
    tree.edit("alice", run, second[0], "My own second section.")
    LongformData(studio.store).new_run("bob", kind="story", topic="x", folder=None, request={})

    rows = export_rows(studio, "alice", redact=False)
    longform = _by(rows.dpo, "kind", "longform")
    assert sorted((r["chosen"], r["rejected"]) for r in longform) == [
        ("B", "A"),
        ("B", "C"),
        ("My own second section.", "D"),  # the two "D"s are one pair
    ]
    assert all(r["prompt"] == prompt and r["longform_run"] == run for r in longform)
    (sft,) = _by(rows.sft, "kind", "longform")
    assert sft["messages"] == [*prompt, {"role": "assistant", "content": "My own second section."}]
    assert rows.counts["longform"] == 3
    assert not _by(export_rows(studio, "alice", template="poem").dpo, "kind", "longform")  # no template
