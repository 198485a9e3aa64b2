from scripts.cron_weekday import day_name, next_daily, next_weekly, start_of_day, weekday

MONDAY_2024_01_01 = 1704067200


def test_epoch_was_a_thursday():
    assert weekday(0) == 3
    assert day_name(0) == "thu"


def test_next_weekly_lands_on_the_right_day():
    assert next_weekly(MONDAY_2024_01_01, "wed", 2) == MONDAY_2024_01_01 + 2 * 86400 + 7200


def test_start_of_day():
    assert start_of_day(MONDAY_2024_01_01 + 5000) == MONDAY_2024_01_01


def test_next_daily_later_today():
    assert next_daily(MONDAY_2024_01_01 + 3600, 3) == MONDAY_2024_01_01 + 3 * 3600


def test_next_daily_rolls_over_to_tomorrow():
    assert next_daily(MONDAY_2024_01_01 + 4 * 3600, 3) == MONDAY_2024_01_01 + 86400 + 3 * 3600
