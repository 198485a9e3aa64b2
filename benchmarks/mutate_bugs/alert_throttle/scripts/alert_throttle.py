"""Throttle repeated alerts: one notification per key per interval, the rest counted."""


class AlertThrottle:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last_sent: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def should_notify(self, key: str, now: float) -> bool:
        last = self.last_sent.get(key)
        if last is None:
            self.last_sent[key] = now
            return True
        if now - last >= self.interval_s:
            self.suppressed[key] = 0
            return True
        self.suppressed[key] = self.suppressed.get(key, 0) + 1
        return False

    def pending_summary(self) -> list[str]:
        return [
            f"{key}: {count} suppressed" for key, count in sorted(self.suppressed.items()) if count
        ]

    def forget(self, key: str) -> None:
        self.last_sent.pop(key, None)
        self.suppressed.pop(key, None)
