"""Admission control: a token bucket per API key (requests per minute) and a cap on requests in flight.
Both answer at once: a request over either limit gets 429 with Retry-After instead of waiting."""

from __future__ import annotations

import re
import threading
import time

from inkwell.errors import InkwellError
from inkwell.serve.errors import too_many


def parse_rate(text: str | None) -> float | None:
    """'60/min', '60', '2/s', '3600/h' -> requests per minute (None: unlimited)."""
    if text in (None, "", "0", "none", "off"):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise InkwellError(
            f"invalid rate limit '{text}'", field="rate-limit", hint="use requests per minute, e.g. 60/min"
        )
    per = {"s": 60, "sec": 60, "second": 60, "h": 1 / 60, "hour": 1 / 60}.get(match.group(2) or "min", 1)
    return float(match.group(1)) * per


class RateLimiter:
    """Token bucket per key: `per_minute` tokens, refilled continuously; a burst of up to `per_minute`."""

    def __init__(self, per_minute: float | None):
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        if self.per_minute is None:
            return
        rate = self.per_minute / 60.0  # tokens per second
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.per_minute, now))
            tokens = min(self.per_minute, tokens + (now - last) * rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                raise too_many(
                    f"Rate limit of {self.per_minute:g} requests per minute reached for this key.",
                    (1 - tokens) / rate,
                    "rate_limit_exceeded",
                )
            self._buckets[key] = (tokens - 1, now)


class ConcurrencyLimiter:
    """At most `limit` requests running or waiting for the engine; the next gets 429 right away."""

    def __init__(self, limit: int, retry_after_s: float = 1.0):
        if limit < 1:
            raise InkwellError(f"invalid --max-concurrency {limit}", field="max-concurrency", hint="use 1 or more")
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self._lock = threading.Lock()

    def acquire(self) -> Slot:
        with self._lock:
            if self.in_flight >= self.limit:
                raise too_many(
                    f"The server is at its limit of {self.limit} concurrent requests; retry shortly.",
                    self.retry_after_s,
                    "concurrency_limit_exceeded",
                )
            self.in_flight += 1
        return Slot(self)

    def _release(self) -> None:
        with self._lock:
            self.in_flight -= 1


class Slot:
    """One admitted request; `release()` is idempotent (streams release from several exit paths)."""

    def __init__(self, owner: ConcurrencyLimiter):
        self._owner, self._held = owner, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._owner._release()
