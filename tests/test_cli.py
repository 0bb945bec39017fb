"""The command line, run in-process through `inkwell.cli.main` on the tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_helpers import run

FAST = ["--dtype", "fp32", "--device", "cpu", "--max-new-tokens", "8"]


def run_error(capsys, argv) -> str:
    out, err = run(capsys, argv, exit_code=2)
    assert "error:" in err
    assert "Traceback" not in err and "Traceback" not in out
    return err


# ------------------------------------------------------------------ write


def test_write_json_prints_one_record_and_logs_it(capsys, tiny_chat_model):
    out, _ = run(
        capsys,
        [
            "write",
            "product-description",
            "--model",
            str(tiny_chat_model),
            "--set",
            "product=bamboo bottle",
            "--set",
            "features=light, sturdy",
            "--json",
            "--no-stream",
            "--seed",
            "3",
            *FAST,
        ],
    )
    record = json.loads(out)
    assert isinstance(record, dict)
    assert {"text", "model", "template", "fields", "settings", "usage", "latency_s"} <= set(record)
    assert isinstance(record["text"], str)
    assert record["model"] == str(tiny_chat_model)
    assert record["template"] == "product-description"
    assert record["fields"]["product"] == "bamboo bottle"
    assert record["fields"]["features"] == ["light", "sturdy"]  # list field coerced
    assert record["settings"]["max_new_tokens"] == 8 and record["settings"]["seed"] == 3
    assert record["settings"]["temperature"] == 0.7  # template default
    assert set(record["usage"]) == {"prompt_tokens", "completion_tokens"}
    assert 0 < record["usage"]["completion_tokens"] <= 8 and record["usage"]["prompt_tokens"] > 0
    assert record["latency_s"] >= 0

    out, _ = run(capsys, ["history", "--json"])
    history = json.loads(out)
    assert len(history) == 1
    (row,) = history
    assert row["output"] == record["text"]
    assert row["template"] == "product-description" and row["source"] == "write"
    assert row["fields"]["product"] == "bamboo bottle"
    assert row["completion_tokens"] == record["usage"]["completion_tokens"]
    assert "<|im_start|>assistant" in row["prompt"]  # the exact text the model saw


def test_write_same_seed_same_text(capsys, tiny_chat_model):
    argv = [
        "write",
        "product-description",
        "--model",
        str(tiny_chat_model),
        "--set",
        "product=pen",
        "--json",
        "--seed",
        "11",
        "--no-log",
        *FAST,
    ]
    first = json.loads(run(capsys, argv)[0])["text"]
    second = json.loads(run(capsys, argv)[0])["text"]
    assert first == second


def test_write_n_2_prints_a_list(capsys, tiny_chat_model):
    out, _ = run(
        capsys,
        [
            "write",
            "product-description",
            "--model",
            str(tiny_chat_model),
            "--set",
            "product=x",
            "--n",
            "2",
            "--json",
            "--seed",
            "5",
            *FAST,
        ],
    )
    records = json.loads(out)
    assert isinstance(records, list) and len(records) == 2
    assert all(r["template"] == "product-description" for r in records)
    assert all(r["settings"]["num_return_sequences"] == 2 for r in records)
    history = json.loads(run(capsys, ["history", "--json"])[0])
    assert sorted(r["output"] for r in history) == sorted(r["text"] for r in records)


def test_write_no_log_logs_nothing(capsys, tiny_chat_model):
    run(
        capsys,
        [
            "write",
            "product-description",
            "--model",
            str(tiny_chat_model),
            "--set",
            "product=x",
            "--json",
            "--no-log",
            *FAST,
        ],
    )
    assert json.loads(run(capsys, ["history", "--json"])[0]) == []


def test_write_streaming_prints_the_logged_text(capsys, tiny_chat_model):
    out, _ = run(
        capsys,
        [
            "write",
            "product-description",
            "--model",
            str(tiny_chat_model),
            "--set",
            "product=x",
            "--stream",
            "--temperature",
            "0",
            *FAST,
        ],
    )
    (row,) = json.loads(run(capsys, ["history", "--json"])[0])
    assert out == row["output"] + "\n"


def test_write_base_model_uses_completion_prompt(capsys, tiny_base_model):
    out, _ = run(
        capsys, ["write", "product-description", "--model", str(tiny_base_model), "--set", "product=x", "--json", *FAST]
    )
    record = json.loads(out)
    assert record["settings"]["stop"] == ["\n###", "\nProduct:", "\n商品："]  # the template's, both languages
    (row,) = json.loads(run(capsys, ["history", "--json"])[0])
    assert row["prompt"].rstrip().endswith("Description:")


def test_write_template_file(capsys, tiny_chat_model, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\ndescription: d\nfields:\n  topic: {type: str, required: true}\nchat: 'About {{ topic }}'\n"
        "completion:\n  example: 'Topic: {{ topic }} {{ output }}'\ndecoding: {max_new_tokens: 4}\n",
        encoding="utf-8",
    )
    out, _ = run(
        capsys,
        [
            "write",
            "--template-file",
            str(path),
            "--model",
            str(tiny_chat_model),
            "--set",
            "topic=rain",
            "--json",
            "--dtype",
            "fp32",
            "--device",
            "cpu",
        ],
    )
    record = json.loads(out)
    assert record["template"] == "mine" and record["usage"]["completion_tokens"] <= 4


# ------------------------------------------------------------------ generate


def test_generate_json(capsys, tiny_chat_model):
    out, _ = run(capsys, ["generate", "hello", "--model", str(tiny_chat_model), "--json", "--seed", "1", *FAST])
    record = json.loads(out)
    assert isinstance(record["text"], str)
    assert record["template"] is None
    assert record["usage"]["prompt_tokens"] > 0 and 0 < record["usage"]["completion_tokens"] <= 8
    (row,) = json.loads(run(capsys, ["history", "--json"])[0])
    assert row["source"] == "generate" and row["prompt"] == "hello" and row["output"] == record["text"]


def test_generate_chat_and_n(capsys, tiny_chat_model):
    out, _ = run(
        capsys,
        [
            "generate",
            "hello",
            "--chat",
            "--system",
            "be brief",
            "--n",
            "2",
            "--model",
            str(tiny_chat_model),
            "--json",
            "--no-log",
            *FAST,
        ],
    )
    records = json.loads(out)
    assert len(records) == 2


def test_generate_plain_output_repeats_the_prompt(capsys, tiny_chat_model):
    out, _ = run(
        capsys,
        ["generate", "hello", "--model", str(tiny_chat_model), "--no-stream", "--temperature", "0", "--no-log", *FAST],
    )
    assert out.startswith("hello")


# ------------------------------------------------------------------ batch


def test_batch_end_to_end_with_resume(capsys, tiny_chat_model, tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text(
        json.dumps({"id": "a", "product": "pen"})
        + "\n"
        + json.dumps({"id": "b", "product": "cup"})
        + "\n"
        + '{"id": "broken",\n'
        + json.dumps({"id": "d", "tone": "playful"})
        + "\n",  # missing required product
        encoding="utf-8",
    )
    dst = tmp_path / "out.jsonl"
    # an earlier interrupted run already finished row a
    (tmp_path / "out.jsonl.part").write_text(json.dumps({"id": "a", "text": "from before"}) + "\n", encoding="utf-8")
    out, err = run(
        capsys,
        [
            "batch",
            "product-description",
            "--input",
            str(src),
            "--output",
            str(dst),
            "--resume",
            "--model",
            str(tiny_chat_model),
            "--json",
            "--no-progress",
            "--batch-size",
            "2",
            *FAST,
        ],
    )
    summary = json.loads(out)
    assert summary["rows"] == 4 and summary["written"] == 1 and summary["already_done"] == 1 and summary["failed"] == 2
    assert f"{src}:3" in err and f"{src}:4" in err  # bad rows named by line
    records = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == ["a", "b"]
    assert next(r for r in records if r["id"] == "a")["text"] == "from before"
    assert not (tmp_path / "out.jsonl.part").exists()
    history = json.loads(run(capsys, ["history", "--json"])[0])
    assert [(r["source"], r["row_id"]) for r in history] == [("batch", "b")]

    # resume again with a new row: only the new row is generated
    src.write_text(src.read_text(encoding="utf-8") + json.dumps({"id": "e", "product": "mug"}) + "\n", encoding="utf-8")
    out, _ = run(
        capsys,
        [
            "batch",
            "product-description",
            "-i",
            str(src),
            "-o",
            str(dst),
            "--resume",
            "--model",
            str(tiny_chat_model),
            "--json",
            "--no-progress",
            "--no-log",
            *FAST,
        ],
    )
    summary = json.loads(out)
    assert summary["written"] == 1 and summary["already_done"] == 2
    ids = [json.loads(line)["id"] for line in dst.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids) == ["a", "b", "e"]


def test_batch_csv(capsys, tiny_chat_model, tmp_path):
    src = tmp_path / "rows.csv"
    src.write_text("id,product\nx,pen\ny,cup\n", encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    run(
        capsys,
        [
            "batch",
            "product-description",
            "--input",
            str(src),
            "--output",
            str(dst),
            "--model",
            str(tiny_chat_model),
            "--no-progress",
            "--no-log",
            *FAST,
        ],
    )
    ids = [json.loads(line)["id"] for line in dst.read_text(encoding="utf-8").splitlines()]
    assert ids == ["x", "y"]


def test_batch_where_every_row_fails_exits_1(capsys, tiny_chat_model, tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text('{"id": "a"}\n', encoding="utf-8")
    run(
        capsys,
        [
            "batch",
            "product-description",
            "--input",
            str(src),
            "--output",
            str(tmp_path / "o.jsonl"),
            "--model",
            str(tiny_chat_model),
            "--no-progress",
            "--no-log",
            *FAST,
        ],
        exit_code=1,
    )


# ------------------------------------------------------------------ listings and history


def test_models_list_json(capsys):
    items = json.loads(run(capsys, ["models", "list", "--json"])[0])
    assert isinstance(items, list) and items
    assert all(isinstance(item, dict) and "name" in item for item in items)
    assert "smollm2-135m-instruct" in [item["name"] for item in items]


def test_templates_list_json(capsys):
    items = json.loads(run(capsys, ["templates", "list", "--json"])[0])
    assert isinstance(items, list)
    assert all(isinstance(item, dict) and "name" in item for item in items)
    names = [item["name"] for item in items]
    assert "product-description" in names and "poem" in names
    pd = next(item for item in items if item["name"] == "product-description")
    assert pd["required"] == ["product"]


def test_user_template_appears_in_list(capsys, inkwell_home):
    folder = inkwell_home / "templates"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(
        "name: my-own\ndescription: d\nfields: {}\nchat: 'hi'\ncompletion:\n  example: '{{ output }}'\n",
        encoding="utf-8",
    )
    names = [item["name"] for item in json.loads(run(capsys, ["templates", "list", "--json"])[0])]
    assert "my-own" in names


def test_history_empty_and_search(capsys):
    out, err = run(capsys, ["history"])
    assert "no generations" in err
    from inkwell.store import Store

    store = Store()
    for text in ("50% off", "plain"):
        store.log_generation(
            source="write",
            model="m",
            prompt="p",
            output=text,
            settings={},
            prompt_tokens=1,
            completion_tokens=1,
            latency_s=0.1,
        )
    store.close()
    rows = json.loads(run(capsys, ["history", "--search", "%", "--json"])[0])
    assert [r["output"] for r in rows] == ["50% off"]
    rows = json.loads(run(capsys, ["history", "-n", "1", "--json"])[0])
    assert [r["output"] for r in rows] == ["plain"]
    out, _ = run(capsys, ["history"])
    assert "50% off" in out and "plain" in out


# ------------------------------------------------------------------ errors: exit 2, one clear line, no traceback


def test_unknown_template(capsys):
    err = run_error(capsys, ["write", "product-descripton", "--set", "product=x"])
    assert "unknown template 'product-descripton'" in err
    assert "did you mean 'product-description'" in err


def test_unknown_field_suggests_the_closest(capsys):
    err = run_error(capsys, ["write", "product-description", "--set", "prodct=x"])
    assert "prodct" in err and "did you mean 'product'" in err


def test_missing_required_field(capsys):
    err = run_error(capsys, ["write", "product-description", "--set", "tone=luxury"])
    assert "product" in err and "needs the field" in err


def test_bad_choice(capsys):
    err = run_error(capsys, ["write", "product-description", "--set", "product=x", "--set", "tone=angry"])
    assert "tone" in err and "friendly" in err


def test_bad_temperature(capsys):
    err = run_error(capsys, ["write", "product-description", "--set", "product=x", "--temperature", "-1"])
    assert "temperature" in err
    err = run_error(capsys, ["generate", "hello", "--temperature", "-1"])
    assert "temperature" in err


def test_unknown_model(capsys):
    err = run_error(
        capsys, ["write", "product-description", "--set", "product=x", "--model", "no-such-model", "--device", "cpu"]
    )
    assert "unknown model 'no-such-model'" in err and "smollm2-135m-instruct" in err


def test_bad_set_syntax(capsys):
    err = run_error(capsys, ["write", "product-description", "--set", "product"])
    assert "--set expects field=value" in err


def test_missing_input_file(capsys, tmp_path):
    err = run_error(
        capsys,
        [
            "batch",
            "product-description",
            "--input",
            str(tmp_path / "missing.jsonl"),
            "--output",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert "input file not found" in err


def test_empty_prompt(capsys):
    err = run_error(capsys, ["generate", "   "])
    assert "empty" in err


def test_missing_model_folder_file(capsys, tmp_path):
    folder = tmp_path / "half-model"
    folder.mkdir()
    err = run_error(capsys, ["generate", "hi", "--model", str(folder), "--device", "cpu"])
    assert "config.json" in err


def test_prompt_too_long_for_the_model(capsys, tiny_chat_model):
    err = run_error(capsys, ["generate", "fox " * 600, "--model", str(tiny_chat_model), "--no-log", *FAST])
    assert "512" in err


def test_usage_error_exits_2(capsys):
    _, err = run(capsys, ["write", "--no-such-option"], exit_code=2)
    assert "Traceback" not in err


def test_help_as_a_subprocess():
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "inkwell", "--help"], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert done.returncode == 0, done.stderr
    for command in ("write", "generate", "batch", "history", "models", "templates"):
        assert command in done.stdout


def test_help_in_process(capsys):
    out, _ = run(capsys, ["--help"])  # returns normally (exit status 0)
    assert "write" in out and "batch" in out


def test_no_arguments_shows_help_and_exits_2(capsys):
    out, err = run(capsys, [], exit_code=2)
    assert "write" in out + err
    assert "Traceback" not in out + err


def test_bad_option_value_exits_2(capsys):
    _, err = run(capsys, ["write", "product-description", "--n", "many"], exit_code=2)
    assert "Traceback" not in err and "--n" in err


def test_ctrl_c_exits_130(capsys, monkeypatch, tiny_chat_model, tmp_path):
    import inkwell.generate.batch as batch_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_module, "run_batch", interrupted)
    src = tmp_path / "rows.jsonl"
    src.write_text('{"product": "x"}\n', encoding="utf-8")
    _, err = run(
        capsys,
        [
            "batch",
            "product-description",
            "-i",
            str(src),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--model",
            str(tiny_chat_model),
            "--no-log",
            *FAST,
        ],
        exit_code=130,
    )
    assert "interrupted" in err and "Traceback" not in err


def test_chat_prompt_on_a_base_model(capsys, tiny_base_model):
    err = run_error(capsys, ["generate", "hi", "--chat", "--model", str(tiny_base_model), "--no-log", *FAST])
    assert "chat template" in err


def test_missing_template_file(capsys, tmp_path):
    err = run_error(capsys, ["write", "--template-file", str(tmp_path / "nope.yaml"), "--set", "a=b"])
    assert "template file not found" in err


def test_models_info_folder_and_templates_show(capsys, tiny_chat_model):
    info = json.loads(run(capsys, ["models", "info", str(tiny_chat_model)])[0])
    assert info["source"] == "folder" and info["card"]["chat"] is True
    out, _ = run(capsys, ["templates", "show", "product-description"])
    assert "name: product-description" in out
    err = run_error(capsys, ["models", "info", "no-such-model"])
    assert "known models" in err


def test_input_file_not_utf8(capsys, tiny_chat_model, tmp_path):
    src = tmp_path / "latin1.csv"
    src.write_bytes("id,product\n1,caf\xe9 cr\xe8me\n".encode("latin-1"))
    err = run_error(
        capsys,
        [
            "batch",
            "product-description",
            "-i",
            str(src),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--model",
            str(tiny_chat_model),
            "--no-log",
            "--no-progress",
            *FAST,
        ],
    )
    assert "UTF-8" in err


def test_adapter_without_adapter_config(capsys, tiny_chat_model, tmp_path):
    (tmp_path / "empty-adapter").mkdir()
    err = run_error(
        capsys,
        [
            "generate",
            "hi",
            "--model",
            str(tiny_chat_model),
            "--adapter",
            str(tmp_path / "empty-adapter"),
            "--no-log",
            *FAST,
        ],
    )
    assert "adapter_config.json" in err


def test_moderate_file_not_utf8_names_the_file_and_line(capsys, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("fine first line\ncaf\xe9 cr\xe8me\n".encode("latin-1"))
    err = run_error(capsys, ["moderate", "--file", str(path), "--no-log"])
    assert f"{path}:2" in err and "UTF-8" in err


def test_batch_rows_are_generation_records_keyed_by_id(capsys, tiny_chat_model, tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps({"id": "a", "product": "pen"}) + "\n", encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    run(
        capsys,
        [
            "batch",
            "product-description",
            "-i",
            str(src),
            "-o",
            str(dst),
            "--n",
            "2",
            "--seed",
            "1",
            "--model",
            str(tiny_chat_model),
            "--no-progress",
            "--no-moderation",
            *FAST,
        ],
    )
    rows = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["sample"]) for r in rows] == [("a", 0), ("a", 1)]
    for row in rows:  # the batch row shape: no adapter key
        assert set(row) == {
            "id",
            "text",
            "model",
            "template",
            "fields",
            "settings",
            "usage",
            "latency_s",
            "finish_reason",
            "sample",
        }
    history = json.loads(run(capsys, ["history", "--json"])[0])
    assert sorted(r["output"] for r in history) == sorted(r["text"] for r in rows)
    assert {(r["source"], r["row_id"]) for r in history} == {("batch", "a")}


def test_decoding_flags_reach_the_settings(capsys, tiny_chat_model):
    out, _ = run(
        capsys,
        [
            "generate",
            "hello",
            "--model",
            str(tiny_chat_model),
            "--json",
            "--no-log",
            "--top-k",
            "5",
            "--stop",
            "###",
            "--repetition-penalty",
            "1.3",
            "-t",
            "0",
            *FAST,
        ],
    )
    settings = json.loads(out)["settings"]
    assert (settings["top_k"], settings["stop"], settings["repetition_penalty"]) == (5, ["###"], 1.3)
    assert settings["temperature"] == 0 and settings["max_new_tokens"] == 8


def test_help_imports_nothing_heavy():
    code = (
        "import sys\nfrom inkwell.cli import main\ntry:\n    main(['write', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'fastapi', 'peft', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ the shape of the CLI package

CLI_DIR = Path(__file__).resolve().parents[1] / "inkwell" / "cli"


def _all_commands():
    from inkwell.cli import COMMANDS, GROUPS

    yield from COMMANDS.items()
    for group, (_help, commands) in GROUPS.items():
        yield from ((f"{group} {name}", command) for name, command in commands.items())


def test_every_command_body_is_short():
    import ast

    trees: dict = {}
    for name, command in _all_commands():
        path = Path(sys.modules[command.__module__].__file__)
        tree = trees.setdefault(path, ast.parse(path.read_text(encoding="utf-8")))
        (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == command.__name__]
        body = (
            node.body[1:]
            if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
            else node.body
        )
        lines = body[-1].end_lineno - body[0].lineno + 1
        assert lines <= 40, f"`inkwell {name}` has a {lines}-line body: move the work into its lifecycle folder"


def test_each_decoding_flag_is_declared_once():
    import ast

    from inkwell.cli.common import DECODING_FLAGS
    from inkwell.generate.settings import GenerationSettings

    # one flag per setting; --n (each command's own) sets num_return_sequences, GRAMMAR_FLAGS set grammar
    assert list(DECODING_FLAGS) == [
        n for n in GenerationSettings.names() if n not in ("num_return_sequences", "grammar")
    ]
    # options that share a decoding flag's name but mean something else
    other_meanings = {
        ("evaluate.py", "--seed"): "rate: the shuffle seed of the blind order",
        ("data.py", "--seed"): "data split: the seed of the split",
    }
    from inkwell.cli.common import GRAMMAR_FLAGS

    flags = {flag for names, _help in DECODING_FLAGS.values() for flag in names}
    flags |= {flag for names, _help, _type in GRAMMAR_FLAGS.values() for flag in names}
    seen: dict[str, int] = dict.fromkeys(flags, 0)
    for path in sorted(CLI_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "locals":
                raise AssertionError(f"{path.name}:{node.lineno}: locals() gathers flags; use @with_decoding")
            if isinstance(node, ast.Constant) and node.value in flags and (path.name, node.value) not in other_meanings:
                seen[node.value] += 1
    assert seen == dict.fromkeys(flags, 1)

    import typer.main

    from inkwell.cli import app

    root = typer.main.get_command(app)
    for name in ("write", "generate", "batch", "eval"):
        declared = {opt for param in root.commands[name].params for opt in getattr(param, "opts", [])}
        assert flags <= declared, (name, flags - declared)
