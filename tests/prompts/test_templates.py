"""Every content template in the library: loads, resolves, renders (chat and completion) in English and Chinese,
has worked examples in both and valid decoding defaults; plus few-shot fitting and user templates. No model is
loaded: the English examples are picked by character n-grams here (tests/prompts/test_shots.py uses MiniLM)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from inkwell.errors import InkwellError
from inkwell.generate.settings import GenerationSettings
from inkwell.prompts import shots as shot_choice
from inkwell.prompts.library import BUILTIN_DIR, all_templates, get_template
from inkwell.prompts.render import build_prompt, load_shots
from inkwell.prompts.shots import closest_shots, in_language
from inkwell.prompts.template import ContentTemplate

REQUIRED_NAMES = [
    "news-article",
    "headline",
    "summary",
    "story",
    "ad-copy",
    "social-post",
    "marketing-email",
    "product-review",
    "travel-guide",
    "customer-service-reply",
    "lesson-quiz",
    "rewrite",
    "product-description",
    "poem",
]
LANGUAGES = ["en", "zh"]  # every built-in template writes both
SHOTS_PER_LANGUAGE = (3, 6)  # a handful of worked examples in each language
# Built-in file names, read without touching INKWELL_HOME at collection time; the tests themselves go
# through all_templates() (with the per-test INKWELL_HOME from tests/conftest.py).
BUILTIN_NAMES = sorted(p.stem for p in BUILTIN_DIR.glob("*.y*ml"))
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(autouse=True)
def lexical_similarity(monkeypatch):
    """English examples picked by n-gram overlap, so these table tests load no embedding model."""
    monkeypatch.setitem(shot_choice.SIMILARITY, "en", shot_choice.ngram_similarity)


_LIBRARY: dict[str, ContentTemplate] = {}


def template(name: str) -> ContentTemplate:
    """A template from all_templates(), loaded once per session (with an empty INKWELL_HOME, so only the
    built-ins) to keep the table-driven tests fast; the user-template tests call all_templates() afresh."""
    if not _LIBRARY:
        _LIBRARY.update(all_templates())
    return _LIBRARY[name]


def sample_value(template_name: str, field: str, spec) -> object:
    """A distinctive value for a field, so the tests can find it in the rendered prompt."""
    if spec.choices:
        return spec.choices[0]
    return {
        "str": f"zq-{field}-sample",
        "int": 7,
        "float": 1.5,
        "bool": True,
        "list": [f"zq-{field}-one", f"zq-{field}-two"],
    }[spec.type]


def minimal_fields(t: ContentTemplate) -> dict:
    return {name: sample_value(t.name, name, spec) for name, spec in t.fields.items() if spec.required}


def languages_of(t: ContentTemplate) -> list:
    spec = t.fields.get("language")
    return list(spec.choices) if spec and spec.choices else [None]


def shown(value) -> list[str]:
    """The text pieces a field value should leave in a prompt."""
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def count_chars(prompt) -> int:
    if isinstance(prompt, str):
        return len(prompt)
    return sum(len(m["content"]) for m in prompt)


def expected_builtin_shots(t: ContentTemplate, language, fields: dict | None = None):
    """The examples `build_prompt` shows a base model by default: the closest ones in the request's language."""
    fields = (fields or minimal_fields(t)) | ({"language": language} if language else {})
    return closest_shots(t, t.resolve_fields(fields))


# ------------------------------------------------------------------ the library


def test_required_templates_exist():
    names = set(all_templates())
    assert names == set(BUILTIN_NAMES)  # this test's INKWELL_HOME holds no user templates
    missing = [n for n in REQUIRED_NAMES if n not in names]
    assert not missing, f"missing templates: {missing}"
    assert set(REQUIRED_NAMES) <= set(BUILTIN_NAMES)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_template_loads_and_is_complete(name):
    t = template(name)
    assert t.name == name, "the file name must be <name>.yaml"
    assert Path(t.source).parent == BUILTIN_DIR
    assert t.description.strip()
    assert t.chat.strip() and t.system.strip()
    assert t.completion.example.strip() and "output" in t.completion.example
    assert t.completion.stop, "base models need stop sequences"
    assert any(s.required for s in t.fields.values()), "every template needs at least one required field"
    for field, spec in t.fields.items():
        if spec.default is not None and not spec.required:
            assert spec.choices is None or spec.default in spec.choices, f"{field}: default not among its choices"
    assert sorted(t.languages) == LANGUAGES and t.fields["language"].choices == LANGUAGES
    assert t.fields["language"].default == "en"
    low, high = SHOTS_PER_LANGUAGE
    for language in LANGUAGES:
        count = sum(e.fields.get("language") == language for e in t.examples)
        assert low <= count <= high, f"{name}: {count} worked examples in {language}"


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_decoding_defaults_build_valid_settings(name):
    t = template(name)
    assert "max_new_tokens" in t.decoding
    settings = GenerationSettings.build(t.decoding)
    assert settings.max_new_tokens == t.decoding["max_new_tokens"]


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_examples_resolve_against_fields(name):
    t = template(name)
    for example in t.examples:
        resolved = t.resolve_fields(example.fields)
        assert set(resolved) == set(t.fields)
        assert example.output.strip()
        if "language" in t.fields:  # so the renderer can pick the built-in shots by language
            assert "language" in example.fields, f"example {example.fields} should declare its language"


# ------------------------------------------------------------------ rendering


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_minimal_fields_render_as_chat(name):
    t = template(name)
    for language in languages_of(t):
        fields = minimal_fields(t) | ({"language": language} if language else {})
        rendered = build_prompt(t, fields, chat=True)
        messages = rendered.prompt
        assert isinstance(messages, list) and messages
        assert messages[0]["role"] == "system" and messages[0]["content"]
        last = messages[-1]
        assert last["role"] == "user"
        for field, spec in t.fields.items():
            if spec.required:
                for piece in shown(fields[field]):
                    assert piece in last["content"], f"{name}: chat prompt lacks {field}={piece!r}"
        assert rendered.shots_used == 0 and rendered.stop == []
        if language == "zh":
            assert CJK.search(last["content"]), f"{name}: the zh chat prompt should be in Chinese"


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_minimal_fields_render_as_completion(name):
    t = template(name)
    for language in languages_of(t):
        fields = minimal_fields(t) | ({"language": language} if language else {})
        rendered = build_prompt(t, fields, chat=False)
        text = rendered.prompt
        assert isinstance(text, str)
        for field, spec in t.fields.items():
            if spec.required:
                for piece in shown(fields[field]):
                    assert piece in text, f"{name}: completion prompt lacks {field}={piece!r}"
        shots = expected_builtin_shots(t, language, fields)
        assert shots and rendered.shots_used == len(shots)
        for shot in shots:
            assert shot.output.strip() in text
            assert shot.fields["language"] == (language or "en")
        # The query ends right where the model starts writing: "...\nArticle:" and nothing after it.
        last_line = text.splitlines()[-1]
        assert text == text.rstrip()
        assert last_line.endswith((":", "：")), f"{name}: the prompt should end at the output slot, got {last_line!r}"
        assert rendered.stop == t.completion.stop


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_every_template_renders_in_both_languages(name, language):
    """Every template takes `language`; in Chinese its instructions, its base-model prompt and its examples are
    Chinese, in English none of them is (beyond the field values given)."""
    t = template(name)
    fields = minimal_fields(t) | {"language": language}
    chat = build_prompt(t, fields, chat=True).prompt
    completion = build_prompt(t, fields, chat=False)
    bare = build_prompt(t, fields, chat=False, shots=[]).prompt
    instructions = [chat[0]["content"], chat[-1]["content"], bare]
    for text in instructions:
        for value in fields.values():  # the sample values are Latin-script: only the template's words are left
            for piece in shown(value):
                text = text.replace(piece, "")
        assert bool(CJK.search(text)) == (language == "zh"), f"{name} ({language}): {text[:80]!r}"
    assert completion.shots_used >= 1
    used = [e for e in t.examples if e.output.strip() in completion.prompt]
    assert len(used) == completion.shots_used
    assert all(e.fields["language"] == language for e in used)
    if language == "zh":
        assert all(CJK.search(e.output) for e in used)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_every_choice_renders(name):
    """Each allowed value of each choice field renders in both modes (catches lookup tables with gaps)."""
    t = template(name)
    base = minimal_fields(t)
    for field, spec in t.fields.items():
        for choice in spec.choices or []:
            for language in languages_of(t):
                fields = base | {field: choice}
                if language and field != "language":
                    fields["language"] = language
                chat = build_prompt(t, fields, chat=True).prompt[-1]["content"]
                completion = build_prompt(t, fields, chat=False, shots=[]).prompt
                assert chat.strip() and completion.strip()


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_optional_fields_render(name):
    """All optional fields set at once (the {% if %} branches for them) still render cleanly."""
    t = template(name)
    fields = {f: sample_value(name, f, s) for f, s in t.fields.items()}
    for f, s in t.fields.items():
        if s.type == "bool":
            fields[f] = not s.default if isinstance(s.default, bool) else True
    for chat in (True, False):
        prompt = build_prompt(t, fields, chat=chat, shots=[]).prompt
        text = prompt[-1]["content"] if chat else prompt
        assert "None" not in text and "[]" not in text


# ------------------------------------------------------------------ structured output


def test_structured_examples_match_schema():
    structured = {n: t for n, t in all_templates().items() if t.output_schema}
    assert "lesson-quiz" in structured
    for t in structured.values():
        jsonschema.Draft202012Validator.check_schema(t.output_schema)
        for example in t.examples:
            jsonschema.validate(json.loads(example.output), t.output_schema)


def test_lesson_quiz_schema_and_prompt():
    t = template("lesson-quiz")
    assert t.fields["topic"].required
    assert t.fields["num_questions"].type == "int" and t.fields["num_questions"].default == 3
    assert "level" in t.fields
    schema = t.output_schema
    good = {"questions": [{"question": "Q?", "options": ["a", "b"], "answer": "a", "explanation": "because"}]}
    jsonschema.validate(good, schema)
    bad_cases = [
        {"questions": [{"question": "Q?", "options": ["a"], "answer": "a", "explanation": "x"}]},  # 1 option
        {"questions": [{"question": "Q?", "options": list("abcdefg"), "answer": "a", "explanation": "x"}]},  # 7
        {"questions": [{"question": "Q?", "options": ["a", "b"], "explanation": "x"}]},  # no answer
        {"questions": [{"question": "Q?", "options": ["a", "b"], "answer": 1, "explanation": "x"}]},
        {"quiz": []},
    ]
    for bad in bad_cases:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    for example in t.examples:  # what the schema cannot say: the answer is one of the options
        data = json.loads(example.output)
        assert len(data["questions"]) == example.fields["num_questions"]
        for q in data["questions"]:
            assert q["answer"] in q["options"]
    message = build_prompt(t, {"topic": "volcanoes", "num_questions": "5"}, chat=True).prompt[-1]["content"]
    assert "ONLY JSON" in message and "5 questions" in message and "volcanoes" in message
    for key in ('"questions"', '"question"', '"options"', '"answer"', '"explanation"'):
        assert key in message


# ------------------------------------------------------------------ specific templates


def test_rewrite_modes():
    t = template("rewrite")
    assert t.fields["text"].required
    assert t.fields["mode"].choices == ["polish", "shorten", "expand", "tone", "grammar", "translate"]
    assert t.fields["mode"].default == "polish"
    assert t.fields["tone"].default == "friendly"
    messages = {}
    for mode in t.fields["mode"].choices:
        content = build_prompt(t, {"text": "zq text", "mode": mode, "tone": "solemn"}, chat=True).prompt[-1]["content"]
        assert "zq text" in content
        messages[mode] = content
    assert len(set(messages.values())) == 6, "each mode needs its own instruction"
    assert "solemn" in messages["tone"] and "solemn" not in messages["polish"]
    with pytest.raises(InkwellError, match="polish"):
        t.resolve_fields({"text": "x", "mode": "summarize"})


def test_social_post_platforms():
    choices = template("social-post").fields["platform"].choices
    for platform in ("x", "twitter", "linkedin", "instagram", "weibo"):
        assert platform in choices


def test_rewrite_translates_into_the_language_asked_for():
    t = template("rewrite")
    into_zh = build_prompt(t, {"text": "The shop opens at 9 am.", "mode": "translate", "language": "zh"}, chat=True)
    into_en = build_prompt(t, {"text": "商店上午九点开门。", "mode": "translate", "language": "en"}, chat=True)
    assert "翻译成中文" in into_zh.prompt[-1]["content"] and "The shop opens at 9 am." in into_zh.prompt[-1]["content"]
    assert "into English" in into_en.prompt[-1]["content"]
    base = build_prompt(t, {"text": "The shop opens at 9 am.", "mode": "translate", "language": "zh"}, chat=False)
    assert base.prompt.endswith("原文：The shop opens at 9 am.\n中文译文：")
    # the examples shown first are translations into Chinese (the same mode), never an English rewrite
    shown = [e for e in expected_builtin_shots(t, "zh", {"text": "The shop opens at 9 am.", "mode": "translate"})]
    assert shown[0].fields["mode"] == "translate" and all(e.fields["language"] == "zh" for e in shown)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_examples_pass_the_checks(name):
    """The worked examples are what the content checks ask of a piece (compose/checks.py): a model copies their
    shape, so an example that invents a number or misses a fact would teach it to."""
    from inkwell.compose.checks import check_output

    t = template(name)
    for example in t.examples:
        verdict = check_output(t, example.fields, example.output)
        failed = {c: verdict.results[c].detail for c in verdict.failed}
        assert not failed, (example.fields, failed)


@pytest.mark.parametrize("name", ["summary", "headline"])
def test_text_templates_take_required_text(name):
    assert template(name).fields["text"].required


def test_news_article_fields():
    fields = template("news-article").fields
    assert fields["facts"].required and not fields["headline"].required


# ------------------------------------------------------------------ field errors


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_unknown_field_names_the_closest(name):
    t = template(name)
    field = next(f for f, s in t.fields.items() if s.required)
    with pytest.raises(InkwellError) as info:
        t.resolve_fields(minimal_fields(t) | {field + "x": "value"})
    assert f"'{field}x'" in str(info.value)
    assert f"'{field}'" in str(info.value).split("fix:")[-1]


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_missing_required_field_is_named(name):
    t = template(name)
    for field, spec in t.fields.items():
        if not spec.required:
            continue
        given = {k: v for k, v in minimal_fields(t).items() if k != field}
        with pytest.raises(InkwellError) as info:
            t.resolve_fields(given)
        assert f"'{field}'" in str(info.value) and info.value.field == field


def test_bad_choice_and_type_are_reported():
    t = template("product-review")
    with pytest.raises(InkwellError, match="rating"):
        t.resolve_fields({"product": "kettle", "rating": "9"})
    with pytest.raises(InkwellError, match="type int"):
        t.resolve_fields({"product": "kettle", "words": "many"})


# ------------------------------------------------------------------ few-shot fitting


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_fewshot_examples_dropped_to_fit(name):
    t = template(name)
    language = languages_of(t)[0]
    fields = minimal_fields(t) | ({"language": language} if language else {})
    shots = expected_builtin_shots(t, language)
    assert shots, f"{name}: no built-in shots in the default language"
    full = build_prompt(t, fields, chat=False, count_tokens=count_chars, budget=10**9)
    assert full.shots_used == len(shots) and not full.warnings
    bare = count_chars(build_prompt(t, fields, chat=False, shots=[]).prompt)

    fitted = build_prompt(t, fields, chat=False, count_tokens=count_chars, budget=bare)
    assert fitted.shots_used == 0
    assert any("dropped" in w for w in fitted.warnings)
    assert count_chars(fitted.prompt) <= bare

    with pytest.raises(InkwellError, match="tokens"):
        build_prompt(t, fields, chat=False, count_tokens=count_chars, budget=bare - 1)


def test_fewshot_fitting_drops_from_the_end():
    t = template("product-description")
    fields = {"product": "kettle"}
    given = in_language(t, t.resolve_fields(fields))[:2]
    sizes = [count_chars(build_prompt(t, fields, chat=False, shots=given[:k]).prompt) for k in range(3)]
    fitted = build_prompt(t, fields, chat=False, shots=given, count_tokens=count_chars, budget=sizes[1])
    assert fitted.shots_used == 1
    assert given[0].output in fitted.prompt and given[1].output not in fitted.prompt
    assert fitted.warnings == [fitted.warnings[0]] and "dropped 1 of 2" in fitted.warnings[0]


def test_default_shots_are_fitted_least_similar_first():
    t = template("poem")
    fields = {"topic": "江边夏夜", "form": "jueju", "language": "zh"}
    chosen = expected_builtin_shots(t, "zh", fields)
    assert len(chosen) == 3
    sizes = [count_chars(build_prompt(t, fields, chat=False, shots=chosen[:k]).prompt) for k in range(4)]
    fitted = build_prompt(t, fields, chat=False, count_tokens=count_chars, budget=sizes[2])
    assert fitted.shots_used == 2 and "dropped 1 of 3" in fitted.warnings[0]
    assert chosen[0].output in fitted.prompt and chosen[2].output not in fitted.prompt


def test_fewshot_fitting_for_chat_messages():
    t = template("headline")
    fields = {"text": "The zoo welcomed a baby giraffe."}
    shots = [e for e in t.examples if e.fields["language"] == "en"]
    full = build_prompt(t, fields, chat=True, shots=shots)
    assert len(full.prompt) == 2 + 2 * len(shots)
    bare = count_chars(build_prompt(t, fields, chat=True, shots=[]).prompt)
    fitted = build_prompt(t, fields, chat=True, shots=shots, count_tokens=count_chars, budget=bare)
    assert fitted.shots_used == 0 and len(fitted.prompt) == 2 and fitted.warnings
    with pytest.raises(InkwellError):
        build_prompt(t, fields, chat=True, shots=shots, count_tokens=count_chars, budget=5)


# ------------------------------------------------------------------ user templates and shots files

USER_TEMPLATE = """\
name: {name}
description: {description}
fields:
  topic: {{type: str, required: true}}
system: You write taglines.
chat: "Write a tagline about {{{{ topic }}}}."
completion:
  example: "Topic: {{{{ topic }}}}\\nTagline: {{{{ output }}}}"
  stop: ["\\nTopic:"]
decoding: {{max_new_tokens: 24}}
examples:
  - fields: {{topic: tea}}
    output: "Steep, sip, smile."
"""


def write_user_template(home: Path, filename: str, name: str, description: str = "A user template.") -> Path:
    folder = home / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(USER_TEMPLATE.format(name=name, description=description), encoding="utf-8")
    return path


def test_user_template_is_listed(inkwell_home):
    path = write_user_template(inkwell_home, "tagline.yaml", "tagline")
    templates = all_templates()
    assert "tagline" in templates and set(REQUIRED_NAMES) <= set(templates)
    t = get_template("tagline")
    assert t.source == str(path)
    rendered = build_prompt(t, {"topic": "coffee"}, chat=False)
    assert rendered.prompt.endswith("Topic: coffee\nTagline:") and "Steep, sip, smile." in rendered.prompt


def test_user_template_overrides_builtin(inkwell_home):
    path = write_user_template(inkwell_home, "my-headline.yaml", "headline", "My own headline template.")
    t = get_template("headline")
    assert t.description == "My own headline template." and t.source == str(path)
    assert list(t.fields) == ["topic"]


def test_template_file_wins(tmp_path):
    path = write_user_template(tmp_path, "one-off.yaml", "one-off")
    assert get_template("headline", template_file=path).name == "one-off"
    with pytest.raises(InkwellError, match="not found"):
        get_template(template_file=tmp_path / "nope.yaml")


def test_broken_user_yaml_names_file_and_line(inkwell_home):
    folder = inkwell_home / "templates"
    folder.mkdir(parents=True)
    path = folder / "broken.yaml"
    path.write_text("name: broken\ndescription: x\n  bad: indent: here\nchat: hi\n", encoding="utf-8")
    with pytest.raises(InkwellError) as info:
        all_templates()
    assert f"{path}:3" in str(info.value)


def test_invalid_user_template_is_explained(inkwell_home):
    folder = inkwell_home / "templates"
    folder.mkdir(parents=True)
    (folder / "extra.yaml").write_text(
        USER_TEMPLATE.format(name="extra", description="x") + "colour: blue\n", encoding="utf-8"
    )
    with pytest.raises(InkwellError, match="colour"):
        all_templates()
    (folder / "extra.yaml").write_text(
        USER_TEMPLATE.format(name="extra", description="x").replace("{{ topic }}.", "{% if topic %}"), encoding="utf-8"
    )
    with pytest.raises(InkwellError, match="chat line 1"):
        all_templates()


def test_unknown_template_suggests_closest():
    with pytest.raises(InkwellError, match="headline"):
        get_template("headlines")


def test_shots_file(tmp_path):
    t = template("headline")
    path = tmp_path / "shots.jsonl"
    rows = [
        {"fields": {"text": "Rain is expected all weekend.", "language": "en"}, "output": "Wet weekend ahead"},
        {"text": "The bridge reopens on Monday.", "output": "Bridge reopens Monday"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    shots = load_shots(path, t)
    assert [s.output for s in shots] == ["Wet weekend ahead", "Bridge reopens Monday"]
    rendered = build_prompt(t, {"text": "Schools close early."}, chat=False, shots=shots)
    assert rendered.shots_used == 2 and "Bridge reopens Monday" in rendered.prompt
    assert t.examples[0].output not in rendered.prompt
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"txt": "x", "output": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(InkwellError, match=rf"{re.escape(str(path))}:2"):
        load_shots(path, t)
