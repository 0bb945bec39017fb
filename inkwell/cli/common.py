"""What the command modules share: option types, the decoding flags (declared once), the one place the CLI
makes an engine, and small printing helpers. Light imports only, so `inkwell --help` stays instant."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from inkwell.errors import InkwellError
from inkwell.generate.settings import GenerationSettings

# ---------------------------------------------------------------- options more than one command takes

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Registry name, HF folder or .gguf file [default: smollm2-135m-instruct]."),
]
AdapterOpt = Annotated[str | None, typer.Option("--adapter", help="PEFT adapter folder to apply on the model.")]
SystemsOpt = Annotated[
    str | None,
    typer.Option(
        "--systems",
        help="An ensemble: MODEL[:ADAPTER],MODEL[:ADAPTER],... share the --best-of candidates, ranked together.",
    ),
]
DtypeOpt = Annotated[
    str,
    typer.Option("--dtype", help="auto | fp32 | bf16 | fp16 (auto: bf16 on GPUs and CPUs with fast bf16, else fp32)."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        envvar="INKWELL_ENGINE",
        help="auto | native | onnx | torch (auto on CPU: native for a llama GGUF, else ONNX where it applies, else torch).",
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="ONNX fast path weights: auto | int4 | int8 | fp32 (auto: int4 where the model's 4-bit GGUF grid is kept exactly, else int8).",
    ),
]
NoLog = Annotated[bool, typer.Option("--no-log", help="Do not record this in the history database.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for other tools.")]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="local, or openai: any OpenAI-compatible server (inkwell serve, vLLM, TGI, llama.cpp); --model then names the served model.",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="With --backend openai: the server, e.g. http://127.0.0.1:8000/v1; several, comma-separated, share "
        "batch and eval rows (a failing one is left out until it answers again; write uses the first that answers).",
    ),
]
RemoteKeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="INKWELL_API_KEY", help="With --backend openai: the server's API key.")
]
PolicyOpt = Annotated[
    str | None,
    typer.Option(
        "--policy",
        help="Moderation policy: YAML file or name [default: INKWELL_HOME/policy.yaml, else the shipped default].",
    ),
]
NoModerationOpt = Annotated[bool, typer.Option("--no-moderation", help="Do not moderate inputs and outputs.")]
KbOpt = Annotated[
    str | None,
    typer.Option(
        "--kb", help="Ground on this knowledge folder (inkwell kb add): passages in the prompt, citations out."
    ),
]

# ---------------------------------------------------------------- decoding flags: declared here only

# One flag per GenerationSettings field, in the dataclass's order; the types come from the dataclass, so a
# new setting is one line here. num_return_sequences is not a flag: each command's --n sets it.
DECODING_FLAGS: dict[str, tuple[tuple[str, ...], str | None]] = {  # field -> (flag names, help)
    "max_new_tokens": (("--max-new-tokens",), "Most tokens to generate."),
    "min_new_tokens": (("--min-new-tokens",), "Fewest tokens to generate."),
    "temperature": (("--temperature", "-t"), "0 = greedy."),
    "top_p": (("--top-p",), None),
    "top_k": (("--top-k",), "0 disables."),
    "repetition_penalty": (("--repetition-penalty",), "1.0 disables."),
    "no_repeat_ngram_size": (("--no-repeat-ngram-size",), None),
    "num_beams": (("--num-beams",), None),
    "stop": (("--stop",), "Stop sequence (repeatable)."),
    "seed": (("--seed",), "Same seed, same text."),
}
_SETTING_TYPES = get_type_hints(GenerationSettings)

# The `grammar` setting's flags (constrained decoding, generate/grammar.py): at most one of the first three.
GRAMMAR_FLAGS: dict[str, tuple[tuple[str, ...], str, Any]] = {  # name -> (flag names, help, type)
    "json_schema": (("--json-schema",), "Decode only JSON valid under this schema (a .json file).", Path),
    "regex": (("--regex",), "Decode only text matching this regular expression.", str),
    "choices": (("--choices",), "Answer with exactly one of these (comma-separated).", str),
    "no_grammar": (
        ("--no-grammar",),
        "Structured templates: no constrained decoding (validate the JSON and retry instead).",
        bool,
    ),
}

# The `decoding` parameter of a command wrapped in @with_decoding: it receives the decoding flags the user
# gave, as GenerationSettings overrides (a dict without the flags left unset).
Decoding = dict | None


def decoding_option(name: str, help: str | None = None) -> Any:
    """The typer annotation of one decoding flag (`help` replaces the shared text for one command)."""
    flags, shared_help = DECODING_FLAGS[name]
    return Annotated[_SETTING_TYPES[name] | None, typer.Option(*flags, help=help or shared_help)]


def with_decoding(command: Callable | None = None, **helps: str) -> Any:
    """Give a command every decoding flag, in the place of its `decoding: Decoding = None` parameter, and call
    it with the flags the user set gathered into that one dict. `helps`: per-flag help for this command.

        @with_decoding(temperature="[default: 0, greedy]")
        def eval_(data: ..., decoding: Decoding = None, dtype: ...): ...
    """

    def wrap(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        slot = signature.parameters["decoding"]
        flags = [
            slot.replace(name=name, annotation=decoding_option(name, helps.get(name)), default=None)
            for name in DECODING_FLAGS
        ] + [
            slot.replace(name=name, annotation=Annotated[kind | None, typer.Option(*names, help=text)], default=None)
            for name, (names, text, kind) in GRAMMAR_FLAGS.items()
        ]
        params = [q for p in signature.parameters.values() for q in (flags if p is slot else [p])]

        def run(**values: Any) -> Any:
            given = {name: values.pop(name) for name in DECODING_FLAGS}
            grammar = grammar_setting(**{name: values.pop(name) for name in GRAMMAR_FLAGS})
            decoding = {k: v for k, v in given.items() if v is not None and v != []}
            return command(**values, decoding=decoding if grammar is None else {**decoding, "grammar": grammar})

        # typer reads the signature, name and docstring; these are the command's, with the flags spliced in
        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        run.__name__, run.__qualname__, run.__doc__ = command.__name__, command.__qualname__, command.__doc__
        run.__module__ = command.__module__
        return run

    return wrap(command) if command is not None else wrap


def grammar_setting(
    json_schema: Path | None = None,
    regex: str | None = None,
    choices: str | None = None,
    no_grammar: bool | None = None,
) -> dict | None:
    """The grammar flags as the `grammar` setting: None (not given), {} (--no-grammar) or one constraint."""
    values = {"json_schema": json_schema, "regex": regex, "choices": choices, "no_grammar": no_grammar}
    given = [GRAMMAR_FLAGS[name][0][0] for name, value in values.items() if value]
    if len(given) > 1:
        raise InkwellError(
            f"{' and '.join(given)} cannot be combined",
            field=given[0],
            hint="give one of " + ", ".join(names[0] for names, _help, _kind in GRAMMAR_FLAGS.values()),
        )
    if no_grammar:
        return {}
    if regex:
        return {"regex": regex}
    if choices:
        return {"choices": [c.strip() for c in choices.split(",") if c.strip()]}
    if json_schema is None:
        return None
    from inkwell.files import read_text

    text = read_text(json_schema, field="json-schema", what="JSON schema")
    try:
        return {"json_schema": json.loads(text)}
    except json.JSONDecodeError as exc:
        raise InkwellError(
            f"{json_schema}:{exc.lineno}: not valid JSON ({exc.msg})", field="json-schema", hint="fix the schema file"
        ) from None


def settings_overrides(decoding: dict | None, n: int | None = None) -> dict:
    """The user's decoding flags plus --n (versions per prompt), as GenerationSettings overrides."""
    picked = dict(decoding or {})
    if n is not None and n != 1:
        picked["num_return_sequences"] = n
    return picked


# ---------------------------------------------------------------- engines: made here and nowhere else in the CLI


@dataclass
class EngineOptions:
    """The engine flags of a command."""

    model: str | None = None
    adapter: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    engine: str = "auto"  # auto | native | onnx | torch
    precision: str = "auto"
    batch_size: int = 16
    backend: str = "local"  # local | openai
    base_url: str | None = None
    api_key: str | None = None
    bulk: bool = False  # `inkwell batch`: many rows, throughput over latency (the `bulk` workload)
    workload: str = "interactive"  # what `--engine auto` optimises for (generate.builder.WORKLOADS)
    systems: str | None = None  # --systems: an ensemble (generate/ensemble.py)

    def spec(self) -> Any:
        """These flags as the builder's EngineSpec (`--backend openai` is the remote backend)."""
        from inkwell.generate.builder import EngineSpec

        if self.backend not in ("local", "openai"):
            raise InkwellError(f"unknown backend '{self.backend}'", field="backend", hint="use local or openai")
        remote = self.backend == "openai"
        return EngineSpec(
            self.model,
            adapter=self.adapter,
            backend="remote" if remote else self.engine,
            workload="bulk" if self.bulk else self.workload,
            dtype=self.dtype,
            precision=self.precision,
            device=self.device,
            batch_size=self.batch_size,
            base_url=self.base_url,
            api_key=self.api_key,
            systems=[p for p in (self.systems or "").split(",") if p.strip()],
        )


@contextmanager
def open_engine_for(options: EngineOptions) -> Iterator[Any]:
    """The one place the CLI makes an engine (through generate.builder.open_engine). With `bulk`, an engine that
    batches continuously (torch, native) runs behind a scheduler, so batch rows join a running batch as places
    free up (generate/batch.py); the ONNX path runs its own static batches. The scheduler is closed on the way out."""
    from inkwell.generate.builder import open_engine

    engine = open_engine(options.spec(), say)
    if not (options.bulk and engine.capabilities.continuous_batching):
        yield engine
        return
    from inkwell.generate.scheduler import ScheduledEngine, Scheduler

    scheduler = Scheduler(engine).start()
    try:
        yield ScheduledEngine(scheduler)
    finally:
        scheduler.close()


# ---------------------------------------------------------------- the history store and moderation


def store_for(no_log: bool) -> Any:
    """The history database, or None with --no-log."""
    if no_log:
        return None
    from inkwell.store import Store

    return Store()


def guard_for(policy: str | None, no_moderation: bool, source: str, no_log: bool) -> Any:
    """The moderation guard of a command (None with --no-moderation); its decisions go to the audit table."""
    if no_moderation:
        return None
    from inkwell.safety import Guard, load_policy

    return Guard(load_policy(policy), source=source, store=store_for(no_log))


# ---------------------------------------------------------------- parsing and printing


def parse_sets(pairs: list[str] | None) -> dict:
    """`--set field=value` pairs as template fields."""
    fields: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InkwellError(
                f"--set expects field=value, got '{pair}'", field="set", hint='--set product="bamboo water bottle"'
            )
        key, value = pair.split("=", 1)
        fields[key.strip()] = value
    return fields


def say(message: str) -> None:
    """A message for the person at the terminal (standard error, so standard output stays clean for pipes)."""
    typer.echo(message, err=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))
