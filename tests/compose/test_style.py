"""Style profiles (compose/style.py): traits on tiny texts, the style-match score telling two synthetic writers
apart, exemplar diversity, few-shot shots from exemplars, storage, and bad input. The embedder is the real MiniLM
(seconds, cached); no language model runs here except the tiny random one in the CLI test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from cli_helpers import run  # noqa: E402

from inkwell.compose import style  # noqa: E402
from inkwell.compose.style import Sample  # noqa: E402
from inkwell.errors import InkwellError  # noqa: E402
from inkwell.prompts.library import get_template  # noqa: E402

# Two made-up writers: a formal essayist (long sentences, semicolons, long words) and a chatty one (short,
# exclamations, contractions, "you").
FORMAL = [
    "The administration of justice, however imperfect, remains the foundation of every civilised institution; "
    "its deterioration precedes, invariably, the deterioration of commerce.",
    "Consideration of the historical evidence suggests that prosperity, unaccompanied by prudence, is transitory; "
    "the examples are numerous and instructive.",
    "Education, properly understood, constitutes the cultivation of judgement; information, however abundant, is "
    "insufficient without it.",
    "Governments accumulate responsibilities gradually; relinquishing them, conversely, requires extraordinary "
    "determination and considerable political courage.",
    "The accumulation of knowledge, unaccompanied by reflection, produces erudition without understanding; the "
    "distinction is fundamental.",
    "Institutions endure when their purposes are comprehensible to citizens; obscurity, conversely, invites "
    "suspicion and eventual decline.",
]
CHATTY = [
    "Wow, you won't believe it! I'm so happy today. Coffee's great!",
    "Hey you! Don't forget lunch. It's pizza day, yay!",
    "I can't stop laughing! You're the best. Seriously!",
    "Oh no, I'm late again! Don't wait for me, ok?",
    "You know what? I'm done. Let's go get ice cream!",
    "Ha! I knew it. You're so funny, I can't even!",
]


def test_traits_on_tiny_texts():
    traits = style.traits_of(["One two three. Four five!", "Six seven, eight; nine ten? Eleven."], "en")
    assert traits["sentences"] == 4
    assert traits["words_per_sentence"] == pytest.approx(11 / 4)
    assert traits["punctuation_per_100_words"][","] == pytest.approx(100 / 11, abs=0.01)
    assert traits["questions"] == pytest.approx(0.25) and traits["exclamations"] == pytest.approx(0.25)
    assert 0.0 < traits["lexical_richness"] <= 1.0
    formal, chatty = style.traits_of(FORMAL, "en"), style.traits_of(CHATTY, "en")
    assert formal["formality"] > 0.7 > 0.4 > chatty["formality"]
    assert formal["words_per_sentence"] > 2 * chatty["words_per_sentence"]
    assert chatty["contractions_per_100_words"] > 5 and formal["contractions_per_100_words"] == 0
    assert "unaccompanied" in formal["favoured_words"] and "the" not in formal["favoured_words"]


def test_chinese_traits_count_characters():
    traits = style.traits_of(["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"])
    assert traits["language"] == "zh" and traits["formality"] is None
    assert traits["chars_per_sentence"] == 10 and traits["chars_per_clause"] == 5
    assert "明" in traits["favoured_characters"] and "明月" in traits["favoured_words"]


def test_lexical_richness_is_a_ratio():
    assert style._mattr(["a"] * 100) == pytest.approx(1 / 50)
    assert style._mattr([str(i) for i in range(100)]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def two_writers():
    formal = style.learn_profile("formal", samples=[Sample(t) for t in FORMAL[:5]])
    chatty = style.learn_profile("chatty", samples=[Sample(t) for t in CHATTY[:5]])
    return formal, chatty


def test_score_separates_two_writers(two_writers):
    formal, chatty = two_writers
    held_out = [FORMAL[5], CHATTY[5]]
    for_formal, for_chatty = style.style_match(held_out, formal), style.style_match(held_out, chatty)
    assert for_formal[0].score > for_chatty[0].score and for_chatty[1].score > for_formal[1].score
    assert for_formal[0].ngram > for_formal[1].ngram  # each half separates them on its own
    assert all(0.0 <= m.score <= 1.0 for m in for_formal + for_chatty)
    assert [best for best, _ in style.nearest_style(held_out, [formal, chatty])] == ["formal", "chatty"]
    assert style.style_match([""], formal)[0].score == 0.0


def test_chinese_score_uses_ngrams_only():
    poems = [
        "床前明月光，疑是地上霜。",
        "举头望明月，低头思故乡。",
        "春眠不觉晓，处处闻啼鸟。",
        "夜来风雨声，花落知多少。",
        "白日依山尽，黄河入海流。",
    ]
    profile = style.learn_profile("tang", samples=[Sample(p) for p in poems])
    assert profile.language == "zh" and profile.embedding is None
    (same, other) = style.style_match(["明月照高楼，流光正徘徊。", "The weather is nice today."], profile)
    assert same.embedding is None and same.score > other.score


def test_exemplars_are_diverse():
    # three topics, the first one heavily duplicated: diversity must reach all three before a second copy
    texts = ["cats purr on warm laps"] * 4 + ["taxes are due in april"] + ["rockets fly to the moon"]
    vectors = [style.ngram_vector(t) for t in texts]
    picked = style.choose_exemplars(texts, vectors, None, keep=3)
    assert sorted({texts[i] for i in picked}) == sorted(set(texts))
    # with embeddings: two tight clusters and an outlier
    embeddings = np.array([[1, 0, 0], [0.99, 0.14, 0], [0.98, 0.2, 0], [0, 1, 0], [0.1, 0.99, 0], [0, 0, 1]])
    embeddings = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    picked = style.choose_exemplars([str(i) for i in range(6)], [], embeddings, keep=3)
    assert len({0 if i < 3 else 1 if i < 5 else 2 for i in picked}) == 3


def test_long_samples_are_not_exemplars_when_short_ones_suffice():
    texts = ["word " * 400] + [f"short text number {i} about {t}" for i, t in enumerate("abcdef")]
    picked = style.choose_exemplars(texts, [style.ngram_vector(t) for t in texts], None, keep=3)
    assert 0 not in picked


def test_style_shots_fill_the_main_field(two_writers):
    formal, _ = two_writers
    template = get_template("poem")
    shots = style.style_shots(formal, template, {"topic": "justice and institutions", "form": "free"})
    assert 1 <= len(shots) <= style.SHOTS
    exemplar_texts = [e["text"] for e in formal.exemplars]
    for shot in shots:
        assert shot.output in exemplar_texts
        assert shot.fields["form"] == "free" and shot.fields["topic"] != "justice and institutions"
    best = style.best_exemplars(formal, "justice", k=1)[0]["text"]
    assert "justice" in best.lower()


def test_save_load_list_roundtrip(two_writers):
    formal, _ = two_writers
    path = style.save_profile(formal)
    assert path.name == "formal.json" and path.parent.name == "styles"
    loaded = style.load_profile("formal")
    assert loaded.traits == json.loads(json.dumps(formal.traits)) and loaded.exemplars == formal.exemplars
    assert [row["name"] for row in style.list_profiles()] == ["formal"]


def test_read_samples_from_files_folders_and_jsonl(tmp_path):
    folder = tmp_path / "essays"
    folder.mkdir()
    for i, text in enumerate(FORMAL[:3]):
        (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    (folder / "notes.bin").write_bytes(b"\x00")  # not a sample suffix: skipped inside a folder
    rows = tmp_path / "more.jsonl"
    rows.write_text("\n".join(json.dumps({"text": t, "topic": "law"}) for t in FORMAL[3:5]), encoding="utf-8")
    samples = style.read_samples([folder, rows])
    assert len(samples) == 5 and samples[-1].topic == "law" and samples[0].source.endswith("0.txt")
    profile = style.learn_profile("files", [folder, rows])
    assert profile.samples == 5 and any(e["topic"] == "law" for e in profile.exemplars)


def test_training_rows_are_chat_messages():
    rows = style.training_rows([Sample("Taxes are due in April.", "taxes")], "en")
    assert rows == [
        {
            "messages": [
                {"role": "user", "content": "Write a short piece about taxes."},
                {"role": "assistant", "content": "Taxes are due in April."},
            ]
        }
    ]


def test_style_steps_add_shots_and_score(two_writers):
    from inkwell.generate.jobs import Outcome, TemplateJob
    from inkwell.generate.record import GenerationRecord

    style.save_profile(two_writers[0])
    said: list[str] = []

    def prepare(name, template_file, fields, *, shots=None, overrides=None, guard=None):
        return TemplateJob(get_template(name), overrides or {}, None, fields)

    def write(engine, job, **kwargs):
        record = GenerationRecord(FORMAL[5], "m", None, "poem", {}, {}, "p", 1, 1, 0.1, "stop", "write")
        return Outcome([record])

    styled_prepare, styled_write, adapter = style.style_steps("formal", prepare, write, None, None, said.append)
    job = styled_prepare("poem", None, {"topic": "law"}, shots=None, overrides={})
    assert adapter is None and len(job.shots) == style.SHOTS
    outcome = styled_write(None, job)
    assert outcome.records[0].extra["style"]["name"] == "formal" and said and "match" in said[0]


def test_adapter_is_used_only_for_its_model(tmp_path, two_writers):
    profile = two_writers[0]
    said: list[str] = []
    profile.adapter, profile.adapter_model = str(tmp_path), "smollm2-135m-instruct"
    try:
        assert style.style_adapter(profile, None, None, said.append) == str(tmp_path)
        assert style.style_adapter(profile, "mine", None, said.append) == "mine"
        assert style.style_adapter(profile, None, "gemma3-270m", said.append) is None and said
    finally:
        profile.adapter = profile.adapter_model = None


# ---------------------------------------------------------------- bad input


def test_fewer_than_five_samples_is_refused(tmp_path):
    rows = tmp_path / "few.jsonl"
    rows.write_text("\n".join(json.dumps({"text": t}) for t in FORMAL[:3]), encoding="utf-8")
    with pytest.raises(InkwellError, match="at least 5 samples.*few.jsonl gave 3"):
        style.learn_profile("few", [rows])


def test_unknown_and_empty_profiles_are_refused(two_writers):
    with pytest.raises(InkwellError, match="unknown style 'nope'"):
        style.load_profile("nope")
    path = style.save_profile(two_writers[1])
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "ngrams": {}}))
    with pytest.raises(InkwellError, match="style 'chatty' is empty"):
        style.load_profile("chatty")
    with pytest.raises(InkwellError, match="not valid"):
        style.profile_path("../etc")


def _one_error_line(err: str, *names: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], err


def test_cli_bad_input_exits_2_with_one_line(capsys, tmp_path):
    rows = tmp_path / "few.jsonl"
    rows.write_text("\n".join(json.dumps({"text": t}) for t in CHATTY[:2]), encoding="utf-8")
    _, err = run(capsys, ["style", "learn", "ada", str(rows)], exit_code=2)
    _one_error_line(err, str(rows), "at least 5")
    _, err = run(capsys, ["style", "show", "nobody"], exit_code=2)
    _one_error_line(err, "nobody")
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"text": "hello"}) + "\n", encoding="utf-8")
    _, err = run(capsys, ["score", "--pred", str(pred), "--style", "nobody"], exit_code=2)
    _one_error_line(err, "nobody")
    # --style is checked before any model loads: the model named here does not exist
    _, err = run(capsys, ["write", "poem", "--set", "topic=x", "--style", "nobody", "--model", "/nonexistent"], 2)
    _one_error_line(err, "nobody")


def test_cli_learn_show_list_score_and_write(capsys, tmp_path, tiny_chat_model):
    rows = tmp_path / "formal.jsonl"
    rows.write_text("\n".join(json.dumps({"text": t}) for t in FORMAL), encoding="utf-8")
    out, _ = run(capsys, ["style", "learn", "essayist", str(rows), "--exemplars", "3"])
    assert "learned style 'essayist' from 6 samples" in out and "formality" in out
    out, _ = run(capsys, ["style", "list", "--json"])
    assert json.loads(out)[0]["name"] == "essayist"
    out, _ = run(capsys, ["style", "show", "essayist"])
    assert out.count("  [") == 3
    pred = tmp_path / "pred.jsonl"
    pred.write_text("\n".join(json.dumps({"text": t}) for t in (FORMAL[0], CHATTY[0])), encoding="utf-8")
    out, _ = run(capsys, ["score", "--pred", str(pred), "--style", "essayist", "--json"])
    scored = json.loads(out)
    assert scored["style"] == "essayist" and scored["texts"][0]["score"] > scored["texts"][1]["score"]
    argv = ["write", "poem", "--set", "topic=law", "--style", "essayist", "--model", str(tiny_chat_model)]
    argv += ["--dtype", "fp32", "--device", "cpu", "--no-log", "--no-moderation", "--max-new-tokens", "8", "--json"]
    out, err = run(capsys, argv)
    record = json.loads(out)
    assert record["style"]["name"] == "essayist" and 0.0 <= record["style"]["score"] <= 1.0
    assert "style 'essayist' match:" in err


def test_cli_learn_with_train_records_a_lora(capsys, tmp_path, tiny_chat_model):
    rows = tmp_path / "formal.jsonl"
    rows.write_text("\n".join(json.dumps({"text": t}) for t in FORMAL), encoding="utf-8")
    argv = ["style", "learn", "trained", str(rows), "--train", "--train-steps", "1", "--model", str(tiny_chat_model)]
    run(capsys, [*argv, "--json"])
    profile = style.load_profile("trained")
    assert profile.adapter_model == str(tiny_chat_model)
    lora = Path(profile.adapter)
    assert lora == style.styles_dir() / "trained" / "lora" and (lora / "adapter_config.json").is_file()
    config = (style.styles_dir() / "trained" / "lora.yaml").read_text()
    assert config.startswith("# inkwell train ") and "format: messages" in config
    assert style.style_adapter(profile, None, None, print) == str(lora)
