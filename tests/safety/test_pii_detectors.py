"""PII detectors: every type catches real examples (valid checksums included) and rejects near-misses
(invalid checksums, wrong lengths, impossible dates); redaction round-trips lengths and placeholders."""

from __future__ import annotations

import json

import pytest

from inkwell.cli import main
from inkwell.safety.pii import PII_TYPES, cn_id_check_char, cn_id_valid, detect_pii, luhn_valid
from inkwell.safety.redact import mask, redact


def types_in(text: str) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in detect_pii(text)]


def valid_cn_id(first17: str) -> str:
    return first17 + cn_id_check_char(first17)


def luhn_complete(prefix: str) -> str:
    """Append the check digit that makes `prefix + d` pass Luhn."""
    return next(prefix + str(d) for d in range(10) if luhn_valid(prefix + str(d)))


ID = valid_cn_id("11010519491231002")  # the standard's worked example: ...002X
CARD = luhn_complete("622202123456789012")  # a 19-digit UnionPay-style number


def test_checksum_helpers():
    assert ID == "11010519491231002X" and cn_id_valid(ID)
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert len(CARD) == 19 and luhn_valid(CARD)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail jane.doe+news@example.co.uk today", "jane.doe+news@example.co.uk"),
        ("王小明 <wang_xm@qq.com>", "wang_xm@qq.com"),
    ],
)
def test_email_positive(text, expected):
    assert types_in(text) == [("email", expected)]


@pytest.mark.parametrize("text", ["user@localhost", "a@@example.com", "@example.com", "name at example dot com"])
def test_email_near_misses(text):
    assert [t for t, _ in types_in(text) if t == "email"] == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("call 13812345678 now", "13812345678"),
        ("手机：138-1234-5678。", "138-1234-5678"),
        ("tel +86 139 1234 5678", "+86 139 1234 5678"),
        ("London +44 20 7946 0958", "+44 20 7946 0958"),
        ("SF office +1 (415) 555-2671", "+1 (415) 555-2671"),
        ("US (415) 555-2671", "(415) 555-2671"),
        ("full-width １３８１２３４５６７８", "１３８１２３４５６７８"),
    ],
)
def test_phone_positive(text, expected):
    assert types_in(text) == [("phone", expected)]


@pytest.mark.parametrize(
    "text",
    [
        "12812345678",  # mainland mobiles start 13-19
        "1381234567",  # 10 digits
        "138123456789",  # 12 digits
        "+12 34",  # too short for E.164
        "order 2023-12-31",
    ],
)
def test_phone_near_misses(text):
    assert [t for t, _ in types_in(text) if t == "phone"] == []


def test_cn_id_positive_including_x_and_lowercase():
    other = valid_cn_id("44030419900307123")
    assert types_in(f"身份证号 {ID}，备用 {other}") == [("cn_id", ID), ("cn_id", other)]
    assert types_in(f"id {ID.lower()}") == [("cn_id", ID.lower())]


@pytest.mark.parametrize(
    "number",
    [
        ID[:-1] + "1",  # wrong check character
        valid_cn_id("44030419900307123")[:-1] + ("0" if valid_cn_id("44030419900307123")[-1] != "0" else "1"),
        valid_cn_id("11010519490231002"),  # 31 February: checksum right, date impossible
        valid_cn_id("99010519491231002"),  # no province 99
        ID[:-2],  # 16 characters
    ],
)
def test_cn_id_near_misses(number):
    assert [t for t, _ in types_in(f"号码 {number} 结束") if t == "cn_id"] == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
        ("mc 5500-0000-0000-0004", "5500-0000-0000-0004"),
        ("amex 3782 822463 10005", "3782 822463 10005"),
        (f"银行卡{CARD}", CARD),
    ],
)
def test_bank_card_positive(text, expected):
    assert types_in(text) == [("bank_card", expected)]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # Luhn fails
        "5500-0000-0000-0005",
        CARD[:-1] + str((int(CARD[-1]) + 1) % 10),
        "ts 9111111111111119",  # Luhn-valid but no issuer starts with 9
        "4111 1111 1111",  # 12 digits
    ],
)
def test_bank_card_near_misses(text):
    assert [t for t, _ in types_in(text) if t == "bank_card"] == []


def test_id_number_is_not_also_a_card_and_url_password_is_not_an_email():
    assert types_in(f"{ID}") == [("cn_id", ID)]
    url = "postgres://admin:s3cret@db.example.com:5432/app"
    assert types_in(f"DSN={url}.") == [("credential_url", url)]


@pytest.mark.parametrize(
    "text, kind, expected",
    [
        ("from 192.168.1.20 at noon", "ipv4", "192.168.1.20"),
        ("ping 8.8.8.8.", "ipv4", "8.8.8.8"),
        ("host 2001:db8::ff00:42:8329 up", "ipv6", "2001:db8::ff00:42:8329"),
        ("link-local fe80::1", "ipv6", "fe80::1"),
    ],
)
def test_ip_positive(text, kind, expected):
    assert types_in(text) == [(kind, expected)]


@pytest.mark.parametrize("text", ["256.1.1.1", "1.2.3", "10.0.0.1.5", "at 12:30:45 sharp", "a:b", "std::vector"])
def test_ip_near_misses(text):
    assert [t for t, _ in types_in(text) if t in ("ipv4", "ipv6")] == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("clone https://bob:hunter2@git.example.com/repo.git", "https://bob:hunter2@git.example.com/repo.git"),
        (
            "cb https://api.example.com/v1?user=1&access_token=abc123def456 ok",
            "https://api.example.com/v1?user=1&access_token=abc123def456",
        ),
    ],
)
def test_credential_url_positive(text, expected):
    assert types_in(text) == [("credential_url", expected)]


@pytest.mark.parametrize(
    "text", ["see https://example.com/path?q=1", "ftp://ftp.example.com/pub", "https://user@example.com/"]
)
def test_credential_url_near_misses(text):
    assert [t for t, _ in types_in(text) if t == "credential_url"] == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("OPENAI_API_KEY=sk-proj-abcdEFGH1234ijklMNOP5678qrst", "sk-proj-abcdEFGH1234ijklMNOP5678qrst"),
        ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("token ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9),
        ('api_key = "a1b2c3d4e5f6g7h8i9"', "a1b2c3d4e5f6g7h8i9"),
        ("hf_" + "x7" * 17, "hf_" + "x7" * 17),
    ],
)
def test_api_key_positive(text, expected):
    assert types_in(text) == [("api_key", expected)]


@pytest.mark.parametrize(
    "text",
    [
        "sk-short",
        "the AKIA prefix",
        "password = correcthorsebatterystaple",
        "token: ${GITHUB_TOKEN}",
        "ghp_tooShort1",
    ],
)
def test_api_key_near_misses(text):
    assert [t for t, _ in types_in(text) if t == "api_key"] == []


SAMPLE = f"Mail a.b@example.com, call 13812345678, ID {ID}, card 4111-1111-1111-1111, ip 10.0.0.7."


def test_placeholder_redaction_round_trips():
    found = detect_pii(SAMPLE)
    assert [m.type for m in found] == ["email", "phone", "cn_id", "bank_card", "ipv4"]
    result = redact(SAMPLE, found)
    assert result.text == "Mail [EMAIL], call [PHONE], ID [CN_ID], card [BANK_CARD], ip [IPV4]."
    for rep, match in zip(result.replacements, found):
        assert result.text[rep.new_start : rep.new_end] == rep.replacement == f"[{match.type.upper()}]"
        assert SAMPLE[rep.start : rep.end] == rep.original == match.text
    assert result.restore() == SAMPLE


def test_mask_keeps_length_and_shape():
    found = detect_pii(SAMPLE)
    result = redact(SAMPLE, found, "mask")
    assert len(result.text) == len(SAMPLE)
    assert "*.*@*******.***" in result.text and "****-****-****-****" in result.text
    for rep in result.replacements:
        assert len(rep.replacement) == len(rep.original) and set(rep.replacement) <= set("*-.@ ")
    assert result.restore() == SAMPLE
    assert mask("138 1234 5678") == "*** **** ****"


def test_salted_hash_is_stable_per_salt():
    text = "a.b@example.com wrote to a.b@example.com and c@example.com"
    found = detect_pii(text)
    one = redact(text, found, "hash", salt="s1").text.split()
    assert one[0] == one[3] != one[5] and one[0].startswith("[EMAIL:")
    assert redact(text, found, "hash", salt="s2").text.split()[0] != one[0]
    assert redact(text, found, "hash", salt="s1").restore() == text


def test_hash_without_salt_uses_a_kept_salt(inkwell_home):
    text = "x a.b@example.com"
    first = redact(text, detect_pii(text), "hash").text
    assert (inkwell_home / "redact-salt").exists()
    assert redact(text, detect_pii(text), "hash").text == first


def test_all_types_listed():
    assert set(PII_TYPES) == {"email", "phone", "cn_id", "bank_card", "ipv4", "ipv6", "credential_url", "api_key"}


# ------------------------------------------------------------------ inkwell data redact


def test_data_redact_cli_counts_and_rows(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "1", "text": SAMPLE},
        {
            "id": "2",
            "messages": [{"role": "user", "content": "my mail is x@y.org"}, {"role": "assistant", "content": "ok"}],
        },
        {"id": "3", "instruction": "Summarise", "input": "call +44 20 7946 0958", "output": "A phone number."},
    ]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "{broken\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    main(["data", "redact", str(src), "--out", str(out), "--json", "--no-progress"])
    captured = capsys.readouterr()
    counts = json.loads(captured.out)
    assert counts == {
        "api_key": 0,
        "credential_url": 0,
        "email": 2,
        "cn_id": 1,
        "bank_card": 1,
        "phone": 2,
        "ipv6": 0,
        "ipv4": 1,
    }
    assert f"{src}:4" in captured.err  # the broken line is reported, not copied
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in written] == ["1", "2", "3"]
    assert written[0]["text"] == "Mail [EMAIL], call [PHONE], ID [CN_ID], card [BANK_CARD], ip [IPV4]."
    assert written[1]["messages"][0]["content"] == "my mail is [EMAIL]"
    assert written[2]["input"] == "call [PHONE]" and written[2]["instruction"] == "Summarise"

    main(["data", "redact", str(src), "--out", str(out), "--mode", "mask", "--type", "email", "--no-progress"])
    table = capsys.readouterr().out
    assert table.split() == ["email", "2"]
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert len(first["text"]) == len(SAMPLE) and "13812345678" in first["text"]  # only e-mails masked
