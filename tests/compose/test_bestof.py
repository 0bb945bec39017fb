"""Best-of-n (compose/bestof.py): the order candidates are chosen in, on a fake engine that implements the engine
contract with canned texts (checks first, then likelihood, then written order), the scores it leaves on the kept
ones, structured output, the settings it asks for, and the likelihood itself on the tiny torch model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from inkwell.compose import bestof
from inkwell.compose.bestof import BestOf, best_of_settings, check_best_of, mean_logprob
from inkwell.errors import InkwellError
from inkwell.generate.content import write
from inkwell.generate.contract import Capabilities, GenerationEngine
from inkwell.generate.rows import GenerationResult
from inkwell.prompts.library import get_template

NEWS = (
    "Main Street's bakery reopened on Monday after three weeks of flood repairs, owner Maria Lopez said, and 40 "
    "regulars queued before 7 am for the first loaves."
)
PASSES = "Main Street bakery reopens after flood repairs"  # every check passes
TOO_LONG = "Main Street bakery reopens after three weeks of flood repairs as forty loyal regulars queue early"
INVENTED = "Bakery in the town of Ashwood reopens after the flood"  # misses the facts, invents a name
ALSO_PASSES = "Maria Lopez reopens her Main Street bakery"


class FakeEngine:
    """The engine contract over canned texts: sample i of every prompt is texts[i]. With `scoring`, window_logits
    makes each text as likely as `likelihood[text]` says (via mean_logprob, patched in the tests)."""

    def __init__(self, texts: list[str], scoring: bool = False):
        self.texts = texts
        self.loaded = SimpleNamespace(name="fake", adapter=None, chat=True, context_length=4096, tokenizer=None)
        self.batch_size = 8
        self.capabilities = Capabilities(scoring=scoring)
        self.calls: list[int] = []
        self.later: list[str] | None = None  # texts of every call after the first

    def render(self, prompt) -> str:
        return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)

    def encode(self, prompt) -> list[int]:
        return [ord(c) % 97 for c in self.render(prompt)]

    def count_tokens(self, prompt) -> int:
        return len(self.encode(prompt))

    def generate(self, prompts, settings=None, on_delta=None):
        count = settings.num_return_sequences
        texts = self.later if self.calls and self.later is not None else self.texts
        self.calls.append(count)
        return [
            GenerationResult(texts[i % len(texts)], 10, 8, "stop", 0.01, p, i, settings.seed)
            for p in range(len(prompts))
            for i in range(count)
        ]

    def close(self) -> None:
        pass


def test_the_fake_engine_keeps_the_contract():
    assert isinstance(FakeEngine(["x"]), GenerationEngine)


def headline():
    return get_template("headline")


def test_the_candidate_passing_most_checks_is_kept():
    engine = FakeEngine([INVENTED, TOO_LONG, PASSES])
    overrides, choose = best_of_settings({}, 3)
    (item,) = write(engine, headline(), {"text": NEWS}, overrides=overrides, choose=choose)
    assert item.text == PASSES and engine.calls == [3]  # the three decoded in one call
    scores = item.extra["best_of"]
    assert (scores["n"], scores["rank"], scores["index"], scores["score"]) == (3, 1, 2, 1.0)
    assert scores["checks"]["facts"] is True and scores["checks"]["json"] is None
    listed = scores["candidates"]
    assert [c["index"] for c in listed] == [0, 1, 2]  # every candidate, in written order
    assert listed[0]["score"] < listed[1]["score"] < listed[2]["score"] == 1.0
    assert "invented" in listed[0]["failed"] and listed[1]["failed"] == ["length"]


def test_several_versions_keep_the_best_ones_in_rank_order():
    engine = FakeEngine([INVENTED, TOO_LONG, PASSES])
    overrides, choose = best_of_settings({"num_return_sequences": 2}, 3)
    assert overrides["num_return_sequences"] == 6
    items = write(engine, headline(), {"text": NEWS}, overrides=overrides, choose=choose)
    assert [i.text for i in items] == [PASSES, PASSES]  # samples 2 and 5 are the same text
    assert [i.extra["best_of"]["rank"] for i in items] == [1, 2]


def test_ties_are_broken_by_likelihood_where_the_engine_scores(monkeypatch):
    likely = {PASSES: -2.5, ALSO_PASSES: -0.8, INVENTED: -0.1}
    scored: list[str] = []

    def fake_logprob(engine, prompt_ids, text):
        scored.append(text)
        return likely[text]

    monkeypatch.setattr(bestof, "mean_logprob", fake_logprob)
    engine = FakeEngine([PASSES, INVENTED, ALSO_PASSES], scoring=True)
    overrides, choose = best_of_settings({}, 3)
    (item,) = write(engine, headline(), {"text": NEWS}, overrides=overrides, choose=choose)
    assert item.text == ALSO_PASSES and item.extra["best_of"]["likelihood"] == -0.8
    assert sorted(scored) == sorted([PASSES, ALSO_PASSES])  # only the candidates tied at the top are scored
    assert [c["likelihood"] for c in item.extra["best_of"]["candidates"]] == [-2.5, None, -0.8]


def test_without_scoring_ties_keep_their_written_order(monkeypatch):
    monkeypatch.setattr(bestof, "mean_logprob", lambda *a: pytest.fail("the engine cannot score"))
    engine = FakeEngine([INVENTED, PASSES, ALSO_PASSES], scoring=False)
    (item,) = write(engine, headline(), {"text": NEWS}, overrides={"num_return_sequences": 3}, choose=BestOf(3))
    assert item.text == PASSES and item.extra["best_of"]["likelihood"] is None


def test_a_clear_winner_needs_no_likelihood(monkeypatch):
    monkeypatch.setattr(bestof, "mean_logprob", lambda *a: pytest.fail("nothing to break a tie between"))
    engine = FakeEngine([INVENTED, PASSES, TOO_LONG], scoring=True)
    (item,) = write(engine, headline(), {"text": NEWS}, overrides={"num_return_sequences": 3}, choose=BestOf(3))
    assert item.text == PASSES


QUIZ = json.dumps(
    {
        "questions": [
            {
                "question": "What is evaporation in the water cycle?",
                "options": ["Water turning to vapour", "Rain", "Snow", "Ice"],
                "answer": "Water turning to vapour",
                "explanation": "Heat turns water into vapour.",
            }
        ]
    }
)


def test_a_structured_template_keeps_the_valid_json_without_retrying():
    engine = FakeEngine(["Here is your quiz: Q1 What is rain?", QUIZ])
    template = get_template("lesson-quiz")
    fields = {"topic": "the water cycle", "num_questions": 1}
    (item,) = write(engine, template, fields, overrides={"num_return_sequences": 2}, choose=BestOf(2), json_retries=2)
    assert item.data["questions"][0]["answer"] == "Water turning to vapour"
    assert item.attempts == 1 and engine.calls == [2]
    assert item.extra["best_of"]["checks"]["json"] is True


def test_when_no_candidate_is_valid_json_the_kept_one_is_retried_and_keeps_its_scores():
    engine = FakeEngine(["Q1 What is rain?", "Q1 What is snow?"])
    engine.later = [QUIZ]  # what the retry answers
    template = get_template("lesson-quiz")
    fields = {"topic": "the water cycle", "num_questions": 1}
    (item,) = write(engine, template, fields, overrides={"num_return_sequences": 2}, choose=BestOf(2), json_retries=1)
    assert engine.calls == [2, 1] and item.attempts == 2 and item.text == QUIZ
    assert item.extra["best_of"]["checks"]["json"] is False  # the scores of the candidate as it was chosen
    engine = FakeEngine(["Q1 What is rain?", "Q1 What is snow?"])
    with pytest.raises(InkwellError, match="after 2 attempts"):
        write(engine, template, fields, overrides={"num_return_sequences": 2}, choose=BestOf(2), json_retries=1)


def test_best_of_settings_and_their_limits():
    assert best_of_settings({"temperature": 0.7}, 1) == ({"temperature": 0.7}, None)
    overrides, choose = best_of_settings({"temperature": 0.7, "num_return_sequences": 3}, 4)
    assert overrides == {"temperature": 0.7, "num_return_sequences": 12} and choose.n == 4
    for bad in (0, 17, True, 2.5):
        with pytest.raises(InkwellError, match="best-of must be a whole number between 1 and 16"):
            check_best_of(bad)
    with pytest.raises(InkwellError, match="at most 64") as info:
        best_of_settings({"num_return_sequences": 5}, 16)
    assert info.value.field == "best-of"
    with pytest.raises(InkwellError, match="temperature 0"):
        best_of_settings({"temperature": 0}, 4)


def test_mean_logprob_is_the_models_likelihood_of_the_text(tiny_engine, one_torch_thread):
    from inkwell.evaluate.perplexity import sequence_nll

    prompt = [{"role": "user", "content": "Write a headline about a bakery."}]
    prompt_ids = tiny_engine.encode(prompt)
    text = "Bakery reopens on Main Street"
    target = tiny_engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    nll, count = sequence_nll(tiny_engine, prompt_ids + target, len(prompt_ids))
    assert mean_logprob(tiny_engine, prompt_ids, text) == pytest.approx(-nll / count, abs=1e-4)
    assert mean_logprob(tiny_engine, prompt_ids, "") is None


def test_best_of_on_the_tiny_model_scores_ties_and_records_them(tiny_engine, one_torch_thread):
    overrides, choose = best_of_settings({"max_new_tokens": 6, "seed": 1}, 3)
    items = write(tiny_engine, headline(), {"text": NEWS}, overrides=overrides, choose=choose)
    (item,) = items
    scores = item.extra["best_of"]
    assert scores["n"] == 3 and len(scores["candidates"]) == 3
    best = max(c["score"] for c in scores["candidates"])
    assert scores["score"] == best
    tied = [c for c in scores["candidates"] if c["score"] == best]
    if len(tied) > 1:  # the tiny model's random text: ties are likely, and they are scored
        assert all(c["likelihood"] is not None for c in tied)
        assert scores["likelihood"] == max(c["likelihood"] for c in tied)
