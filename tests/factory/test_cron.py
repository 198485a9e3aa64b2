"""The cron parser the factory validates schedules and generated cron lines with."""

from __future__ import annotations

from datetime import datetime

import pytest

from evolution.factory.cron import CronError, parse_cron


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("* * * * *", 60),
        ("*/5 * * * *", 300),
        ("30 */6 * * *", 6 * 3600),
        ("0 3 * * mon-fri", 86400),  # Friday to Monday is longer, the weekdays are 1 day
        ("@daily", 86400),
        ("@hourly", 3600),
        ("0 0 1,15 * *", 14 * 86400),
        ("0 0 29 2 *", 1461 * 86400),  # leap days only: four years apart
        ("0,50 9 * * *", 50 * 60),
    ],
)
def test_shortest_gap_between_firings(expression: str, gap: int) -> None:
    assert parse_cron(expression).min_interval_s() == gap


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("61 * * * *", "minute: 61 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("*/0 * * * *", "bad step"),
        ("5-1 * * * *", "runs backwards"),
        ("x * * * *", "'x' is not a number"),
        ("1,,2 * * * *", "empty list item"),
        ("* * * foo *", "'foo' is not a number"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expression)


def test_an_expression_that_never_repeats_is_refused() -> None:
    with pytest.raises(CronError, match="never fires twice"):
        parse_cron("0 0 31 2 *").min_interval_s()


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    cron = parse_cron("0 12 13 * fri")
    assert cron.matches(datetime(2026, 11, 13, 12, 0))  # a Friday the 13th
    assert cron.matches(datetime(2026, 11, 20, 12, 0))  # any Friday
    assert cron.matches(datetime(2026, 10, 13, 12, 0))  # any 13th
    assert not cron.matches(datetime(2026, 11, 19, 12, 0))


def test_names_and_sunday_as_seven() -> None:
    assert parse_cron("0 0 * jan-mar sun").months == {1, 2, 3}
    assert parse_cron("0 0 * * 7").weekdays == {0}
