"""Sliding-window rate limiter for calls to an external API."""

from collections import deque


class RateLimiter:
    """At most `limit` calls in any `window_s` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        if limit <= 0 or window_s <= 0:
            raise ValueError("limit and window must be positive")
        self.limit = limit
        self.window_s = window_s
        self.calls: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self.calls and self.calls[0] <= now - self.window_s:
            self.calls.popleft()

    def allow(self, now: float) -> bool:
        self._expire(now)
        if len(self.calls) <= self.limit:
            self.calls.append(now)
            return True
        return False

    def remaining(self, now: float) -> int:
        self._expire(now)
        return max(0, self.limit - len(self.calls))

    def retry_after(self, now: float) -> float:
        self._expire(now)
        if len(self.calls) < self.limit:
            return 0.0
        return self.calls[0] + self.window_s - now
