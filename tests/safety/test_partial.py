"""Where a streamed text's end is still undecided (inkwell/safety/partial.py)."""

from __future__ import annotations

import re

from inkwell.safety.partial import FALLBACK_HOLD, open_start

PHONE = re.compile(r"(?<![\w+])\+[1-9](?:[ .\-()]{0,2}\d){7,14}(?!\d)")


def test_a_match_that_runs_into_the_end_opens_there():
    text = "Call me on +1 555 01"
    assert open_start([PHONE], text) == text.index("+1")
    assert open_start([PHONE], "Call me tomorrow. ") is None  # nothing could still grow into a phone number


def test_a_complete_match_at_the_end_may_still_grow():
    text = "Call +1 555 013 4567"
    assert open_start([PHONE], text) == text.index("+1")
    assert open_start([PHONE], text + " today") is None


def test_flags_carry_over_between_the_two_regex_modules():
    ascii_word = re.compile(r"\bsecret\w*", re.IGNORECASE | re.ASCII)
    assert open_start([ascii_word], "the SECRE") == 4
    assert open_start([ascii_word], "the secretΩ") is None  # ASCII: Ω is not a word character, the match ended


def test_a_pattern_the_regex_package_cannot_compile_holds_a_fixed_tail():
    class Odd:  # stands in for a policy pattern whose syntax only `re` accepts
        pattern, flags = "(?P<a>x)(?P=a", 0

    text = "x" * 100
    assert open_start([Odd()], text) == 100 - FALLBACK_HOLD
