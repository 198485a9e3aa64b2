"""Where each TOML table and key was written, so that an error can name `FILE:LINE`.

tomllib gives values, not positions. An operator told "budget.daily_usd must be 0 or
more" still has to find it; told `SPEC.md:171` they go straight there. Both the factory
(SPEC.md's fenced blocks) and the runtime (deploy/agent.toml, and the SPEC.md line a
generated value came from) use this, so it lives in the lower layer.
"""

from __future__ import annotations

import re
from typing import Any

Loc = tuple[Any, ...]  # ("tasks", 2, "timeout_s"): table names, array indexes, the key

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


class KeyLines:
    """The line of each table header and key assignment, by key path.

    A line scan, not a parser: good enough for the hand-written, one-key-a-line TOML
    of SPEC.md and the factory's output, and it never fails where tomllib succeeded.
    """

    def __init__(self) -> None:
        self.where: dict[Loc, int] = {}
        self._arrays: dict[tuple[str, ...], int] = {}

    def scan(self, body: list[str], first_line: int = 1) -> KeyLines:
        table: Loc = ()
        for offset, line in enumerate(body):
            number = first_line + offset
            header = _HEADER.match(line)
            if header:
                names = tuple(header.group(2).split("."))
                if header.group(1) == "[[":
                    index = self._arrays.get(names, -1) + 1
                    self._arrays[names] = index
                    table = (*names, index)
                else:
                    table = names
                self.where.setdefault(table, number)
                continue
            assign = _ASSIGN.match(line)
            if assign:
                self.where.setdefault((*table, assign.group(1)), number)
        return self

    def line_of(self, loc: Loc) -> int:
        """The line of `loc`, else of the nearest table that holds it, else 1."""
        for size in range(len(loc), 0, -1):
            if loc[:size] in self.where:
                return self.where[loc[:size]]
        return 1

    def knows(self, loc: Loc) -> bool:
        return any(loc[:size] in self.where for size in range(len(loc), 0, -1))


def key_path(loc: Loc) -> str:
    """("tasks", 2, "timeout_s") -> "tasks[2].timeout_s"."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def toml_fences(text: str) -> list[tuple[int, str]]:
    """(first line of the block's body, body) for each ```toml fence, 1-based lines."""
    from markdown_it import MarkdownIt

    blocks = []
    for token in MarkdownIt().parse(text):
        if token.type == "fence" and token.info.strip().lower() == "toml" and token.map:
            blocks.append((token.map[0] + 2, token.content))
    return blocks


def markdown_key_lines(text: str) -> KeyLines:
    """The key lines of every ```toml block of a markdown document (SPEC.md)."""
    lines = KeyLines()
    for first_line, body in toml_fences(text):
        lines.scan(body.splitlines(), first_line)
    return lines
