from scripts.alert_throttle import AlertThrottle


def test_first_alert_is_sent():
    assert AlertThrottle(60).should_notify("disk", 0.0)


def test_repeat_within_interval_is_suppressed():
    throttle = AlertThrottle(60)
    throttle.should_notify("disk", 0.0)
    assert not throttle.should_notify("disk", 30.0)
    assert throttle.pending_summary() == ["disk: 1 suppressed"]


def test_alert_after_interval_is_sent():
    throttle = AlertThrottle(60)
    throttle.should_notify("disk", 0.0)
    assert throttle.should_notify("disk", 61.0)


def test_keys_are_independent():
    throttle = AlertThrottle(60)
    throttle.should_notify("disk", 0.0)
    assert throttle.should_notify("load", 1.0)


def test_interval_restarts_from_the_last_notification():
    throttle = AlertThrottle(60)
    throttle.should_notify("disk", 0.0)
    assert throttle.should_notify("disk", 100.0)
    assert not throttle.should_notify("disk", 120.0)


def test_forget_resets_a_key():
    throttle = AlertThrottle(60)
    throttle.should_notify("disk", 0.0)
    throttle.forget("disk")
    assert throttle.should_notify("disk", 1.0)
