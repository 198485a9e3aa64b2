"""Live progress of a test run: a bar on a terminal, two plain lines when piped.

The shared consoles and error reporting live in `agent.console`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agent.console import err
from evolution.run.launch import Progress, ProgressCallback


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


class AgentStatus:
    """A coding agent at work: a spinner with its model calls and spend on a terminal; on
    a pipe, one line when it starts and one when it ends. Minutes can pass with nothing
    else on the screen."""

    def __init__(self) -> None:
        self.started: float | None = None
        self._status: Any = None
        self._name = ""
        self._shown = (-1, -1.0)

    def __call__(self, name: str, calls: int, cost_usd: float) -> None:
        if self.started is None:
            self.started, self._name = time.monotonic(), name
            if not err.is_terminal:
                err.print(f"{name} working in the sandbox…")
                return
            self._status = err.status(f"{name} working in the sandbox")
            self._status.start()
        if self._status is not None and (calls, cost_usd) != self._shown:
            self._shown = (calls, cost_usd)
            self._status.update(f"{name} working in the sandbox: {calls} model call(s), "
                                f"${cost_usd:.4f}")  # fmt: skip

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
        if self.started is not None:
            err.print(f"{self._name}: finished in {time.monotonic() - self.started:.1f} s")


@contextmanager
def agent_status() -> Iterator[AgentStatus]:
    status = AgentStatus()
    try:
        yield status
    finally:
        status.close()
