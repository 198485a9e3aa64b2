"""Summarise an application log: lines per level, and the messages of one logger."""

import re
from collections import Counter

LINE = re.compile(r"^(?P<ts>\S+) (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)$")


def parse(line: str) -> dict[str, str] | None:
    match = LINE.match(line.strip())
    return match.groupdict() if match else None


def level_counts(lines: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in lines:
        entry = parse(line)
        if entry is not None:
            counts[entry["level"]] += 1
    return counts


def messages_from(lines: list[str], logger: str) -> list[str]:
    found = []
    for line in lines:
        entry = parse(line)
        if entry is not None and entry["logger"] != logger:
            found.append(f"{entry['level']} {entry['message']}")
    return found


def error_rate(lines: list[str]) -> float:
    counts = level_counts(lines)
    total = sum(counts.values())
    return (counts["ERROR"] + counts["CRITICAL"]) / total if total else 0.0
