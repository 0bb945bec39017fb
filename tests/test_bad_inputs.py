"""Every CLI command that reads an input file, fed (a) a file that is not UTF-8 and (b) a malformed one: no
traceback ever; commands that stop on a bad file exit with status 2 and one `error:` line naming the file (and
its line where there is one); the data commands (which skip bad rows and list them) name file:line and still
finish; no output is left half-written. Models are the tiny test model (or none: input fails first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inkwell.cli import main

FAST = ["--dtype", "fp32", "--device", "cpu"]
MODEL_FLAGS = [*FAST, "--no-log"]


def _jsonl(path: Path, good: dict, kind: str) -> Path:
    """A good row on line 1, the bad one on line 2."""
    if kind == "latin1":
        bad = json.dumps({k: (v + " café" if isinstance(v, str) else v) for k, v in good.items()}, ensure_ascii=False)
        second = bad.encode("latin-1")
    else:
        second = b'{"text": "unfinished'
    path.write_bytes(json.dumps(good).encode() + b"\n" + second + b"\n")
    return path


def _text(path: Path, kind: str, good: str = "name: ok\n") -> Path:
    """latin1: line 2 is not UTF-8; malformed: YAML/JSON that breaks on line 2."""
    path.write_bytes(good.encode() + ("caf\xe9: 1\n".encode("latin-1") if kind == "latin1" else b"  bad: [unclosed\n"))
    return path


def _json(path: Path, kind: str) -> Path:
    path.write_bytes(b'{\n  "type": "caf\xe9"\n}\n' if kind == "latin1" else b'{\n  "type": "object",,\n}\n')
    return path


SHOT = {"text": "Rain all weekend.", "output": "Wet weekend"}
EVAL_ROW = {"prompt": "Say hi.", "reference": "Hi."}
PRED = {"text": "a fine day"}
ALPACA = {"instruction": "Say hi.", "output": "Hi."}


# Each case: name -> (how the command treats a bad file, build(tmp, kind, model) -> (argv, bad file, line, outputs)).
# line: the line the message must name (None: the file is enough).


def write_shots(tmp, kind, model):
    bad = _jsonl(tmp / "shots.jsonl", SHOT, kind)
    return ["write", "headline", "--set", "text=x", "--shots", str(bad), "--model", model, *MODEL_FLAGS], bad, 2, []


def write_template_file(tmp, kind, model):
    bad = _text(tmp / "tpl.yaml", kind)
    return ["write", "--template-file", str(bad), "--model", model, *MODEL_FLAGS], bad, 2, []


def write_policy(tmp, kind, model):
    bad = _text(tmp / "policy.yaml", kind, "categories: {}\n")
    return ["write", "headline", "--set", "text=x", "--policy", str(bad), "--model", model, *MODEL_FLAGS], bad, 2, []


def batch_input_jsonl(tmp, kind, model):
    bad = _jsonl(tmp / "rows.jsonl", {"text": "Rain all weekend."}, kind)
    out = tmp / "out.jsonl"
    return (
        ["batch", "headline", "-i", str(bad), "-o", str(out), "--model", model, "--no-progress", *MODEL_FLAGS],
        bad,
        2,
        [out],
    )


def batch_input_csv(tmp, kind, model):
    bad = tmp / "rows.csv"
    bad.write_bytes(
        b"id,text\na,Rain all weekend.\n" + ("b,caf\xe9\n".encode("latin-1") if kind == "latin1" else b"b,x,EXTRA\n")
    )
    out = tmp / "out.jsonl"
    return (
        ["batch", "headline", "-i", str(bad), "-o", str(out), "--model", model, "--no-progress", *MODEL_FLAGS],
        bad,
        3,
        [out],
    )


def batch_shots(tmp, kind, model):
    rows = tmp / "rows.jsonl"
    rows.write_text(json.dumps({"text": "x"}) + "\n", encoding="utf-8")
    bad = _jsonl(tmp / "shots.jsonl", SHOT, kind)
    out = tmp / "out.jsonl"
    return (
        [
            "batch",
            "headline",
            "-i",
            str(rows),
            "-o",
            str(out),
            "--shots",
            str(bad),
            "--model",
            model,
            "--no-progress",
            *MODEL_FLAGS,
        ],
        bad,
        2,
        [out],
    )


def eval_data(tmp, kind, model):
    bad = _jsonl(tmp / "eval.jsonl", EVAL_ROW, kind)
    return ["eval", "--data", str(bad), "--system", f"a={model}", "--out", str(tmp / "ev"), *FAST], bad, 2, []


def eval_system_shots(tmp, kind, model):
    data = tmp / "eval.jsonl"
    data.write_text(json.dumps(EVAL_ROW) + "\n", encoding="utf-8")
    bad = _jsonl(tmp / "shots.jsonl", {"prompt": "Say yo.", "output": "Yo."}, kind)
    return (
        [
            "eval",
            "--data",
            str(data),
            "--system",
            f"a={model}@{bad}",
            "--out",
            str(tmp / "ev"),
            "--metrics",
            "length",
            *FAST,
        ],
        bad,
        2,
        [],
    )


def eval_corpus(tmp, kind, model):
    data = tmp / "eval.jsonl"
    data.write_text(json.dumps(EVAL_ROW) + "\n", encoding="utf-8")
    bad = _jsonl(tmp / "corpus.jsonl", {"text": "Hi there."}, kind)
    return (
        [
            "eval",
            "--data",
            str(data),
            "--system",
            f"a={model}",
            "--out",
            str(tmp / "ev"),
            "--metrics",
            "memorisation",
            "--corpus",
            str(bad),
            "--max-new-tokens",
            "2",
            *FAST,
        ],
        bad,
        2,
        [],
    )


def score_pred(tmp, kind, model):
    bad = _jsonl(tmp / "pred.jsonl", PRED, kind)
    return ["score", "--pred", str(bad), "--metrics", "length"], bad, 2, []


def score_ref(tmp, kind, model):
    pred = tmp / "pred.jsonl"
    pred.write_text(json.dumps(PRED) + "\n" + json.dumps(PRED) + "\n", encoding="utf-8")
    bad = _jsonl(tmp / "ref.jsonl", PRED, kind)
    return ["score", "--pred", str(pred), "--ref", str(bad), "--metrics", "bleu"], bad, 2, []


def score_corpus(tmp, kind, model):
    pred = tmp / "pred.jsonl"
    pred.write_text(json.dumps(PRED) + "\n", encoding="utf-8")
    bad = _jsonl(tmp / "corpus.jsonl", PRED, kind)
    return ["score", "--pred", str(pred), "--metrics", "memorisation", "--corpus", str(bad)], bad, 2, []


def score_schema(tmp, kind, model):
    pred = tmp / "pred.jsonl"
    pred.write_text(json.dumps({"text": "{}"}) + "\n", encoding="utf-8")
    bad = _json(tmp / "schema.json", kind)
    return ["score", "--pred", str(pred), "--metrics", "json", "--schema", str(bad)], bad, 2, []


def rate_report(tmp, kind, model):
    folder = tmp / "ev"
    folder.mkdir()
    bad = _json(folder / "report.json", kind)
    return ["rate", str(folder)], bad, 2, []


def _train_config(tmp, data: Path) -> Path:
    config = tmp / "sft.yaml"
    config.write_text(
        f"stage: sft\nmodel: {tmp / 'no-model'}\ndata:\n  train: [{data}]\n  on_error: error\noutput: {tmp / 'run'}\n",
        encoding="utf-8",
    )
    return config


def train_config(tmp, kind, model):
    bad = _text(tmp / "sft.yaml", kind, "stage: sft\n")
    return ["train", str(bad), "--check"], bad, 2, []


def train_data_jsonl(tmp, kind, model):
    bad = _jsonl(tmp / "train.jsonl", ALPACA, kind)
    return ["train", str(_train_config(tmp, bad))], bad, 2, [tmp / "run"]


def train_data_text(tmp, kind, model):
    bad = tmp / "doc.txt"
    bad.write_bytes("line one\ncaf\xe9\n".encode("latin-1") if kind == "latin1" else b"")
    return ["train", str(_train_config(tmp, bad))], bad, (2 if kind == "latin1" else 1), [tmp / "run"]


def moderate_file(tmp, kind, model):  # any UTF-8 text is valid here: only the encoding can be wrong
    bad = tmp / "note.txt"
    bad.write_bytes("hello\ncaf\xe9\n".encode("latin-1"))
    return ["moderate", "--file", str(bad), "--no-log"], bad, 2, []


def moderate_policy(tmp, kind, model):
    bad = _text(tmp / "policy.yaml", kind, "categories: {}\n")
    return ["moderate", "hello", "--policy", str(bad), "--no-log"], bad, 2, []


def classify_input(tmp, kind, model):
    bad = _jsonl(tmp / "texts.jsonl", {"text": "Cheese."}, kind)
    return ["classify", "--model", str(tmp / "no-model"), "--input", str(bad), "--device", "cpu"], bad, 2, []


def serve_keys_file(tmp, kind, model):
    bad = tmp / "keys.txt"
    bad.write_bytes(b"alice sk-one\n" + ("b\xe9b sk-two\n".encode("latin-1") if kind == "latin1" else b"a b c\n"))
    return ["serve", "--api-keys-file", str(bad), "--model", model, "--no-log", *FAST], bad, 2, []


def export_run_card(tmp, kind, model):
    run = tmp / "run"
    run.mkdir()
    bad = _json(run / "inkwell-run.json", kind)
    return ["export", str(run), "--merge", "--to", str(tmp / "exported")], bad, 2, [tmp / "exported"]


def _data(command, *extra):
    def build(tmp, kind, model):
        bad = _jsonl(tmp / "rows.jsonl", {"text": "Hello there, a row of text."}, kind)
        out = tmp / "out.jsonl"
        argv = [
            "data",
            command,
            str(bad),
            *(["--out", str(out)] if command not in ("split", "stats") else []),
            *(["--out-dir", str(tmp / "split")] if command == "split" else []),
            *extra,
            "--no-progress",
        ]
        return argv, bad, 2, [out, tmp / "split" / "train.jsonl"]

    return build


def data_ingest_csv(tmp, kind, model):
    bad = tmp / "rows.csv"
    bad.write_bytes(b"text\nHello there.\n" + ("caf\xe9\n".encode("latin-1") if kind == "latin1" else b"Hello,EXTRA\n"))
    out = tmp / "out.jsonl"
    return ["data", "ingest", str(bad), "--out", str(out), "--no-progress"], bad, 3, [out]


# Commands that stop on a bad file (exit 2, one error line) ...
STOPS = {
    f.__name__: f
    for f in (
        write_shots,
        write_template_file,
        write_policy,
        batch_shots,
        eval_data,
        eval_system_shots,
        eval_corpus,
        score_pred,
        score_ref,
        score_corpus,
        score_schema,
        rate_report,
        train_config,
        train_data_jsonl,
        train_data_text,
        moderate_file,
        moderate_policy,
        classify_input,
        serve_keys_file,
        export_run_card,
    )
}
# ... and commands whose policy is to list each bad row (file:line) and go on with the good ones.
SKIPS = {
    "batch_input_jsonl": batch_input_jsonl,  # a bad row fails alone (a file in another encoding stops the job)
    "batch_input_csv": batch_input_csv,
    "data_ingest": _data("ingest"),
    "data_ingest_csv": data_ingest_csv,
    "data_clean": _data("clean", "--json"),
    "data_redact": _data("redact"),
    "data_augment": _data("augment", "--n", "1"),
    "data_split": _data("split"),
    "data_stats": _data("stats", "--json"),  # clean and stats print counts; --json names the rows
}
# batch stops on a file that is not UTF-8 (every row would be wrong), and skips a malformed row.
ENCODING_STOPS = {"batch_input_jsonl", "batch_input_csv"}


def _no_half_written(tmp: Path, outputs: list[Path]) -> None:
    for out in outputs:
        if out.is_file():
            for line in out.read_text(encoding="utf-8").splitlines():
                json.loads(line)  # whole records only
    leftovers = [p for p in tmp.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def _run(capsys, argv) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:  # any other exception is a traceback for the user
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    "case, kind",
    [
        (case, kind)
        for case in sorted(STOPS)
        for kind in ("latin1", "malformed")
        if (case, kind) != ("moderate_file", "malformed")
    ],
)
def test_commands_that_stop_on_a_bad_file(case, kind, capsys, tmp_path, tiny_chat_model):
    argv, bad, line, outputs = STOPS[case](tmp_path, kind, str(tiny_chat_model))
    code, _, err = _run(capsys, argv)
    assert code == 2, err
    (message,) = _error_lines(err)
    assert str(bad) in message, err
    if line is not None:
        assert f"{bad}:{line}" in message, err
    if kind == "latin1":
        assert "UTF-8" in message
    assert not [out for out in outputs if out.exists()], "a command that stops on its input writes nothing"
    _no_half_written(tmp_path, outputs)


@pytest.mark.parametrize("kind", ["latin1", "malformed"])
@pytest.mark.parametrize("case", sorted(SKIPS))
def test_commands_that_list_bad_rows_and_go_on(case, kind, capsys, tmp_path, tiny_chat_model, monkeypatch):
    monkeypatch.setenv("INKWELL_WORDNET_DIR", str(tmp_path / "no-wordnet"))
    argv, bad, line, outputs = SKIPS[case](tmp_path, kind, str(tiny_chat_model))
    code, out, err = _run(capsys, argv)
    if kind == "latin1" and case in ENCODING_STOPS:
        assert code == 2, err
        (message,) = _error_lines(err)
        assert f"{bad}:{line}: not UTF-8" in message
    else:
        assert code in (0, 1), err
        assert not _error_lines(err), err
        assert f"{bad}:{line}" in err + out, err
    _no_half_written(tmp_path, outputs)
