"""Terminal output shared by the three CLIs: rich on a terminal, plain when piped or NO_COLOR.

Results go to stdout (or one JSON object with --json); progress and errors go to stderr,
so `agent status --json | jq` always gets clean JSON. It lives in the runtime layer
because `agent`, `evolve` and `factory` share one exit-code convention and one look.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

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


def report_error(error: RatchetError, as_json: bool) -> int:
    if as_json:
        emit_json({"error": error.message, "hint": error.hint, "exit_code": error.exit_code})
    err.print(f"[bold red]error:[/] {escape(error.message)}")
    if error.hint:
        err.print(f"[dim]{escape(error.hint)}[/]")
    return error.exit_code


def run_command(as_json: bool, body: Callable[[], int]) -> None:
    """Run a command body with the shared error and exit-code handling."""
    import typer

    try:
        code = body()
    except RatchetError as error:
        code = report_error(error, as_json)
    except KeyboardInterrupt:
        err.print("interrupted: nothing was changed")
        code = 3
    raise typer.Exit(code)
