"""Edits as byte spans of the original source, so a mutant is the source with a few spans
replaced and nothing re-printed.

ast positions are UTF-8 byte offsets; a person and git see the text. An operator finds
a node, takes the exact span of its own text (or of one token between two operands),
and replaces only that: comments and formatting outside the span are unchanged, so an
accepted patch reads like a person's one-line fix.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass, field
from functools import cached_property

from evolution.mutate.scope import ScopeIndex, unread


@dataclass(frozen=True, order=True)
class Edit:
    """Replace bytes [start, end) of the source with `text`; start == end inserts.

    `weight` ranks the edit against the others its operator proposes on the same line
    (the search shares the operator's prior among them in proportion to it)."""

    start: int
    end: int
    text: str
    operator: str
    line: int
    description: str
    weight: float = field(default=1.0, compare=False)


def apply_edits(source: str, edits: tuple[Edit, ...] | list[Edit]) -> str:
    """The source with `edits` applied, last first so earlier offsets stay valid."""
    data = source.encode("utf-8")
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end or (after.start == before.start and before.end == after.end):
            raise ValueError(f"overlapping edits: {before.description} / {after.description}")
    for edit in reversed(ordered):
        data = data[: edit.start] + edit.text.encode("utf-8") + data[edit.end :]
    return data.decode("utf-8")


class Source:
    """The text of a module with its tree, addressed the way ast addresses it."""

    def __init__(self, text: str) -> None:
        self.tree = ast.parse(text)
        self.data = text.encode("utf-8")
        self.line_starts = line_starts(self.data)

    @cached_property
    def scope(self) -> ScopeIndex:
        return ScopeIndex(self.tree)

    @cached_property
    def unread(self) -> list[tuple[int, int, frozenset[str]]]:
        """`scope.unread` of the module: per function, the names no code reads."""
        return unread(self.scope)

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8")

    def of(self, node: ast.AST) -> str:
        return self.text(*self.span(node))

    def line_text(self, line: int) -> str:
        end = self.line_starts[line] - 1 if line < len(self.line_starts) else len(self.data)
        return self.text(self.line_starts[line - 1], end)

    def replace(self, node: ast.AST, text: str, operator: str, description: str,
                weight: float = 1.0) -> Edit:
        """An edit that puts `text` where `node`'s own text is."""
        start, end = self.span(node)
        line = node.lineno  # type: ignore[attr-defined]
        return Edit(start, end, text, operator, line, f"line {line}: {description}", weight)

    def token_in_gap(self, start: int, end: int, symbol: str) -> tuple[int, int] | None:
        """Where `symbol` sits between two operands: only brackets and blanks may surround
        it (a comment or a line continuation in between makes the site unsafe to touch)."""
        gap = self.text(start, end)
        words = symbol.replace(" ", r"\s+")
        pattern = rf"^[\s()\\]*?({words})[\s()\\]*$" if symbol[0].isalpha() else (
            rf"^[\s()\\]*?({re.escape(symbol)})(?![=*/<>])[\s()\\]*$"
        )
        match = re.match(pattern, gap)
        if match is None:
            return None
        prefix = gap[: match.start(1)].encode("utf-8")
        token = match.group(1).encode("utf-8")
        return start + len(prefix), start + len(prefix) + len(token)


def line_starts(data: bytes) -> list[int]:
    """The byte offset where each line starts (ast's columns are bytes)."""
    return [0] + [index + 1 for index, byte in enumerate(data) if byte == 0x0A]


def single_line(node: ast.AST) -> bool:
    return getattr(node, "lineno", None) == getattr(node, "end_lineno", None)


def short(text: str, limit: int = 40) -> str:
    """A span's text for a commit line: one line, clipped."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
