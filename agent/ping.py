"""Tell someone: healthchecks.io-style pings that never hold up a tick.

With `[watchdog] ping_url` set, a tick that gets past its guards pings `<url>/start`;
when it ends it pings `<url>` (ok, degraded) or `<url>/fail` (failed, interrupted, a
vault that cannot be trusted). A refusal (the kill flag, a reached cap, another
instance) pings `<url>/log`: on the record, but the check's state does not change, so
the check goes down the way the watchdog does, by silence. `agent watchdog` pings
`/fail` on an alert, and `agent ping` sends one by hand (the systemd alert unit uses it).

A tick's pings go out in order from one background thread, each with a short timeout: a
slow or dead endpoint costs the tick nothing, and a ping that fails is a trace event,
never an error. Before the process exits it waits a bounded time for the queue. The
body (one short report) is redacted first: whoever reads the check reads it.
"""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.ledger import TICK_SUCCESS
from agent.trace import Trace

TIMEOUT_S = 5.0
SUFFIXES = {"start": "/start", "success": "", "fail": "/fail", "log": "/log"}
# Tick outcomes that need a person now; the other refusals are silence, as for the watchdog.
FAILING = ("failed", "interrupted", "halted-vault")
MAX_BODY = 10_000  # healthchecks keeps the first 100 kB; a tick's report is far shorter


class PingFailed(Exception):
    """The endpoint could not be reached, or did not answer 2xx."""


def kind_for(status: str) -> str:
    """The ping a tick that ended in `status` sends."""
    if status in TICK_SUCCESS:
        return "success"
    return "fail" if status in FAILING else "log"


def ping_address(url: str, kind: str) -> str:
    """`url` with the kind's suffix on its path (a query string stays at the end)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(
        parts._replace(path=parts.path.rstrip("/") + SUFFIXES[kind])
    )


def deliver(url: str, kind: str, body: str = "", timeout_s: float = TIMEOUT_S) -> int:
    """POST one ping and return the HTTP status; PingFailed if it did not get through."""
    request = urllib.request.Request(
        ping_address(url, kind),
        data=body[:MAX_BODY].encode("utf-8"),
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "ratchet-agent"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        raise PingFailed(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise PingFailed(f"{type(error).__name__}: {reason}") from None


def _identity(text: str) -> str:
    return text


class Pinger:
    """The pings of one process, sent in order by a daemon thread. A no-op without a URL."""

    def __init__(
        self,
        url: str | None,
        *,
        trace: Trace | None = None,
        redact: Callable[[str], str] = _identity,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.url = url
        self.trace = trace
        self.redact = redact
        self.timeout_s = timeout_s
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def send(self, kind: str, body: str = "") -> None:
        """Queue a ping and return at once."""
        if self.url is None:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="ping", daemon=True)
            self._thread.start()
        self._queue.put((kind, self.redact(body)))

    def _work(self) -> None:
        assert self.url is not None
        while (item := self._queue.get()) is not None:
            kind, body = item
            try:
                deliver(self.url, kind, body, self.timeout_s)
            except PingFailed as failed:
                if self.trace is not None:
                    self.trace.event("ping.failed", kind=kind, error=self.redact(str(failed)))

    def close(self, timeout_s: float | None = None) -> bool:
        """Wait up to `timeout_s` (one ping's timeout) for what is queued; True when done.

        What is still queued after that is dropped with the process: the next tick, or
        the watchdog, speaks for it.
        """
        if self._thread is None:
            return True
        self._queue.put(None)
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        done = not self._thread.is_alive()
        self._thread = None
        return done


@dataclass(frozen=True)
class PingSent:
    """One ping sent by hand (`agent ping`); `address` is for the person at the terminal
    only, never in --json (whoever collects the JSON need not learn the check's URL)."""

    kind: str
    sent: bool
    status: int | None = None
    address: str = ""

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"sent": self.sent, "kind": self.kind, "exit_code": 0}
        if self.sent:
            found["status"] = self.status
        return found


def send_by_hand(url: str | None, kind: str, body: str, trace: Trace) -> PingSent:
    """One ping now, for the operator or the systemd alert unit: UsageError for an
    unknown kind, EnvironmentFailure if it did not get through; no URL sends nothing."""
    from agent.errors import EnvironmentFailure, UsageError

    if kind not in SUFFIXES:
        raise UsageError(f"unknown ping {kind!r}: give " + ", ".join(SUFFIXES))
    if url is None:
        return PingSent(kind, sent=False)
    try:
        status = deliver(url, kind, body)
    except PingFailed as failed:
        raise EnvironmentFailure(f"ping {kind} did not get through: {failed}") from None
    trace.event("ping.sent", kind=kind, status=status)
    return PingSent(kind, sent=True, status=status, address=ping_address(url, kind))
