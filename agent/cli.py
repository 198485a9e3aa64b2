"""The `agent` command line: tick, run, status, kill, resume, watchdog, report, ping.

Exit codes follow the convention of all three CLIs: 0 success (a kill-flag refusal
included: the operator asked for it), 1 a negative verdict (a failed tick, a reached
cap, a second instance, a watchdog alert), 2 usage or input error (a bad
deploy/agent.toml), 3 an environment failure or an interrupted tick.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.console import JsonOpt, new_app, run_app, run_command
from agent.secrets_cli import secrets_app

if TYPE_CHECKING:
    from agent.tick import Runtime, TickResult

app = new_app(
    "agent",
    "Ratchet's always-on runtime: guarded ticks, a supervised loop, a kill switch "
    "and a dead man's switch.",
)

app.add_typer(secrets_app, name="secrets")

RootOpt = Annotated[
    Path, typer.Option("--root", help="The deployment root (holds deploy/agent.toml).")
]


@contextmanager
def _runtime(root: Path) -> Iterator[Runtime]:
    from agent.config import CONFIG_PATH, ConfigError, load_runtime
    from agent.errors import EnvironmentFailure, UsageError
    from agent.tick import Runtime

    if not (root / CONFIG_PATH).is_file():
        raise UsageError(
            f"no {CONFIG_PATH} under {root.resolve()}",
            hint="run `factory build --spec SPEC.md` there, or pass --root",
        )
    try:
        config = load_runtime(root.resolve())
        config.cap_usd  # noqa: B018 - a bad SPEND_CAP_USD must fail here, not mid-tick
        runtime = Runtime.open(config)
    except ConfigError:
        raise  # it names the file and line, or the variable, and says where to fix it
    except (sqlite3.Error, RuntimeError, OSError) as error:
        raise EnvironmentFailure(f"cannot open the ledger: {error}") from None
    try:
        yield runtime
    finally:
        runtime.close()


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM and SIGINT set an event the tick polls: the running task's group is
    ended (TERM, then KILL) and the tick is recorded as interrupted."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(root: Path, as_json: bool, body: Callable[[Runtime], int]) -> None:
    def command() -> int:
        from agent.errors import EnvironmentFailure

        with _runtime(root) as runtime:
            try:
                return body(runtime)
            except (sqlite3.Error, OSError) as error:
                # A full disk, or a ledger locked past its 30 s wait: an environment
                # failure (exit 3, for the supervisor to restart), never a traceback.
                # SQLite leaves nothing half-written; a tick cut short reads as crashed.
                raise EnvironmentFailure(
                    f"cannot write the record in {runtime.config.runs}: {error}"
                ) from None

    run_command(as_json, command)


@app.command()
def tick(root: RootOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Run one guarded tick (for cron or a systemd timer).

    Exit codes: 0 ok, degraded or refused by the kill flag; 1 failed, cap reached or
    already running; 2 bad configuration; 3 interrupted or environment failure.
    """

    def body(runtime: Runtime) -> int:
        from agent import views
        from agent.console import show
        from agent.tick import run_tick

        with _stop_on_signals() as stop:
            result = run_tick(runtime, "tick", lock=runtime.lock, stop=stop)
        show(as_json, result, views.tick)
        return result.exit_code

    _run(root, as_json, body)


@app.command()
def run(
    root: RootOpt = Path("."),
    max_ticks: Annotated[
        int | None, typer.Option("--max-ticks", help="Stop after N ticks (for trials).", min=1)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The supervised loop: one tick per cadence until SIGTERM or SIGINT.

    Under systemd (NOTIFY_SOCKET set) it sends READY=1, and WATCHDOG=1 at half of
    WATCHDOG_USEC. With --json, each tick is printed as one JSON line.
    """

    def body(runtime: Runtime) -> int:
        import json

        from agent import views
        from agent.errors import Refused
        from agent.locks import LockBusy
        from agent.loop import run_loop
        from agent.sdnotify import Notifier

        def on_tick(result: TickResult) -> None:
            if as_json:
                print(json.dumps(result.to_json(), sort_keys=True), flush=True)
            else:
                views.tick(result)

        with _stop_on_signals() as stop:
            try:
                return run_loop(
                    runtime, stop=stop, notifier=Notifier(), max_ticks=max_ticks, on_tick=on_tick
                )
            except LockBusy as busy:
                raise Refused(
                    f"skipped: already running (pid {busy.holder or '?'})",
                    hint="`agent status` shows the running instance; `agent kill` stops it",
                ) from None

    _run(root, as_json, body)


@app.command()
def status(
    root: RootOpt = Path("."),
    window: Annotated[
        int, typer.Option("--window", help="Task runs per task the figures cover.", min=1)
    ] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The one-glance dashboard: last tick, tasks, spend, kill and cap, watchdog, gate."""

    def body(runtime: Runtime) -> int:
        from agent import views
        from agent.console import show
        from agent.status import collect

        show(as_json, collect(runtime, window), views.status)
        return 0

    _run(root, as_json, body)


@app.command()
def kill(
    root: RootOpt = Path("."),
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")] = "",
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL.", min=0)
    ] = 3.0,
    as_json: JsonOpt = False,
) -> None:
    """Set the kill flag, end a running agent and its task's process group, and verify.

    Exit codes: 0 flag set and nothing left running; 3 something survived.
    """

    def body(runtime: Runtime) -> int:
        from agent import views
        from agent.console import show
        from agent.kill import kill as do_kill

        report = do_kill(runtime, reason=reason, grace_s=grace)
        show(as_json, report, views.kill)
        return report.exit_code

    _run(root, as_json, body)


@app.command()
def resume(root: RootOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Clear the kill flag; the next tick runs."""

    def body(runtime: Runtime) -> int:
        from agent import views
        from agent.console import show
        from agent.kill import resume as do_resume

        had = do_resume(runtime)
        show(as_json, {"cleared": had, "flag": str(runtime.config.kill_flag_path)}, views.resumed)
        return 0

    _run(root, as_json, body)


@app.command()
def watchdog(
    root: RootOpt = Path("."),
    no_ping: Annotated[
        bool,
        typer.Option("--no-ping", help="Do not ping [watchdog] ping_url/fail on an alert."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The dead man's switch: exit 1 and write runs/ALERT when ticks stopped succeeding.

    Run it from its own timer or cron line, so it fires when the runner is dead. On an
    alert it pings [watchdog] ping_url + /fail, unless --no-ping (the systemd unit has
    no network: its OnFailure= alert unit pings).
    """

    def body(runtime: Runtime) -> int:
        from agent import views
        from agent.console import show
        from agent.watchdog import run_watchdog

        result = run_watchdog(runtime, ping=not no_ping)
        show(as_json, result, views.watchdog)
        return result.exit_code

    _run(root, as_json, body)


@app.command()
def report(
    root: RootOpt = Path("."),
    since: Annotated[
        str, typer.Option("--since", help="The window: 14d, 36h, 2w, or an ISO date.")
    ] = "14d",
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the report as one self-contained page."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The run as a whole, from the ledger and git alone: ticks, uptime and silences,
    tasks, spend against the cap, proposals, the baseline, incidents, weekly ratios."""

    def body(runtime: Runtime) -> int:
        from agent import views
        from agent.console import show
        from agent.report import build
        from agent.report_html import write_html
        from agent.report_view import print_report
        from agent.timespan import parse_since

        figures = build(runtime, parse_since(since))
        if html is not None:
            write_html(html, figures, runtime.config.root.name)
        show(as_json, figures, print_report)
        if html is not None and not as_json:
            views.page_written(html)
        return 0

    _run(root, as_json, body)


@app.command()
def ping(
    kind: Annotated[str, typer.Argument(help="start, success, fail or log.")],
    reason: Annotated[str, typer.Option("--reason", help="The body: what happened.")] = "",
    root: RootOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Send one ping to [watchdog] ping_url now, and say whether it got through.

    To try the URL by hand, and for the systemd alert unit. Exit codes: 0 sent, or no
    ping_url configured (nothing to send); 2 an unknown kind; 3 it did not get through.
    """

    def body(runtime: Runtime) -> int:
        from agent import views
        from agent.console import show
        from agent.ping import send_by_hand

        sent = send_by_hand(runtime.config.ping_url, kind, runtime.redact(reason), runtime.trace)
        show(as_json, sent, views.ping)
        return 0

    _run(root, as_json, body)


def main() -> None:
    run_app(app, "agent")
