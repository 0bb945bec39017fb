"""Long-form writing on the tiny random model: each stage, the run folder (resume after a kill at every
stage boundary, --from), memory sizing within the window, reranking, the interactive tree, bad input."""

import json

import pytest
from cli_helpers import run

from inkwell.compose.longform import DraftOptions, LongRequest, checks, write_long
from inkwell.compose.longform.draft import draft_section, score_candidates, window_for
from inkwell.compose.longform.memory import Memory, fit, lexical_similar
from inkwell.compose.longform.plan import MIN_SECTION_WORDS, budgets, load_outline, make_outline, parse_lines
from inkwell.compose.longform.revise import clean, revise
from inkwell.errors import InkwellError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def request(**kw):
    kw.setdefault("options", DraftOptions(candidates=2, transitions=None) if False else DraftOptions(candidates=2))
    return LongRequest(kw.pop("kind", "article"), kw.pop("topic", "how tides work"), kw.pop("words", 300), **kw)


# ---------------------------------------------------------------- measures


def test_length_score_is_longwriters_formula():
    assert checks.length_score(1000, 1000) == 100
    assert checks.length_score(500, 1000) == 50  # shorter: 1 - (2 - 1)/2
    assert checks.length_score(2000, 1000) == pytest.approx(66.67, abs=0.01)  # longer: 1 - (2 - 1)/3
    assert checks.length_score(0, 1000) == 0 and checks.length_score(5000, 1000) == 0


def test_repetition_and_distinct_n():
    looping = "the tide comes in and the tide goes out " * 6
    varied = "Tides rise twice a day. The moon pulls the oceans. Sailors read tables to plan a passage home."
    assert checks.repeated_ngram_rate(looping) > 0.7 > checks.repeated_ngram_rate(varied) == 0
    assert checks.distinct_n(varied) > checks.distinct_n(looping)
    assert checks.overlap_with("the moon pulls the oceans", varied) == 1.0


def test_words_and_sentences_in_chinese():
    text = "潮汐每天涨落两次。月亮吸引海水！渔民看潮汐表出海？"
    assert checks.word_count(text) == 22 and checks.is_chinese(text)
    assert checks.sentences(text) == ["潮汐每天涨落两次。", "月亮吸引海水！", "渔民看潮汐表出海？"]


# ---------------------------------------------------------------- plan


def test_parse_lines_cleans_a_small_models_list():
    text = "1. **Tides and the Moon**\n2) Tides and the moon\n- Spring tides\n\n3. " + "word " * 20 + "\n#4 Neap tides:"
    assert parse_lines(text, 5) == ["Tides and the Moon", "Spring tides", "Neap tides"]
    assert parse_lines("1. TITLE ONE: Introduction to the Water Cycle (20)", 1) == ["Introduction to the Water Cycle"]


def test_bylines_and_glued_words_are_not_titles():
    listed = "1. Tides by: Dr. Emma Taylor\n2. TheSunEffect EarthMagnitude LunarGravity\n3. Spring and neap tides"
    outline, _ = make_outline("article", "tides", 1000, "en", ask=lambda prompt, n, pattern=None: listed)
    assert [s.title for s in outline.sections][1] == "Spring and neap tides"


def test_outline_is_repaired_from_the_skeleton_when_the_model_lists_nothing():
    outline, notes = make_outline(
        "report", "river cleanup", 1000, "en", ask=lambda prompt, n, pattern=None: "Sure! Here you go:"
    )
    assert [s.title for s in outline.sections] == ["Summary", "Background", "Findings", "Recommendations"]
    assert sum(s.words for s in outline.sections) == pytest.approx(1000, abs=4)
    assert outline.sections[0].words < outline.sections[1].words  # opening and closing get less
    assert notes["repairs"]


def test_budgets_never_go_below_the_minimum():
    assert min(budgets(150, 12)) >= MIN_SECTION_WORDS


@pytest.mark.parametrize(
    ("outline", "field"),
    [
        ({"title": "T", "kind": "poem", "topic": "x", "sections": [{"title": "A"}]}, "kind"),
        (
            {"title": "T", "kind": "article", "topic": "x", "sections": [{"title": "A", "words": 5}]},
            "sections[0].words",
        ),
        ({"title": "T", "kind": "article", "topic": "x", "sections": [{"title": " "}]}, "sections[0].title"),
        ({"title": "T", "kind": "article", "topic": "x", "sections": []}, "sections"),
    ],
)
def test_an_outline_that_does_not_validate_names_the_field(tmp_path, outline, field):
    path = tmp_path / "outline.json"
    path.write_text(json.dumps(outline))
    with pytest.raises(InkwellError) as info:
        load_outline(path)
    assert info.value.field == field and str(path) in str(info.value)


# ---------------------------------------------------------------- memory and drafting


def test_memory_recalls_the_passage_about_the_query():
    memory = Memory()
    memory.remember(0, "The moon pulls the sea toward it.\n\nFishermen mend their nets in winter.", lexical_similar)
    memory.remember(1, "Harbours flood at spring tide.", lexical_similar)
    hits = memory.recall("winter nets fishermen", 1, lexical_similar, skip_sections=set())
    assert [h.text for h in hits] == ["Fishermen mend their nets in winter."]
    assert memory.summaries[1] == "Harbours flood at spring tide."


def test_fit_drops_recalled_passages_then_old_summaries_until_the_prompt_fits():
    from inkwell.compose.longform.memory import Passage

    passages = [Passage(0, "p" * 50), Passage(1, "q" * 50)]
    build = lambda s, p: "|".join(s) + "#" + "|".join(x.text for x in p)  # noqa: E731
    prompt, kept_s, kept_p = fit(build, ["a" * 40, "b" * 40], passages, len, 70)
    assert len(prompt) <= 70 and kept_p == [] and kept_s == ["b" * 40]


def test_each_section_prompt_fits_the_window_with_room_to_write(tiny_engine):
    outline, _ = make_outline("article", "tides", 300, "en", ask=None)
    memory = Memory()
    for i in range(2):
        memory.remember(i, "The moon pulls the sea. " * 30, lexical_similar)
    options = DraftOptions(candidates=2, window=256, extend=0)
    record = draft_section(tiny_engine, outline, 2, memory, options, lexical_similar, earlier_text="x")
    assert record["prompt_tokens"] <= record["window"] <= 256
    assert record["prompt_tokens"] + record["max_new_tokens"] <= tiny_engine.loaded.context_length
    assert len(memory.summaries) == 2 and len(record["memory"]["summaries"]) < 2  # memory was cut to fit


def test_window_too_small_for_the_section_is_an_error_naming_words(tiny_engine):
    outline, _ = make_outline("article", "tides", 3000, "en", ask=None, sections=3)
    with pytest.raises(InkwellError) as info:
        window_for(tiny_engine, DraftOptions(), 900)
    assert info.value.field == "words"


def test_rerank_prefers_coverage_length_and_fresh_text():
    earlier = "Tides rise and fall twice a day because the moon pulls the oceans."
    candidates = [
        {"text": earlier},  # repeats the earlier section
        {"text": "Spring tides come at full moon. Neap tides are weaker. " * 3},  # on the points, fresh
        {"text": "Spring."},  # far too short
        {"text": "ZZZZ QQQQ XXXX VVVV WWWW ### @@@ ~~~ " * 3},  # degenerate
    ]
    score_candidates(candidates, ["spring tides at full moon", "neap tides are weaker"], 30, earlier, lexical_similar)
    best = max(range(4), key=lambda i: candidates[i]["score"])
    assert best == 1
    assert candidates[0]["checks"]["fresh"] < 0.5 and candidates[3]["checks"]["junk"] > 0.1


def test_revise_removes_repeats_and_flags_unsupported_numbers():
    outline, _ = make_outline("article", "tides in 2024", 300, "en", ask=None)
    texts = [
        "## Introduction\nThe tide turns twice daily. It was 2024.",
        "The tide turns twice daily. A record of 37 metres was claimed.",
        "The end comes. Then the",
    ]
    revised = revise(outline, texts, support="tides in 2024", strict=True)
    assert revised[0]["text"] == "The tide turns twice daily. It was 2024."
    assert "twice daily" not in revised[1]["text"] and revised[1]["unsupported"] == ["37"]
    assert revised[2]["text"] == "The end comes."
    assert any("repeated" in c for c in revised[1]["changes"])


def test_clean_strips_chat_tokens_and_echoed_titles():
    text, notes = clean("**Introduction**\nTides are long waves.<|im_end|>", "Introduction")
    assert text == "Tides are long waves." and len(notes) == 2


# ---------------------------------------------------------------- the run folder


def test_write_long_writes_every_stage_and_a_piece_with_provenance(tiny_engine, tmp_path):
    out = tmp_path / "piece"
    piece = write_long(tiny_engine, request(), out, similar=lexical_similar)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == [
        "piece.json",
        "piece.md",
        "plan-notes.json",
        "plan.json",
        "request.json",
        "revise.json",
        "sections/01.json",
        "sections/02.json",
        "sections/03.json",
    ]
    assert piece["words"] == checks.word_count("\n\n".join(s["text"] for s in piece["sections"]))
    first = piece["sections"][0]["provenance"]
    assert len(first["candidates"]) == 2 and first["prompt_tokens"] <= first["window"]
    assert (out / "piece.md").read_text().startswith("# How tides work\n\n## Introduction\n")


def _stage_boundaries(tiny_engine, tmp_path):
    seen = []
    write_long(
        tiny_engine,
        request(),
        tmp_path / "full",
        similar=lexical_similar,
        on_stage=lambda stage, i: seen.append((stage, i)),
    )
    return seen


class Killed(BaseException):
    pass


def test_resume_after_a_kill_at_every_stage_boundary_gives_the_same_piece(tiny_engine, tmp_path):
    full = write_long(tiny_engine, request(), tmp_path / "full", similar=lexical_similar)
    boundaries = _stage_boundaries(tiny_engine, tmp_path / "again")
    assert boundaries == [
        ("plan", None),
        ("draft", 0),
        ("draft", 1),
        ("draft", 2),
        ("revise", None),
        ("assemble", None),
    ]
    for n, boundary in enumerate(boundaries[:-1]):
        out = tmp_path / f"killed-{n}"

        def kill(stage, index, boundary=boundary):
            if (stage, index) == boundary:
                raise Killed

        with pytest.raises(Killed):
            write_long(tiny_engine, request(), out, similar=lexical_similar, on_stage=kill)
        with pytest.raises(InkwellError, match="already holds a run"):
            write_long(tiny_engine, request(), out, similar=lexical_similar)
        resumed = write_long(tiny_engine, request(), out, resume=True, similar=lexical_similar)
        assert [s["text"] for s in resumed["sections"]] == [s["text"] for s in full["sections"]], boundary


def test_from_plan_writes_again_to_an_edited_plan(tiny_engine, tmp_path):
    out = tmp_path / "piece"
    write_long(tiny_engine, request(), out, similar=lexical_similar)
    plan = json.loads((out / "plan.json").read_text())
    plan["sections"][1]["title"] = "Spring and neap tides"
    (out / "plan.json").write_text(json.dumps(plan))
    piece = write_long(tiny_engine, request(), out, start_from="plan", similar=lexical_similar)
    assert [s["title"] for s in piece["sections"]][1] == "Spring and neap tides"
    assert json.loads((out / "sections" / "02.json").read_text())["title"] == "Spring and neap tides"


def test_resume_with_another_request_is_an_error_naming_the_field(tiny_engine, tmp_path):
    out = tmp_path / "piece"
    write_long(tiny_engine, request(), out, similar=lexical_similar)
    with pytest.raises(InkwellError) as info:
        write_long(tiny_engine, request(words=600), out, resume=True, similar=lexical_similar)
    assert info.value.field == "words"


# ---------------------------------------------------------------- interactive: the tree of versions


def test_choices_edits_and_going_back_are_stored_as_a_tree(tiny_engine, tmp_path):
    from inkwell.compose.longform.session import recorded, take
    from inkwell.store import Store
    from inkwell.store.longform import LongformData

    data = LongformData(Store())
    run_id = data.new_run("local", kind="article", topic="tides", folder=str(tmp_path), request={})
    script = iter(["take0", "more-then-edit1", "back0", "take1", "take0", "take0"])

    def chooser(index, record, more):
        step = next(script)
        if step == "take0":
            return take(record, 0)
        if step == "take1":
            return take(record, 1)
        if step == "more-then-edit1":
            record = more()
            assert len(record["candidates"]) == 4
            return take(record, 3, "My own words about tides.")
        return "back", 0

    piece = write_long(
        tiny_engine,
        request(),
        tmp_path / "piece",
        similar=lexical_similar,
        chooser=recorded(chooser, data, "local", run_id),
    )
    run = data.run("local", run_id)
    nodes = data.tree("local", run_id)
    firsts = [n for n in nodes if n["parent_id"] is None]
    assert len(firsts) == 4  # two rounds of two candidates for section 1: the first, then the branch
    assert [n["section"] for n in run["chain"]] == [0, 1, 2]
    assert [n["text"] for n in run["chain"]] == [s_text for s_text in _section_texts(tmp_path / "piece")]
    edit = next(n for n in nodes if n["kind"] == "edit")
    assert edit["text"] == "My own words about tides." and edit["source_id"] is not None
    assert edit["id"] not in {n["id"] for n in run["chain"]}  # the old branch is kept, not on the draft
    choices = data.choices("local")
    assert {c["chosen"] for c in choices} >= {"My own words about tides."}
    taken = next(c for c in choices if c["chosen"] == "My own words about tides.")
    assert taken["edited_from"] in taken["rejected"] and len(taken["rejected"]) == 4 and taken["prompt"]
    assert piece["sections"][0]["provenance"]["chosen"] == 1


def _section_texts(out):
    return [json.loads(p.read_text())["text"] for p in sorted((out / "sections").glob("*.json"))]


# ---------------------------------------------------------------- the command


def test_cli_writes_a_piece_into_the_folder(capsys, tiny_chat_model, tmp_path):
    out = tmp_path / "piece"
    stdout, stderr = run(
        capsys,
        [
            "write",
            "long",
            "story",
            "--topic",
            "a lighthouse keeper",
            "--words",
            "200",
            "--candidates",
            "1",
            "--model",
            str(tiny_chat_model),
            "--engine",
            "torch",
            "--dtype",
            "fp32",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
    )
    assert stdout.startswith("# A lighthouse keeper\n") and "* * *" in stdout
    assert "plan: 3 sections" in stderr and "assemble:" in stderr
    assert json.loads((out / "request.json").read_text())["options"]["seed"] == 3


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--words", "20"], "--words 20"),
        (["--max-new-tokens", "9"], "--max-new-tokens does not apply"),
        (["--lang", "fr"], "unknown language"),
        (["--sources", "no-such-kb-or-folder"], "no-such-kb-or-folder"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(capsys, tiny_chat_model, tmp_path, argv, field):
    _, stderr = run(
        capsys,
        [
            "write",
            "long",
            "article",
            "--topic",
            "tides",
            "--model",
            str(tiny_chat_model),
            "--out",
            str(tmp_path / "p"),
            *argv,
        ],
        exit_code=2,
    )
    assert field in stderr and "Traceback" not in stderr


def test_cli_bad_outline_names_the_field(capsys, tiny_chat_model, tmp_path):
    bad = tmp_path / "outline.json"
    bad.write_text(
        json.dumps({"title": "T", "kind": "article", "topic": "x", "sections": [{"title": "A", "words": 1}]})
    )
    _, stderr = run(
        capsys,
        [
            "write",
            "long",
            "article",
            "--topic",
            "tides",
            "--outline",
            str(bad),
            "--model",
            str(tiny_chat_model),
            "--engine",
            "torch",
            "--out",
            str(tmp_path / "p"),
        ],
        exit_code=2,
    )
    assert "sections[0].words" in stderr


# ---------------------------------------------------------------- sources, a given outline, the terminal chooser


def test_sources_ground_each_section_and_a_given_outline_is_used(tiny_engine, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "tides.md").write_text(
        "# Spring tides\n\nSpring tides come twice a month, at new and full moon, when sun and moon pull together.\n\n"
        "# Neap tides\n\nNeap tides are the weakest tides, at the quarter moons.\n"
    )
    outline = tmp_path / "outline.json"
    outline.write_text(json.dumps({
        "title": "Tides", "kind": "article", "topic": "tides", "words": 150,
        "sections": [{"title": "Spring tides", "points": ["new and full moon"]}, {"title": "Neap tides"},
                     {"title": "Living with tides"}],
    }))  # fmt: skip
    req = request(outline=str(outline), sources=[str(notes)])
    piece = write_long(tiny_engine, req, tmp_path / "piece", similar=lexical_similar)
    assert [s["title"] for s in piece["sections"]] == ["Spring tides", "Neap tides", "Living with tides"]
    first = piece["sections"][0]["provenance"]["sources"]
    assert first and first[0]["source"].endswith("tides.md") and "full moon" in first[0]["text"]
    assert (tmp_path / "piece" / "sources-index").is_dir()  # the folder's index lives in the run folder


def test_the_terminal_chooser_takes_edits_asks_for_more_and_goes_back():
    from inkwell.cli.longform import TerminalChooser

    record = {"title": "Intro", "words_budget": 50, "chosen": 0,
              "candidates": [{"text": "one", "score": 0.5, "words": 1}, {"text": "two", "score": 0.4, "words": 1}]}  # fmt: skip
    extra = {"text": "three", "score": 0.3, "words": 1}

    def more():
        record["candidates"].append(extra)
        return record

    said: list[str] = []
    answers = iter(["x", "m", "v 3", "e 3", "My own words.", "."])
    action, value = TerminalChooser(read=lambda _p: next(answers), write=said.append)(0, record, more)
    assert action == "take" and value["chosen"] == 2 and value["text"] == "My own words." and value["edited"]
    assert "? 'x'" in said and "three" in said
    action, value = TerminalChooser(read=lambda _p: "b 1", write=said.append)(1, record, more)
    assert (action, value) == ("back", 0)
    action, value = TerminalChooser(read=lambda _p: "2", write=said.append)(1, record, more)
    assert action == "take" and value["text"] == "two" and not value["edited"]
