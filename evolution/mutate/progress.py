"""Edits that make an endless loop progress, tried first when a failing test hung.

A `while` loop that never ends has a condition that never changes: some name it reads
is never written in its body (a counter's `i += 1` lost), or written with no change
(`i += 0`, `i = i`). So when a failing test ran to its time limit, the edits that
write a name the condition of a `while` loop reads, inside that loop's body, come
first (in the order the ranking gave them): a statement inserted there that assigns
such a name, an edit inside a statement that assigns one (not its deletion), or a
renaming of a statement's target to one. Everything else keeps its place after them. Without
this, the restored `i += 1` of a comment counter came 106th of 125 candidates, behind
dozens that each hung for their whole time limit.
"""

from __future__ import annotations

import ast
import bisect
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

from evolution.mutate.source import Edit, Source


@dataclass(frozen=True)
class _Loop:
    body: tuple[int, int]  # byte offsets of the body's lines, first to last
    indent: int  # the body's column
    reads: frozenset[str]  # the names its condition reads
    writers: tuple[tuple[int, int], ...]  # spans of body statements that assign one
    targets: tuple[tuple[int, int], ...]  # spans of the body's assigned names


def _assigned(statement: ast.stmt) -> set[str]:
    """The names a simple statement assigns from a value that reads a name (`i += 1`,
    `i = i + step`, `node = node.next`): a name reset to a constant (`i = 0`) inside
    the loop makes no progress."""
    if isinstance(statement, ast.AugAssign):
        targets = [statement.target]
    elif isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None and any(
            isinstance(n, ast.Name) for n in ast.walk(statement.value)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    else:
        return set()
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _loops(source: Source) -> list[_Loop]:
    found = []
    for loop in ast.walk(source.tree):
        if not isinstance(loop, ast.While):
            continue
        reads = frozenset(n.id for n in ast.walk(loop.test) if isinstance(n, ast.Name))
        first, last = loop.body[0], loop.body[-1]
        after = last.end_lineno or last.lineno
        body = (source.line_starts[first.lineno - 1], source.line_starts[after]
                if after < len(source.line_starts) else len(source.data))
        statements = [s for part in loop.body for s in ast.walk(part) if isinstance(s, ast.stmt)]
        writers = tuple(source.span(s) for s in statements if _assigned(s) & reads)
        targets = tuple(source.span(n) for s in statements if _assigned(s)
                        for n in ast.walk(s) if isinstance(n, ast.Name)
                        and isinstance(n.ctx, ast.Store))  # fmt: skip
        found.append(_Loop(body, first.col_offset, reads, writers, targets))
    return found


def _inserted_writes(text: str) -> set[str]:
    """The names an inserted statement assigns; none when `text` is not statements."""
    try:
        tree = ast.parse(textwrap.dedent(text.strip("\n")))
    except SyntaxError:
        return set()
    return {name for statement in tree.body for name in _assigned(statement)}


def _indent(source: Source, edit: Edit) -> int:
    """The column an inserted statement takes: its text's own indentation when it is
    inserted at a line's start (after a statement), else where it is inserted (before
    one)."""
    lead = len(edit.text) - len(edit.text.lstrip(" "))
    return lead or edit.start - source.line_starts[bisect.bisect_right(
        source.line_starts, edit.start) - 1]


def _progresses(source: Source, edit: Edit, loop: _Loop) -> bool:
    start, end = loop.body
    if not start <= edit.start <= end:
        return False
    if edit.start == edit.end:
        return (_indent(source, edit) >= loop.indent
                and bool(_inserted_writes(edit.text) & loop.reads))
    inside = edit.operator != "delete" and any(  # a deletion removes a write
        s <= edit.start and edit.end <= e for s, e in loop.writers)
    renamed = (edit.start, edit.end) in loop.targets and edit.text in loop.reads
    return inside or renamed


def progress_first(source: str, edits: list[Edit]) -> Iterator[Edit]:
    """`edits` with those that make a `while` loop's condition change first."""
    parsed = Source(source)
    loops = _loops(parsed)
    later = []
    for edit in edits:
        if any(_progresses(parsed, edit, loop) for loop in loops):
            yield edit
        else:
            later.append(edit)
    yield from later
