"""A strict parser for 5-field cron expressions, and the shortest gap between firings.

The factory uses it twice: to validate `[schedule] cron` in SPEC.md (with the cadence
it implies, every task's timeout must fit), and to check the cron lines it generates.
Vixie-cron semantics: numbers, `*`, ranges `a-b`, steps `*/n` and `a-b/n`, lists,
month and weekday names, the `@hourly`-style macros, and the rule that when both
day-of-month and day-of-week are restricted, either one matching is enough.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.errors import UsageError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


class CronError(UsageError, ValueError):
    """The expression is not valid cron; the message names the field. (A ValueError
    too, so that the spec's validators report it as a validation problem.)"""


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    def matches(self, moment: datetime) -> bool:
        if moment.minute not in self.minutes or moment.hour not in self.hours:
            return False
        return moment.month in self.months and self._day_matches(moment)

    def min_interval_s(self, horizon_days: int = 366 * 8 + 2) -> int:
        """The shortest gap between two firings.

        Every firing day fires at the same times, so the answer is the shorter of the
        smallest gap within a day and the smallest gap from one firing day's last firing
        to the next firing day's first. Eight years cover every leap-day pattern.
        """
        times = sorted(h * 3600 + m * 60 for h in self.hours for m in self.minutes)
        shortest = min((b - a for a, b in itertools.pairwise(times)), default=None)
        start = datetime(2024, 1, 1)
        firing_days = [
            offset
            for offset in range(horizon_days)
            if (moment := start + timedelta(days=offset)).month in self.months
            and self._day_matches(moment)
        ]
        for first, second in itertools.pairwise(firing_days):
            gap = (second - first) * 86400 - times[-1] + times[0]
            shortest = gap if shortest is None else min(shortest, gap)
        if shortest is None:
            raise CronError("the expression never fires twice")
        return shortest

    def _day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def _value(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise CronError(f"{field}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is outside {low}-{high}")
    return value


def _field(text: str, low: int, high: int, names: dict[str, int], field: str) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, low, high, names, field)
            stop = _value(last, low, high, names, field)
            if start > stop:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            start = _value(base, low, high, names, field)
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    return values


def parse_cron(expression: str) -> Cron:
    text = MACROS.get(expression.strip().lower(), expression.strip())
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"expected 5 fields (minute hour day month weekday), got {len(parts)}")
    sets = [
        _field(part, low, high, names, name)
        for part, (name, low, high, names) in zip(parts, FIELDS, strict=True)
    ]
    weekdays = {0 if d == 7 else d for d in sets[4]}
    return Cron(
        minutes=frozenset(sets[0]),
        hours=frozenset(sets[1]),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=frozenset(weekdays),
        days_restricted=parts[2] != "*",
        weekdays_restricted=parts[4] != "*",
    )


def cron_for_every(every_s: int) -> str | None:
    """A cron schedule firing exactly every `every_s` seconds, or None if cron cannot."""
    if every_s % 60 == 0 and every_s // 60 <= 60 and 60 % (every_s // 60) == 0:
        minutes = every_s // 60
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if every_s % 3600 == 0 and 24 % (every_s // 3600) == 0:
        hours = every_s // 3600
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    return None
