"""`inkwell eval --suite content`: fixed tasks over every template, written by each system (optionally best of N)
and scored by the model-free checks of compose/checks.py; the report gives each check's and each template's pass
rate with a 95% bootstrap interval, per system.

    report = run_suite(SuiteConfig("content", [parse_system("smol=smollm2-135m-instruct")], Path("out")), say=print)
    report["scores"]["smol"]["usable"]          # {"value": 0.41, "ci": [0.34, 0.48], ...}

A task file is JSONL, one task per line: {"id", "template", "fields", "settings" (optional decoding settings,
e.g. a cap on new tokens), "data" (optional facts table rows for report and data-brief)}. The shipped suites live
in inkwell/evaluate/suites/ (content.jsonl is written by benchmarks/make_content_suite.py); `--suite PATH` runs
your own. Every task is decoded with its template's settings (as `inkwell write` would), a fixed seed, and the
task's own settings on top; decoding flags given to `eval` override them all.

Generations are cached per system in OUT/generations/<system>.jsonl under a key of everything that decides the
text (model files, template, fields, settings, N), as `inkwell eval` does, so a re-run only writes what changed.
Checks are recomputed on every run (they are cheap, and a changed check applies to old texts at once).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inkwell.compose.checks import CHECKS, Verdict, check_output
from inkwell.errors import InkwellError
from inkwell.evaluate.data import SystemSpec
from inkwell.evaluate.metrics import Score
from inkwell.evaluate.runner import (
    REPORT_VERSION,
    _append,
    _digest,
    _path_fingerprint,
    _read_cache,
    open_local_system,
    score_entry,
)
from inkwell.evaluate.stats import DEFAULT_RESAMPLES, mean_reduce, resample_weights
from inkwell.prompts.template import ContentTemplate

Say = Callable[[str], None]
SUITES_DIR = Path(__file__).parent / "suites"
SUITES = {"content": SUITES_DIR / "content.jsonl"}  # name -> shipped task file
TASK_KEYS = {"id", "template", "fields", "settings", "data"}
USABLE = "usable"  # the metric a creator cares about: every applicable check passed


@dataclass
class SuiteTask:
    id: str
    line: int
    template: ContentTemplate
    fields: dict[str, Any]  # as given (with `facts` filled from `data`)
    settings: dict[str, Any] = field(default_factory=dict)
    data: list | None = None

    @property
    def language(self) -> str:
        return str(self.template.resolve_fields(self.fields).get("language") or "en")

    @property
    def group(self) -> str:
        return f"{self.template.name} ({self.language})"

    def describe(self) -> str:
        shown = {k: v for k, v in self.fields.items() if v not in (None, "", [])}
        text = ", ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}" for k, v in shown.items()
        )
        return f"{self.template.name}: {text}"


@dataclass
class SuiteConfig:
    suite: str  # a shipped suite's name (content) or a task file
    systems: list[SystemSpec]
    out: Path
    best_of: list[int] = field(default_factory=lambda: [1])  # each system is run at each N
    per_template: int | None = None  # only the first K tasks of each template and language (a stratified subset)
    batch_size: int = 32  # rows decoding at once (candidates count as rows)
    resamples: int = DEFAULT_RESAMPLES
    bootstrap_seed: int = 0
    report_examples: int = 100
    overrides: dict = field(default_factory=dict)  # decoding flags: over every task's settings
    seed: int = 0  # every task is sampled with this seed (unless its settings name one): re-runs write the same
    engine: str = "auto"  # auto: the engine `inkwell write` gets (native for SmolLM2's GGUF, ONNX for Gemma's)
    dtype: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    # Worked examples: "default" as `inkwell write` shows them (a base model its template's closest ones, a chat
    # model none), "none" (zero-shot for every model), "closest" (every model the closest ones, a chat model as
    # earlier turns). benchmarks/bench_shots.py compares them.
    shots: str = "default"


# ---------------------------------------------------------------- the task file


def suite_path(suite: str) -> Path:
    if suite in SUITES:
        return SUITES[suite]
    path = Path(suite).expanduser()
    if not path.is_file():
        raise InkwellError(
            f"unknown suite '{suite}': not a shipped suite ({', '.join(SUITES)}) nor a task file",
            field="suite",
            hint="--suite content, or --suite tasks.jsonl (docs/quality.md describes the format)",
        )
    return path


def _one_line(exc: InkwellError) -> str:
    message, _, hint = str(exc).partition("\n  fix: ")
    return f"{message} ({hint})" if hint else message


def load_suite(suite: str) -> list[SuiteTask]:
    """The tasks of a suite, each checked (template, fields, settings, table) before any model loads. A bad line
    is an InkwellError naming file:line and what is wrong."""
    from inkwell.data.formats import read_jsonl
    from inkwell.generate.settings import GenerationSettings
    from inkwell.prompts.library import all_templates

    path = suite_path(suite)
    templates = all_templates()
    tasks: list[SuiteTask] = []
    seen: dict[str, int] = {}
    try:
        rows = list(read_jsonl(path, on_error="raise", field="suite", what="suite file"))
    except InkwellError as exc:
        raise InkwellError(_one_line(exc), field="suite") from None
    for row in rows:
        where, record = f"{path}:{row.line}", row.record

        def bad(message: str, where: str = where) -> InkwellError:
            return InkwellError(f"{where}: {message}", field="suite")

        if not isinstance(record, dict):
            raise bad("each line must be a JSON object with template and fields")
        unknown = sorted(set(record) - TASK_KEYS)
        if unknown:
            raise bad(f"unknown key '{unknown[0]}' (a task has {', '.join(sorted(TASK_KEYS))})")
        name = record.get("template")
        if not isinstance(name, str) or name not in templates:
            raise bad(f"unknown template {name!r}; known: {', '.join(sorted(templates))}")
        template = templates[name]
        fields, settings, data = record.get("fields", {}), record.get("settings") or {}, record.get("data")
        if not isinstance(fields, dict):
            raise bad("'fields' must be an object of template fields")
        if not isinstance(settings, dict):
            raise bad("'settings' must be an object of decoding settings")
        task_id = str(record.get("id", row.line))
        if task_id in seen:
            raise bad(f"duplicate id '{task_id}' (first on line {seen[task_id]})")
        seen[task_id] = row.line
        try:
            if data is not None:
                from inkwell.compose.report import table_fields

                if not isinstance(data, list):
                    raise InkwellError("'data' must be a list of row objects")
                fields, _sheet = table_fields(template, dict(fields), data)
            template.resolve_fields(fields)
            GenerationSettings.build(template.decoding, settings)
        except InkwellError as exc:
            raise bad(_one_line(exc)) from None
        tasks.append(SuiteTask(task_id, row.line, template, fields, settings, data))
    if not tasks:
        raise InkwellError(f"suite file {path} holds no tasks", field="suite")
    return tasks


def stratified(tasks: list[SuiteTask], per_group: int | None) -> list[SuiteTask]:
    """The first `per_group` tasks of each template and language, in file order (all with None)."""
    if per_group is None:
        return tasks
    if per_group < 1:
        raise InkwellError(f"--per-template must be at least 1, got {per_group}", field="per-template")
    counts: dict[str, int] = {}
    kept = []
    for task in tasks:
        counts[task.group] = counts.get(task.group, 0) + 1
        if counts[task.group] <= per_group:
            kept.append(task)
    return kept


# ---------------------------------------------------------------- generating


@dataclass
class SuiteRun:
    name: str  # the system's name, with -bestN for N > 1
    spec: SystemSpec
    best_of: int
    outputs: dict[str, dict] = field(default_factory=dict)  # task id -> cached record
    generated: int = 0
    cached: int = 0
    failed: int = 0


def run_label(spec: SystemSpec, best_of: int) -> str:
    return spec.name if best_of == 1 else f"{spec.name}-best{best_of}"


def _task_settings(task: SuiteTask, config: SuiteConfig, best_of: int) -> dict:
    settings = {"seed": config.seed, **task.settings, **config.overrides}
    if best_of > 1:
        settings["num_return_sequences"] = best_of
    return settings


def generate_runs(spec: SystemSpec, tasks: list[SuiteTask], config: SuiteConfig, say: Say) -> list[SuiteRun]:
    """One SuiteRun per N of config.best_of for this system, from the cache or written now (the model loads
    once, and only when something is missing)."""
    identity = {"model": _path_fingerprint(spec.model), "adapter": _path_fingerprint(spec.adapter)}
    if (config.engine, config.precision) != ("auto", "auto"):
        identity.update(engine=config.engine, precision=config.precision)
    runs, todo = [], {}
    for best_of in config.best_of:
        run = SuiteRun(run_label(spec, best_of), spec, best_of)
        cached = _read_cache(config.out / "generations" / f"{run.name}.jsonl")
        keys = {t.id: _key(identity, t, config, best_of) for t in tasks}
        for task in tasks:
            record = cached.get(task.id)
            if record and record.get("key") == keys[task.id]:
                run.outputs[task.id] = record
        run.cached = len(run.outputs)
        missing = [t for t in tasks if t.id not in run.outputs]
        if missing:
            todo[best_of] = (run, missing, keys)
        runs.append(run)
    if not todo:
        say(f"[{spec.name}] all {len(tasks)} tasks cached")
        return runs
    engine = open_local_system(spec, config, say, workload="interactive")  # as `inkwell write` runs
    try:
        for best_of, (run, missing, keys) in todo.items():
            say(f"[{run.name}] writing {len(missing)} tasks ({run.cached} cached)")
            for group in _groups(missing, config, best_of):
                lines = _write_group(engine, group, config, best_of, keys)
                _append(config.out / "generations" / f"{run.name}.jsonl", lines)
                for line in lines:
                    run.outputs[line["id"]] = line
                run.generated += len(lines)
                say(f"[{run.name}] {len(run.outputs)}/{len(tasks)} tasks ({group[0].group})")
    finally:
        engine.close()
        engine = None  # the model's memory goes before the next system loads
        gc.collect()
    return runs


def _key(identity: dict, task: SuiteTask, config: SuiteConfig, best_of: int) -> str:
    template = task.template.model_dump(exclude={"source"})
    shots = [] if config.shots == "default" else [config.shots]  # the default keeps the caches written before
    return _digest([identity, template, task.fields, _task_settings(task, config, best_of), best_of, *shots])


def _groups(tasks: list[SuiteTask], config: SuiteConfig, best_of: int) -> list[list[SuiteTask]]:
    """Tasks that share a template and settings decode in one call (one batch, one set of settings)."""
    groups: dict[str, list[SuiteTask]] = {}
    for task in tasks:
        key = task.template.name + json.dumps(_task_settings(task, config, best_of), sort_keys=True)
        if task.template.output_counts:  # the JSON grammar follows the fields (e.g. how many questions)
            try:
                key += json.dumps(task.template.schema_for(task.template.resolve_fields(task.fields)), sort_keys=True)
            except InkwellError:
                pass  # bad fields: prepare() reports them for this task
        groups.setdefault(key, []).append(task)
    return list(groups.values())


def _write_group(engine, group: list[SuiteTask], config: SuiteConfig, best_of: int, keys: dict) -> list[dict]:
    """Generate the group's tasks together (N candidates each), keep the best per task; one cache line each.
    Each line carries its share of the group's wall time, so a cached report still knows what writing cost."""
    from inkwell.compose.bestof import BestOf
    from inkwell.generate.content import ContentResult, prepare, structured_settings

    started = time.perf_counter()
    template = group[0].template
    lines: list[dict] = []
    ready, rendered, settings = [], [], None
    for task in group:
        try:
            shots = _task_shots(task, config.shots)
            overrides = _task_settings(task, config, best_of)
            prompt, settings = prepare(engine, template, task.fields, shots=shots, overrides=overrides)
            settings = structured_settings(engine, template, settings, prompt.fields)  # JSON under its grammar
        except InkwellError as exc:
            lines.append({"id": task.id, "key": keys[task.id], "text": "", "error": _one_line(exc)})
            continue
        ready.append(task)
        rendered.append(prompt)
    if ready:
        assert settings is not None  # set with every ready task
        chooser = BestOf(best_of) if best_of > 1 else None
        for task, prompt, results in zip(ready, rendered, _generate(engine, [r.prompt for r in rendered], settings)):
            if isinstance(results, InkwellError):
                lines.append({"id": task.id, "key": keys[task.id], "text": "", "error": _one_line(results)})
                continue
            items = [ContentResult(r.text, None, r, prompt, settings) for r in results]
            kept = chooser(engine, template, prompt, items)[0] if chooser is not None else items[0]
            generation = kept.generation
            line = {"id": task.id, "key": keys[task.id], "text": kept.text}
            line.update(
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=sum(c.generation.completion_tokens for c in items),
                finish_reason=generation.finish_reason,
            )
            if "best_of" in kept.extra:
                line["best_of"] = kept.extra["best_of"]
            lines.append(line)
    seconds = time.perf_counter() - started
    for line in lines:
        line["seconds"] = round(seconds / len(lines), 4)
    return lines


def _generate(engine, prompts: list, settings) -> list:
    """Per prompt: its candidates (GenerationResults), or the InkwellError that failed it. When the whole call
    fails (one prompt longer than the context, say), each prompt is tried alone so only the bad ones fail."""
    try:
        results = engine.generate(prompts, settings)
    except InkwellError as exc:
        if len(prompts) == 1:
            return [exc]
    else:
        grouped: list[list] = [[] for _ in prompts]
        for result in results:
            grouped[result.prompt_index].append(result)
        return grouped
    alone: list = []
    for prompt in prompts:
        try:
            alone.append(engine.generate([prompt], settings))
        except InkwellError as exc:
            alone.append(exc)
    return alone


# ---------------------------------------------------------------- scoring and the report


def _entry(values: list[float], weights_for: Callable[[int], Any], note: str) -> dict:
    """A pass rate with its bootstrap interval (rows: the tasks it counts)."""
    if not values:
        return {"value": None, "ci": None, "scale": "0-1", "higher_is_better": True, "note": note}
    stats = np.asarray(values, dtype=np.float64)[:, None]
    score = Score("", float(stats.mean()), "0-1", True, stats=stats, reduce=mean_reduce, note=note)
    return score_entry(score, weights_for(len(values)))


def score_runs(tasks: list[SuiteTask], runs: list[SuiteRun], config: SuiteConfig) -> tuple[dict, dict, dict]:
    """(scores, verdicts, matrix): per system, `usable` (all checks passed), `check:NAME` over the tasks where
    the check applies, `template:NAME` (usable, per template); every system's verdict per task; and per system the
    pass rate of each check within each template. Intervals: percentile bootstrap over the tasks counted, the same
    resamples for every system (paired)."""
    cache: dict[int, Any] = {}

    def weights_for(n: int):
        if config.resamples <= 0:
            return None
        if n not in cache:
            cache[n] = resample_weights(n, config.resamples, config.bootstrap_seed)
        return cache[n]

    verdicts: dict[str, dict[str, Verdict]] = {}
    scores: dict[str, dict] = {}
    matrix: dict[str, dict] = {}
    templates = list(dict.fromkeys(t.template.name for t in tasks))
    for run in runs:
        by_task = {t.id: check_output(t.template, t.fields, run.outputs[t.id].get("text", "")) for t in tasks}
        verdicts[run.name] = by_task
        run.failed = sum(1 for t in tasks if run.outputs[t.id].get("error"))
        entries = {USABLE: _entry([float(v.passed) for v in by_task.values()], weights_for, "every check passed")}
        for check in CHECKS:
            flags = [by_task[t.id].results[check].passed for t in tasks]
            values = [float(f) for f in flags if f is not None]
            entries[f"check:{check}"] = _entry(values, weights_for, f"n = {len(values)} tasks where it applies")
        for name in templates:
            values = [float(by_task[t.id].passed) for t in tasks if t.template.name == name]
            entries[f"template:{name}"] = _entry(values, weights_for, f"n = {len(values)}: every check passed")
        scores[run.name] = entries
        matrix[run.name] = {
            name: {
                check: _rate([by_task[t.id].results[check].passed for t in tasks if t.template.name == name])
                for check in CHECKS
            }
            for name in templates
        }
    return scores, verdicts, matrix


def _rate(flags: list[bool | None]) -> list[int] | None:
    """[passed, counted] or None when the check never applies."""
    counted = [f for f in flags if f is not None]
    return [sum(counted), len(counted)] if counted else None


def run_suite(config: SuiteConfig, say: Say | None = None) -> dict:
    """The whole `inkwell eval --suite`: returns the report (also written to config.out, plus suite.md with the
    pass rate of each check within each template)."""
    from inkwell.evaluate.report import write_reports

    say = say or (lambda _m: None)
    _check_config(config)
    all_tasks = load_suite(config.suite)
    tasks = stratified(all_tasks, config.per_template)
    config.out.mkdir(parents=True, exist_ok=True)
    runs = [run for spec in config.systems for run in generate_runs(spec, tasks, config, say)]
    scores, verdicts, matrix = score_runs(tasks, runs, config)
    report = _report(config, all_tasks, tasks, runs, scores, verdicts, matrix)
    write_reports(report, config.out)
    from inkwell.home import atomic_write

    with atomic_write(config.out / "suite.md") as handle:
        handle.write(render_matrix(report))
    return report


SHOTS = ("default", "none", "closest")


def _task_shots(task: SuiteTask, mode: str) -> list | None:
    """The worked examples a task is written with: None is `write`'s default (prompts/render.py)."""
    if mode == "none":
        return []
    if mode == "closest":
        from inkwell.prompts.shots import closest_shots

        return closest_shots(task.template, task.template.resolve_fields(task.fields))
    return None


def _check_config(config: SuiteConfig) -> None:
    if config.shots not in SHOTS:
        raise InkwellError(f"unknown shots mode {config.shots!r}", field="shots", hint=f"one of: {', '.join(SHOTS)}")
    from inkwell.compose.bestof import check_best_of

    if not config.systems:
        raise InkwellError("no systems to evaluate", field="system", hint="--system NAME=MODEL (repeatable)")
    names = [s.name for s in config.systems]
    if len(set(names)) != len(names):
        raise InkwellError("a system name is used twice", field="system", hint="give each --system a different NAME")
    for spec in config.systems:
        if spec.shots:
            raise InkwellError(
                f"system '{spec.name}': shots files are per template, and the suite runs every template",
                field="system",
                hint="drop @shots.jsonl (base models get each template's own examples)",
            )
    if not config.best_of or len(set(config.best_of)) != len(config.best_of):
        raise InkwellError(f"--best-of values must be distinct, got {config.best_of}", field="best-of")
    for best_of in config.best_of:
        check_best_of(best_of)
    if config.overrides.get("temperature") in (0, 0.0) and max(config.best_of) > 1:
        raise InkwellError("best-of needs sampling: with temperature 0 every candidate is the same", field="best-of")


def _report(config, all_tasks, tasks, runs, scores, verdicts, matrix) -> dict:
    path = suite_path(config.suite)
    languages = sorted({t.language for t in tasks})
    notes = [
        "Each check counts the tasks where it applies (it depends on the template and fields only); `usable` and "
        "`template:NAME` count a task when every check that applies to it passed.",
        "Chinese: names cannot be told from other words, so the invented-names check covers numbers and Latin-script "
        "names only; the language check tells scripts apart, and English from other Latin-script languages only by "
        "its function words.",
        f"Intervals: 95% percentile bootstrap over the tasks counted, {config.resamples} resamples, shared by all "
        "systems (paired). A rate of 0 or 1 has a zero-width interval: the bootstrap cannot see beyond the sample.",
    ]
    if config.shots != "default":
        notes.append(
            {
                "none": "Zero-shot: no model was shown worked examples.",
                "closest": "Every model, chat models too, was shown its template's closest worked examples.",
            }[config.shots]
        )
    if len(tasks) < len(all_tasks):
        notes.append(
            f"A stratified subset: the first {config.per_template} tasks of each template and language "
            f"({len(tasks)} of {len(all_tasks)})."
        )
    if any(r.best_of > 1 for r in runs):
        notes.append(
            "Best-of-N: N candidates per task decoded together, the one passing most checks kept, ties broken by "
            "the model's mean log-probability per token (compose/bestof.py)."
        )
    for run in runs:
        if run.failed:
            notes.append(f"System '{run.name}' failed on {run.failed} of {len(tasks)} tasks (scored as empty outputs).")
    systems = []
    for run in runs:
        wall = sum(float(run.outputs[t.id].get("seconds", 0.0)) for t in tasks)
        tokens = sum(int(run.outputs[t.id].get("completion_tokens", 0)) for t in tasks)
        systems.append(
            {
                "name": run.name,
                "spec": run.spec.raw or run.spec.describe(),
                "model": run.spec.model,
                "adapter": run.spec.adapter,
                "shots": None,
                "best_of": run.best_of,
                "generated": run.generated,
                "cached": run.cached,
                "failed": run.failed,
                "seconds": round(wall, 2),
                "completion_tokens": tokens,
                "training_run": False,
            }
        )
    examples = []
    for task in tasks:
        outputs = {}
        for run in runs:
            record, verdict = run.outputs[task.id], verdicts[run.name][task.id]
            entry: dict[str, Any] = {
                "text": record.get("text", ""),
                "scores": {k: float(v) for k, v in verdict.flags().items() if v is not None},
                "checks": verdict.to_json()["checks"],
            }
            if record.get("error"):
                entry["error"] = record["error"]
            if record.get("best_of"):
                entry["best_of"] = record["best_of"]
            outputs[run.name] = entry
        checks = [c for c, f in next(iter(verdicts.values()))[task.id].flags().items() if f is not None]
        examples.append(
            {
                "id": task.id,
                "template": task.template.name,
                "language": task.language,
                "prompt": task.describe(),
                "reference": f"(no reference: checked for {', '.join(checks)})",
                "outputs": outputs,
            }
        )
    return {
        "inkwell_eval": REPORT_VERSION,
        "suite": config.suite,
        "created_at": time.time(),
        "data": str(path),
        "rows": len(tasks),
        "lang": "+".join(languages),
        "template": None,
        "ref_field": None,
        "settings": {"seed": config.seed, **config.overrides},
        "metrics": [USABLE] + [f"check:{c}" for c in CHECKS],
        "backend": "local",
        "base_url": None,
        "systems": systems,
        "scores": scores,
        "extras": {name: {"matrix": rows} for name, rows in matrix.items()},
        "training": {},
        "ratings": {},
        "notes": notes,
        "report_examples": config.report_examples,
        "examples": examples,
    }


def render_matrix(report: dict) -> str:
    """suite.md: per system, a table of templates x checks (passed/counted), then the usable share."""
    lines = [f"# Content suite: checks per template ({report['rows']} tasks)", ""]
    for system in report["systems"]:
        name = system["name"]
        rows = report["extras"][name]["matrix"]
        lines += [
            f"## {name} (best of {system['best_of']}; {system['seconds']:.0f} s writing)",
            "",
            "| template | " + " | ".join(CHECKS) + " | usable |",
            "|---|" + "---|" * (len(CHECKS) + 1),
        ]
        for template, cells in rows.items():
            usable = report["scores"][name][f"template:{template}"]
            shown = [f"{c[0]}/{c[1]}" if c else "–" for c in (cells[check] for check in CHECKS)]
            lines.append(f"| {template} | " + " | ".join(shown) + f" | {_percent(usable)} |")
        lines.append("")
    return "\n".join(lines)


def _percent(entry: dict) -> str:
    if entry.get("value") is None:
        return "–"
    text = f"{100 * entry['value']:.0f}%"
    if entry.get("ci"):
        text += f" [{100 * entry['ci'][0]:.0f}, {100 * entry['ci'][1]:.0f}]"
    return text
