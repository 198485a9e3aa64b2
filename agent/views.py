"""How `agent`'s results read as text, for a person. Each function takes what a runtime
function returned (the same data `--json` prints) and writes it: rich on a terminal,
plain when piped or with NO_COLOR (`agent.console` decides). The commands in
`agent.cli` only call the runtime and one of these."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.console import out, plain, say

if TYPE_CHECKING:
    from agent.kill import KillReport
    from agent.ping import PingSent
    from agent.tick import TickResult
    from agent.watchdog import WatchdogResult


def tick(result: TickResult) -> None:
    colour = {"ok": "green", "degraded": "yellow", "refused-kill": "yellow"}.get(
        result.status, "red"
    )
    headline = f"tick {result.tick_id}: [{colour}]{result.status}[/]"
    say(headline + (f" — {plain(result.reason)}" if result.reason else ""))
    for task in result.tasks:
        detail = f"  {plain(task['detail'])}" if task["detail"] else ""
        say(f"  {task['status']:<11} {task['task']:<24} {task['duration_s']:>8.2f} s{detail}")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


TASK_COLUMNS = ("task", "last", "success", "p50", "p95", "p99", "detail")


def _task_row(task: dict[str, Any]) -> tuple[str, ...]:
    last_run = task["last"] or {}
    rate = "-" if task["success_rate"] is None else f"{task['success_rate']:.0%}"
    return (
        task["task"], last_run.get("status", "never run"), f"{rate} of {task['runs']}",
        _seconds(task["p50_s"]), _seconds(task["p95_s"]), _seconds(task["p99_s"]),
        last_run.get("detail", ""),
    )  # fmt: skip


def status(report: dict[str, Any]) -> None:
    from rich.table import Table

    runner = report["runner"]
    say(f"runner: {'running, pid ' + str(runner['pid']) if runner['running'] else 'not running'}")
    last = report["last_tick"]
    if last is None:
        say("last tick: none yet")
    else:
        reason = f" — {plain(last['reason'])}" if last["reason"] else ""
        say(f"last tick: #{last['id']} {last['status']} at {last['started'][:19]}Z{reason}")
    spend = report["spend"]
    cap = "no cap" if spend["cap_usd"] is None else f"cap ${spend['cap_usd']:.2f}"
    if spend["cap_usd"] == 0:
        cap += ": spend nothing, priced calls are refused"
    say(f"spend today: ${spend['today_usd']:.4f} ({cap})" +
        (" — [red]cap reached[/]" if report["cap_reached"] else ""))
    kill = report["kill"]
    say(f"kill flag: [red]present[/] ({plain(kill['note'])})" if kill["present"] else
        "kill flag: absent")
    watchdog = report["watchdog"]
    if watchdog["alert"]:
        say(f"watchdog: [red]ALERT[/] since {watchdog['alert'].get('since', '?')[:19]}Z: "
            + plain("; ".join(watchdog["alert"].get("reasons", []))))
    elif watchdog["last_check"]:
        say(f"watchdog: ok (checked {watchdog['last_check']['ts'][:19]}Z)")
    else:
        say("watchdog: never run")
    secrets = report["secrets"]
    if secrets["problem"]:
        say(f"secrets: [red]{plain(secrets['problem'])}[/]")
    else:
        say("secrets: vault present, access log verified" if secrets["vault"] else
            "secrets: no vault")
    rows = [_task_row(task) for task in report["tasks"]]
    if out.is_terminal:
        table = Table(title=f"tasks (last {report['window']} runs)", title_justify="left")
        for column in TASK_COLUMNS:
            table.add_column(column)
        for row in rows:
            table.add_row(*(plain(cell) for cell in row))
        out.print(table)
    else:  # piped: one whole line per task, nothing wrapped or cut at 80 columns
        say(f"tasks (last {report['window']} runs):")
        for name, *cells in rows:
            named = zip(TASK_COLUMNS[1:-1], cells[:-1], strict=True)
            pairs = ", ".join(f"{column} {value}" for column, value in named)
            detail = f" — {plain(cells[-1])}" if cells[-1] else ""
            say(f"  {plain(name)}: {pairs}{detail}")
    gate = report["gate"]
    if "error" in gate:
        say(f"gate verdicts: unavailable ({plain(gate['error'])})")
    else:
        say("gate verdicts:" + ("" if gate["entries"] else " none yet"))
        for entry in gate["entries"]:
            when = entry["when"][:16].replace("T", " ")
            say(f"  {when}  {entry['verdict']:<9} {plain(entry['proposal'] or entry['subject'])}")


def kill(report: KillReport) -> None:
    say(f"kill flag set: {plain(report.flag)}")
    if not report.signalled:
        say("nothing was running")
    for line in report.signalled:
        say(f"  sent {line}")
    for line in report.errors:
        say(f"  [red]{plain(line)}[/]")
    if report.survivors:
        say("[red]still running:[/] " + ", ".join(report.survivors))
    elif report.signalled:
        say("verified: every process is gone")
    say("`agent resume` clears the flag")


def resumed(result: dict[str, Any]) -> None:
    say("kill flag cleared" if result["cleared"] else "there was no kill flag")


def watchdog(result: WatchdogResult) -> None:
    if result.status == "ok":
        last = result.last_success
        when = f"last success {last[:19]}Z" if last else "no successful tick yet"
        say(f"watchdog: ok ({when})")
    else:
        say("[red]ALERT[/]: " + plain("; ".join(result.reasons)))


def page_written(html: Path) -> None:
    say(f"page written to {plain(str(html))}")


def ping(sent: PingSent) -> None:
    if not sent.sent:
        say("no [watchdog] ping_url in deploy/agent.toml: nothing sent")
    else:
        say(f"ping {sent.kind}: {plain(sent.address)} answered {sent.status}")
