"""Personal data and secrets detectors, shared by `inkwell data redact`, `stats` and moderation.

Every detector is a regular expression that proposes candidates plus, where the format has one, a validation
step that rejects near-misses: Chinese resident ID numbers must carry a correct ISO 7064 MOD 11-2 check
character, a real birth date and a real province code; bank card numbers must pass the Luhn check; IP
addresses must parse with `ipaddress`. When candidates overlap, the more specific type wins (an 18-digit ID
number is not also reported as a card number; the password in `postgres://u:pw@host` is not also an e-mail).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PII_TYPES: tuple[str, ...] = ("api_key", "credential_url", "email", "cn_id", "bank_card", "phone", "ipv6", "ipv4")
"""All types, in the order that wins overlaps."""


@dataclass(frozen=True)
class PiiMatch:
    type: str
    start: int
    end: int
    text: str


# ------------------------------------------------------------------ validators (hand-written: each is a few
# lines of well-known arithmetic, and no maintained library covers Chinese ID numbers; python-stdnum would
# add a dependency for two functions).


def luhn_valid(digits: str) -> bool:
    """The Luhn mod-10 check used by every payment card number."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# Province-level codes (GB/T 2260 first two digits), including Taiwan, Hong Kong, Macau and 91 (overseas).
_ID_PROVINCES = {
    11,
    12,
    13,
    14,
    15,
    21,
    22,
    23,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    41,
    42,
    43,
    44,
    45,
    46,
    50,
    51,
    52,
    53,
    54,
    61,
    62,
    63,
    64,
    65,
    71,
    81,
    82,
    83,
    91,
}


def cn_id_check_char(first17: str) -> str:
    """The 18th character of a resident ID number (GB 11643-1999, ISO 7064 MOD 11-2)."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS)) % 11]


def cn_id_valid(number: str) -> bool:
    number = number.upper()
    if len(number) != 18 or not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return False
    if int(number[:2]) not in _ID_PROVINCES:
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not datetime.date(1900, 1, 1) <= born <= datetime.date.today():
        return False
    return cn_id_check_char(number[:17]) == number[17]


def _digits(text: str) -> str:
    # \d also matches full-width digits (a cheap evasion); int() reads them, so normalise for the checks.
    return "".join(str(int(c)) for c in text if c.isdecimal())


# ------------------------------------------------------------------ detectors

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9_][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_CN_MOBILE = re.compile(r"(?<![\d+])(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_INTL_PHONE = re.compile(r"(?<![\w+])\+[1-9](?:[ .\-()]{0,2}\d){7,14}(?!\d)")
_NANP_PHONE = re.compile(r"(?<![\w+-])(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-])")
_CN_ID = re.compile(
    r"(?<![\dA-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\dA-Za-z])"
)
# Card numbers: 13-19 digits written solid, in groups of four (one separator style) or Amex's 4-6-5.
_CARD = re.compile(r"(?<![\d-])(?:\d{13,19}|\d{4}(?:([ -])\d{4}){2}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{5})(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\w:]|\.\d)"
)
_CRED_URL = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/?#@]+:[^\s/?#@]+@[^\s]+"
    r"|\bhttps?://[^\s]*?[?&](?:access_token|api_key|apikey|token|password|passwd|secret|client_secret|sig|signature)=[^&\s]{6,}[^\s]*",
    re.I,
)
# Well-known key formats (OpenAI/Anthropic, AWS, GitHub, Slack, Google, Hugging Face, Stripe, GitLab, JWT)
# and PEM private keys. The word-start check is shared so the engine tests one class per position.
_API_KEYS = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY-----"
    r"|\b(?:sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|gh[pousr]_[A-Za-z0-9]{36,}\b|github_pat_[A-Za-z0-9_]{40,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|[spr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)
# `api_key = "..."`-style assignments: only the value is the secret.
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b(?:api[_-]?key|secret[_-]?key|access[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|"
    r"private[_-]?key|password|passwd|secret|token)\b[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_\-+/=.]{16,})"
)
_TRAILING = ".,;:!?)]}'\""


def _emails(text: str) -> Iterable[PiiMatch]:
    for m in _EMAIL.finditer(text):
        yield PiiMatch("email", m.start(), m.end(), m.group())


def _phones(text: str) -> Iterable[PiiMatch]:
    for m in _CN_MOBILE.finditer(text):
        yield PiiMatch("phone", m.start(), m.end(), m.group())
    for m in _INTL_PHONE.finditer(text):
        candidate = m.group()
        if candidate.count("(") != candidate.count(")") or not 8 <= len(_digits(candidate)) <= 15:
            continue
        yield PiiMatch("phone", m.start(), m.end(), candidate)
    for m in _NANP_PHONE.finditer(text):
        yield PiiMatch("phone", m.start(), m.end(), m.group())


def _cn_ids(text: str) -> Iterable[PiiMatch]:
    for m in _CN_ID.finditer(text):
        if cn_id_valid(_digits(m.group()[:17]) + m.group()[17]):
            yield PiiMatch("cn_id", m.start(), m.end(), m.group())


def _cards(text: str) -> Iterable[PiiMatch]:
    for m in _CARD.finditer(text):
        digits = _digits(m.group())
        # Issuer prefixes start with 2-6 (Mastercard 2/5, Amex/JCB/Diners 3, Visa 4, Discover/UnionPay 6); the
        # Luhn check alone lets one random number in ten through, so this keeps timestamps and order numbers out.
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            yield PiiMatch("bank_card", m.start(), m.end(), m.group())


def _ipv4(text: str) -> Iterable[PiiMatch]:
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield PiiMatch("ipv4", m.start(), m.end(), m.group())


def _ipv6(text: str) -> Iterable[PiiMatch]:
    for m in _IPV6.finditer(text):
        candidate = m.group()
        if not re.search(r"[0-9A-Fa-f]", candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield PiiMatch("ipv6", m.start(), m.end(), candidate)


def _credential_urls(text: str) -> Iterable[PiiMatch]:
    for m in _CRED_URL.finditer(text):
        value = m.group().rstrip(_TRAILING)
        yield PiiMatch("credential_url", m.start(), m.start() + len(value), value)


def _api_keys(text: str) -> Iterable[PiiMatch]:
    for m in _API_KEYS.finditer(text):
        yield PiiMatch("api_key", m.start(), m.end(), m.group())
    for m in _ASSIGNED_SECRET.finditer(text):
        value = m.group(1)
        # A secret mixes letters and digits; `password = correcthorsebattery` or `token: ${TOKEN}` do not.
        if re.search(r"[A-Za-z]", value) and re.search(r"\d", value):
            yield PiiMatch("api_key", m.start(1), m.end(1), value)


DETECTORS: dict[str, Callable[[str], Iterable[PiiMatch]]] = {
    "api_key": _api_keys,
    "credential_url": _credential_urls,
    "email": _emails,
    "cn_id": _cn_ids,
    "bank_card": _cards,
    "phone": _phones,
    "ipv6": _ipv6,
    "ipv4": _ipv4,
}

# Cheap pre-checks: most texts hold no '@', '://', or digit runs, so most detectors can skip their regex.
_DIGITS3 = re.compile(r"\d\d\d")
_DOTTED_DIGIT = re.compile(r"\d\.\d")
_KEY_HINT = re.compile(r"sk-|AKIA|ASIA|gh[pousr]_|github_pat_|xox|AIza|hf_|_live_|_test_|glpat-|eyJ|PRIVATE KEY")
_KEY_WORDS = ("key", "token", "secret", "passw")
_NEEDS: dict[str, Callable[[str], bool]] = {
    "email": lambda t: "@" in t,
    "credential_url": lambda t: "://" in t,
    "ipv6": lambda t: "::" in t or t.count(":") >= 2,
    "ipv4": lambda t: _DOTTED_DIGIT.search(t) is not None,
    "api_key": lambda t: _KEY_HINT.search(t) is not None or any(w in t.lower() for w in _KEY_WORDS),
    "cn_id": lambda t: _DIGITS3.search(t) is not None,
    "bank_card": lambda t: _DIGITS3.search(t) is not None,
    "phone": lambda t: _DIGITS3.search(t) is not None,
}


# The patterns behind each type, for `open_pii_start` (validation steps cannot run on half a candidate).
PATTERNS: dict[str, tuple[re.Pattern, ...]] = {
    "api_key": (_API_KEYS, _ASSIGNED_SECRET),
    "credential_url": (_CRED_URL,),
    "email": (_EMAIL,),
    "cn_id": (_CN_ID,),
    "bank_card": (_CARD,),
    "phone": (_CN_MOBILE, _INTL_PHONE, _NANP_PHONE),
    "ipv6": (_IPV6,),
    "ipv4": (_IPV4,),
}


def open_pii_start(text: str, types: Iterable[str] | None = None) -> int | None:
    """Where personal data may still be growing at the end of an unfinished text (`inkwell.safety.partial`)."""
    from inkwell.safety.partial import open_start

    text = text if text.isascii() else text.translate(_FULLWIDTH)  # one character for one: offsets hold
    return open_start([p for name in check_types(types) for p in PATTERNS[name]], text)


def check_types(types: Iterable[str] | None) -> list[str]:
    from inkwell.errors import InkwellError

    chosen = list(types) if types else list(PII_TYPES)
    unknown = [t for t in chosen if t not in DETECTORS]
    if unknown:
        raise InkwellError(
            f"unknown PII type(s): {', '.join(unknown)}", field="types", hint=f"choose from {', '.join(PII_TYPES)}"
        )
    return chosen


# Full-width ASCII (１３８…, ＠) -> ASCII, one character for one, so offsets into the original stay valid:
# writing digits full-width is a cheap way to slip a phone number past an ASCII-only pattern.
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def detect_pii(text: str, types: Iterable[str] | None = None) -> list[PiiMatch]:
    """All PII in `text` (no overlaps), in reading order."""
    wanted = set(check_types(types))
    original, text = text, (text if text.isascii() else text.translate(_FULLWIDTH))
    candidates: list[tuple[int, PiiMatch]] = []
    for rank, name in enumerate(PII_TYPES):
        if name not in wanted:
            continue
        need = _NEEDS.get(name)
        if need is not None and not need(text):
            continue
        candidates.extend((rank, match) for match in DETECTORS[name](text))
    candidates.sort(key=lambda item: (item[0], -(item[1].end - item[1].start), item[1].start))
    taken: list[PiiMatch] = []
    for _rank, match in candidates:
        if all(match.end <= other.start or match.start >= other.end for other in taken):
            taken.append(match)
    if text is not original:
        taken = [PiiMatch(m.type, m.start, m.end, original[m.start : m.end]) for m in taken]
    return sorted(taken, key=lambda m: m.start)
