"""The one clock the project reads: UTC, always, so that a ledger row, a trace event, a
trailer and a note written on the same host at the same moment agree."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp() -> str:
    """Now, to the second, as ISO 8601 with its offset: what verdicts record."""
    return utc_now().isoformat(timespec="seconds")
