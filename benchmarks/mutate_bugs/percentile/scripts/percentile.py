"""Latency percentiles over a batch of request timings, for the daily SLO report."""

import math


def percentile(samples: list[float], pct: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default method)."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= pct <= 100:
        raise ValueError("pct must be within 0..100")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * pct / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] + ordered[lower]) * fraction


def slo_report(samples: list[float], objective_ms: float) -> dict[str, float | bool]:
    p50 = percentile(samples, 50)
    p99 = percentile(samples, 99)
    return {"p50": p50, "p99": p99, "met": p99 <= objective_ms}
