"""Several OpenAI-compatible servers used as one (`--base-url URL1,URL2,...`): which server takes the next request.

    fleet = Fleet(servers, notice=print)
    server, delay, check = fleet.acquire()   # blocks while every healthy server has its slots full
    ...wait `delay` s, health-check the server when `check`, send the request to server.url...
    fleet.succeeded(server)  |  fleet.failed(server, failure, giving_up)  |  fleet.release(server)

- Each server takes at most `slots` requests at once (the per-server batch size); a request goes to the
  healthy server with the most free room, ties to the one listed first, so a lone request (`inkwell write`)
  goes to the first healthy server and a batch fills every server.
- A failed attempt (429, 5xx, a dropped connection) backs the server off for Retry-After or 1, 2, 4, ... s
  (at most 30); the request tries again at once on another server when one has room.
- A server is marked down after DOWN_AFTER server errors or dropped connections in a row, or at once when
  nothing listens at its address. Its requests go to the others; it is health-checked (GET /models) after
  RECHECK_FIRST s, then twice as long after each failed check (at most RECHECK_MAX), and takes requests
  again once a check passes. A server listed after the first healthy one is checked the first time it
  is needed.
- When a request has used all its attempts while every server is down, the requests still waiting fail
  at once with the same error (a batch job then ends; `--resume` runs the rest later).

Written here rather than taken from a library: httpx and the OpenAI client retry one server only, and
routers that spread load (LiteLLM's Router, nginx) are services or large dependency trees for what is a
few counters under one lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inkwell.errors import InkwellError

DOWN_AFTER = 3  # server errors or dropped connections in a row before a server is marked down
RECHECK_FIRST = 5.0  # seconds before a down server's first health check; doubled after each failed one
RECHECK_MAX = 60.0
BACKOFF_FIRST = 1.0  # back-off after a failed attempt, doubled for each failure in a row ...
BACKOFF_MAX = 30.0  # ... up to this (a longer Retry-After is honoured up to this too)

UNCHECKED, UP, DOWN = "unchecked", "up", "down"


def backoff(streak: int, retry_after: float = 0.0) -> float:
    """Seconds a server is left alone after its `streak`-th failure in a row (Retry-After if it asks longer)."""
    return min(max(retry_after, BACKOFF_FIRST * 2 ** (streak - 1)), BACKOFF_MAX)


class Failure(Exception):
    """A failed attempt that another attempt may fix. `error` is what the user sees if no attempt is left;
    `busy`: the server said 429 (alive, not a fault); `refused`: nothing listens there; `final`: no retry
    (text was already streamed to the caller); `checking`: it was a health check that failed."""

    def __init__(
        self, error: InkwellError, *, retry_after: float = 0.0, busy: bool = False, refused: bool = False
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.busy = busy
        self.refused = refused
        self.final = False
        self.checking = False

    @property
    def reason(self) -> str:
        return str(self.error).split("\n")[0]


@dataclass(eq=False)
class Server:
    """One server of the fleet and what the fleet knows about it."""

    url: str  # the base URL, ending in /v1
    client: Any  # its httpx.Client (base_url, auth header, connection limit)
    slots: int  # requests it takes at once
    state: str = UNCHECKED  # unchecked | up | down
    busy: int = 0  # requests in flight (a health check counts as one)
    streak: int = 0  # failed attempts in a row (the back-off grows with it)
    errors: int = 0  # of those, server errors and dropped connections (DOWN_AFTER of them: down)
    ready_at: float = 0.0  # perf_counter time before which it takes nothing new (back-off, next check)
    recheck: float = field(default_factory=lambda: RECHECK_FIRST)  # the wait before its next health check
    answered: int = 0  # requests it answered
    reason: str = ""  # the last failure, for notes and errors


class Fleet:
    """The servers and their state, shared by every thread sending requests (one lock, one condition)."""

    def __init__(self, servers: list[Server], notice: Callable[[str], None]) -> None:
        self.servers = servers
        self.notice = notice
        self.gave_up: InkwellError | None = None  # set when a request ran out of attempts with every server down
        self._cond = threading.Condition()

    # ------------------------------------------------------------ taking and giving back a slot

    def acquire(self) -> tuple[Server, float, bool]:
        """(server, seconds to wait before sending, whether it must pass a health check first)."""
        with self._cond:
            while True:
                if self.gave_up is not None and not self._any_up():
                    raise self.gave_up
                now = time.perf_counter()
                free = [s for s in self.servers if s.busy < s.slots]
                ready = [s for s in free if s.state == UP and s.ready_at <= now]
                if ready:  # the most free room; min() keeps the first of equals, so the list order breaks ties
                    return self._take(min(ready, key=lambda s: s.busy / s.slots), 0.0)
                due = [s for s in free if s.state != UP and s.busy == 0 and s.ready_at <= now]
                if due:  # one health check at a time per server
                    return self._take(due[0], 0.0)
                later = [s for s in free if s.state == UP or s.busy == 0]
                if any(s.busy for s in self.servers) or not later:
                    # a request in flight will free a slot, or a backed-off server becomes ready: wait for either
                    soonest = min((s.ready_at for s in later), default=now + 1.0)
                    self._cond.wait(timeout=min(max(soonest - now, 0.01), 1.0))
                    continue
                # nothing in flight anywhere: wait out the shortest back-off (to the next 10 ms) on that server
                server = min(later, key=lambda s: s.ready_at)
                return self._take(server, math.ceil(max(server.ready_at - now, 0.0) * 100) / 100)

    def _take(self, server: Server, delay: float) -> tuple[Server, float, bool]:
        server.busy += 1
        return server, delay, server.state != UP

    def hold(self, server: Server) -> None:
        """Take a slot on this server for a check outside `acquire` (the first listing of the models)."""
        with self._cond:
            server.busy += 1

    def release(self, server: Server) -> None:
        """The attempt ended without saying anything about the server's health (a 4xx, an interruption)."""
        with self._cond:
            server.busy -= 1
            self._cond.notify_all()

    def checked(self, server: Server) -> None:
        """The server passed its health check: it takes requests (the caller's attempt goes on there)."""
        with self._cond:
            if server.state == DOWN:
                self.notice(f"note: {server.url} answers again; it takes requests again")
            server.state, server.streak, server.errors, server.recheck = UP, 0, 0, RECHECK_FIRST
            self.gave_up = None
            self._cond.notify_all()

    def succeeded(self, server: Server) -> None:
        with self._cond:
            server.busy -= 1
            server.answered += 1
            server.streak = server.errors = 0
            self.gave_up = None
            self._cond.notify_all()

    def failed(self, server: Server, failure: Failure, giving_up: bool, checking: bool = False) -> None:
        """A failed attempt, or a failed health check (`checking`): back the server off or mark it down.
        `giving_up`: the request has no attempt left; when every server is down, the requests still waiting
        fail with its error."""
        with self._cond:
            server.busy -= 1
            server.reason = failure.reason
            now = time.perf_counter()
            if checking:
                if server.state == UNCHECKED:
                    self.notice(f"note: {server.url} is not answering ({failure.reason}); checking again later")
                server.state = DOWN
                server.ready_at = now + server.recheck
                server.recheck = min(server.recheck * 2, RECHECK_MAX)
            elif server.state == UP:  # (a request in flight when its server went down changes nothing more)
                server.streak += 1
                server.errors += 0 if failure.busy else 1
                if failure.refused or server.errors >= DOWN_AFTER:
                    self._mark_down(server, now)
                else:
                    server.ready_at = max(server.ready_at, now + backoff(server.streak, failure.retry_after))
            if giving_up and not self._any_up():
                self.gave_up = self.all_down_error() if len(self.servers) > 1 else failure.error
            self._cond.notify_all()

    def _mark_down(self, server: Server, now: float) -> None:
        server.state = DOWN
        server.ready_at = now + RECHECK_FIRST
        server.recheck = RECHECK_FIRST * 2
        others = "; its requests go to the other servers" if len(self.servers) > 1 else ""
        self.notice(f"note: {server.url} is down ({server.reason}){others}; checked again in {RECHECK_FIRST:g} s")

    def _any_up(self) -> bool:
        return any(s.state != DOWN for s in self.servers)

    # ------------------------------------------------------------ reports

    def all_down_error(self) -> InkwellError:
        listed = "; ".join(f"{s.url} ({s.reason or s.state})" for s in self.servers)
        return InkwellError(
            f"every server in --base-url is down: {listed}",
            field="base-url",
            hint="start them again (or list others) and rerun with --resume: rows already written are kept",
        )

    def summary(self) -> str:
        """`URL1 12, URL2 9, URL3 3 (down: ...)`: requests each server answered."""
        return ", ".join(
            f"{s.url} {s.answered}" + (f" (down: {s.reason})" if s.state == DOWN else "") for s in self.servers
        )
