"""`agent run`: the supervised loop, one tick per cadence, until a signal stops it.

It holds the single-instance lock for its whole life, so a cron `agent tick` next to it
is skipped rather than racing it. Refusals (kill flag, cap) do not end the loop: the
runner stays up, refusing on the record each cadence, and resumes by itself once the
flag is cleared or the day's budget renews — an exit would only make systemd restart
it into the same refusal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agent.locks import LockBusy
from agent.sdnotify import Notifier
from agent.tick import Runtime, TickResult, record_busy, run_tick


def run_loop(
    runtime: Runtime,
    *,
    stop: threading.Event,
    notifier: Notifier,
    max_ticks: int | None = None,
    on_tick: Callable[[TickResult], None] | None = None,
) -> int:
    lock = runtime.lock
    try:
        lock.acquire()
    except LockBusy as busy:
        record_busy(runtime, "run", busy)
        raise
    trace = runtime.trace
    try:
        notifier.ready(f"every {runtime.config.cadence_s:g} s")
        trace.event("run.start", cadence_s=runtime.config.cadence_s)
        ticks = 0
        while not stop.is_set():
            began = time.monotonic()
            result = run_tick(runtime, "run", stop=stop, heartbeat=notifier.heartbeat)
            ticks += 1
            notifier.status(_summary(result))
            if on_tick is not None:
                on_tick(result)
            if max_ticks is not None and ticks >= max_ticks:
                break
            _sleep_until(began + runtime.config.cadence_s, stop, notifier)
        trace.event("run.stop", ticks=ticks, reason="signal" if stop.is_set() else "done")
        notifier.stopping()
        return 0
    finally:
        lock.release()


def _summary(result: TickResult) -> str:
    return f"tick {result.tick_id}: {result.status}" + (
        f" — {result.reason}" if result.reason else ""
    )


def _sleep_until(deadline: float, stop: threading.Event, notifier: Notifier) -> None:
    slice_s = min(1.0, notifier.interval_s or 1.0)
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        stop.wait(min(remaining, slice_s))
        notifier.heartbeat()
