import pytest
from scripts.percentile import percentile, slo_report


def test_median_of_an_odd_count():
    assert percentile([30.0, 10.0, 20.0], 50) == 20.0


def test_extremes():
    samples = [5.0, 1.0, 9.0, 3.0]
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 9.0


def test_single_sample():
    assert percentile([42.0], 99) == 42.0


def test_interpolates_between_ranks():
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 25.0


def test_empty_is_refused():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_slo_report_met():
    report = slo_report([100.0, 100.0, 100.0], 150.0)
    assert report == {"p50": 100.0, "p99": 100.0, "met": True}
