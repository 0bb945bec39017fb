"""False positives of the default policy on real, benign text: the Debian `fortunes` quotations (about 14,700
entries) and the 100 Song-dynasty poems of `fortunes-zh` (song100).

Measured when this test was written (default policy, direction "input", which applies every category):
  * content categories (hate, sexual_minors, dangerous_instructions, harassment, self_harm, profanity,
    prompt_injection, invisible): 13 of 14,837 rows = 0.09 %; every one a flag except one block, which is a
    real slur in a Martin Amis quotation (fortunes/cookie) - the test allows 0.5 % and 0.05 % blocked;
  * personal data other than e-mail addresses (the e-mails are real Usenet signatures, true positives):
    4 rows = 0.03 % (two version numbers read as IPv4 addresses, one 11-digit number, one US-style phone) -
    the test allows 0.1 %;
  * song100: no findings at all.
"""

from __future__ import annotations

from collections import Counter

import pytest

from inkwell.data.sample import SAMPLES, find_files, sample_rows
from inkwell.errors import InkwellError
from inkwell.safety import load_policy

CONTENT = {
    "hate",
    "sexual_minors",
    "dangerous_instructions",
    "harassment",
    "self_harm",
    "profanity",
    "prompt_injection",
    "invisible",
}


def corpus(name: str) -> list[dict]:
    try:
        find_files(name)
    except InkwellError:
        pytest.skip(f"the '{name}' sample is not installed; install with apt-get install {SAMPLES[name].package}")
    return list(sample_rows(name))


def test_default_policy_false_positive_rate_on_fortunes_and_song100():
    rows = corpus("fortunes") + corpus("song100")
    assert len(rows) > 10_000
    policy = load_policy()
    content_hits, blocked, pii_hits = 0, 0, 0
    by_category: Counter = Counter()
    for row in rows:
        result = policy.moderate(row["text"], "input")
        by_category.update(result.categories)
        if CONTENT & set(result.categories):
            content_hits += 1
        if result.blocked:
            blocked += 1
        if any(f.category == "pii" and f.type != "email" for f in result.findings):
            pii_hits += 1
    n = len(rows)
    rates = {"content": content_hits / n, "blocked": blocked / n, "pii_not_email": pii_hits / n}
    print(f"\nbenign corpus: {n} rows, rates {rates}, categories {dict(by_category)}")
    assert rates["content"] <= 0.005, by_category
    assert rates["blocked"] <= 0.0005, by_category
    assert rates["pii_not_email"] <= 0.001, by_category


def test_song100_has_no_findings():
    policy = load_policy()
    flagged = [row["title"] for row in corpus("song100") if policy.moderate(row["text"], "output").findings]
    assert flagged == []


def test_no_chinese_text_in_fortunes_zh_is_blocked():
    """Every Chinese text Debian ships in fortunes-zh (song100, tang300, chinese: about 5,700 pieces) passes the
    default policy unblocked; measured: 0 blocked, findings only personal-data look-alikes in `chinese`."""
    rows = corpus("song100") + corpus("tang300") + corpus("chinese")
    assert len(rows) > 5000
    policy = load_policy()
    blocked = [row["text"][:40] for row in rows if policy.moderate(row["text"], "output").blocked]
    assert blocked == []
