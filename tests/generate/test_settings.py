"""GenerationSettings: every out-of-range value is an InkwellError naming the field; build() merges layers."""

import pytest

from inkwell.errors import InkwellError
from inkwell.generate.settings import GenerationSettings


def test_defaults_are_valid():
    s = GenerationSettings()
    assert s.max_new_tokens >= 1 and s.num_beams == 1 and s.stop == [] and s.seed is None
    assert not s.greedy
    assert GenerationSettings(temperature=0).greedy


@pytest.mark.parametrize(
    "field, kwargs",
    [
        ("temperature", {"temperature": -0.1}),
        ("temperature", {"temperature": 5.5}),
        ("top_p", {"top_p": 0}),
        ("top_p", {"top_p": 0.0}),
        ("top_p", {"top_p": 1.01}),
        ("top_p", {"top_p": -0.5}),
        ("top_k", {"top_k": -1}),
        ("top_k", {"top_k": 2.5}),
        ("max_new_tokens", {"max_new_tokens": 0}),
        ("max_new_tokens", {"max_new_tokens": -3}),
        ("max_new_tokens", {"max_new_tokens": 1.5}),
        ("min_new_tokens", {"min_new_tokens": 20, "max_new_tokens": 10}),
        ("min_new_tokens", {"min_new_tokens": -1}),
        ("repetition_penalty", {"repetition_penalty": 0}),
        ("repetition_penalty", {"repetition_penalty": -1.0}),
        ("repetition_penalty", {"repetition_penalty": 11}),
        ("no_repeat_ngram_size", {"no_repeat_ngram_size": -1}),
        ("num_beams", {"num_beams": 0}),
        ("num_beams", {"num_beams": 17}),
        ("num_return_sequences", {"num_return_sequences": 0}),
        ("num_return_sequences", {"num_return_sequences": 65}),
        ("num_return_sequences", {"num_beams": 2, "num_return_sequences": 3}),
        ("stop", {"stop": [""]}),
        ("stop", {"stop": ["ok", 3]}),
        ("stop", {"stop": "###"}),
        ("stop", {"stop": None}),
        ("seed", {"seed": -1}),
        ("seed", {"seed": 1.5}),
        ("seed", {"seed": "42"}),
    ],
)
def test_out_of_range_values_raise_naming_the_field(field, kwargs):
    with pytest.raises(InkwellError) as info:
        GenerationSettings(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)
    assert info.value.hint  # says what to do


def test_validate_catches_changes_after_construction():
    s = GenerationSettings()
    s.temperature = -1
    with pytest.raises(InkwellError, match="temperature"):
        s.validate()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0},
        {"temperature": 5},
        {"top_p": 1.0},
        {"top_k": 0},
        {"max_new_tokens": 1, "min_new_tokens": 1},
        {"num_beams": 4, "num_return_sequences": 4},
        {"stop": ["\n\n", "###"]},
        {"seed": 0},
        {"repetition_penalty": 1.0},
    ],
)
def test_boundary_values_are_accepted(kwargs):
    s = GenerationSettings(**kwargs)
    for key, value in kwargs.items():
        assert getattr(s, key) == value


def test_build_merges_layers_left_to_right_and_skips_none():
    template = {"max_new_tokens": 120, "temperature": 0.8, "top_p": 0.95}
    user = {"temperature": 0.2, "top_p": None, "seed": 7}
    s = GenerationSettings.build(template, None, user)
    assert s.max_new_tokens == 120
    assert s.temperature == 0.2
    assert s.top_p == 0.95  # None does not override
    assert s.seed == 7
    assert s.top_k == GenerationSettings().top_k  # untouched default


def test_build_copies_stop_lists():
    stops = ["###"]
    s = GenerationSettings.build({"stop": stops})
    s.stop.append("more")
    assert stops == ["###"]


def test_build_treats_a_single_stop_string_as_one_sequence():
    # a YAML `stop: "###"` must not become three one-character stops
    assert GenerationSettings.build({"stop": "###"}).stop == ["###"]


def test_build_validates_merged_values():
    with pytest.raises(InkwellError) as info:
        GenerationSettings.build({"max_new_tokens": 10}, {"min_new_tokens": 11})
    assert info.value.field == "min_new_tokens"


def test_build_rejects_unknown_key_with_did_you_mean():
    with pytest.raises(InkwellError) as info:
        GenerationSettings.build({"temprature": 0.5})
    assert info.value.field == "temprature"
    assert "temprature" in str(info.value)
    assert "did you mean 'temperature'" in str(info.value)


def test_build_unknown_key_without_close_match_lists_valid_settings():
    with pytest.raises(InkwellError) as info:
        GenerationSettings.build({"zzzzzz": 1})
    assert "max_new_tokens" in str(info.value) and "seed" in str(info.value)


def test_to_dict_and_names_round_trip():
    s = GenerationSettings(temperature=0.3, stop=["x"], seed=3)
    data = s.to_dict()
    assert set(data) == set(GenerationSettings.names())
    assert GenerationSettings(**data) == s


def test_build_rejects_a_non_list_stop_as_inkwell_error():
    with pytest.raises(InkwellError) as info:
        GenerationSettings.build({"stop": 5})
    assert info.value.field == "stop"
