"""Cron-style calendar helpers on Unix timestamps (UTC), for scheduling maintenance."""

SECONDS_PER_DAY = 86400
SECONDS_PER_HOUR = 3600
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekday(timestamp: int) -> int:
    """Day of the week, 0 for Monday; 1970-01-01 was a Thursday."""
    days = timestamp // SECONDS_PER_DAY
    return (days + 4) % 7


def day_name(timestamp: int) -> str:
    return DAY_NAMES[weekday(timestamp)]


def start_of_day(timestamp: int) -> int:
    return timestamp - timestamp % SECONDS_PER_DAY


def next_daily(timestamp: int, hour: int) -> int:
    """The first `hour`:00 UTC strictly after `timestamp`."""
    candidate = start_of_day(timestamp) + hour * SECONDS_PER_HOUR
    if candidate <= timestamp:
        candidate += SECONDS_PER_DAY
    return candidate


def next_weekly(timestamp: int, day: str, hour: int) -> int:
    """The first `day` at `hour`:00 UTC strictly after `timestamp`."""
    candidate = next_daily(timestamp, hour)
    while DAY_NAMES[weekday(candidate)] != day:
        candidate += SECONDS_PER_DAY
    return candidate
