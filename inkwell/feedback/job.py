"""The training job's own process: train the run's recipe, grade the new adapter on the held-out pieces, write
the result.

    python -m inkwell.feedback.job RUN_DIR        (started by inkwell.feedback.jobs.start_job)

1. `inkwell.train.train(RUN/recipe.yaml)`: the adapter and metrics.jsonl land in RUN.
2. RUN/report.json: for each held-out piece, with the system it is compared with (the base model, or base +
   the owner's adapter) and with base + the new adapter (torch engine, fp32): the perplexity of the creator's
   final text given the stored request, a greedy generation for the request and its ROUGE-L against that
   text; per system the token-weighted perplexity and the mean ROUGE-L; the win rate of the new adapter by
   ROUGE-L (ties count half); and the generations themselves, for the studio's blind round.
3. RUN/job-status.json, atomically, last: {"status": "finished"} or {"status": "failed", "error": one line}.
   The traceback of a failure goes to standard output (RUN/job.log), never into the status.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.feedback.jobs import JOB_FILE, REPORT_FILE, STATUS_FILE
from inkwell.home import atomic_write

MAX_NEW_TOKENS = 200  # the held-out generations: the piece's own max_new_tokens, capped so a report stays quick
DEFAULT_NEW_TOKENS = 160


class Cancelled(Exception):
    """SIGTERM: `cancel_job`, or the machine shutting down."""


def say(message: str) -> None:
    print(message, flush=True)


def _write_json(path: Path, value: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(value, handle, indent=2, ensure_ascii=False)


# ---------------------------------------------------------------- grading one system


def _settings(piece: dict):
    """Greedy decoding with the piece's own length and stop sequences (its other settings are for sampling)."""
    from inkwell.generate.settings import GenerationSettings

    stored = piece.get("settings") or {}
    known = set(GenerationSettings.names())
    picked = {k: v for k, v in stored.items() if k in known and k in ("max_new_tokens", "stop", "repetition_penalty")}
    picked["max_new_tokens"] = min(int(picked.get("max_new_tokens") or DEFAULT_NEW_TOKENS), MAX_NEW_TOKENS)
    return GenerationSettings.build(picked, {"temperature": 0.0, "num_return_sequences": 1, "seed": 0})


def grade(model: str, adapter: str | None, pieces: list[dict]) -> list[dict]:
    """Per held-out piece: {nll, tokens, text} of one system (the model, with an adapter or not)."""
    from inkwell.evaluate.perplexity import sequence_nll
    from inkwell.generate.builder import EngineSpec, open_engine

    engine = open_engine(EngineSpec(model, adapter=adapter, backend="torch", workload="score", dtype="fp32"), say)
    try:
        out: list[dict] = []
        for piece in pieces:
            # the creator's text after exactly the ids the engine fed the model for this request
            prompt_ids = engine.encode(piece["request"])
            text_ids = engine.tokenizer(piece["text"], add_special_tokens=False)["input_ids"]
            nll, tokens = sequence_nll(engine, prompt_ids + text_ids, len(prompt_ids), max_length=engine.context_length)
            out.append({"nll": nll, "tokens": tokens})
        # one engine call per distinct decoding settings, so the held-out prompts decode as a batch
        groups: dict[str, list[int]] = {}
        for index, piece in enumerate(pieces):
            groups.setdefault(json.dumps(_settings(piece).to_dict(), sort_keys=True), []).append(index)
        for indexes in groups.values():
            settings = _settings(pieces[indexes[0]])
            results = engine.generate([pieces[i]["request"] for i in indexes], settings)
            for result in results:
                out[indexes[result.prompt_index]]["text"] = result.text.strip()
        return out
    finally:
        engine.close()
        gc.collect()


def _perplexity(graded: list[dict]) -> float | None:
    tokens = sum(g["tokens"] for g in graded)
    return math.exp(sum(g["nll"] for g in graded) / tokens) if tokens else None


def report_for(
    pieces: list[dict], model: str, base_adapter: str | None, new_adapter: str, base_system: str = "base"
) -> dict:
    """The held-out report of a new adapter against the system it may replace."""
    from inkwell.evaluate.metrics import rouge_per_example

    started = time.perf_counter()
    if not pieces:
        return {
            "heldout_count": 0,
            "systems": {"base": {"perplexity": None, "rouge_l": None}, "new": {"perplexity": None, "rouge_l": None}},
            "win_rate": None,
            "heldout": [],
            "note": "no held-out pieces: keep a few more accepted or edited pieces to grade the adapter on",
        }
    base = grade(model, base_adapter, pieces)
    new = grade(model, new_adapter, pieces)
    items, wins = [], 0.0
    for piece, b, n in zip(pieces, base, new):
        lang = "zh" if (piece.get("fields") or {}).get("language") == "zh" else "en"
        rouge_base = rouge_per_example([b["text"]], [piece["text"]], lang)["rougeL"][0]
        rouge_new = rouge_per_example([n["text"]], [piece["text"]], lang)["rougeL"][0]
        wins += 1.0 if rouge_new > rouge_base else 0.5 if rouge_new == rouge_base else 0.0
        items.append(
            {
                "piece_id": piece["id"],
                "template": piece["template"],
                "fields": piece["fields"],
                "request": piece["request"],
                "prompt": piece["prompt"],
                "reference": piece["text"],
                "base_text": b["text"],
                "new_text": n["text"],
                "rouge_base": round(rouge_base, 4),
                "rouge_new": round(rouge_new, 4),
                "perplexity_base": math.exp(b["nll"] / b["tokens"]) if b["tokens"] else None,
                "perplexity_new": math.exp(n["nll"] / n["tokens"]) if n["tokens"] else None,
            }
        )
    return {
        "heldout_count": len(pieces),
        "compared_with": base_system,
        "systems": {
            "base": {"perplexity": _perplexity(base), "rouge_l": sum(i["rouge_base"] for i in items) / len(items)},
            "new": {"perplexity": _perplexity(new), "rouge_l": sum(i["rouge_new"] for i in items) / len(items)},
        },
        "win_rate": wins / len(items),
        "heldout": items,
        "seconds": round(time.perf_counter() - started, 1),
    }


# ---------------------------------------------------------------- the job


def run_job(run: Path) -> dict:
    """Train, grade, and write report.json; returns the report."""
    from inkwell.train import train

    job = json.loads((run / JOB_FILE).read_text(encoding="utf-8"))
    heldout = json.loads((run / "heldout.json").read_text(encoding="utf-8"))
    say(f"training {job['stage']} on {job['base_model']} -> {run}")
    started = time.perf_counter()
    trained = train(run / "recipe.yaml", say=say)
    out, metrics = str(trained.out), dict(trained.metrics)
    del trained  # the trained model in memory: the evaluation loads the adapter from disk
    gc.collect()
    train_seconds = time.perf_counter() - started
    say(f"grading on {len(heldout)} held-out piece(s)")
    report = report_for(heldout, job["base_model"], job.get("base_adapter"), out, job.get("base_system", "base"))
    report.update(
        stage=job["stage"],
        base_model=job["base_model"],
        adapter=out,
        train=metrics,
        train_seconds=round(train_seconds, 1),
    )
    _write_json(run / REPORT_FILE, report)
    systems = report["systems"]
    say(f"perplexity of the held-out texts: {systems['base']['perplexity']} -> {systems['new']['perplexity']}")
    return report


def one_line(exc: BaseException) -> str:
    """A failure as one line for the status: an InkwellError's message, else the exception's type and text."""
    text = str(exc) if isinstance(exc, InkwellError) else f"{type(exc).__name__}: {exc}"
    first = " ".join(text.split("\n  fix: ")[0].split())
    return first[:500] or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m inkwell.feedback.job RUN_DIR", file=sys.stderr)
        return 2
    run = Path(args[0])

    def cancelled(_signum, _frame):
        raise Cancelled("cancelled")

    signal.signal(signal.SIGTERM, cancelled)
    with contextlib.suppress(OSError):
        os.nice(5)  # a background job: requests the server answers beside it come first
    # deprecation notices of the libraries (one per decoding step, some) would bury the log's real lines
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        run_job(run)
        status: dict[str, Any] = {"status": "finished"}
    except (Exception, KeyboardInterrupt) as exc:
        traceback.print_exc()
        status = {"status": "failed", "error": "cancelled" if isinstance(exc, Cancelled) else one_line(exc)}
    sys.stdout.flush()
    _write_json(run / STATUS_FILE, status)
    say(f"job {status['status']}" + (f": {status['error']}" if "error" in status else ""))
    return 0 if status["status"] == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
