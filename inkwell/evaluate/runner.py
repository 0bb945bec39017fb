"""`inkwell eval` and `inkwell score`: generate with each system on the same rows, score, bootstrap, report.

Generations are cached per system in OUT/generations/<system>.jsonl, one whole line per row, keyed by the
row id and a hash of everything that decides the output (model and adapter files, shots, template,
prompt or fields, decoding settings). A re-run reuses every line whose key still matches, so it only
generates what changed, and a run killed half-way resumes where it stopped (a torn last line is dropped).
Reference NLLs for perplexity are cached the same way in <system>.nll.jsonl. A system whose rows are all
cached is never loaded.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inkwell.errors import InkwellError
from inkwell.evaluate.data import EvalRow, SystemSpec, read_eval_rows, read_loss_curve, read_texts
from inkwell.evaluate.metrics import (
    DEFAULT_COPY_THRESHOLD,
    DEFAULT_EVAL_METRICS,
    DEFAULT_SCORE_METRICS,
    MetricContext,
    Score,
    compute_metrics,
    resolve_metrics,
)
from inkwell.evaluate.stats import DEFAULT_RESAMPLES, Resampler, bootstrap_ci, resample_weights
from inkwell.evaluate.text import LANGS, detect_lang
from inkwell.home import drop_torn_tail

Say = Callable[[str], None]
REPORT_VERSION = 1


@dataclass
class EvalConfig:
    data: Path | None  # None only with `--suite` (evaluate/suite.py), which brings its own tasks
    systems: list[SystemSpec]
    out: Path
    template: str | None = None
    template_file: Path | None = None
    metrics: list[str] | None = None
    ref_field: str = "reference"
    lang: str = "auto"
    overrides: dict = field(default_factory=dict)  # decoding flags; temperature defaults to 0 (greedy)
    batch_size: int = 8
    dtype: str = "auto"
    device: str = "auto"
    corpus: list[Path] | None = None
    copy_threshold: int = DEFAULT_COPY_THRESHOLD
    resamples: int = DEFAULT_RESAMPLES
    bootstrap_seed: int = 0
    json_retries: int = 0
    report_examples: int = 100  # examples shown side by side in report.md / report.html (JSON has all)
    backend: str = "local"  # or "openai": each system's MODEL is a model name served at base_url
    engine: str = "auto"  # local systems: auto (the `score` workload: torch) | torch | onnx | native
    precision: str = "auto"  # the fast paths' weights (onnx, native)
    base_url: str | None = None
    api_key: str | None = None


@dataclass
class SystemRun:
    spec: SystemSpec
    outputs: dict[str, dict] = field(default_factory=dict)  # row id -> cached record
    nll: dict[str, tuple[float, int]] = field(default_factory=dict)
    generated: int = 0
    cached: int = 0
    failed: int = 0
    model_name: str | None = None
    seconds: float = 0.0


# ---------------------------------------------------------------- fingerprints and the cache


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:20]


def _path_fingerprint(spec: str | None) -> Any:
    """Registry names as they are; files and folders by the name, size and mtime of their weight/config files."""
    if not spec:
        return spec
    path = Path(spec).expanduser()
    if path.is_file():
        stat = path.stat()
        return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
    if path.is_dir():
        parts = []
        for file in sorted(path.iterdir()):
            if file.is_file() and (file.suffix in (".json", ".safetensors", ".bin", ".gguf", ".model")):
                stat = file.stat()
                parts.append([file.name, stat.st_size, stat.st_mtime_ns])
        return [str(path.resolve()), parts]
    return spec


def _file_digest(path: str | None) -> str | None:
    if not path:
        return None
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()[:20]


def _read_cache(path: Path) -> dict[str, dict]:
    """Row id -> the last record for it (later lines win)."""
    drop_torn_tail(path)
    records: dict[str, dict] = {}
    if path.exists():
        with path.open(encoding="utf-8") as handle:
            for text in handle:
                try:
                    record = json.loads(text)
                    records[str(record["id"])] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
    return records


def _append(path: Path, records: list[dict]) -> None:
    """Whole lines only, flushed to disk: a kill loses at most the chunk being generated."""
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        handle.flush()
        os.fsync(handle.fileno())


def _compact(path: Path, keep: dict[str, dict]) -> None:
    """Rewrite the cache with one line per current row (drops stale keys) - atomically."""
    from inkwell.home import atomic_write

    with atomic_write(path) as handle:
        for record in keep.values():
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- prompts


@dataclass
class _PromptShot:
    prompt: str
    output: str


def _read_prompt_shots(path: str, system: str) -> list[_PromptShot]:
    texts, rows = read_texts(path, what=f"system '{system}' shots", field_name="system", text_field="output")
    shots = []
    for text, row in zip(texts, rows):
        if not isinstance(row.get("prompt"), str):
            raise InkwellError(
                f"system '{system}': shots file {path}: without --template each example needs 'prompt' and 'output'",
                field="system",
            )
        shots.append(_PromptShot(row["prompt"], text))
    return shots


def _prompt_request(row: EvalRow, shots: list[_PromptShot], chat: bool) -> str | list[dict]:
    if chat:
        messages: list[dict] = []
        for shot in shots:
            messages += [{"role": "user", "content": shot.prompt}, {"role": "assistant", "content": shot.output}]
        return messages + [{"role": "user", "content": row.prompt}]
    if not shots:
        return row.prompt
    return "\n\n".join(f"{s.prompt}\n{s.output}" for s in shots) + f"\n\n{row.prompt}\n"


# ---------------------------------------------------------------- one system


def parse_remote_system(text: str) -> SystemSpec:
    """NAME=MODEL[@shots.jsonl] for --backend openai: MODEL is whatever the server calls the model (may hold
    '/' or ':', e.g. meta-llama/Llama-3.1-8B or llama3:8b), so no local path checks. A ':ADAPTER' that is
    a local folder is refused: a remote server cannot load it."""
    if "=" not in text:
        raise InkwellError(
            f"--system expects NAME=MODEL[@shots.jsonl], got '{text}'",
            field="system",
            hint="with --backend openai, MODEL is the served model name, e.g. --system base=tiny-chat",
        )
    from inkwell.evaluate.data import split_system

    name, rest, shots = split_system(text)
    model = rest.strip()
    if ":" in model:
        head, tail = model.rsplit(":", 1)
        if tail and (Path(tail).expanduser() / "adapter_config.json").exists():
            raise InkwellError(
                f"system '{name}': adapter '{tail}' is a local folder; with --backend openai the server cannot load it",
                field="system",
                hint=f"serve it (inkwell serve --adapter NAME={tail}) and use the served name as the "
                "model: --system NAME=ADAPTER_NAME, if the server exposes the adapter as a model",
            )
    return SystemSpec(name=name, model=model or None, shots=shots, raw=text)


def _check_backend(config: EvalConfig) -> None:
    if config.backend == "local":
        return
    if config.backend != "openai":
        raise InkwellError(f"unknown backend '{config.backend}'", field="backend", hint="use local or openai")
    if not config.base_url:
        raise InkwellError(
            "--backend openai needs --base-url", field="base-url", hint="e.g. --base-url http://127.0.0.1:8000/v1"
        )
    from inkwell.generate.remote import parse_base_urls

    config.base_url = ",".join(parse_base_urls(config.base_url))  # one server, or a fleet: URL1,URL2,...
    for spec in config.systems:
        if spec.adapter:
            raise InkwellError(
                f"system '{spec.name}': adapters (MODEL:ADAPTER) are local-only; with --backend openai "
                f"the server cannot load '{spec.adapter}'",
                field="system",
                hint="if the server exposes the adapter as a model name (inkwell serve --adapter "
                "NAME=PATH does), use --system NAME=ADAPTER_NAME",
            )


def _load_engine(spec: SystemSpec, config: EvalConfig, say: Say):
    from inkwell.generate.builder import EngineSpec, open_engine

    if config.backend != "local":
        say(f"[{spec.name}] using {spec.model or '(the server default model)'} at {config.base_url}")
        remote = EngineSpec(
            spec.model,
            backend="remote",
            base_url=config.base_url,
            api_key=config.api_key,
            batch_size=config.batch_size,
            workload="score",
        )
        try:
            return open_engine(remote, say)
        except InkwellError as exc:
            message = str(exc).split("\n  fix:")[0]
            raise InkwellError(f"system '{spec.name}': {message}", field=exc.field or "system", hint=exc.hint) from None

    return open_local_system(spec, config, say, workload="score")


def open_local_system(spec: SystemSpec, config: Any, say: Say, workload: str):
    """A system's model on this machine (`eval`'s systems, the content suite's): `config` gives the engine flags
    (engine, dtype, precision, device, batch_size); `workload` what `--engine auto` optimises for (`score`: full
    precision likelihoods; `interactive`: as `inkwell write` runs). Load failures name the system."""
    from inkwell.generate.builder import EngineSpec, open_engine

    say(f"[{spec.name}] loading {spec.describe()}")
    local = EngineSpec(
        spec.model,
        adapter=spec.adapter,
        backend=config.engine,
        workload=workload,
        dtype=config.dtype,
        precision=config.precision,
        device=config.device,
        batch_size=config.batch_size,
    )
    try:
        return open_engine(local, say)
    except InkwellError as exc:
        raise InkwellError(f"system '{spec.name}' ({spec.describe()}) failed to load: {exc}", field="system") from None
    except Exception as exc:  # transformers/peft raise many kinds of errors for broken folders
        raise InkwellError(
            f"system '{spec.name}' ({spec.describe()}) failed to load: {type(exc).__name__}: {exc}", field="system"
        ) from None


def run_system(
    spec: SystemSpec, rows: list[EvalRow], config: EvalConfig, template, settings, want_nll: bool, say: Say
) -> SystemRun:
    """Generate (and score reference NLLs) for one system, reusing the cache."""
    from inkwell.generate.content import prepare, write_many
    from inkwell.prompts.render import load_shots

    started = time.perf_counter()
    run = SystemRun(spec)
    gen_path = config.out / "generations" / f"{spec.name}.jsonl"
    nll_path = config.out / "generations" / f"{spec.name}.nll.jsonl"
    identity = {
        "model": _path_fingerprint(spec.model),
        "adapter": _path_fingerprint(spec.adapter),
        "shots": _file_digest(spec.shots),
        "template": template.model_dump(exclude={"source"}) if template is not None else None,
    }
    if config.backend != "local":  # a served name, not a local path: the server and the name decide the output
        servers = ",".join(sorted((config.base_url or "").split(",")))  # a fleet listed in another order: the same
        identity.update(model=spec.model, backend=config.backend, base_url=servers)
    elif (config.engine, config.precision) != ("auto", "auto"):  # another engine writes other text
        identity.update(engine=config.engine, precision=config.precision)
    keys = {
        row.id: _digest([identity, row.prompt, row.fields, settings.to_dict(), config.json_retries]) for row in rows
    }
    nll_keys = {row.id: _digest([identity, row.prompt, row.fields, row.reference]) for row in rows}
    cached = _read_cache(gen_path)
    cached_nll = _read_cache(nll_path) if want_nll else {}
    for row in rows:
        record = cached.get(row.id)
        remote_failure = config.backend != "local" and record and record.get("error")  # a server down: try again
        if record and record.get("key") == keys[row.id] and not remote_failure:
            run.outputs[row.id] = record
        record = cached_nll.get(row.id)
        if record and record.get("key") == nll_keys[row.id]:
            run.nll[row.id] = (float(record["nll"]), int(record["tokens"]))
    run.cached = len(run.outputs)
    todo = [row for row in rows if row.id not in run.outputs]
    nll_todo = [row for row in rows if want_nll and row.id not in run.nll]
    # keep the cache files to the current rows and keys (stale lines would only grow them)
    if len(cached) != len(run.outputs):
        _compact(gen_path, {k: v for k, v in run.outputs.items()})
    if want_nll and len(cached_nll) != len(run.nll):
        _compact(nll_path, {k: {"id": k, "key": nll_keys[k], "nll": v[0], "tokens": v[1]} for k, v in run.nll.items()})
    if not todo and not nll_todo:
        say(f"[{spec.name}] all {len(rows)} rows cached")
        run.seconds = time.perf_counter() - started
        return run

    engine = _load_engine(spec, config, say)
    run.model_name = engine.loaded.name
    try:
        shots = None
        prompt_shots: list[_PromptShot] = []
        if spec.shots:
            if template is not None:
                try:
                    shots = load_shots(spec.shots, template)
                except InkwellError as exc:
                    raise InkwellError(f"system '{spec.name}': {exc}", field="system") from None
            else:
                prompt_shots = _read_prompt_shots(spec.shots, spec.name)

        def request_for(row: EvalRow):
            """(what the model is sent, settings) for one row; raises InkwellError for a bad row."""
            if template is not None:
                rendered, row_settings = prepare(engine, template, row.fields, shots=shots, overrides=config.overrides)
                return rendered, row_settings
            row_settings = settings
            if prompt_shots and not engine.loaded.chat and not settings.stop:
                import copy

                row_settings = copy.deepcopy(settings)
                row_settings.stop = ["\n\n"]  # one example per block: stop where the next would start
            return _prompt_request(row, prompt_shots, engine.loaded.chat), row_settings

        if todo:
            say(f"[{spec.name}] generating {len(todo)} rows ({run.cached} cached)")
        # remote: the engine's batch size is every server's share (--batch-size per server)
        step = max(1, engine.batch_size if config.backend != "local" else config.batch_size)
        for begin in range(0, len(todo), step):
            chunk = todo[begin : begin + step]
            lines = []
            ready, requests, chunk_settings = [], [], None
            for row in chunk:
                try:
                    request, chunk_settings = request_for(row)
                    ready.append(row)
                    requests.append(request)
                except InkwellError as exc:
                    lines.append(_record(row, keys[row.id], "", error=str(exc).replace("\n", " ")))
            if ready:
                if template is not None and template.output_schema is not None and config.json_retries > 0:
                    outcomes = write_many(engine, template, requests, chunk_settings, json_retries=config.json_retries)
                    for row, outcome in zip(ready, outcomes):
                        if isinstance(outcome, InkwellError):
                            lines.append(_record(row, keys[row.id], "", error=str(outcome).replace("\n", " ")))
                        else:
                            lines.append(_record(row, keys[row.id], outcome[0].text, generation=outcome[0].generation))
                else:  # the raw output: eval measures the model (JSON validity included), not a retry loop
                    prompts = [r.prompt for r in requests] if template is not None else requests
                    for row, result in zip(ready, _generate_isolated(engine, prompts, chunk_settings)):
                        if isinstance(result, InkwellError):
                            lines.append(_record(row, keys[row.id], "", error=str(result).replace("\n", " ")))
                        else:
                            lines.append(_record(row, keys[row.id], result.text, generation=result))
            _append(gen_path, lines)
            for line in lines:
                run.outputs[line["id"]] = line
            run.generated += len(lines)
            say(f"[{spec.name}] {len(run.outputs)}/{len(rows)} rows")

        if nll_todo:
            say(f"[{spec.name}] scoring reference likelihoods for {len(nll_todo)} rows")
            from inkwell.evaluate.perplexity import reference_nll

            for begin in range(0, len(nll_todo), step):
                lines = []
                for row in nll_todo[begin : begin + step]:
                    try:
                        request, _ = request_for(row)
                    except InkwellError:
                        continue  # a row whose prompt cannot be built has no likelihood
                    prompt = request.prompt if template is not None else request
                    prompt_ids = engine.encode(prompt)
                    target = engine.tokenizer(row.reference, add_special_tokens=False)["input_ids"]
                    nll, tokens = reference_nll(engine, prompt_ids, target)
                    run.nll[row.id] = (nll, tokens)
                    lines.append({"id": row.id, "key": nll_keys[row.id], "nll": nll, "tokens": tokens})
                _append(nll_path, lines)
    finally:
        engine.close()  # the remote engine's HTTP client; nothing for local ones
        engine = None  # the model's memory goes before the next system loads
        gc.collect()
    run.seconds = time.perf_counter() - started
    return run


def _generate_isolated(engine, prompts: list, settings) -> list:
    """Generate for a chunk; when the chunk fails (e.g. one prompt is longer than the context), retry row by
    row so only the bad rows fail. Returns a GenerationResult or the InkwellError for each prompt."""
    try:
        return engine.generate(prompts, settings)
    except InkwellError as exc:
        if len(prompts) == 1:
            return [exc]
    results = []
    for prompt in prompts:
        try:
            results.append(engine.generate([prompt], settings)[0])
        except InkwellError as exc:
            results.append(exc)
    return results


def _record(row: EvalRow, key: str, text: str, generation=None, error: str | None = None) -> dict:
    record = {"id": row.id, "key": key, "text": text}
    if generation is not None:
        record.update(
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            finish_reason=generation.finish_reason,
            latency_s=generation.latency_s,
        )
    if error:
        record["error"] = error
    return record


# ---------------------------------------------------------------- scoring


def score_entry(score: Score, weights: Resampler | None) -> dict:
    ci = None
    if weights is not None and score.stats is not None and score.reduce is not None and np.isfinite(score.value):
        ci = bootstrap_ci(score.stats, score.reduce, weights)
    return {
        "value": None if not np.isfinite(score.value) else float(score.value),
        "ci": [float(ci[0]), float(ci[1])] if ci else None,
        "scale": score.scale,
        "higher_is_better": score.higher_is_better,
        "note": score.note,
    }


def _prepare_corpus(corpus: list[Path] | None, cache_dir: Path | None, say: Say):
    if not corpus:
        return None
    from inkwell.evaluate.memorisation import load_or_build_index

    started = time.perf_counter()
    index = load_or_build_index(corpus, cache_dir)
    say(f"corpus index: {index.tokens} tokens in {index.documents} documents ({time.perf_counter() - started:.1f}s)")
    return index


def run_eval(config: EvalConfig, say: Say | None = None) -> dict:
    """The whole `inkwell eval`: returns the report (also written to config.out)."""
    from inkwell.evaluate.report import write_reports
    from inkwell.generate.settings import GenerationSettings

    say = say or (lambda _m: None)
    if config.data is None:
        raise InkwellError(
            "eval needs rows to generate from (--data), or a suite of tasks (--suite)",
            field="data",
            hint="--data test.jsonl, or --suite content (docs/quality.md)",
        )
    if len(config.systems) < 1:
        raise InkwellError(
            "no systems to evaluate",
            field="system",
            hint="--system NAME=MODEL[:ADAPTER][@shots.jsonl] (two or more to compare)",
        )
    names = [s.name for s in config.systems]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InkwellError(
            f"system name '{duplicates[0]}' is used twice", field="system", hint="give each --system a different NAME"
        )
    if config.lang not in LANGS:
        raise InkwellError(f"unknown language '{config.lang}'", field="lang", hint="use auto, en or zh")
    template = None
    if config.template or config.template_file:
        from inkwell.prompts.library import get_template

        template = get_template(config.template, config.template_file)
    _check_backend(config)
    metrics = resolve_metrics(config.metrics, DEFAULT_EVAL_METRICS)
    skipped_note = None
    if config.backend != "local" and "perplexity" in metrics:
        metrics = [m for m in metrics if m != "perplexity"]
        skipped_note = (
            "Perplexity was skipped: it needs the model's weights, and with --backend openai the "
            "systems are generated by a remote server (run eval with local models to get it)."
        )
        say("note: " + skipped_note)
    rows = read_eval_rows(
        config.data, ref_field=config.ref_field, template_fields=list(template.fields) if template is not None else None
    )
    if "keywords" in metrics and all(r.keywords is None for r in rows):
        raise InkwellError(f"metric 'keywords' needs a 'keywords' column in {config.data}", field="keywords")
    if "memorisation" in metrics and not config.corpus:
        raise InkwellError("metric 'memorisation' needs the training corpus", field="corpus", hint="pass --corpus FILE")
    references = [r.reference for r in rows]
    lang = detect_lang(references) if config.lang == "auto" else config.lang
    overrides = {"temperature": 0, **config.overrides}  # greedy unless the user asks otherwise
    config.overrides = overrides  # run_system renders template prompts with these
    settings = GenerationSettings.build(template.decoding if template is not None else None, overrides)
    config.out.mkdir(parents=True, exist_ok=True)
    corpus_index = _prepare_corpus(config.corpus, config.out / "cache", say) if "memorisation" in metrics else None

    runs = [run_system(spec, rows, config, template, settings, "perplexity" in metrics, say) for spec in config.systems]

    weights = resample_weights(len(rows), config.resamples, config.bootstrap_seed) if config.resamples > 0 else None
    embedder = None
    if "semantic" in metrics:
        from inkwell.models.embedder import load_embedder

        embedder = load_embedder()
    scores: dict[str, dict] = {}
    extras: dict[str, dict] = {}
    per_example: dict[str, dict[str, list]] = {}
    copied: dict[str, list] = {}
    for run in runs:
        predictions = [run.outputs[r.id].get("text", "") for r in rows]
        run.failed = sum(1 for r in rows if run.outputs[r.id].get("error"))
        ctx = MetricContext(
            lang=lang,
            keywords=[r.keywords or [] for r in rows] if "keywords" in metrics else None,
            schema=template.output_schema if template is not None else None,
            corpus_index=corpus_index,
            copy_threshold=config.copy_threshold,
            embedder=embedder,
            nll=[run.nll.get(r.id, (0.0, 0)) for r in rows] if "perplexity" in metrics else None,
        )
        results = compute_metrics(metrics, predictions, references, ctx)
        scores[run.spec.name] = {s.name: score_entry(s, weights) for s in results}
        extras[run.spec.name] = {s.name: s.extra for s in results if s.extra}
        per_example[run.spec.name] = {s.name: s.per_example for s in results if s.per_example is not None}
        if corpus_index is not None:
            copied[run.spec.name] = [
                {"length": c.length, "text": c.text} for c in corpus_index.longest_spans(predictions)
            ]

    examples = []
    for i, row in enumerate(rows):
        outputs = {}
        for run in runs:
            record = run.outputs[row.id]
            entry = {
                "text": record.get("text", ""),
                "scores": {k: _clean(v[i]) for k, v in per_example[run.spec.name].items()},
            }
            if record.get("error"):
                entry["error"] = record["error"]
            if run.spec.name in copied and copied[run.spec.name][i]["length"]:
                entry["copied"] = copied[run.spec.name][i]
            outputs[run.spec.name] = entry
        examples.append({"id": row.id, "prompt": row.display_prompt(), "reference": row.reference, "outputs": outputs})

    notes = [skipped_note] if skipped_note else []
    if "semantic" in metrics:
        notes.append(
            "Semantic similarity uses all-MiniLM-L6-v2, an English sentence-embedding model"
            + (
                "; on this Chinese data its scores are unreliable."
                if lang == "zh"
                else "; it is unreliable on Chinese."
            )
        )
    if "distinct" in metrics:
        notes.append("distinct-n is a statistic of the whole output set, so it has no bootstrap interval.")
    if "perplexity" in metrics:
        notes.append(
            "Perplexity is of the reference given each system's prompt, token-weighted, in each model's own "
            "tokens: compare it only between systems that share a tokenizer."
        )
    for run in runs:
        if run.failed:
            notes.append(
                f"System '{run.spec.name}' failed on {run.failed} of {len(rows)} rows (scored as empty outputs)."
            )
    notes.append(
        f"Intervals: 95% percentile bootstrap over rows, {config.resamples} resamples, shared by all systems (paired)."
    )

    report = {
        "inkwell_eval": REPORT_VERSION,
        "created_at": time.time(),
        "data": str(config.data),
        "rows": len(rows),
        "lang": lang,
        "template": template.name if template is not None else None,
        "ref_field": config.ref_field,
        "settings": settings.to_dict(),
        "metrics": metrics,
        "copy_threshold": config.copy_threshold if "memorisation" in metrics else None,
        "backend": config.backend,
        "base_url": config.base_url if config.backend != "local" else None,
        "systems": [
            {
                "name": run.spec.name,
                "spec": run.spec.raw,
                "model": run.spec.model,
                "adapter": run.spec.adapter,
                "shots": run.spec.shots,
                "generated": run.generated,
                "cached": run.cached,
                "failed": run.failed,
                "seconds": round(run.seconds, 2),
                "training_run": run.spec.training_folder() is not None,
            }
            for run in runs
        ],
        "scores": scores,
        "extras": extras,
        "training": {
            run.spec.name: read_loss_curve(run.spec.training_folder())
            for run in runs
            if run.spec.training_folder() is not None
        },
        "ratings": {},
        "notes": notes,
        "report_examples": config.report_examples,
        "examples": examples,
    }
    write_reports(report, config.out)
    return report


def _clean(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------- inkwell score


def score_files(
    pred: Path,
    ref: Path | None,
    *,
    metrics: list[str] | str | None = None,
    lang: str = "auto",
    corpus: list[Path] | None = None,
    schema: Path | None = None,
    copy_threshold: int = DEFAULT_COPY_THRESHOLD,
    resamples: int = 0,
) -> tuple[dict[str, Any], dict[str, dict]]:
    """Score existing outputs: (metric name -> value, metric name -> {value, ci, ...})."""
    names = resolve_metrics(metrics, DEFAULT_SCORE_METRICS)
    if lang not in LANGS:
        raise InkwellError(f"unknown language '{lang}'", field="lang", hint="use auto, en or zh")
    predictions, _ = read_texts(pred, what="predictions", field_name="pred")
    references = ref_rows = None
    if ref is not None:
        references, ref_rows = read_texts(ref, what="references", field_name="ref")
        if len(references) != len(predictions):
            raise InkwellError(
                f"{pred} has {len(predictions)} lines but {ref} has {len(references)}: they pair by line", field="ref"
            )
    keywords = None
    if "keywords" in names:
        source = ref_rows if ref_rows is not None else read_texts(pred, what="predictions", field_name="pred")[1]
        from inkwell.evaluate.data import parse_keywords

        keywords = [parse_keywords(r.get("keywords")) for r in source]
        if all(k is None for k in keywords):
            raise InkwellError("metric 'keywords' needs a 'keywords' field in the reference lines", field="keywords")
        keywords = [k or [] for k in keywords]
    schema_value = None
    if schema is not None:
        from inkwell.files import read_json

        schema_value = read_json(Path(schema), field="schema", what="schema file")  # errors name file:line
    if "memorisation" in names and not corpus:
        raise InkwellError("metric 'memorisation' needs the training corpus", field="corpus", hint="pass --corpus FILE")
    index = _prepare_corpus(corpus, None, lambda _m: None) if "memorisation" in names else None
    detected = lang if lang != "auto" else detect_lang(references if references is not None else predictions)
    ctx = MetricContext(
        lang=detected, keywords=keywords, schema=schema_value, corpus_index=index, copy_threshold=copy_threshold
    )
    results = compute_metrics(names, predictions, references, ctx)
    weights = resample_weights(len(predictions), resamples) if resamples > 0 else None
    flat: dict[str, Any] = {}
    detail: dict[str, dict] = {}
    for score in results:
        flat[score.name] = None if not np.isfinite(score.value) else float(score.value)
        detail[score.name] = score_entry(score, weights)
        if score.extra and "confusion_matrix" in score.extra:
            flat["confusion_matrix"] = {
                "labels": score.extra["labels"],
                "columns": score.extra["columns"],
                "matrix": score.extra["confusion_matrix"],
            }
    return flat, detail
