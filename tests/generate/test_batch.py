"""Batch jobs: CSV/JSONL in, one JSON line per row out, bad rows reported by line, OUT.part + rename, --resume."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from inkwell.errors import InkwellError
from inkwell.generate.batch import read_rows, run_batch
from inkwell.generate.contract import Capabilities
from inkwell.generate.engine import Engine, GenerationResult
from inkwell.prompts.template import load_template_file

TEMPLATE_YAML = """\
name: tiny-blurb
description: A blurb.
fields:
  product: {type: str, required: true}
  tone: {type: str, default: friendly}
chat: "Describe {{ product }} in a {{ tone }} tone."
completion:
  example: "Product: {{ product }}\\nBlurb: {{ output }}"
decoding: {max_new_tokens: 6, temperature: 0}
"""


class EchoEngine:
    """A fake engine whose output names the product it was asked about."""

    capabilities = Capabilities()

    def __init__(self, batch_size=2):
        self.batch_size = batch_size
        self.loaded = SimpleNamespace(chat=True, context_length=2048, name="echo-model", adapter=None)
        self.prompts: list = []

    def count_tokens(self, prompt) -> int:
        return sum(len(m["content"].split()) for m in prompt) if isinstance(prompt, list) else len(prompt.split())

    def render(self, prompt):
        return json.dumps(prompt)

    def generate(self, prompts, settings, on_delta=None):
        out = []
        for i, prompt in enumerate(prompts):
            self.prompts.append(prompt)
            text = "blurb: " + prompt[-1]["content"]
            for s in range(settings.num_return_sequences):
                out.append(GenerationResult(text, 5, 3, "stop", 0.0, i, s, settings.seed))
        return out


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "tiny-blurb.yaml"
    path.write_text(TEMPLATE_YAML, encoding="utf-8")
    return load_template_file(path)


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------ reading rows


def test_read_rows_jsonl_ids_and_line_numbers(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": "a", "product": "pen"}\n\n{"product": "cup"}\n{bad json\n[1, 2]\n{"id": 7, "fields": {"product": "mug"}}\n'
    )
    rows = list(read_rows(path))
    assert [(r.line, r.id) for r in rows] == [(1, "a"), (3, "3"), (4, "4"), (5, "5"), (6, "7")]
    assert rows[0].fields == {"product": "pen"} and rows[0].error is None
    assert rows[1].fields == {"product": "cup"}
    assert "not valid JSON" in rows[2].error and rows[2].fields is None
    assert "JSON object" in rows[3].error
    assert rows[4].fields == {"product": "mug"}


def test_read_rows_csv(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,product,tone\nx1,pen,playful\n,cup,\nx3,mug,dry,EXTRA\n", encoding="utf-8")
    rows = list(read_rows(path))
    assert [(r.line, r.id) for r in rows] == [(2, "x1"), (3, "3"), (4, "x3")]
    assert rows[0].fields == {"product": "pen", "tone": "playful"}
    assert rows[1].fields == {"product": "cup"}  # empty cells are left out (template defaults apply)
    assert rows[2].error and "more values" in rows[2].error


def test_read_rows_errors(tmp_path):
    with pytest.raises(InkwellError, match="not found"):
        list(read_rows(tmp_path / "missing.jsonl"))
    (tmp_path / "in.txt").write_text("x")
    with pytest.raises(InkwellError, match="unsupported"):
        list(read_rows(tmp_path / "in.txt"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InkwellError, match="header"):
        list(read_rows(tmp_path / "empty.csv"))


# ------------------------------------------------------------------ running


def test_jsonl_batch_writes_one_line_per_row_keyed_by_id(tmp_path, template):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "product": "pen"},
            {"product": "cup", "tone": "dry"},  # no id: keyed by its line number
            {"id": "c", "fields": {"product": "mug"}},
        ],
    )
    out = tmp_path / "out.jsonl"
    report = run_batch(EchoEngine(), template, src, out, progress=False)
    records = read_out(out)
    assert [r["id"] for r in records] == ["a", "2", "c"]
    assert records[0]["text"] == "blurb: Describe pen in a friendly tone."
    assert records[1]["text"] == "blurb: Describe cup in a dry tone."
    assert records[1]["fields"] == {"product": "cup", "tone": "dry"}
    for r in records:
        assert r["model"] == "echo-model" and r["template"] == "tiny-blurb"
        assert set(r["usage"]) == {"prompt_tokens", "completion_tokens"}
        assert r["settings"]["max_new_tokens"] == 6
    assert report.total == 3 and report.written == 3 and report.failed == []
    assert not (tmp_path / "out.jsonl.part").exists()


def test_csv_batch(tmp_path, template):
    src = tmp_path / "in.csv"
    src.write_text("id,product\np1,pen\np2,cup\n,mug\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    report = run_batch(EchoEngine(), template, src, out, progress=False)
    records = read_out(out)
    assert [r["id"] for r in records] == ["p1", "p2", "4"]
    assert records[2]["text"].endswith("mug in a friendly tone.")
    assert report.written == 3


def test_bad_rows_are_reported_by_line_and_skipped(tmp_path, template):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "product": "pen"},
            '{"id": "b", "product": ',  # malformed JSON on line 2
            {"id": "c", "tone": "dry"},  # line 3: required field 'product' missing
            {"id": "d", "product": "mug", "colour": "red"},  # line 4: unknown field
            {"id": "a", "product": "duplicate"},  # line 5: duplicate id
            {"id": "f", "product": "cup"},
        ],
    )
    out = tmp_path / "out.jsonl"
    errors = []
    report = run_batch(
        EchoEngine(), template, src, out, progress=False, on_error=lambda row, why: errors.append((row.line, why))
    )
    assert [r["id"] for r in read_out(out)] == ["a", "f"]
    failed = {line: (row_id, reason) for line, row_id, reason in report.failed}
    assert set(failed) == {2, 3, 4, 5}
    assert "not valid JSON" in failed[2][1]
    assert failed[3][0] == "c" and "product" in failed[3][1]
    assert "colour" in failed[4][1]
    assert "duplicate" in failed[5][1]
    assert sorted(line for line, _ in errors) == [2, 3, 4, 5]
    assert report.written == 2


def test_n_versions_per_row(tmp_path, template):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "product": "pen"}, {"id": "b", "product": "cup"}])
    out = tmp_path / "out.jsonl"
    report = run_batch(
        EchoEngine(), template, src, out, progress=False, overrides={"num_return_sequences": 2, "temperature": 0.7}
    )
    records = read_out(out)
    assert [(r["id"], r["sample"]) for r in records] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert report.written == 2


def test_empty_input_is_an_error(tmp_path, template):
    src = tmp_path / "in.jsonl"
    src.write_text("\n\n")
    with pytest.raises(InkwellError, match="no rows"):
        run_batch(EchoEngine(), template, src, tmp_path / "out.jsonl", progress=False)


class Interrupt:
    """on_result that raises KeyboardInterrupt once `after` rows have finished."""

    def __init__(self, after):
        self.after, self.seen = after, 0

    def __call__(self, row, item, batch_id):
        self.seen += 1
        if self.seen > self.after:
            raise KeyboardInterrupt


def test_interruption_then_resume(tmp_path, template):
    ids = [f"r{i}" for i in range(5)]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "product": f"item {i}"} for i in ids])
    out = tmp_path / "out.jsonl"
    part = tmp_path / "out.jsonl.part"
    engine = EchoEngine(batch_size=1)
    with pytest.raises(KeyboardInterrupt):
        run_batch(engine, template, src, out, progress=False, on_result=Interrupt(2))
    assert not out.exists()
    assert part.exists()
    text = part.read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert [r["id"] for r in read_out(part)] == ["r0", "r1"]

    engine.prompts.clear()
    report = run_batch(engine, template, src, out, resume=True, progress=False)
    records = read_out(out)
    assert sorted(r["id"] for r in records) == ids
    assert len(records) == len(ids)  # every id exactly once
    assert report.skipped_done == 2 and report.written == 3
    assert len(engine.prompts) == 3  # finished rows are not generated again
    assert not part.exists()


def test_resume_drops_a_torn_last_line(tmp_path, template):
    ids = ["a", "b", "c", "d"]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "product": i} for i in ids])
    out = tmp_path / "out.jsonl"
    part = tmp_path / "out.jsonl.part"
    with pytest.raises(KeyboardInterrupt):
        run_batch(EchoEngine(batch_size=1), template, src, out, progress=False, on_result=Interrupt(2))
    full = read_out(part)[0]
    with part.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({**full, "id": "c"})[:25])  # half a line for row c, as after a kill mid-write
    report = run_batch(EchoEngine(batch_size=1), template, src, out, resume=True, progress=False)
    records = read_out(out)  # every line parses: the torn tail is gone
    assert sorted(r["id"] for r in records) == ids
    assert len(records) == 4
    assert report.skipped_done == 2


def test_resume_with_a_complete_torn_json_line_without_newline(tmp_path, template):
    # a last line that parses as JSON but has no newline is still incomplete and must be regenerated
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "product": i} for i in "ab"])
    out = tmp_path / "out.jsonl"
    part = tmp_path / "out.jsonl.part"
    part.write_text(json.dumps({"id": "a", "text": "old"}), encoding="utf-8")
    run_batch(EchoEngine(), template, src, out, resume=True, progress=False)
    records = read_out(out)
    assert sorted(r["id"] for r in records) == ["a", "b"]
    assert all(r["text"] != "old" for r in records)


def test_resume_after_a_finished_run_adds_only_new_rows(tmp_path, template):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "product": "pen"}, {"id": "b", "product": "cup"}])
    out = tmp_path / "out.jsonl"
    run_batch(EchoEngine(), template, src, out, progress=False)
    write_jsonl(src, [{"id": "a", "product": "pen"}, {"id": "b", "product": "cup"}, {"id": "c", "product": "mug"}])
    engine = EchoEngine()
    report = run_batch(engine, template, src, out, resume=True, progress=False)
    assert sorted(r["id"] for r in read_out(out)) == ["a", "b", "c"]
    assert report.skipped_done == 2 and report.written == 1
    assert len(engine.prompts) == 1


def test_without_resume_a_stale_part_file_is_discarded(tmp_path, template):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "product": "pen"}])
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.part").write_text(json.dumps({"id": "zzz"}) + "\n")
    run_batch(EchoEngine(), template, src, out, progress=False)
    assert [r["id"] for r in read_out(out)] == ["a"]


def test_real_tiny_engine_batch_with_interruption_and_resume(tmp_path, template, tiny_engine):
    ids = ["x", "y", "z"]
    src = tmp_path / "in.csv"
    src.write_text("id,product\n" + "".join(f"{i},thing {i}\n" for i in ids), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    engine = Engine(tiny_engine.loaded, batch_size=1)
    with pytest.raises(KeyboardInterrupt):
        run_batch(engine, template, src, out, progress=False, on_result=Interrupt(2))
    assert not out.exists()
    assert [r["id"] for r in read_out(tmp_path / "out.jsonl.part")] == ["x", "y"]
    run_batch(engine, template, src, out, resume=True, progress=False)
    records = read_out(out)
    assert [r["id"] for r in records] == ids
    for r in records:
        assert r["model"] == str(tiny_engine.loaded.name)
        assert 0 < r["usage"]["completion_tokens"] <= 6
        assert r["finish_reason"] in ("stop", "length")
    # greedy: the resumed rows are exactly what one uninterrupted run writes
    fresh = tmp_path / "fresh.jsonl"
    run_batch(Engine(tiny_engine.loaded, batch_size=3), template, src, fresh, progress=False)
    assert [r["text"] for r in read_out(fresh)] == [r["text"] for r in records]


QUIZ_YAML = """\
name: tiny-json
description: Structured.
fields:
  topic: {type: str, required: true}
chat: "JSON about {{ topic }}"
completion:
  example: "{{ topic }}: {{ output }}"
decoding: {max_new_tokens: 20, temperature: 0}
output_schema: {type: object, required: [title], properties: {title: {type: string}}}
"""


class JsonEngine(EchoEngine):
    """Answers valid JSON for topics containing 'good', prose otherwise (also on every retry)."""

    def generate(self, prompts, settings, on_delta=None):
        out = []
        for i, prompt in enumerate(prompts):
            self.prompts.append(prompt)
            first_user = next(m["content"] for m in prompt if m["role"] == "user")
            text = json.dumps({"title": first_user}) if "good" in first_user else "I would rather write prose."
            out.append(GenerationResult(text, 5, 3, "stop", 0.0, i, 0, settings.seed))
        return out


def test_structured_batch_writes_data_and_reports_invalid_rows(tmp_path):
    path = tmp_path / "tiny-json.yaml"
    path.write_text(QUIZ_YAML, encoding="utf-8")
    template = load_template_file(path)
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": "1", "topic": "good one"}, {"id": "2", "topic": "bad one"}, {"id": "3", "topic": "good two"}],
    )
    out = tmp_path / "out.jsonl"
    report = run_batch(JsonEngine(batch_size=3), template, src, out, progress=False)
    records = read_out(out)
    assert [r["id"] for r in records] == ["1", "3"]
    assert records[0]["data"] == {"title": "JSON about good one"}
    assert [(line, row_id) for line, row_id, _ in report.failed] == [(2, "2")]
    assert "not valid JSON" in report.failed[0][2]


def test_csv_and_jsonl_with_a_byte_order_mark(tmp_path, template):
    # spreadsheet exports often start with a UTF-8 BOM; the `id` column must still be recognised
    src = tmp_path / "excel.csv"
    src.write_bytes("\ufeffid,product\nk1,pen\n".encode("utf-8"))
    (row,) = list(read_rows(src))
    assert row.id == "k1" and row.fields == {"product": "pen"}
    src = tmp_path / "bom.jsonl"
    src.write_bytes(("\ufeff" + json.dumps({"id": "j1", "product": "cup"}) + "\n").encode("utf-8"))
    (row,) = list(read_rows(src))
    assert row.error is None and row.id == "j1"


def test_non_utf8_input_is_an_inkwell_error(tmp_path, template):
    src = tmp_path / "latin1.csv"
    src.write_bytes("id,product\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InkwellError, match="UTF-8") as info:
        list(read_rows(src))
    assert info.value.field == "input"
    with pytest.raises(InkwellError, match="UTF-8"):
        run_batch(EchoEngine(), template, src, tmp_path / "out.jsonl", progress=False)


# ------------------------------------------------------------------ rows fed progressively (concurrent engines)


class SlowEchoEngine(EchoEngine):
    """A concurrent fake: rows for products named 'slow ...' take longer, so rows finish out of input order."""

    capabilities = Capabilities(concurrent=True)

    def __init__(self, batch_size=2):
        super().__init__(batch_size)
        import threading

        self.lock = threading.Lock()
        self.active = self.most_active = 0

    def generate(self, prompts, settings, on_delta=None):
        import time

        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(0.3 if "slow" in prompts[0][-1]["content"] else 0.01)
            with self.lock:
                return super().generate(prompts, settings, on_delta)
        finally:
            with self.lock:
                self.active -= 1


def test_rows_in_flight_together_are_written_in_input_order(tmp_path, template):
    products = ["slow pen", "cup", "mug", "slow bag", "hat", "box", "lid"]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "product": p} for i, p in enumerate(products)])
    out = tmp_path / "out.jsonl"
    engine = SlowEchoEngine(batch_size=2)
    report = run_batch(engine, template, src, out, progress=False)
    records = read_out(out)
    assert [r["id"] for r in records] == [f"r{i}" for i in range(len(products))]
    assert [r["text"] for r in records] == [f"blurb: Describe {p} in a friendly tone." for p in products]
    assert report.written == len(products) and engine.most_active > 2  # rows overtook the slow ones


def test_a_raising_callback_keeps_the_rows_finished_before_it(tmp_path, template):
    # rows finished together (a chunk, or rows drained at once behind a slow head) are written up to the
    # row whose callback raised, not dropped with it
    products = ["slow pen", "cup", "mug", "hat", "box"]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "product": p} for i, p in enumerate(products)])
    for engine in (EchoEngine(batch_size=4), SlowEchoEngine(batch_size=2)):
        out = tmp_path / f"out-{type(engine).__name__}.jsonl"
        with pytest.raises(KeyboardInterrupt):
            run_batch(engine, template, src, out, progress=False, on_result=Interrupt(2))
        assert [r["id"] for r in read_out(Path(f"{out}.part"))] == ["r0", "r1"], type(engine).__name__


def test_scheduled_batch_interruption_resume_and_output_equal_the_engine(tmp_path, template, tiny_engine):
    from inkwell.generate.scheduler import ScheduledEngine, Scheduler

    ids = [f"k{i}" for i in range(7)]
    src = write_jsonl(
        tmp_path / "in.jsonl", [{"id": i, "product": "thing " * (1 + n % 4) + i} for n, i in enumerate(ids)]
    )
    out = tmp_path / "out.jsonl"
    sched = Scheduler(Engine(tiny_engine.loaded, batch_size=2), step_tokens=16).start()
    try:
        engine = ScheduledEngine(sched)
        with pytest.raises(KeyboardInterrupt):
            run_batch(engine, template, src, out, progress=False, on_result=Interrupt(3))
        assert [r["id"] for r in read_out(tmp_path / "out.jsonl.part")] == ids[:3]
        assert sched.waiting == 0 and sched.running == 0  # the rows still in flight were cancelled
        report = run_batch(engine, template, src, out, resume=True, progress=False)
    finally:
        sched.close()
    assert report.skipped_done == 3 and report.written == 4
    records = read_out(out)
    assert [r["id"] for r in records] == ids
    fresh = tmp_path / "fresh.jsonl"  # greedy: the same text as the engine writes batch_size rows at a time
    run_batch(Engine(tiny_engine.loaded, batch_size=3), template, src, fresh, progress=False)
    assert [r["text"] for r in read_out(fresh)] == [r["text"] for r in records]


def test_screen_hooks_redact_and_block_inputs_and_outputs(tmp_path, template):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "product": "pen"},
            {"id": "b", "product": "BAD input"},
            {"id": "c", "product": "cup secret"},
            {"id": "d", "product": "mug"},
        ],
    )
    out = tmp_path / "out.jsonl"

    def screen_input(row):
        if "BAD" in row.fields["product"]:
            raise InkwellError("input blocked (category: bad)\nsecond line", field="product")
        return {**row.fields, "product": row.fields["product"].replace("secret", "[X]")}

    def screen_output(record):
        if "mug" in record["text"]:
            return {"id": record["id"], "error": "output blocked (category: mugs)"}
        return {**record, "text": record["text"].upper()}

    logged, errors = [], []
    report = run_batch(
        EchoEngine(),
        template,
        src,
        out,
        progress=False,
        screen_input=screen_input,
        screen_output=screen_output,
        on_result=lambda row, item, _: logged.append((row.id, item.text)),
        on_error=lambda row, reason: errors.append((row.id, reason)),
    )
    records = {r["id"]: r for r in read_out(out)}
    assert sorted(records) == ["a", "c", "d"]  # the blocked input never ran; the blocked output is a record
    assert (
        records["c"]["text"] == "BLURB: DESCRIBE CUP [X] IN A FRIENDLY TONE."
        and records["c"]["fields"]["product"] == "cup [X]"
    )
    assert "text" not in records["d"] and "mugs" in records["d"]["error"]
    assert errors == [("b", "input blocked (category: bad)")]
    assert [row_id for row_id, _ in logged] == ["a", "c"] and logged[1][1].startswith("BLURB")  # what was written
    assert report.written == 2 and sorted(row_id for _, row_id, _ in report.failed) == ["b", "d"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl", "tiny-blurb.yaml"]  # no scratch copy

    with pytest.raises(InkwellError, match="every row"):
        run_batch(
            EchoEngine(),
            template,
            src,
            tmp_path / "none.jsonl",
            progress=False,
            screen_input=lambda row: (_ for _ in ()).throw(InkwellError("blocked")),
        )
