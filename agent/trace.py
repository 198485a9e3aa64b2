"""JSONL trace events under `runs/traces/`, rotated by size.

The ledger says what happened to each tick; the trace says it step by step, in a form
`jq` and `grep` read. Every event is one line written with a single `write` on an
O_APPEND descriptor, under an flock that also serialises rotation, so a tick, a
watchdog run and `agent kill` can write at the same time without tearing a line or
losing one to a rename. Every text passes through the redactor first: a secret printed
by a task reaches the trace as «redacted:NAME».
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.clock import utc_now

TRACE_NAME = "trace.jsonl"
MAX_BYTES = 5 * 1024 * 1024
KEEP = 5


def _identity(text: str) -> str:
    return text


class Trace:
    def __init__(
        self,
        folder: Path,
        *,
        redact: Callable[[str], str] = _identity,
        max_bytes: int = MAX_BYTES,
        keep: int = KEEP,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / TRACE_NAME
        self.redact = redact
        self.max_bytes = max_bytes
        self.keep = keep
        self.context = dict(context or {})

    def bind(self, **context: Any) -> Trace:
        """The same trace, with `context` (a tick id, a task name) added to every event."""
        return Trace(
            self.folder,
            redact=self.redact,
            max_bytes=self.max_bytes,
            keep=self.keep,
            context={**self.context, **context},
        )

    def event(self, name: str, **fields: Any) -> None:
        record = {"ts": utc_now().isoformat(), "event": name, **self.context, **fields}
        line = self.redact(json.dumps(record, sort_keys=True, default=str)) + "\n"
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._rotate_if_full(len(line.encode()))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def _rotate_if_full(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.max_bytes:
            return
        for index in range(self.keep - 1, 0, -1):
            older = self.folder / f"{TRACE_NAME}.{index}"
            if older.exists():
                os.replace(older, self.folder / f"{TRACE_NAME}.{index + 1}")
        # The oldest (.keep) is overwritten by the shift: the folder never holds more
        # than the live file and `keep` rotated ones.
        os.replace(self.path, self.folder / f"{TRACE_NAME}.1")


def read_events(folder: Path) -> list[dict[str, Any]]:
    """Every event still on disk, oldest first (rotated files, then the live one)."""
    rotated = [p for p in Path(folder).glob(f"{TRACE_NAME}.*") if p.suffix[1:].isdigit()]
    files = [*sorted(rotated, key=lambda p: -int(p.suffix[1:])), Path(folder) / TRACE_NAME]
    events = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        events.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return events
