"""`agent report` on a terminal: the computed report (agent/report.py) as text and tables.

Rich on a terminal, plain when piped or NO_COLOR, like every other command.
"""

from __future__ import annotations

from typing import Any

from agent.watchdog import human_duration


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def dollars(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def counts(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in mapping.items()) or "none"


def print_report(report: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    from agent.console import out, plain, say

    window = report["window"]
    say(f"report {window['since'][:16]}Z → {window['until'][:16]}Z "
        f"(agent first seen in it {window['from_first_mark'][:16]}Z)")  # fmt: skip
    ticks = report["ticks"]
    say(f"ticks: {ticks['total']}, {ticks['succeeded']} succeeded — {counts(ticks['by_outcome'])}")
    up = report["uptime"]
    silence = up["longest_silence"]
    until = "now" if silence["ongoing"] else silence["to"][:16] + "Z"
    say(f"uptime: {percent(up['ratio'])} (down {human_duration(up['down_s'])} of "
        f"{human_duration(up['span_s'])}); longest silence {human_duration(silence['seconds'])}"
        f", {silence['from'][:16]}Z to {until}")  # fmt: skip
    spend = report["spend"]
    cap = "no cap" if spend["cap_usd"] is None else f"cap ${spend['cap_usd']:.2f} a day"
    say(f"spend: {dollars(spend['total_usd'])} ({cap}); {spend['calls']} calls, "
        f"{spend['refused_by_cap']} refused by the cap; days at the cap: "
        f"{', '.join(spend['days_at_cap']) or 'none'}")  # fmt: skip
    for key in ("by_day", "by_model", "by_purpose"):
        if spend[key]:
            rows = ", ".join(f"{plain(k)} {dollars(v)}" for k, v in spend[key].items())
            say(f"  {key.replace('_', ' ')}: {rows}")
    made = report["proposals"]
    by = "; ".join(f"{plain(name)}: {counts(v)}" for name, v in made["by_proposer"].items())
    say(f"proposals: {made['made']} made, {made['accepted']} accepted, {made['rejected']} "
        f"rejected, {made['reverted']} reverted ({percent(made['acceptance'])} accepted), "
        f"{made['incidents']} safety-net incident(s) left to a person"
        + (f" — {by}" if by else ""))  # fmt: skip
    series = report["baseline"]
    if series:
        say(f"baseline: {series[0]['passing']} → {series[-1]['passing']} passing tests")
    if "git_error" in report:
        say(f"git: unavailable ({plain(report['git_error'])})")
    say("incidents:" + ("" if report["incidents"] else " none"))
    for incident in report["incidents"]:
        end = incident["end"][:16] + "Z" if incident["end"] else "still open"
        say(f"  {incident['start'][:16]}Z → {end} ({human_duration(incident['duration_s'])}): "
            f"{plain(incident['cause'])}")  # fmt: skip
    tasks = Table(title="tasks", title_justify="left")
    for column in ("task", "runs", "success", "p50", "p95", "failures"):
        tasks.add_column(column)
    for task in report["tasks"]:
        tasks.add_row(task["task"], str(task["runs"]), percent(task["success_rate"]),
                      seconds(task["p50_s"]), seconds(task["p95_s"]), counts(task["failures"]))
    out.print(tasks)
    # Nine columns in 80 (a pipe's width): no rules between them.
    weeks = Table(title="weeks", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
    for column in ("week", "ticks", "ok", "tasks ok", "spent", "proposed", "accepted",
                   "$/accept", "alerts"):  # fmt: skip
        weeks.add_column(column)
    for week in report["weeks"]:
        per = week["usd_per_accepted"]
        weeks.add_row(week["week"], str(week["ticks"]), percent(week["tick_success"]),
                      percent(week["task_success"]), f"${week['spent_usd']:.2f}",
                      str(week["proposals"]), str(week["accepted"]),
                      "-" if per is None else f"${per:.2f}", str(week["incidents"]))  # fmt: skip
    out.print(weeks)
