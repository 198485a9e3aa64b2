from scripts.log_errors import error_rate, level_counts, messages_from, parse

LOG = [
    "2024-05-01T10:00:00 INFO app.web: started",
    "2024-05-01T10:00:01 ERROR app.db: connection refused",
    "garbage line",
    "2024-05-01T10:00:02 WARN app.web: slow request",
    "2024-05-01T10:00:03 INFO app.db: reconnected",
]


def test_parse_a_line():
    assert parse(LOG[0]) == {
        "ts": "2024-05-01T10:00:00",
        "level": "INFO",
        "logger": "app.web",
        "message": "started",
    }


def test_parse_rejects_garbage():
    assert parse("garbage line") is None


def test_level_counts():
    assert level_counts(LOG) == {"INFO": 2, "ERROR": 1, "WARN": 1}


def test_error_rate():
    assert error_rate(LOG) == 0.25


def test_messages_from_one_logger():
    assert messages_from(LOG, "app.db") == ["ERROR connection refused", "INFO reconnected"]
