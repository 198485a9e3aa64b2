"""Terminal output shared by the three CLIs: rich on a terminal, plain when piped or NO_COLOR.

Results go to stdout (or one JSON object with --json); progress and errors go to stderr,
so `agent status --json | jq` always gets clean JSON. It lives in the runtime layer
because `agent`, `evolve` and `factory` share one exit-code convention and one look.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from agent.errors import RatchetError

# No emoji codes: "SPEC.md:100: key" must not print as a "💯".
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def say(text: str) -> None:
    out.print(text)


def plain(text: str) -> str:
    """Escape text that may contain [brackets] (node ids do) for rich markup."""
    return escape(text)


def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def show(as_json: bool, data: Any, view: Callable[[Any], None]) -> None:
    """A command's result: as JSON (its `to_json()` when it has one), or through a view."""
    if as_json:
        emit_json(data.to_json() if hasattr(data, "to_json") else data)
    else:
        view(data)


def report_error(error: RatchetError, as_json: bool) -> int:
    if as_json:
        emit_json({"error": error.message, "hint": error.hint, "exit_code": error.exit_code,
                   **error.details})  # fmt: skip
    err.print(f"[bold red]error:[/] {escape(error.message)}")
    for line in error.lines:
        err.print(line, markup=False, highlight=False)
    if error.hint:
        err.print(f"[dim]{escape(error.hint)}[/]")
    return error.exit_code


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def new_app(name: str | None, help: str) -> typer.Typer:
    """A Typer app with the settings the three CLIs share: no completion, no rich
    tracebacks (an unexpected error is a bug report, an expected one is one line)."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C: process groups are killed and run folders removed
    # by the finally blocks on the way out.
    raise KeyboardInterrupt


def run_app(app: typer.Typer, prog_name: str) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name=prog_name)


def run_command(as_json: bool, body: Callable[[], int]) -> None:
    """The one error boundary of every command: a RatchetError becomes its message and
    exit code, Ctrl-C (or SIGTERM) exit 3 with nothing changed."""
    try:
        code = body()
    except RatchetError as error:
        code = report_error(error, as_json)
    except KeyboardInterrupt:
        err.print("interrupted: nothing was changed")
        code = 3
    raise typer.Exit(code)
