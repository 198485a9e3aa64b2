"""Compare dotted release versions (1.10.2 > 1.9.7) to decide whether to upgrade."""

from functools import cmp_to_key


def parse_version(text: str) -> tuple[int, ...]:
    core = text.strip().removeprefix("v").split("-", 1)[0]
    return tuple(int(part) for part in core.split("."))


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as `a` is older than, the same as or newer than `b`."""
    left, right = parse_version(a), parse_version(b)
    width = max(len(left), len(right))
    left += (0,) * (width - len(left))
    right += (0,) * (width - len(right))
    for index in range(1, width):
        if left[index] != right[index]:
            return 1 if left[index] > right[index] else -1
    return 0


def needs_upgrade(installed: str, latest: str) -> bool:
    return compare(installed, latest) < 0


def newest(versions: list[str]) -> str:
    return max(versions, key=cmp_to_key(compare))
