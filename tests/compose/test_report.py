"""Writing from a facts table: rewrites keep the candidate with the fewest unsupported spans, what is left is
marked (⟦…⟧ in plain output, spans in --json), the facts block fits the model's context, and bad input to
`inkwell write --data` exits 2 with one error line naming the file. A scripted engine (the engine contract's
methods that content writing uses) or the tiny random model; no real model."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run

from inkwell.compose.report import RETRY_SEED_STEP, facts_steps, prepare_report, write_report
from inkwell.errors import InkwellError
from inkwell.generate.contract import Capabilities
from inkwell.generate.rows import GenerationResult

EXAMPLES = Path(__file__).parents[2] / "examples" / "data"
MEDALS = EXAMPLES / "paris-2024-medals.csv"


class ScriptedEngine:
    """Stands in for an engine: returns the scripted texts in order and records each call's settings."""

    capabilities = Capabilities()

    def __init__(self, outputs: list[str], context_length: int = 8192):
        self.outputs = list(outputs)
        self.loaded = SimpleNamespace(chat=True, context_length=context_length, name="scripted", adapter=None)
        self.batch_size = 4
        self.settings: list = []

    def count_tokens(self, prompt) -> int:
        text = prompt if isinstance(prompt, str) else " ".join(m["content"] for m in prompt)
        return len(text) // 4

    def encode(self, prompt) -> list[int]:
        return [0] * self.count_tokens(prompt)

    def render(self, prompt) -> str:
        return prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)

    def generate(self, prompts, settings=None, on_delta=None):
        self.settings.append(settings)
        results = []
        for p, prompt in enumerate(prompts):
            for k in range(settings.num_return_sequences):
                text = self.outputs.pop(0)
                results.append(GenerationResult(text, self.count_tokens(prompt), 9, "stop", 0.0, p, k, settings.seed))
        return results

    def close(self) -> None:
        pass


GOOD = "The United States and China both won 40 gold medals; the United States led with 126 medals in total."
ONE_BAD = "The United States won 41 gold medals and 126 in total."
TWO_BAD = "The United States won 41 gold medals and 127 in total."


def write(outputs: list[str], retries: int = 2, overrides: dict | None = None, **fields):
    engine = ScriptedEngine(outputs)
    job = prepare_report(MEDALS, "report", None, fields, overrides=overrides or {}, retries=retries)
    return engine, write_report(engine, job)


def test_a_supported_text_is_written_once():
    engine, outcome = write([GOOD])
    (record,) = outcome.records
    check = record.extra["fact_check"]
    assert record.text == GOOD and len(engine.settings) == 1
    assert check["unsupported"] == 0 and check["attempts"] == 1 and check["numbers"] == check["numbers_supported"] == 2
    assert {s["text"]: s["fact"] for s in check["spans"]}["126"] == "total.max"
    assert outcome.warnings == []


def test_rewrites_keep_the_candidate_with_fewest_unsupported_spans():
    engine, outcome = write([TWO_BAD, ONE_BAD, TWO_BAD], retries=2, overrides={"seed": 5})
    (record,) = outcome.records
    assert record.text == ONE_BAD
    check = record.extra["fact_check"]
    assert check["unsupported_per_attempt"] == [2, 1, 2] and check["attempts"] == 3
    assert [s.seed for s in engine.settings] == [5, 5 + RETRY_SEED_STEP, 5 + 2 * RETRY_SEED_STEP]  # a new seed each
    assert check["marked_text"] == "The United States won ⟦41⟧ gold medals and 126 in total."
    assert [s["text"] for s in check["spans"] if not s["supported"]] == ["41"]
    (warning,) = outcome.warnings
    assert "1 number(s) or name(s) not found" in warning and "'41'" in warning and "3 attempt(s)" in warning


def test_on_a_tie_the_candidate_with_more_supported_numbers_is_kept():
    richer = "The United States won 41 gold medals, 44 silver and 126 in total."
    _, outcome = write([ONE_BAD, richer], retries=1)
    assert outcome.records[0].text == richer
    assert outcome.records[0].extra["fact_check"]["unsupported_per_attempt"] == [1, 1]


def test_rewrites_stop_at_the_first_supported_text():
    engine, outcome = write([ONE_BAD, GOOD, TWO_BAD], retries=2)
    assert outcome.records[0].text == GOOD and len(engine.settings) == 2
    assert outcome.records[0].extra["fact_check"]["unsupported_per_attempt"] == [1, 0]


def test_no_rewrites_with_zero_retries_and_greedy_rewrites_sample():
    engine, outcome = write([ONE_BAD], retries=0)
    assert outcome.records[0].text == ONE_BAD and len(engine.settings) == 1
    engine, _ = write([ONE_BAD, GOOD], retries=1, overrides={"temperature": 0})
    assert [s.temperature for s in engine.settings] == [0, 0.7]  # greedy again would write the same text


def test_each_version_is_checked_on_its_own():
    engine, outcome = write([GOOD, ONE_BAD, GOOD], retries=1, overrides={"num_return_sequences": 2})
    assert [r.text for r in outcome.records] == [GOOD, GOOD]
    assert [r.extra["fact_check"]["attempts"] for r in outcome.records] == [1, 2]


def test_facts_shown_are_in_the_prompt_and_the_record():
    engine, outcome = write([GOOD], title="Paris 2024")
    record = outcome.records[0]
    facts = record.extra["facts"]
    assert facts["source"] == str(MEDALS) and facts["rows"] == 10 and facts["order"] is None
    assert {"id": "gold.max", "text": "highest gold: United States and China (40)"} in facts["facts"]
    assert "- highest gold: United States and China (40)" in record.fields["facts"]
    assert "Paris 2024" in record.prompt


def test_facts_are_dropped_to_fit_a_small_context():
    engine = ScriptedEngine([GOOD], context_length=600)
    job = prepare_report(MEDALS, "report", None, {}, overrides={}, retries=0)
    outcome = write_report(engine, job)
    assert "facts left out of the prompt to fit the model's context" in outcome.warnings[0]
    assert engine.count_tokens(outcome.records[0].prompt) <= 600 - 200
    assert outcome.records[0].extra["fact_check"]["unsupported"] == 0  # the check still knows every fact


def test_prepare_refuses_templates_without_facts_and_double_facts():
    with pytest.raises(InkwellError, match="takes no facts table"):
        prepare_report(MEDALS, "poem", None, {"topic": "x"})
    with pytest.raises(InkwellError, match="not both"):
        prepare_report(MEDALS, "report", None, {"facts": "- 1"})
    with pytest.raises(InkwellError, match="fact-retries"):
        facts_steps(MEDALS, -1)


def test_rows_instead_of_a_file():
    engine = ScriptedEngine(["Reds scored 3 goals."])
    job = prepare_report([{"team": "Reds", "goals": 3}, {"team": "Blues", "goals": 1}], "data-brief", None, {})
    outcome = write_report(engine, job)
    assert outcome.records[0].extra["fact_check"]["unsupported"] == 0
    assert outcome.records[0].extra["facts"]["source"] == "data"


# ------------------------------------------------------------------ the command


@pytest.fixture
def scripted(monkeypatch):
    """`inkwell write` on a scripted engine."""
    engines: list[ScriptedEngine] = []

    def use(outputs: list[str]) -> list[ScriptedEngine]:
        @contextmanager
        def open_engine_for(options):
            engines.append(ScriptedEngine(outputs))
            yield engines[-1]

        monkeypatch.setattr("inkwell.cli.write.open_engine_for", open_engine_for)
        return engines

    return use


def test_plain_output_marks_unsupported_spans(capsys, scripted):
    scripted([ONE_BAD, ONE_BAD, ONE_BAD])
    out, err = run(capsys, ["write", "report", "--data", str(MEDALS), "--no-log", "--no-moderation"])
    assert out.strip() == "The United States won ⟦41⟧ gold medals and 126 in total."
    assert "warning: version 1: 1 number(s) or name(s) not found" in err


def test_json_output_carries_facts_and_spans(capsys, scripted):
    engines = scripted([TWO_BAD, GOOD])
    out, _ = run(
        capsys, ["write", "data-brief", "--data", str(MEDALS), "--json", "--fact-retries", "1", "--no-moderation"]
    )
    record = json.loads(out)
    assert record["text"] == GOOD and record["template"] == "data-brief"
    assert record["fact_check"]["unsupported_per_attempt"] == [2, 0]
    assert record["facts"]["facts"][0] == {"id": "rows", "text": "Rows: 10 (country)"}
    assert len(engines[0].settings) == 2


def test_fact_retries_flag_is_passed(capsys, scripted):
    engines = scripted([ONE_BAD])
    run(capsys, ["write", "report", "--data", str(MEDALS), "--fact-retries", "0", "--no-log", "--no-moderation"])
    assert len(engines[0].settings) == 1


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("names.csv", "name,city\nAda,London\n", "no numeric column"),
        ("empty.csv", "region,sales\n", "the table is empty"),
        ("blank.csv", "", "no header row"),
        ("ragged.csv", "a,b\n1,2\n3\n", "fewer values"),
        ("big.csv", "n,v\n" + "1,2\n" * 1001, "too large"),
        ("missing.csv", None, "not found"),
    ],
)
def test_bad_tables_exit_2_with_one_error_line_naming_the_file(capsys, tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    _, err = run(capsys, ["write", "report", "--data", str(path), "--model", str(tmp_path / "no-model")], exit_code=2)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0] and expected in errors[0], err
    assert "Traceback" not in err


def test_a_table_not_in_utf8_names_the_file_and_line(capsys, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("city,visitors\nZürich,3\n".encode("latin-1"))
    _, err = run(capsys, ["write", "report", "--data", str(path)], exit_code=2)
    assert f"error: {path}:2: not UTF-8" in err


def test_data_with_a_template_that_takes_none_exits_2(capsys):
    _, err = run(capsys, ["write", "poem", "--set", "topic=x", "--data", str(MEDALS)], exit_code=2)
    assert "error: template 'poem' takes no facts table" in err


def test_negative_fact_retries_is_a_usage_error(capsys):
    run(capsys, ["write", "report", "--data", str(MEDALS), "--fact-retries", "-1"], exit_code=2)


def test_end_to_end_on_the_tiny_model(capsys, tiny_chat_model, tmp_path):
    table = tmp_path / "goals.csv"
    table.write_text("team,goals\nReds,3\nBlues,1\n", encoding="utf-8")
    argv = ["write", "report", "--data", str(table), "--model", str(tiny_chat_model), "--max-new-tokens", "12"]
    out, err = run(capsys, [*argv, "--seed", "3", "--json", "--no-moderation", "--dtype", "fp32"])
    record = json.loads(out)
    check = record["fact_check"]
    assert check["attempts"] == len(check["unsupported_per_attempt"]) <= 3
    for span in check["spans"]:
        assert record["text"][span["start"] : span["end"]] == span["text"]
    assert "- highest goals: Reds (3)" in record["fields"]["facts"]
