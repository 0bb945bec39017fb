"""Constrained decoding: what it fixes (structured tasks valid on the first try) and what it costs (tokens/s with
the grammar against without, on every engine), plus the grammar libraries compared on this CPU.

    python benchmarks/bench_grammar.py                      # SmolLM2: structured suite tasks + speed per engine
    python benchmarks/bench_grammar.py --libraries          # also llguidance vs XGrammar vs lm-format-enforcer
    python benchmarks/bench_grammar.py --engines native     # fewer engines

Speed: the same 8 lesson-quiz prompts decoded together, sampled with the template's settings, once free and once
under the template's JSON grammar; tokens/s = completion tokens / wall seconds, ratio grammar / free (target
>= 0.9). Validity: every structured task of the content suite (lesson-quiz), JSON valid against the schema on the
first try (no retries) without and with the grammar (target 100%). XGrammar and lm-format-enforcer are not
Inkwell dependencies: `pip install xgrammar lm-format-enforcer` into a scratch environment to include them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the native engine's threads must not spin while others run

MODEL = "smollm2-135m-instruct"
TOPICS = [
    "the water cycle",
    "fractions",
    "the solar system",
    "photosynthesis",
    "the French revolution",
    "volcanoes",
    "healthy eating",
    "the human heart",
]


def _quiz_prompts(engine, template, grammar: bool):
    from inkwell.generate.content import prepare, structured_settings

    rendered, settings = [], None
    for topic in TOPICS:
        prompt, settings = prepare(engine, template, {"topic": topic}, overrides={"seed": 1, "max_new_tokens": 256})
        rendered.append(prompt)
    assert settings is not None
    if grammar:
        settings = structured_settings(engine, template, settings, rendered[0].fields)
    else:
        settings.grammar = {}
    return [r.prompt for r in rendered], settings


def speed(engine_name: str) -> dict:
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.prompts.library import get_template

    engine = open_engine(EngineSpec(MODEL, backend=engine_name, batch_size=8))
    template = get_template("lesson-quiz")
    out: dict = {"engine": type(engine).__name__}
    engine.generate(["Warm-up"], _quiz_prompts(engine, template, grammar=True)[1])  # tokenizer wrap + compile
    schema = template.schema_for(template.resolve_fields({"topic": "x"}))
    for label in ("free", "grammar", "free again"):
        prompts, settings = _quiz_prompts(engine, template, grammar=label == "grammar")
        started = time.perf_counter()
        results = engine.generate(prompts, settings)
        seconds = time.perf_counter() - started
        tokens = sum(r.completion_tokens for r in results)
        valid = sum(_valid(r.text, schema) for r in results)
        out[label] = {"tokens": tokens, "seconds": round(seconds, 2), "tok_s": round(tokens / seconds, 1)}
        out[label]["valid_json"] = f"{valid}/{len(results)}"
        # one stream at a time (the first three prompts): per-token cost without the batch's occupancy effects
        # (under a grammar rows end when their JSON closes, so a batch's tail holds fewer rows)
        started, tokens = time.perf_counter(), 0
        for prompt in prompts[:3]:
            tokens += engine.generate([prompt], settings)[0].completion_tokens
        out[label]["single_tok_s"] = round(tokens / (time.perf_counter() - started), 1)
    for key in ("tok_s", "single_tok_s"):
        free = (out["free"][key] + out["free again"][key]) / 2  # two free runs around it: drift shows
        out["ratio" if key == "tok_s" else "single_ratio"] = round(out["grammar"][key] / free, 3)
    engine.close()
    return out


def _valid(text: str, schema) -> bool:
    import jsonschema

    try:
        jsonschema.validate(json.loads(text), schema)
        return True
    except (ValueError, jsonschema.ValidationError):
        return False


def structured_suite(engine_name: str) -> dict:
    from inkwell.evaluate.suite import load_suite
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.content import prepare, write_many

    tasks = [t for t in load_suite("content") if t.template.output_schema]
    engine = open_engine(EngineSpec(MODEL, backend=engine_name, batch_size=16))
    out: dict = {"tasks": len(tasks)}
    for label, grammar, retries in (
        ("no grammar, no retry", {}, 0),
        ("no grammar, 2 retries", {}, 2),
        ("grammar, no retry", None, 0),
    ):
        started, ok, attempts, cut = time.perf_counter(), 0, 0, 0
        for task in tasks:
            overrides = {"seed": 1, **task.settings}
            if grammar is not None:
                overrides["grammar"] = grammar
            rendered, settings = prepare(engine, task.template, task.fields, overrides=overrides)
            (outcome,) = write_many(engine, task.template, [rendered], settings, json_retries=retries)
            if isinstance(outcome, Exception):
                attempts += retries + 1
                cut += "cut off" in str(outcome)
                continue
            ok += 1
            attempts += outcome[0].attempts
        out[label] = {
            "valid": f"{ok}/{len(tasks)}",
            "rate": round(ok / len(tasks), 3),
            "attempts": attempts,
            "cut_at_max_tokens": cut,
            "seconds": round(time.perf_counter() - started, 1),
        }
    engine.close()
    return out


def libraries() -> dict:
    """Compile time and per-token mask time of each library on SmolLM2's and Gemma-3's tokenizers, for the
    lesson-quiz schema and four others (nesting/enum/number, pattern/format, anyOf/$ref, additionalProperties)."""
    import numpy as np
    import yaml

    from inkwell.models.load import resolve

    here = Path(__file__).resolve().parents[1]
    schemas = {
        "lesson-quiz": yaml.safe_load((here / "inkwell/prompts/templates/lesson-quiz.yaml").read_text())[
            "output_schema"
        ],
        "nested+enum+number": {
            "type": "object",
            "required": ["name", "kind", "price", "dims"],
            "properties": {
                "name": {"type": "string", "maxLength": 40},
                "kind": {"enum": ["book", "pen", "lamp"]},
                "price": {"type": "number", "minimum": 0},
                "dims": {"type": "object", "properties": {"w": {"type": "integer"}}, "required": ["w"]},
            },
        },
        "pattern+format": {
            "type": "object",
            "properties": {
                "date": {"type": "string", "format": "date"},
                "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
            },
            "required": ["date", "code"],
        },
        "anyOf+ref": {
            "$defs": {"p": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
            "anyOf": [{"$ref": "#/$defs/p"}, {"type": "string"}],
        },
        "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
    }
    out: dict = {}
    for model in (MODEL, "gemma3-270m"):
        try:
            folder, _card = resolve(model)
        except Exception as exc:  # noqa: BLE001 - Gemma-3 is an optional extra
            out[model] = f"skipped: {exc}"
            continue
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        vocab = len(tokenizer)
        out[model] = {"vocab": vocab}
        for name, runner in (("llguidance", _llguidance), ("xgrammar", _xgrammar), ("lm-format-enforcer", _lmfe)):
            try:
                out[model][name] = runner(tokenizer, vocab, schemas, np)
            except ImportError as exc:
                out[model][name] = f"not installed ({exc.name})"
            except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, never fatal
                out[model][name] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
    return out


def _walk(mask, accept, steps, rng, np) -> list[float]:
    """A random walk through the grammar: time each mask, take a random allowed token."""
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        allowed = mask()
        times.append(time.perf_counter() - started)
        ids = np.flatnonzero(allowed)
        if ids.size == 0 or not accept(int(rng.choice(ids))):
            break
    return times


def _llguidance(tokenizer, vocab, schemas, np) -> dict:
    import llguidance
    import llguidance.hf
    import llguidance.numpy as lln

    started = time.perf_counter()
    wrapped = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab)
    result = {"tokenizer_s": round(time.perf_counter() - started, 2)}
    for name, schema in schemas.items():
        started = time.perf_counter()
        matcher = llguidance.LLMatcher(wrapped, llguidance.LLMatcher.grammar_from_json_schema(schema))
        if matcher.is_error():
            result[name] = f"unsupported: {matcher.get_error()[:80]}"
            continue
        bits = lln.allocate_token_bitmask(1, vocab)
        lln.fill_next_token_bitmask(matcher, bits)
        compile_ms = (time.perf_counter() - started) * 1000

        def mask(matcher=matcher, bits=bits):
            lln.fill_next_token_bitmask(matcher, bits)
            return np.unpackbits(bits.view(np.uint8), bitorder="little")[:vocab]

        times = _walk(mask, matcher.consume_token, 60, np.random.default_rng(0), np)
        result[name] = {"compile_ms": round(compile_ms, 1), "mask_us": round(float(np.median(times)) * 1e6)}
    return result


def _xgrammar(tokenizer, vocab, schemas, np) -> dict:
    import xgrammar as xgr

    started = time.perf_counter()
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab))
    result = {"tokenizer_s": round(time.perf_counter() - started, 2)}
    for name, schema in schemas.items():
        started = time.perf_counter()
        matcher = xgr.GrammarMatcher(compiler.compile_json_schema(json.dumps(schema)))
        bits = xgr.allocate_token_bitmask(1, vocab)
        matcher.fill_next_token_bitmask(bits)
        compile_ms = (time.perf_counter() - started) * 1000

        def mask(matcher=matcher, bits=bits):
            matcher.fill_next_token_bitmask(bits)
            return np.unpackbits(bits.numpy().view(np.uint8), bitorder="little")[:vocab]

        times = _walk(mask, matcher.accept_token, 60, np.random.default_rng(0), np)
        result[name] = {"compile_ms": round(compile_ms, 1), "mask_us": round(float(np.median(times)) * 1e6)}
    return result


def _lmfe(tokenizer, vocab, schemas, np) -> dict:
    import transformers.tokenization_utils_base as base

    sys.modules.setdefault("transformers.tokenization_utils", base)  # 0.11.3 imports a transformers 4 module
    from lmformatenforcer import JsonSchemaParser, TokenEnforcer
    from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data

    started = time.perf_counter()
    data = build_token_enforcer_tokenizer_data(tokenizer)
    result = {"tokenizer_s": round(time.perf_counter() - started, 2)}
    for name, schema in schemas.items():
        started = time.perf_counter()
        enforcer = TokenEnforcer(data, JsonSchemaParser(schema))
        enforcer.get_allowed_tokens([])
        compile_ms = (time.perf_counter() - started) * 1000
        sequence: list[int] = []
        rng, times = np.random.default_rng(0), []
        for _ in range(60):
            t0 = time.perf_counter()
            allowed = enforcer.get_allowed_tokens(sequence)
            times.append(time.perf_counter() - t0)
            allowed = getattr(allowed, "allowed_tokens", allowed)
            if not allowed:
                break
            sequence = [*sequence, int(rng.choice(allowed))]
        result[name] = {"compile_ms": round(compile_ms, 1), "mask_us": round(float(np.median(times)) * 1e6)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="native,onnx,torch", help="Engines to time (comma-separated).")
    parser.add_argument("--libraries", action="store_true", help="Also compare the grammar libraries.")
    parser.add_argument("--skip-suite", action="store_true", help="Skip the structured suite tasks.")
    parser.add_argument("--out", type=Path, default=Path("/tmp/inkwell-bench-grammar.json"))
    args = parser.parse_args()

    from inkwell.models.cpu import describe

    report: dict = {"cpu": describe()}
    print(f"CPU: {report['cpu']}", flush=True)
    if not args.skip_suite:
        report["structured_suite"] = structured_suite("auto")
        print(json.dumps({"structured_suite": report["structured_suite"]}, indent=1), flush=True)
    report["speed"] = {}
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        try:
            report["speed"][name] = speed(name)
        except Exception as exc:  # noqa: BLE001 - an engine that cannot run here is noted, never fatal
            report["speed"][name] = f"skipped: {type(exc).__name__}: {str(exc)[:160]}"
        print(json.dumps({name: report["speed"][name]}, indent=1), flush=True)
    if args.libraries:
        report["libraries"] = libraries()
        print(json.dumps({"libraries": report["libraries"]}, indent=1), flush=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
