"""Terminal output shared by the CLIs: rich on a terminal, plain when piped or NO_COLOR.

Results go to stdout (or one JSON object with --json); progress and errors go to stderr,
so `evolve ... --json | jq` always gets clean JSON.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

from evolution.errors import RatchetError
from evolution.testrun import Progress, ProgressCallback

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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


class LiveProgress:
    """A live bar on a terminal; on a pipe, one line when tests start and one at the end.

    It appears only once a test run reports in, so a cached verdict prints nothing.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.started: float | None = None
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, state: Progress) -> None:
        if self.started is None:
            self._start()
        if self._bar is not None:
            self._bar.update(
                self._task, completed=state.done, total=state.total, failed=state.failed
            )

    def _start(self) -> None:
        self.started = time.monotonic()
        if not err.is_terminal:
            err.print(f"{self.label}…")
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} not passing"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self._task = self._bar.add_task(self.label, total=None, failed=0)
        self._bar.start()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self.started is not None:
            err.print(f"{self.label}: finished in {time.monotonic() - self.started:.1f} s")


@contextmanager
def test_progress(label: str) -> Iterator[ProgressCallback]:
    live = LiveProgress(label)
    try:
        yield live
    finally:
        live.close()
