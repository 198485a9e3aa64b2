import random

import pytest
from scripts.backoff import backoff_delay, jittered, schedule


def test_first_retry_waits_the_base_delay():
    assert backoff_delay(0) == 0.5


def test_delay_doubles_each_attempt():
    assert schedule(4) == [0.5, 1.0, 2.0, 4.0]


def test_second_attempt():
    assert backoff_delay(2) == 2.0


def test_delay_is_capped():
    assert backoff_delay(10, cap_s=1.5) == 1.5


def test_negative_attempt_is_refused():
    with pytest.raises(ValueError):
        backoff_delay(-1)


def test_jitter_stays_within_bounds():
    rng = random.Random(7)
    for _ in range(100):
        assert 2.0 <= jittered(4.0, rng) <= 4.0
