"""Moving average of latency samples, to smooth the signal an alert fires on."""

from collections import deque


class MovingAverage:
    """Mean of the last `size` values, kept in O(1) per value with a running total."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.window: deque[float] = deque()
        self.total = 0.0

    def add(self, value: float) -> float:
        self.window.append(value)
        self.total += value
        if len(self.window) > self.size:
            self.total += self.window.popleft()
        return self.total / len(self.window)

    @property
    def value(self) -> float:
        return self.total / len(self.window) if self.window else 0.0


def smooth(values: list[float], size: int) -> list[float]:
    average = MovingAverage(size)
    return [average.add(value) for value in values]


def sustained_above(values: list[float], size: int, threshold: float) -> bool:
    return any(mean > threshold for mean in smooth(values, size)[size - 1 :])
