"""`agent report`: the numbers a retrospective needs, from the ledger and git alone.

This module computes; `report_view` prints and `report_html` draws. Every figure covers
one window (`--since 14d` by default, up to now) and is plain data, so `--json`, the
terminal and the HTML page show the same numbers.

Definitions, so that two readers get the same figures:
- a tick *succeeded* when it ended `ok` or `degraded` (the watchdog's meaning); a row
  still `running` whose process is gone counts as `crashed`;
- *silence* is the time between two successful ticks; the agent is *down* for the part of
  a silence beyond 1.5 cadences (a tick missed by more than half a cadence), and
  *uptime* is the rest of the window, from the first mark the agent left in it;
- *spend* counts each call's settled cost, and an open reservation at its worst case, as
  the cap does;
- a *proposal* is made when the gate judged it (accepted or rejected; `evolve log`);
- an *incident* is a run of watchdog checks that alerted, from the first to the check
  that found the agent healthy again (open if none has yet).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.clock import utc_now
from agent.ledger import PENDING, TICK_SUCCESS
from agent.status import evolve_log, summarize_runs
from agent.tick import Runtime
from agent.watchdog import tick_status

DEFAULT_SINCE = "14d"
GRACE_CADENCES = 1.5
PROPOSAL_VERDICTS = ("accepted", "rejected")


def _at(stamp: str) -> datetime:
    """A stamp as UTC: the ledger writes UTC, git writes the committer's offset."""
    return datetime.fromisoformat(stamp).astimezone(UTC)


def _day(stamp: str) -> str:
    return stamp[:10]


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def build(
    runtime: Runtime, since: datetime, now: datetime | None = None, *, git: bool = True
) -> dict[str, Any]:
    """The whole report for [since, now] as plain data (what `--json` prints)."""
    now = now or utc_now()
    ledger, config = runtime.ledger, runtime.config
    ticks = [{**row, "status": tick_status(row)} for row in ledger.rows_since("ticks", since)]
    runs = ledger.rows_since("task_runs", since)
    calls = ledger.rows_since("llm_calls", since)
    checks = ledger.rows_since("watchdog_checks", since)
    first = ledger.first_seen()
    start = max(since, first) if first is not None else now
    anchor = ledger.last_before("ticks", since, TICK_SUCCESS)
    trail = evolve_log(config.root) if git else {"entries": []}
    entries = trail.get("entries", [])
    report = {
        "window": {"since": since.isoformat(), "until": now.isoformat(),
                   "from_first_mark": start.isoformat(), "cadence_s": config.cadence_s},
        "ticks": tick_counts(ticks),
        "uptime": uptime(ticks, anchor, start, now, config.cadence_s),
        "tasks": [summarize_runs(t.name, [r for r in reversed(runs) if r["task"] == t.name])
                  for t in config.tasks],
        "spend": spend(calls, config.cap_usd),
        "proposals": proposals(entries, since),
        "baseline": baseline_series(entries, since),
        "incidents": incidents(checks, ledger.last_before("watchdog_checks", since), now),
        "weeks": weekly(ticks, runs, calls, entries, checks, since, start, now),
    }  # fmt: skip
    if "error" in trail:
        report["git_error"] = trail["error"]
    return report


def tick_counts(ticks: list[dict[str, Any]]) -> dict[str, Any]:
    by = Counter(t["status"] for t in ticks)
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    for tick in ticks:
        by_day[_day(tick["started"])][tick["status"]] += 1
    ordered = sorted(by.items(), key=lambda item: (-item[1], item[0]))
    return {
        "total": len(ticks),
        "succeeded": sum(by[s] for s in TICK_SUCCESS),
        "by_outcome": dict(ordered),
        "by_day": {day: dict(sorted(counts.items())) for day, counts in sorted(by_day.items())},
    }


def uptime(
    ticks: list[dict[str, Any]],
    anchor: dict[str, Any] | None,
    start: datetime,
    now: datetime,
    cadence_s: float,
) -> dict[str, Any]:
    """Uptime over [start, now] and the longest silence (which may begin before it)."""
    ends = [_at(t["finished"] or t["started"]) for t in ticks if t["status"] in TICK_SUCCESS]
    begin = _at(anchor["finished"] or anchor["started"]) if anchor else start
    points = [begin, *sorted(ends), now]
    span = max((now - start).total_seconds(), 0.0)
    down = 0.0
    longest = (0.0, begin, begin)
    grace = timedelta(seconds=GRACE_CADENCES * cadence_s)
    for before, after in itertools.pairwise(points):
        gap = (after - before).total_seconds()
        if gap > longest[0]:
            longest = (gap, before, after)
        # The part of this silence past the grace, clipped to the window.
        late_from = max(before + grace, start)
        if after > late_from:
            down += (after - late_from).total_seconds()
    return {
        "span_s": span,
        "down_s": min(down, span),
        "ratio": None if span == 0 else max(0.0, 1 - down / span),
        "longest_silence": {"seconds": longest[0], "from": longest[1].isoformat(),
                            "to": longest[2].isoformat(), "ongoing": longest[2] == now},
    }  # fmt: skip


def _cost(call: dict[str, Any]) -> float:
    return float(call["estimate_usd"] if call["outcome"] == PENDING else call["cost_usd"])


def spend(calls: list[dict[str, Any]], cap: float | None) -> dict[str, Any]:
    by_day: dict[str, float] = defaultdict(float)
    by_model: dict[str, float] = defaultdict(float)
    by_purpose: dict[str, float] = defaultdict(float)
    outcomes = Counter(c["outcome"] for c in calls)
    for call in calls:
        cost = _cost(call)
        by_day[call["day"]] += cost
        by_model[call["model"]] += cost
        by_purpose[call["purpose"]] += cost
    days_at_cap = sorted(
        day for day, spent in by_day.items() if cap is not None and spent > 0 and spent >= cap
    )
    return {
        "total_usd": sum(by_day.values(), 0.0),
        "cap_usd": cap,
        "by_day": dict(sorted(by_day.items())),
        "by_model": dict(sorted(by_model.items(), key=lambda item: -item[1])),
        "by_purpose": dict(sorted(by_purpose.items(), key=lambda item: -item[1])),
        "calls": len(calls),
        "calls_by_outcome": dict(sorted(outcomes.items())),
        "refused_by_cap": outcomes.get("refused-cap", 0),
        "days_at_cap": days_at_cap,
    }


def _in_window(entry: dict[str, Any], since: datetime) -> bool:
    try:
        return _at(entry["when"]) >= since
    except (KeyError, ValueError):
        return False


def proposals(entries: list[dict[str, Any]], since: datetime) -> dict[str, Any]:
    window = [e for e in entries if _in_window(e, since)]
    verdicts = Counter(e["verdict"] for e in window)
    by_proposer: dict[str, Counter[str]] = defaultdict(Counter)
    cost = 0.0
    for entry in window:
        if entry["verdict"] in PROPOSAL_VERDICTS:
            by_proposer[entry.get("proposer") or "person"][entry["verdict"]] += 1
            with contextlib.suppress(ValueError):
                cost += float(entry.get("cost_usd") or 0)
    made = sum(verdicts[v] for v in PROPOSAL_VERDICTS)
    return {
        "made": made,
        "accepted": verdicts["accepted"],
        "rejected": verdicts["rejected"],
        "reverted": verdicts["reverted"],
        # regressions on main the safety net left to a person (`evolve log`'s incident notes)
        "incidents": verdicts["incident"],
        "acceptance": None if made == 0 else verdicts["accepted"] / made,
        "by_proposer": {name: {v: counts[v] for v in PROPOSAL_VERDICTS}
                        for name, counts in sorted(by_proposer.items())},
        "cost_usd": cost,
    }  # fmt: skip


def baseline_series(entries: list[dict[str, Any]], since: datetime) -> list[dict[str, Any]]:
    """Baseline-passing tests over time, from `evolve log`'s `passing` of each entry that
    moved main (a rejection's names the baseline it did not move); the last value before
    the window opens it."""
    points = [
        {"when": entry["when"], "passing": entry["passing"], "verdict": entry["verdict"]}
        for entry in sorted(entries, key=lambda e: _at(e["when"]))
        if entry.get("passing") is not None and entry["verdict"] != "rejected"
    ]
    before = [p for p in points if _at(p["when"]) < since]
    inside = [p for p in points if _at(p["when"]) >= since]
    if before:
        inside.insert(0, {**before[-1], "when": since.isoformat(), "verdict": "before"})
    return inside


def incidents(
    checks: list[dict[str, Any]], previous: dict[str, Any] | None, now: datetime
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    if previous is not None and previous["status"] == "alert":
        current = {"start": previous["ts"], "cause": previous["reason"], "before_window": True}
    for check in checks:
        if check["status"] == "alert" and current is None:
            current = {"start": check["ts"], "cause": check["reason"], "before_window": False}
        elif check["status"] != "alert" and current is not None:
            found.append({**current, "end": check["ts"]})
            current = None
    if current is not None:
        found.append({**current, "end": None})
    for incident in found:
        end = _at(incident["end"]) if incident["end"] else now
        incident["duration_s"] = (end - _at(incident["start"])).total_seconds()
    return found


def weekly(
    ticks: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    checks: list[dict[str, Any]],
    since: datetime,
    start: datetime,
    now: datetime,
) -> list[dict[str, Any]]:
    """One row per ISO week from the agent's first mark in the window, with the ratios a
    retrospective compares."""
    weeks: dict[str, dict[str, Any]] = {}
    moment = start
    while moment <= now:
        weeks.setdefault(_week(moment), Counter())
        moment += timedelta(days=1)
    weeks.setdefault(_week(now), Counter())

    def add(stamp: str, key: str, amount: float = 1) -> None:
        week = _week(_at(stamp))
        if week in weeks:
            weeks[week][key] += amount

    for tick in ticks:
        add(tick["started"], "ticks")
        add(tick["started"], "ticks_ok", tick["status"] in TICK_SUCCESS)
    for run in runs:
        add(run["started"], "task_runs")
        add(run["started"], "task_runs_ok", run["status"] == "ok")
    for call in calls:
        add(call["ts"], "spent_usd", _cost(call))
    for entry in entries:
        if _in_window(entry, since) and entry["verdict"] in (*PROPOSAL_VERDICTS, "reverted"):
            add(entry["when"], entry["verdict"])
    alerting = False
    for check in checks:
        if check["status"] == "alert" and not alerting:
            add(check["ts"], "incidents")
        alerting = check["status"] == "alert"
    rows = []
    for week, c in sorted(weeks.items()):
        made = c["accepted"] + c["rejected"]
        rows.append({
            "week": week,
            "ticks": int(c["ticks"]),
            "tick_success": c["ticks_ok"] / c["ticks"] if c["ticks"] else None,
            "task_success": c["task_runs_ok"] / c["task_runs"] if c["task_runs"] else None,
            "spent_usd": float(c["spent_usd"]),
            "proposals": int(made),
            "accepted": int(c["accepted"]),
            "reverted": int(c["reverted"]),
            "acceptance": c["accepted"] / made if made else None,
            "usd_per_accepted": c["spent_usd"] / c["accepted"] if c["accepted"] else None,
            "incidents": int(c["incidents"]),
        })  # fmt: skip
    return rows
