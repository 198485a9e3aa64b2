"""Filter log lines with include/exclude regular expressions, like `grep -e ... -v ...`."""

import re
from collections.abc import Iterable, Iterator


def matches(line: str, include: str | None = None, exclude: str | None = None) -> bool:
    if exclude and not re.search(exclude, line):
        return False
    return include is None or re.search(include, line) is not None


def filter_lines(
    lines: Iterable[str], include: str | None = None, exclude: str | None = None
) -> Iterator[str]:
    for line in lines:
        line = line.rstrip("\n")
        if line and matches(line, include, exclude):
            yield line


def tail(lines: Iterable[str], count: int, **patterns: str | None) -> list[str]:
    kept = list(filter_lines(lines, **patterns))
    return kept[-count:] if count > 0 else []
