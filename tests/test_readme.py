"""The README's commands, run as written: every `inkwell ...` line of its bash blocks, in README order, in one
scratch folder that links the repository's examples/ and configs/ (so out.jsonl, runs/, exports/ land there).

Tiers (see pyproject's markers):
- unit: every file a command reads exists in the repository or is written by an earlier command; the
  examples fit the templates they are for; the commands that load no model run.
- integration: the commands on the embedded models, in order (later ones use what earlier ones wrote:
  `write --adapter runs/...` after `train`); `slow` where one takes more than ~30 s on 2 cores (training,
  eval, and Gemma-3, whose first use de-quantises it and builds its ONNX model: ~2.5 minutes, then cached).
  A command that reads what a slow one wrote is slow too, so `-m "not slow"` never runs it on nothing.
  The whole file takes ~5 minutes on 2 shared cores with the models prepared, ~45 s under `not slow`.
  `serve` runs as a real process with the README's flags (on a free port rather than 8000, which may be
  taken), answers /v1/models with its key, and is stopped with SIGTERM.

`"$(cat FILE)"` is expanded as the shell would (the file's text, trailing newlines dropped).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
CAT = re.compile(r"\$\(cat ([^)]+)\)")
OUTPUT_FLAGS = {"--out", "-o", "--output", "--to", "--sft", "--dpo"}
# a token that names a file or folder: it has a folder part, or a data file's suffix
PATHLIKE = re.compile(r"^[\w.-]+/[\w./-]*$|^[\w.-]+\.(jsonl|csv|tsv|yaml|yml|txt|json|gguf)$")
# Commands that load no model (seconds): they run in the unit tier.
MODEL_FREE = {"templates", "history", "moderate", "score", "data", "models list", "models info", "feedback"}
# Over ~30 s on 2 cores (measured: train 35-55 s each, eval 34 s, Gemma-3's first use ~2.5 min, then 7-12 s,
# a 400-word `write long` about a minute).
SLOW = ("train", "eval", "gemma3-270m", "long")


@dataclass
class Command:
    number: int
    text: str  # the command as written in the README
    argv: list[str]  # after `inkwell`, "$(cat FILE)" expanded
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    after: list[int] = field(default_factory=list)  # the earlier commands whose outputs it reads

    @property
    def needs_model(self) -> bool:
        return self.argv[0] not in MODEL_FREE and " ".join(self.argv[:2]) not in MODEL_FREE

    @property
    def id(self) -> str:
        words = [w for w in self.argv[:3] if not w.startswith("-") and "/" not in w and len(w) < 30]
        return f"{self.number:02d}-" + "-".join(words)


def _shell_cat(match: re.Match) -> str:
    path = REPO / match.group(1)
    # a missing file is the unit test's to report (by name), not a collection error
    return path.read_text(encoding="utf-8").rstrip("\n") if path.is_file() else ""


def _files(cmd: Command, tokens: list[str]) -> None:
    """Fill what the command reads and writes."""
    if tokens[0] == "train":
        import yaml

        config = REPO / tokens[1]
        if config.is_file():
            cmd.writes.append(yaml.safe_load(config.read_text(encoding="utf-8"))["output"])
    for before, token in zip([""] + tokens, tokens):
        if before in OUTPUT_FLAGS:
            cmd.writes.append(token.rstrip("/"))
        elif before == "--system":  # NAME=MODEL[:ADAPTER][@SHOTS]: the adapter and shots are files
            spec, _, shots = token.split("=", 1)[-1].partition("@")
            cmd.reads += [p for p in (spec.partition(":")[2], shots) if p]
        elif PATHLIKE.match(token):
            cmd.reads.append(token.rstrip("/"))


def readme_commands() -> list[Command]:
    commands: list[Command] = []
    for block in BASH_BLOCK.findall(README.read_text(encoding="utf-8")):
        for line in block.splitlines():
            if not line.startswith("inkwell "):
                continue
            # `a ; b` on one line: separate commands
            parts: list[list[str]] = [[]]
            for token in shlex.split(line, comments=True):
                if token == ";":
                    parts.append([])
                else:
                    parts[-1].append(token)
            for part in parts:
                assert part and part[0] == "inkwell", f"README: not an inkwell command: {line}"
                # "$(cat FILE)" inside one (quoted) argument: the shell puts the file's text there
                argv = [CAT.sub(_shell_cat, token) for token in part[1:]]
                cmd = Command(
                    len(commands) + 1, shlex.join(part), argv, reads=[f for token in part for f in CAT.findall(token)]
                )
                _files(cmd, argv)
                commands.append(cmd)
    # which earlier command wrote what each one reads
    for cmd in commands:
        for path in cmd.reads:
            for earlier in commands[: cmd.number - 1]:
                if any(path == w or path.startswith(w + "/") for w in earlier.writes):
                    cmd.after.append(earlier.number)
    return commands


COMMANDS = readme_commands()


def _is_slow(cmd: Command) -> bool:
    return any(word in cmd.argv for word in SLOW) or any(_is_slow(COMMANDS[n - 1]) for n in cmd.after)


def _params():
    for cmd in COMMANDS:
        marks = []
        if cmd.needs_model:
            marks.append(pytest.mark.integration)
            if _is_slow(cmd):
                marks.append(pytest.mark.slow)
        yield pytest.param(cmd, marks=marks, id=cmd.id)


# ---------------------------------------------------------------- unit tier


def test_the_readme_has_its_commands():
    words = {cmd.argv[0] for cmd in COMMANDS}
    assert {"write", "generate", "batch", "train", "eval", "score", "serve", "data"} <= words, words


def test_every_file_a_readme_command_names_exists():
    missing = []
    for cmd in COMMANDS:
        for path in cmd.reads:
            written_before = any(
                path == w or path.startswith(w + "/") for n in cmd.after for w in COMMANDS[n - 1].writes
            )
            if not written_before and not (REPO / path).exists():
                missing.append(f"{path} (in: {cmd.text})")
    assert not missing, (
        "README commands name files that are neither in the repository nor written by an "
        "earlier command:\n" + "\n".join(missing)
    )


def test_the_examples_fit_their_templates():
    """Each examples/ file reads cleanly the way its README command reads it."""
    import csv

    import jsonschema

    from inkwell.evaluate.data import read_eval_rows, read_texts
    from inkwell.prompts.library import get_template
    from inkwell.prompts.render import load_shots

    products = get_template("product-description")
    with open(REPO / "examples/products.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 8
    for row in rows:
        products.resolve_fields({k: v for k, v in row.items() if k != "id"})
    assert len(load_shots(REPO / "examples/my-examples.jsonl", get_template("news-article"))) >= 2
    quiz = get_template("lesson-quiz")
    for shot in load_shots(REPO / "examples/quiz-shots.jsonl", quiz):  # the shots show the schema they teach
        jsonschema.validate(json.loads(shot.output), quiz.output_schema)
    assert len(read_eval_rows(REPO / "examples/test.jsonl", template_fields=list(products.fields))) >= 3
    preds, _ = read_texts(REPO / "examples/preds.jsonl", what="predictions", field_name="pred")
    refs, _ = read_texts(REPO / "examples/refs.jsonl", what="references", field_name="ref")
    assert len(preds) == len(refs)


# ---------------------------------------------------------------- every command, in README order


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One folder for the whole README: outputs of earlier commands are inputs of later ones."""
    root = tmp_path_factory.mktemp("readme")
    for name in ("examples", "configs"):
        (root / name).symlink_to(REPO / name, target_is_directory=True)
    return root


@pytest.fixture
def as_a_user(workspace, monkeypatch):
    """The README's conditions: its folder, one INKWELL_HOME for all commands (history sees the writes), the
    shared model cache (prepared once per machine), and the default engine (the suite pins torch)."""
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("INKWELL_HOME", str(workspace / "home"))
    monkeypatch.setenv(
        "INKWELL_MODEL_CACHE",
        os.environ.get("INKWELL_MODEL_CACHE") or str(Path.home() / ".cache" / "inkwell" / "models"),
    )
    monkeypatch.delenv("INKWELL_ENGINE", raising=False)
    return workspace


@pytest.fixture
def all_cores():
    """The suite runs torch on one thread (tiny models); the real ones get the machine, as a user's would."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(threads)


def _fortunes_zh_missing() -> bool:
    from inkwell.data.sample import FORTUNE_DIRS

    dirs = [os.environ.get("INKWELL_FORTUNES_DIR", ""), *FORTUNE_DIRS]
    return not any(d and (Path(d) / "song100").exists() for d in dirs)


@pytest.mark.parametrize("cmd", list(_params()))
def test_readme_command(cmd: Command, as_a_user, capsys, request):
    if cmd.argv[:2] == ["data", "sample"] and _fortunes_zh_missing():
        pytest.skip("needs Debian's fortunes-zh (make setup-dev installs it)")
    if cmd.needs_model:
        request.getfixturevalue("all_cores")
    started = time.perf_counter()
    if cmd.argv[0] in ("serve", "studio"):
        _serve(cmd, as_a_user)
        code, out, err = 0, "", ""
    else:
        from inkwell.cli import main

        try:
            main(list(cmd.argv))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
    with capsys.disabled():  # the figures behind the `slow` marks (shown with -s)
        print(f"\n  [{time.perf_counter() - started:.1f} s] {cmd.text[:100]}")
    assert code == 0, f"README command failed with exit status {code}: {cmd.text}\n{err[-3000:]}"
    if "--json" in cmd.argv:
        json.loads(out)
    for path in cmd.writes:
        assert (as_a_user / path).exists(), f"{cmd.text} did not write {path}"


def _serve(cmd: Command, workspace: Path) -> None:
    """The README's `serve` as a real process, on a free port: ready, answers with its key, stops on SIGTERM."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [str(port) if before == "--port" else token for before, token in zip([""] + cmd.argv, cmd.argv)]
    if "--port" not in argv:
        argv += ["--port", str(port)]
    key = argv[argv.index("--api-key") + 1]
    import httpx

    env = {**os.environ, "PYTHONPATH": str(REPO), "BROWSER": "true"}  # --open: a browser that opens nothing
    proc = subprocess.Popen(
        [sys.executable, "-m", "inkwell", *argv],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"{cmd.text} exited:\n{proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, f"{cmd.text}: not ready after 180 s"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        models = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert models.status_code == 200, models.text
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401  # the key is required
        page = httpx.get(f"{url}/", timeout=10)  # the studio, on every server
        assert page.status_code == 200 and "<html" in page.text.lower()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
