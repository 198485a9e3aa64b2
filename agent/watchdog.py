"""The dead man's switch: `agent watchdog`, run from its own timer or cron line.

It reads only the ledger, so it fires when the runner is dead, hung or crash-looping:
an alert when no tick has succeeded within `max_silence_s`, or when the newest ticks
are `max_failed_ticks` failures in a row. A tick row still "running" whose process is
gone (a kill -9, an OOM kill) counts as a failure. The alert is `runs/ALERT` (JSON,
written atomically) and exit 1, and, with `[watchdog] ping_url`, a ping to `<url>/fail`
(unless `ping` is off: the systemd unit has no network, and its OnFailure= alert unit
pings instead). A healthy check removes a previous ALERT, so the file's presence is the
state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.atomicio import atomic_write_text
from agent.clock import utc_now
from agent.ledger import TICK_SUCCESS
from agent.procgroup import pid_alive
from agent.tick import Runtime

ALERT_NAME = "ALERT"
FAILURES = ("failed", "interrupted", "crashed")


@dataclass
class WatchdogResult:
    status: str  # ok | alert
    reasons: list[str] = field(default_factory=list)
    last_success: str | None = None
    failed_in_a_row: int = 0

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "ok" else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": self.reasons,
            "last_success": self.last_success,
            "failed_in_a_row": self.failed_in_a_row,
            "exit_code": self.exit_code,
        }


def tick_status(row: dict[str, Any]) -> str:
    """A tick's status, with "running" turned into "crashed" when its process is gone."""
    if row["status"] == "running" and not pid_alive(int(row["pid"])):
        return "crashed"
    return str(row["status"])


def alert_path(runtime: Runtime) -> Path:
    return runtime.config.runs / ALERT_NAME


def read_alert(runtime: Runtime) -> dict[str, Any] | None:
    try:
        return json.loads(alert_path(runtime).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check(runtime: Runtime, now: datetime | None = None) -> WatchdogResult:
    now = now or utc_now()
    config, ledger = runtime.config, runtime.ledger
    result = WatchdogResult("ok")
    success = ledger.last_success()
    if success is not None:
        result.last_success = success["finished"] or success["started"]
        since = datetime.fromisoformat(result.last_success)
        silent_for = (now - since).total_seconds()
        if silent_for > config.max_silence_s:
            limit = human_duration(config.max_silence_s)
            result.reasons.append(
                f"no tick has succeeded for {human_duration(silent_for)} "
                f"(last at {result.last_success[:19]}Z; limit {limit})"
            )
    else:
        # Never a success: measure from when the agent was first seen, so a fresh
        # install is given one silence window before the first alert.
        first = ledger.first_seen()
        if first is not None and (now - first) > timedelta(seconds=config.max_silence_s):
            result.reasons.append(
                f"no tick has ever succeeded (watching since {first.isoformat()[:19]}Z)"
            )
    newest_failed = None
    for row in ledger.ticks(limit=config.max_failed_ticks + 50):
        status = tick_status(row)
        if status in TICK_SUCCESS:
            break
        if status in FAILURES:
            result.failed_in_a_row += 1
            newest_failed = newest_failed or row
    if result.failed_in_a_row >= config.max_failed_ticks:
        result.reasons.append(
            f"{result.failed_in_a_row} failed ticks in a row (limit {config.max_failed_ticks})"
        )
        if newest_failed is not None and (why := _why_failed(runtime, newest_failed)):
            result.reasons.append(why)
    if result.reasons:
        result.status = "alert"
    return result


def _why_failed(runtime: Runtime, tick: dict[str, Any]) -> str:
    """What the newest failed tick's required tasks said: an alert should name the cause
    an operator must act on (the safety net's incident, with its command), not only that
    ticks fail."""
    failed = [
        run for run in runtime.ledger.task_runs(limit=200)
        if run["tick_id"] == tick["id"] and run["required"] and run["status"] != "ok"
    ]  # fmt: skip
    said = "; ".join(f"{run['task']} {run['status']}: {run['detail']}" for run in reversed(failed))
    return f"tick {tick['id']}: {said}" if said else ""


def run_watchdog(runtime: Runtime, *, ping: bool = True) -> WatchdogResult:
    result = check(runtime)
    path = alert_path(runtime)
    previous = read_alert(runtime)
    runtime.ledger.record_watchdog(result.status, "; ".join(result.reasons))
    if result.status == "alert":
        since = previous["since"] if previous else utc_now().isoformat()
        payload = {"since": since, "checked": utc_now().isoformat(), **result.to_json()}
        atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
        runtime.trace.event("watchdog.alert", reasons=result.reasons)
        if ping:
            runtime.ping.send("fail", "watchdog alert: " + "; ".join(result.reasons))
    elif previous is not None:
        path.unlink(missing_ok=True)
        runtime.trace.event("watchdog.recovered", since=previous.get("since"))
    return result


def human_duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3.5 h`, `4.2 d`: the unit a person reads at a glance."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
