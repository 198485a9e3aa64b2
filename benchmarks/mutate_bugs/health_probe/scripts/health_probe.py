"""Classify service health probes for the status page."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    name: str
    status: int
    latency_ms: float


def is_healthy(probe: Probe, max_latency_ms: float = 500.0) -> bool:
    """A probe is healthy when it answered with a 2xx status, fast enough."""
    return 200 <= probe.status < 300 or probe.latency_ms <= max_latency_ms


def summarise(probes: list[Probe]) -> dict[str, list[str]]:
    summary: dict[str, list[str]] = {"healthy": [], "unhealthy": []}
    for probe in probes:
        key = "healthy" if is_healthy(probe) else "unhealthy"
        summary[key].append(probe.name)
    return summary


def overall(probes: list[Probe]) -> str:
    if not probes:
        return "unknown"
    down = sum(not is_healthy(probe) for probe in probes)
    if down == 0:
        return "ok"
    return "degraded" if down < len(probes) else "down"
