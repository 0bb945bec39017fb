"""`inkwell eval` on two tiny-model systems: the three reports, their agreement, the generation cache,
resuming after an interruption, errors, loss curves and blind ratings (`inkwell rate`)."""

from __future__ import annotations

import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cli_helpers import run

from inkwell.cli import main
from inkwell.evaluate.report import fmt_cell

FAST = ["--dtype", "fp32", "--device", "cpu", "--max-new-tokens", "8", "--bootstrap", "200"]
ROWS = [
    {
        "id": "a",
        "prompt": "Write a product description for a bamboo water bottle.",
        "reference": "A light bamboo water bottle for every day.",
    },
    {"id": "b", "prompt": "The quick brown fox", "reference": "jumps over the lazy dog."},
    {"id": "c", "prompt": "Inkwell writes content", "reference": "ads, emails, reviews and travel guides."},
    {"id": "d", "prompt": "Poems, stories, headlines", "reference": "and news articles."},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_chat_model, tiny_base_model):
    """One eval of two systems (chat model, base model), shared by the report tests."""
    root = tmp_path_factory.mktemp("eval")
    data = write_jsonl(root / "test.jsonl", ROWS)
    corpus = write_jsonl(
        root / "corpus.jsonl", [{"text": "The quick brown fox jumps over the lazy dog. Inkwell writes content."}]
    )
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INKWELL_HOME", str(root / "home"))
        main(
            [
                "eval",
                "--data",
                str(data),
                "--system",
                f"sysalpha={tiny_chat_model}",
                "--system",
                f"sysbeta={tiny_base_model}",
                "--out",
                str(out),
                "--metrics",
                "bleu,chrf,rouge,perplexity,length,distinct,self_bleu,repetition,memorisation",
                "--corpus",
                str(corpus),
                "--json",
                *FAST,
            ]
        )
    return out


class _Tables(HTMLParser):
    """Rows of the HTML table with id=metrics, and every <img> src."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self._in, self._cell = [], [], False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "metrics":
            self._in = True
        elif tag == "tr" and self._in:
            self.rows.append([])
        elif tag in ("td", "th") and self._in:
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_eval_writes_three_reports_whose_numbers_agree(evaluated):
    for name in ("report.json", "report.md", "report.html"):
        assert (evaluated / name).is_file()
    report = json.loads((evaluated / "report.json").read_text())
    systems = [s["name"] for s in report["systems"]]
    assert systems == ["sysalpha", "sysbeta"] and report["rows"] == 4
    assert {p["file"] for p in report["plots"]} >= {"plots/metrics.png", "plots/lengths.png"}
    for plot in report["plots"]:
        assert (evaluated / plot["file"]).read_bytes()[:4] == b"\x89PNG"

    html = (evaluated / "report.html").read_text()
    parsed = _Tables()
    parsed.feed(html)
    assert parsed.images and all(src.startswith("data:image/png;base64,") for src in parsed.images)  # standalone
    assert not re.search(r"""(src|href)=['"](?!data:)""", html)
    html_rows = {row[0].split(" ")[0]: row[1:] for row in parsed.rows[1:]}
    md = (evaluated / "report.md").read_text()
    md_rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].split(" ")[0] in report["scores"]["sysalpha"]:
            md_rows[cells[0].split(" ")[0]] = cells[1:]
    checked = 0
    for metric in report["scores"]["sysalpha"]:
        for column, system in enumerate(systems):
            expected = fmt_cell(report["scores"][system][metric])
            assert md_rows[metric][column] == expected, (metric, system)
            assert html_rows[metric][column] == expected, (metric, system)
            value = report["scores"][system][metric]["value"]
            if report["scores"][system][metric]["ci"] and value is not None:
                low, high = report["scores"][system][metric]["ci"]
                assert low - 1e-9 <= value <= high + 1e-9 or metric == "perplexity"
            checked += 1
    assert checked >= 2 * 15
    assert {"bleu", "rouge1", "perplexity", "memorised_share", "distinct2"} <= set(report["scores"]["sysalpha"])
    assert report["scores"]["sysalpha"]["perplexity"]["ci"] is not None
    assert report["scores"]["sysalpha"]["distinct1"]["ci"] is None  # set statistic: no interval

    # per-example side by side, with scores
    assert len(report["examples"]) == 4
    example = report["examples"][0]
    assert set(example["outputs"]) == {"sysalpha", "sysbeta"}
    assert {"bleu", "rouge1", "perplexity"} <= set(example["outputs"]["sysalpha"]["scores"])
    assert example["reference"] in html and "### a" in md
    texts = [[e["outputs"][s]["text"] for e in report["examples"]] for s in systems]
    assert texts[0] != texts[1]


def eval_argv(data, out, *systems, metrics="length"):
    argv = ["eval", "--data", str(data), "--out", str(out), "--metrics", metrics, "--json", *FAST]
    for system in systems:
        argv += ["--system", system]
    return argv


def test_rerun_uses_the_cache_and_resumes_after_an_interruption(tmp_path, capsys, monkeypatch, tiny_chat_model):
    data = write_jsonl(tmp_path / "test.jsonl", ROWS)
    out = tmp_path / "out"
    argv = eval_argv(data, out, f"one={tiny_chat_model}")
    first = json.loads(run(capsys, argv).out)
    assert first["systems"]["one"] == {"generated": 4, "cached": 0, "failed": 0}

    import inkwell.models.load as load

    def no_load(*_a, **_k):
        raise AssertionError("a fully cached system must not be loaded")

    with monkeypatch.context() as mp:
        mp.setattr(load, "load_model", no_load)
        again = json.loads(run(capsys, argv).out)
    assert again["systems"]["one"] == {"generated": 0, "cached": 4, "failed": 0}
    assert again["scores"] == first["scores"]

    # killed mid-write: two whole lines and a torn third one
    cache = out / "generations" / "one.jsonl"
    lines = cache.read_text().splitlines(keepends=True)
    cache.write_text("".join(lines[:2]) + lines[2][:10])
    resumed = json.loads(run(capsys, argv).out)
    assert resumed["systems"]["one"] == {"generated": 2, "cached": 2, "failed": 0}
    assert len(cache.read_text().splitlines()) == 4

    # a different decoding setting is a different generation
    changed = json.loads(run(capsys, [*argv, "--max-new-tokens", "5"]).out)
    assert changed["systems"]["one"]["generated"] == 4


def test_template_rows_with_shots(tmp_path, capsys, tiny_chat_model):
    rows = [
        {"id": i, "product": p, "features": "light, sturdy", "reference": f"A fine {p}.", "keywords": p.split()[:1]}
        for i, p in enumerate(["bamboo bottle", "linen apron", "wool socks"])
    ]
    data = write_jsonl(tmp_path / "test.jsonl", rows)
    shots = write_jsonl(tmp_path / "shots.jsonl", [{"product": "mug", "output": "A sturdy mug."}])
    out = tmp_path / "out"
    summary = json.loads(
        run(
            capsys,
            [
                *eval_argv(
                    data,
                    out,
                    f"fewshot={tiny_chat_model}@{shots}",
                    f"zeroshot={tiny_chat_model}",
                    metrics="bleu,keywords",
                ),
                "--template",
                "product-description",
            ],
        ).out
    )
    assert summary["systems"]["fewshot"]["generated"] == 3 and summary["systems"]["zeroshot"]["failed"] == 0
    report = json.loads((out / "report.json").read_text())
    assert report["template"] == "product-description"
    assert "product=bamboo bottle" in report["examples"][0]["prompt"]


def test_training_run_gets_a_loss_curve(tmp_path, capsys, tiny_chat_model):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_chat_model, run_dir)
    write_jsonl(
        run_dir / "metrics.jsonl",
        [{"step": s, "loss": 3.0 / s, **({"val_loss": 3.2 / s} if s % 2 == 0 else {})} for s in range(1, 9)],
    )
    data = write_jsonl(tmp_path / "test.jsonl", ROWS[:2])
    out = tmp_path / "out"
    run(capsys, eval_argv(data, out, f"tuned={run_dir}"))
    report = json.loads((out / "report.json").read_text())
    assert report["systems"][0]["training_run"] is True
    assert len(report["training"]["tuned"]) == 8
    assert (out / "plots" / "loss-tuned.png").is_file()


@pytest.mark.parametrize(
    "case, message",
    [
        ("no-reference", "no 'reference' column"),
        ("empty", "is empty"),
        ("unknown-metric", "unknown metric 'bleuu'"),
        ("broken-system", "system 'broken'"),
        ("no-prompt", "no 'prompt' column"),
        ("custom-ref-field", "no 'gold' column"),
    ],
)
def test_clear_errors(tmp_path, capsys, tiny_chat_model, case, message):
    data = tmp_path / "test.jsonl"
    write_jsonl(data, ROWS)
    systems = [f"ok={tiny_chat_model}"]
    extra: list[str] = []
    metrics = "length"
    if case == "no-reference":
        write_jsonl(data, [ROWS[0], {"id": "x", "prompt": "hi"}])
    elif case == "empty":
        data.write_text("\n")
    elif case == "unknown-metric":
        metrics = "bleuu"
    elif case == "broken-system":
        broken = tmp_path / "broken-model"
        broken.mkdir()
        (broken / "config.json").write_text("{}")
        systems.append(f"broken={broken}")
    elif case == "no-prompt":
        write_jsonl(data, [{"id": 1, "reference": "x"}])
    elif case == "custom-ref-field":
        extra = ["--ref-field", "gold"]
    _, err = run(capsys, [*eval_argv(data, tmp_path / "out", *systems, metrics=metrics), *extra], exit_code=2)
    assert "error:" in err and message in err and "Traceback" not in err


def test_rate_collects_blind_ratings_into_the_store_and_the_report(tmp_path, capsys, monkeypatch, evaluated):
    from inkwell.store import Store

    folder = tmp_path / "rated"
    shutil.copytree(evaluated, folder)
    monkeypatch.setattr("sys.stdin", io.StringIO("5\nmaybe\n4\ns\n"))
    out, err = run(capsys, ["rate", str(folder), "--rater", "ann", "--limit", "3", "--seed", "1"])
    assert "sysalpha" not in out and "sysbeta" not in out  # blind
    assert "1 of 3" in out and "please answer" in out
    assert "rated 2, skipped 1, 6 left" in err
    ratings = Store().ratings(str(folder.resolve()))
    assert sorted(r["rating"] for r in ratings) == [4, 5] and {r["rater"] for r in ratings} == {"ann"}

    report = json.loads((folder / "report.json").read_text())
    assert sum(r["n"] for r in report["ratings"].values()) == 2
    for system, summary in report["ratings"].items():
        expected = [r["rating"] for r in ratings if r["system"] == system]
        assert summary["mean"] == pytest.approx(sum(expected) / len(expected))
    assert (
        "human_rating" in (folder / "report.md").read_text() and "human_rating" in (folder / "report.html").read_text()
    )

    # the same rater is not asked again about what they rated; end of input stops cleanly
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    _, err = run(capsys, ["rate", str(folder), "--rater", "ann"])
    assert "rated 0" in err and "6 left" in err


def test_a_row_too_long_for_the_context_fails_alone(tmp_path, capsys, tiny_chat_model):
    rows = [*ROWS[:2], {"id": "long", "prompt": "fox " * 600, "reference": "x"}]
    data = write_jsonl(tmp_path / "test.jsonl", rows)
    summary = json.loads(run(capsys, eval_argv(data, tmp_path / "out", f"one={tiny_chat_model}")).out)
    assert summary["systems"]["one"] == {"generated": 3, "cached": 0, "failed": 1}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    failed = report["examples"][2]["outputs"]["one"]
    assert failed["text"] == "" and "context" in failed["error"]
    assert any("failed on 1 of 3 rows" in note for note in report["notes"])
