"""`inkwell data split`: seeded, stratified, and no near duplicate (or augmented copy) crosses splits."""

from __future__ import annotations

import json
import random
from collections import Counter

from inkwell.cli import main
from inkwell.data.dedup import shingles
from inkwell.data.split import split_file

WORDS = (
    "river mountain lantern copper meadow violin harbor pepper saddle glacier orchard thunder marble "
    "falcon biscuit canyon velvet quartz ember willow tunnel garlic pebble hazel cobalt"
).split()


def make_rows(seed=0, base=60, dup_every=4):
    """Distinct random sentences with labels; every `dup_every`-th gets a near-duplicate (one word changed)
    placed far away in the file."""
    rng = random.Random(seed)
    rows, dups = [], []
    for i in range(base):
        words = rng.sample(WORDS, 12)
        text = " ".join(words)
        label = ["pos", "neg", "neu"][i % 3]
        rows.append({"text": text, "label": label, "id": f"r{i}"})
        if dup_every and i % dup_every == 0:
            changed = list(words)
            changed[5] = changed[5].upper() + "s"
            dups.append({"text": " ".join(changed) + ".", "label": label, "id": f"r{i}-dup"})
    return rows + dups


def read(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def jaccard(a, b):
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_near_duplicates_never_cross_splits(tmp_path):
    rows = make_rows()
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = split_file(src, tmp_path / "out", ratios="0.6,0.2,0.2", seed=3, progress=False)
    where = {r["id"]: name for name in ("train", "val", "test") for r in read(tmp_path / "out" / f"{name}.jsonl")}
    assert len(where) == len(rows) and report.grouped_rows == 30
    for r in rows:
        if r["id"].endswith("-dup"):
            assert where[r["id"]] == where[r["id"][:-4]]
    # brute force: any two rows at or above the threshold are in the same split
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if jaccard(a["text"], b["text"]) >= 0.7:
                assert where[a["id"]] == where[b["id"]]
    counts = Counter(where.values())
    assert counts["val"] >= 8 and counts["test"] >= 8 and counts["train"] >= 40


def test_same_seed_same_split_and_stratified_labels(tmp_path, capsys):
    rows = make_rows(base=90, dup_every=0)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    main(["data", "split", str(src), "--out-dir", str(tmp_path / "a"), "--seed", "5", "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    main(["data", "split", str(src), "--out-dir", str(tmp_path / "b"), "--seed", "5", "--no-progress"])
    assert "train" in capsys.readouterr().err
    for name in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_text() == (tmp_path / "b" / f"{name}.jsonl").read_text()
    counts = report["counts"]
    assert sum(counts.values()) == 90 and 8 <= counts["val"] <= 10 and 8 <= counts["test"] <= 10
    for _name, per_label in report["labels"].items():  # 30 rows of each label, split about 24/3/3 per label
        assert max(per_label.values()) - min(per_label.values()) <= 1
    main(["data", "split", str(src), "--out-dir", str(tmp_path / "c"), "--seed", "6", "--json", "--no-progress"])
    other = json.loads(capsys.readouterr().out)
    assert (tmp_path / "c" / "val.jsonl").read_text() != (tmp_path / "a" / "val.jsonl").read_text()
    assert other["counts"] == report["counts"]


def test_augmented_rows_follow_their_source_and_stay_out_of_eval(tmp_path):
    from inkwell.data.augment import mark, source_key

    rows = [
        {"text": f"sentence number {i} about {WORDS[i % len(WORDS)]} and {WORDS[(i * 7) % len(WORDS)]}"}
        for i in range(40)
    ]
    augmented = [
        mark({"text": f"totally different words {i}"}, "paraphrase", source_key(r, "text"), 0)
        for i, r in enumerate(rows)
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in augmented[:20] + rows + augmented[20:]), encoding="utf-8")
    report = split_file(src, tmp_path / "out", seed=1, near_dup_threshold=None, progress=False)
    val_test = read(tmp_path / "out" / "val.jsonl") + read(tmp_path / "out" / "test.jsonl")
    assert val_test and not any("augmented" in r for r in val_test)
    assert report.augmented_dropped == len(val_test)  # one augmented copy per source row
    train = read(tmp_path / "out" / "train.jsonl")
    sources = {source_key(r, "text") for r in train if "augmented" not in r}
    assert all(r["augmented"]["source"] in sources for r in train if "augmented" in r)
