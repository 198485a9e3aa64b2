"""Timeouts that the ledger says are too short: `factory check` warns before a task is
killed every tick.

A task's `timeout_s` is written once in SPEC.md; the suite it runs grows. The safety
net of the reference deployment was killed at 540 s on a fresh clone and blocked every
task that depends on it (issue 23). The ledger knows each task's recent durations, so
the factory, which owns the spec, says which timeout no longer fits, and where it is
written.
"""

from __future__ import annotations

from pathlib import Path

from agent.ledger import Ledger
from agent.status import summarize_runs
from evolution.factory.spec import ParsedSpec

WINDOW = 20  # recent runs per task: enough for a p95, recent enough to follow the suite
MARGIN = 1.0  # warn once the p95 reaches the timeout itself


def timeout_warnings(parsed: ParsedSpec, ledger_path: Path, window: int = WINDOW) -> list[str]:
    """One line per task whose `timeout_s` is below its recent p95 duration, or that
    timed out recently, naming the SPEC.md line; none without a ledger."""
    if not ledger_path.is_file():
        return []
    warnings = []
    with Ledger(ledger_path) as ledger:
        for index, task in enumerate(parsed.spec.tasks):
            rows = ledger.task_runs(task.name, limit=window)
            figures = summarize_runs(task.name, rows)
            timed_out = sum(row["status"] == "timeout" for row in rows)
            p95 = figures["p95_s"]
            line = parsed.lines.line_of(("tasks", index, "timeout_s"))
            where = f"{parsed.path.name}:{line}: task {task.name!r}: timeout_s = {task.timeout_s}"
            if p95 is not None and p95 * MARGIN >= task.timeout_s:
                warnings.append(
                    f"{where} is below its recent p95 of {p95:.0f} s "
                    f"({figures['runs']} runs in {ledger_path})"
                )
            elif timed_out:
                warnings.append(
                    f"{where}: it timed out in {timed_out} of its last {len(rows)} runs "
                    f"({ledger_path})"
                )
    return warnings
