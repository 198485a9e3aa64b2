"""`--since`: a span back from now (`14d`, `36h`, `90m`, `2w`) or an ISO date or time.

Shared by `agent report` and `evolve log`, so that both read a window the same way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from agent.errors import UsageError

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The moment `text` names; an ISO value without an offset is UTC."""
    span = _SPAN.match(text.strip())
    if span:
        now = now or datetime.now(UTC)
        return now - timedelta(seconds=float(span.group(1)) * _UNITS[span.group(2)])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since takes a span like 14d, 36h, 90m or 2w, or an ISO date or time "
            f"like 2026-11-01 or 2026-11-01T12:00 ({text!r})"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
