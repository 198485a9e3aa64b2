import pytest
from scripts.rate_limit import RateLimiter


def test_first_call_is_allowed():
    assert RateLimiter(2, 10.0).allow(0.0)


def test_blocks_calls_over_the_limit():
    limiter = RateLimiter(2, 10.0)
    assert limiter.allow(0.0)
    assert limiter.allow(1.0)
    assert not limiter.allow(2.0)


def test_window_expiry_frees_a_slot():
    limiter = RateLimiter(1, 5.0)
    assert limiter.allow(0.0)
    assert limiter.allow(5.0)


def test_remaining():
    limiter = RateLimiter(3, 10.0)
    limiter.allow(0.0)
    assert limiter.remaining(1.0) == 2


def test_retry_after_when_idle():
    assert RateLimiter(3, 10.0).retry_after(0.0) == 0.0


def test_rejects_a_zero_limit():
    with pytest.raises(ValueError):
        RateLimiter(0, 10.0)
