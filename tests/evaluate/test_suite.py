"""`inkwell eval --suite` (evaluate/suite.py): the shipped content suite (what the generator script writes, every
template and language), task files with mistakes (one-line errors naming file:line, exit 2), and a run on the tiny
chat model with best-of, its reports and its cache."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from cli_helpers import run

from inkwell.errors import InkwellError
from inkwell.evaluate.suite import SUITES, load_suite, stratified
from inkwell.prompts.library import all_templates

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--dtype", "fp32", "--device", "cpu", "--max-new-tokens", "6", "--bootstrap", "50"]


def test_the_shipped_suite_is_what_its_script_writes():
    spec = importlib.util.spec_from_file_location("make_content_suite", ROOT / "benchmarks" / "make_content_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert SUITES["content"].read_text(encoding="utf-8") == module.render()


def test_the_content_suite_covers_every_template_in_each_of_its_languages():
    tasks = load_suite("content")
    assert len(tasks) >= 200
    builtin = {name: t for name, t in all_templates().items() if t.source.startswith(str(ROOT / "inkwell"))}
    covered = {(t.template.name, t.language) for t in tasks}
    for name, template in builtin.items():
        for language in template.languages:
            assert (name, language) in covered, (name, language)
    assert len({t.id for t in tasks}) == len(tasks)
    reports = [t for t in tasks if t.template.name == "report"]
    assert all("highest" in t.fields["facts"] for t in reports)  # the table's facts filled in from `data`


def test_no_task_is_a_templates_own_few_shot_example():
    # a base model shown the example would copy its answer and score well for it (texts, topics, premises)
    for task in load_suite("content"):
        for example in task.template.examples:
            free = [k for k, spec in task.template.fields.items() if spec.choices is None]  # not a choice's value
            shared = [
                k for k in free if len(str(example.fields.get(k, ""))) > 20 and task.fields.get(k) == example.fields[k]
            ]
            assert not shared, (task.id, shared)


def test_the_suite_writes_zero_shot_default_or_closest_examples():
    from inkwell.evaluate.data import parse_system
    from inkwell.evaluate.suite import SuiteConfig, _check_config, _task_shots

    task = next(t for t in load_suite("content") if t.id == "poem-zh-01")
    assert _task_shots(task, "default") is None  # `write`'s own choice (base models: the closest)
    assert _task_shots(task, "none") == []
    closest = _task_shots(task, "closest")
    assert len(closest) == 3 and all(e.fields["language"] == "zh" for e in closest)
    with pytest.raises(InkwellError, match="shots mode"):
        _check_config(SuiteConfig("content", [parse_system("a=smollm2-135m-instruct")], Path("x"), shots="some"))


def test_a_stratified_subset_takes_the_first_tasks_of_each_template_and_language():
    tasks = load_suite("content")
    subset = stratified(tasks, 2)
    groups = {t.group for t in tasks}
    assert len(subset) == 2 * len(groups)
    assert [t.id for t in subset if t.group == "headline (zh)"] == ["headline-zh-01", "headline-zh-02"]
    with pytest.raises(InkwellError, match="at least 1"):
        stratified(tasks, 0)


GOOD = {"id": "a", "template": "headline", "fields": {"text": "The library opens late on Fridays."}}


@pytest.mark.parametrize(
    "lines, line, words",
    [
        ([GOOD, "{not json"], 2, "not valid JSON"),
        ([{**GOOD, "template": "headlines"}], 1, "unknown template 'headlines'"),
        ([{**GOOD, "fields": {}}], 1, "needs the field 'text'"),
        ([{**GOOD, "fields": {"text": "x", "max_words": "many"}}], 1, "field 'max_words'"),
        ([{**GOOD, "fields": {"txt": "x"}}], 1, "has no field 'txt'"),
        ([{**GOOD, "settings": {"temprature": 0.5}}], 1, "unknown generation setting 'temprature'"),
        ([{**GOOD, "settings": {"max_new_tokens": 0}}], 1, "max_new_tokens"),
        ([{**GOOD, "expected": "x"}], 1, "unknown key 'expected'"),
        ([GOOD, GOOD], 2, "duplicate id 'a' (first on line 1)"),
        ([{**GOOD, "data": [{"team": "Reds", "goals": 3}]}], 1, "takes no facts table"),
        ([{"id": "r", "template": "report", "fields": {}, "data": [{"name": "Ada"}]}], 1, "no numeric column"),
        ([["a list"]], 1, "JSON object"),
    ],
)
def test_a_bad_task_file_is_a_one_line_error_naming_file_and_line(capsys, tmp_path, lines, line, words):
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    _out, err = run(capsys, ["eval", "--suite", str(path), "--system", "s=x", "--out", str(tmp_path / "o")], 2)
    lines_out = err.strip().splitlines()
    assert len(lines_out) == 1, err
    assert lines_out[0].startswith(f"error: {path}:{line}: ") and words in lines_out[0], err


def test_suite_flags_are_checked_before_a_model_loads(capsys, tmp_path):
    out = ["--out", str(tmp_path / "o")]
    _, err = run(capsys, ["eval", "--suite", "nope", "--system", "s=x", *out], 2)
    assert "unknown suite 'nope'" in err
    _, err = run(capsys, ["eval", "--best-of", "4", "--system", "s=x", *out], 2)
    assert "--best-of and --per-template go with --suite" in err
    _, err = run(capsys, ["eval", "--suite", "content", "--data", "x.jsonl", "--system", "s=x", *out], 2)
    assert "--data is not used with --suite" in err
    _, err = run(
        capsys, ["eval", "--suite", "content", "--best-of", "17", "--system", "s=smollm2-135m-instruct", *out], 2
    )
    assert "best-of must be a whole number between 1 and 16" in err
    _, err = run(capsys, ["eval", "--system", "s=x", *out], 2)
    assert "--data" in err and "--suite" in err


def test_a_suite_run_with_best_of_reports_checks_templates_and_caches(capsys, tmp_path, tiny_chat_model):
    path = tmp_path / "tasks.jsonl"
    rows = [
        GOOD,
        {"id": "b", "template": "headline", "fields": {"text": "本市新建了二十座公园。", "language": "zh"}},
        {"id": "c", "template": "lesson-quiz", "fields": {"topic": "the water cycle", "num_questions": 1}},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "report"
    argv = ["eval", "--suite", str(path), "--system", f"tiny={tiny_chat_model}", "--best-of", "1", "--best-of", "2"]
    printed, _ = run(capsys, [*argv, "--out", str(out), "--json", *FAST])
    summary = json.loads(printed)
    assert summary["rows"] == 3 and set(summary["systems"]) == {"tiny", "tiny-best2"}
    assert summary["systems"]["tiny-best2"]["generated"] == 3
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    scores = report["scores"]["tiny-best2"]
    assert {"usable", "check:facts", "check:json", "template:headline", "template:lesson-quiz"} <= set(scores)
    assert scores["check:json"]["note"] == "n = 1 tasks where it applies"
    assert all(0 <= e["value"] <= 1 for e in scores.values() if e["value"] is not None)
    example = next(e for e in report["examples"] if e["id"] == "b")
    assert example["language"] == "zh" and example["outputs"]["tiny-best2"]["best_of"]["n"] == 2
    assert set(example["outputs"]["tiny"]["checks"]) >= {"facts", "length", "language"}
    assert {s["name"]: s["best_of"] for s in report["systems"]} == {"tiny": 1, "tiny-best2": 2}
    assert "| headline |" in (out / "suite.md").read_text(encoding="utf-8")
    assert (out / "report.html").exists() and (out / "report.md").exists()
    again = json.loads(run(capsys, [*argv, "--out", str(out), "--json", *FAST])[0])
    assert again["systems"]["tiny"] == {"generated": 0, "cached": 3, "failed": 0}
