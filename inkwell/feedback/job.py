"""The training job's own process: train the run's recipe, grade the new adapter on the held-out pieces with
`inkwell eval`, write the result.

    python -m inkwell.feedback.job RUN_DIR        (started by inkwell.feedback.jobs.start_job)

1. `inkwell.train.train(RUN/recipe.yaml)`: the adapter and metrics.jsonl land in RUN.
2. RUN/heldout-eval.jsonl + RUN/heldout-template.yaml: the held-out pieces as `inkwell eval` rows (id = the
   piece id, reference = the creator's final text) whose fields hold the stored request as it is (a chat
   request's system and user messages, a base model's prompt text), and a template that renders those
   fields back into exactly that request (checked here, row by row), so eval sees the prompt the studio's
   engine saw, whatever template the piece came from.
3. `run_eval` into RUN/eval/ (report.json, report.md, report.html, plots/, generations/): the system it is
   compared with ("base": the base model, or base + the owner's adapter) and "new" (base + the new adapter),
   torch engine, fp32, greedy; metrics ROUGE (ROUGE-L against the creator's text) and perplexity (of the
   creator's text given the exact request, token-weighted).
4. RUN/report.json, built from the eval report: per system its perplexity and mean ROUGE-L, the win rate of
   the new adapter by per-example ROUGE-L (ties count half), and per held-out piece both generations, for
   the studio's blind round; `eval` and `eval_report` point to the eval folder and its report.md.
5. RUN/job-status.json, atomically, last: {"status": "finished"} or {"status": "failed", "error": one line}.
   The traceback of a failure goes to standard output (RUN/job.log), never into the status.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.feedback.jobs import JOB_FILE, REPORT_FILE, STATUS_FILE
from inkwell.home import atomic_write

MAX_NEW_TOKENS = 200  # the held-out generations: the piece's own max_new_tokens, capped so a report stays quick
DEFAULT_NEW_TOKENS = 160
EVAL_DATA = "heldout-eval.jsonl"
EVAL_TEMPLATE = "heldout-template.yaml"
EVAL_DIR = "eval"
EVAL_METRICS = ["rouge", "perplexity"]

# A template that renders a stored request back as it was: a chat request's system and user messages, or a
# base model's prompt text (the stored parts are already stripped, as every template renders them).
REPLAY_TEMPLATE = {
    "name": "feedback-heldout",
    "description": "a held-out studio piece's stored request, replayed as it is (written by inkwell.feedback.job)",
    "languages": ["en", "zh"],
    "fields": {
        "system": {"type": "str", "default": "", "description": "the chat request's system message"},
        "user": {"type": "str", "default": "", "description": "the chat request's user message"},
        "prompt": {"type": "str", "default": "", "description": "a base model's prompt text"},
    },
    "system": "{{ system }}",
    "chat": "{{ user }}",
    "completion": {"example": "{{ prompt }}"},
}


class Cancelled(Exception):
    """SIGTERM: `cancel_job`, or the machine shutting down."""


def say(message: str) -> None:
    print(message, flush=True)


def _write_json(path: Path, value: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(value, handle, indent=2, ensure_ascii=False)


# ---------------------------------------------------------------- the held-out pieces as eval rows


def replay_fields(request: str | list[dict]) -> dict[str, str]:
    """The replay template's fields that render back into `request` (a studio request: a prompt text, or
    an optional system message and one user message)."""
    if isinstance(request, str):
        return {"prompt": request}
    roles = [m.get("role") for m in request] if isinstance(request, list) else None
    if roles not in (["user"], ["system", "user"]):
        raise InkwellError(
            f"a held-out request of roles {roles} cannot be replayed by `inkwell eval` "
            "(it takes a system message and one user message)",
            field="heldout",
        )
    system = {"system": request[0]["content"]} if roles[0] == "system" else {}
    return {**system, "user": request[-1]["content"]}


def write_eval_data(run: Path, pieces: list[dict]) -> tuple[Path, Path]:
    """RUN/heldout-eval.jsonl and RUN/heldout-template.yaml; every row is checked to render its stored request."""
    import yaml

    from inkwell.prompts.render import build_prompt
    from inkwell.prompts.template import ContentTemplate

    template = ContentTemplate.model_validate(REPLAY_TEMPLATE)
    rows = []
    for piece in pieces:
        request = piece["request"]
        fields = replay_fields(request)
        rendered = build_prompt(template, fields, chat=not isinstance(request, str)).prompt
        if rendered != request:
            raise InkwellError(
                f"held-out piece {piece['id']}: its stored request does not render back as it was "
                "(leading or trailing blanks?), so `inkwell eval` would not see the studio's prompt",
                field="heldout",
            )
        rows.append(
            {
                "id": str(piece["id"]),
                "fields": fields,
                "reference": piece["text"],
                "request": request,  # the same request, as the studio stored it (read by people, not by eval)
                "template": piece["template"],
            }
        )
    data, template_file = run / EVAL_DATA, run / EVAL_TEMPLATE
    with atomic_write(data) as handle:
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    with atomic_write(template_file) as handle:
        handle.write("# the held-out requests of this run, replayed as they are: inkwell eval --template-file\n")
        yaml.safe_dump(REPLAY_TEMPLATE, handle, sort_keys=False, allow_unicode=True)
    return data, template_file


def _piece_decoding(piece: dict) -> dict:
    """Greedy decoding with the piece's own length and stop sequences (its other settings are for sampling)."""
    stored = piece.get("settings") or {}
    return {
        "max_new_tokens": min(int(stored.get("max_new_tokens") or DEFAULT_NEW_TOKENS), MAX_NEW_TOKENS),
        "stop": list(stored.get("stop") or []),
        "repetition_penalty": stored.get("repetition_penalty"),
    }


def eval_decoding(pieces: list[dict]) -> dict:
    """One set of decoding flags for the eval (it decodes every row alike): greedy; the longest of the pieces'
    (capped) lengths, all their stop sequences, and the repetition penalty most of them were written with.
    Pieces of one template and settings - the usual held-out set - decode exactly as they were written."""
    each = [_piece_decoding(p) for p in pieces]
    penalties = Counter(d["repetition_penalty"] for d in each if d["repetition_penalty"] is not None)
    flags: dict[str, Any] = {
        "temperature": 0.0,
        "num_return_sequences": 1,
        "seed": 0,
        "max_new_tokens": max(d["max_new_tokens"] for d in each),
        "stop": list(dict.fromkeys(s for d in each for s in d["stop"])),
    }
    if penalties:
        flags["repetition_penalty"] = penalties.most_common(1)[0][0]
    return flags


def eval_lang(pieces: list[dict]) -> str:
    """The pieces' language for ROUGE (zh: one token per character): that of the `language` field, else en;
    a mixed set is left to eval's detection."""
    langs = {"zh" if (p.get("fields") or {}).get("language") == "zh" else "en" for p in pieces}
    return langs.pop() if len(langs) == 1 else "auto"


# ---------------------------------------------------------------- the report


def report_for(
    pieces: list[dict],
    model: str,
    base_adapter: str | None,
    new_adapter: str,
    base_system: str = "base",
    *,
    run: Path,
) -> dict:
    """The held-out report of a new adapter against the system it may replace, from `inkwell eval`'s."""
    from inkwell.evaluate.data import SystemSpec
    from inkwell.evaluate.runner import EvalConfig, run_eval

    started = time.perf_counter()
    if not pieces:
        return {
            "heldout_count": 0,
            "compared_with": base_system,
            "systems": {"base": {"perplexity": None, "rouge_l": None}, "new": {"perplexity": None, "rouge_l": None}},
            "win_rate": None,
            "heldout": [],
            "eval": None,
            "eval_report": None,
            "note": "no held-out pieces: keep a few more accepted or edited pieces to grade the adapter on",
        }
    data, template_file = write_eval_data(run, pieces)
    systems = [
        SystemSpec(
            "base", model, adapter=base_adapter, raw=f"base={model}" + (f":{base_adapter}" if base_adapter else "")
        ),
        SystemSpec("new", model, adapter=new_adapter, raw=f"new={model}:{new_adapter}"),
    ]
    out = run / EVAL_DIR
    config = EvalConfig(
        data=data,
        systems=systems,
        out=out,
        template_file=template_file,
        metrics=list(EVAL_METRICS),
        lang=eval_lang(pieces),
        overrides=eval_decoding(pieces),
        batch_size=16,  # the held-out prompts decode as one batch, as the studio's engine batches them
        dtype="fp32",
        engine="torch",
    )
    evaluated = run_eval(config, say)
    for system in evaluated["systems"]:
        if system["failed"]:
            say(f"[{system['name']}] failed on {system['failed']} held-out piece(s): see {out / 'report.md'}")
    scores = evaluated["scores"]
    examples = {example["id"]: example for example in evaluated["examples"]}
    items, wins = [], 0.0
    for piece in pieces:
        outputs = examples[str(piece["id"])]["outputs"]
        base, new = outputs["base"], outputs["new"]
        rouge_base, rouge_new = base["scores"]["rougeL"], new["scores"]["rougeL"]
        wins += 1.0 if rouge_new > rouge_base else 0.5 if rouge_new == rouge_base else 0.0
        items.append(
            {
                "piece_id": piece["id"],
                "template": piece["template"],
                "fields": piece["fields"],
                "request": piece["request"],
                "prompt": piece["prompt"],
                "reference": piece["text"],
                "base_text": base["text"].strip(),
                "new_text": new["text"].strip(),
                "rouge_base": round(rouge_base, 4),
                "rouge_new": round(rouge_new, 4),
                "perplexity_base": base["scores"].get("perplexity"),
                "perplexity_new": new["scores"].get("perplexity"),
            }
        )
    return {
        "heldout_count": len(pieces),
        "compared_with": base_system,
        "systems": {
            name: {"perplexity": scores[name]["perplexity"]["value"], "rouge_l": scores[name]["rougeL"]["value"]}
            for name in ("base", "new")
        },
        "win_rate": wins / len(items),
        "heldout": items,
        "eval": str(out),
        "eval_report": str(out / "report.md"),
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
    report = report_for(
        heldout, job["base_model"], job.get("base_adapter"), out, job.get("base_system", "base"), run=run
    )
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
