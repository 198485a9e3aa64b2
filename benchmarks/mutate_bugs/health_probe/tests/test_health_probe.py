from scripts.health_probe import Probe, is_healthy, overall, summarise


def test_fast_ok_probe_is_healthy():
    assert is_healthy(Probe("api", 200, 120.0))


def test_server_error_is_unhealthy_even_when_fast():
    assert not is_healthy(Probe("api", 503, 20.0))


def test_slow_and_failing_probe_is_unhealthy():
    assert not is_healthy(Probe("api", 500, 2000.0))


def test_overall_without_probes_is_unknown():
    assert overall([]) == "unknown"


def test_summary_of_healthy_probes():
    probes = [Probe("api", 200, 10.0), Probe("web", 204, 30.0)]
    assert summarise(probes) == {"healthy": ["api", "web"], "unhealthy": []}
    assert overall(probes) == "ok"
