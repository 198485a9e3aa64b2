import pytest

from scripts.disk_report import human_size, needs_alert, percent_used, report


def test_human_size_bytes():
    assert human_size(512) == "512.0 B"


def test_human_size_kib():
    assert human_size(2048) == "2.0 KiB"


def test_human_size_gib():
    assert human_size(3 * 1024**3) == "3.0 GiB"


def test_percent_used():
    assert percent_used(25, 200) == 12.5


def test_percent_used_rejects_empty_disk():
    with pytest.raises(ValueError):
        percent_used(1, 0)


def test_alert_above_threshold():
    assert needs_alert(95, 100)


def test_no_alert_below_threshold():
    assert not needs_alert(50, 100)


def test_alert_at_threshold():
    assert needs_alert(90, 100)


def test_report_mentions_path(tmp_path):
    assert report(str(tmp_path)).startswith(str(tmp_path))
