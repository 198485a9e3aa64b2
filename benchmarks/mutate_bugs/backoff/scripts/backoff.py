"""Retry delays for flaky network calls: exponential backoff with a cap and jitter."""

import random


def backoff_delay(
    attempt: int, base_s: float = 0.5, factor: float = 2.0, cap_s: float = 30.0
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    return min(cap_s, base_s * factor * attempt)


def jittered(delay: float, rng: random.Random) -> float:
    """Equal jitter: half the delay fixed, half random, so retries do not synchronise."""
    return delay / 2 + rng.uniform(0, delay / 2)


def schedule(retries: int, base_s: float = 0.5, cap_s: float = 30.0) -> list[float]:
    return [backoff_delay(attempt, base_s=base_s, cap_s=cap_s) for attempt in range(retries)]


def total_wait(retries: int, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    return sum(schedule(retries, base_s, cap_s))
