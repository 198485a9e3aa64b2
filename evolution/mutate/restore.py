"""Restore a missing statement: insert a one-line statement the same function or file
already has, where it could run.

The ingredients of most one-line fixes already exist elsewhere in the program (Barr et
al., "The plastic surgery hypothesis", FSE 2014), and a forgotten statement usually
has a twin nearby: the other branch appends to the same list, the other loop
increments the same counter. A donor is inserted before a statement, or after the last
statement of a block, at that statement's indentation, only where every name it reads
is bound; a donor from the same function may also take another name of the same kind
in place of one of its own (`out.append(a)` restored as `out.append(b)`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from evolution.mutate.scope import NOT_VALUES, Binding, compatible, readable
from evolution.mutate.source import Edit, Source, short, single_line

OPERATOR = "restore"
DONOR_TYPES = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise,
               ast.Assert, ast.Break, ast.Continue)  # fmt: skip
SAME_FUNCTION, SAME_FILE = 3.0, 1.0
MAX_RENAMES = 4


def insertions(node: ast.AST, src: Source) -> Iterator[Edit]:
    if not isinstance(node, ast.stmt):
        return
    scope = src.scope
    visible = scope.visible(node)
    function = scope.function_of(node)
    points = [(src.offset(node.lineno, node.col_offset), "before")]
    if _last_in_block(node, scope.parents.get(node)) and node.end_lineno is not None:
        points.append((_line_after(src, node.end_lineno), "after"))
    indent = " " * node.col_offset
    neighbours = {src.of(node)}
    for donor, weight in _donors(src, function):
        text = src.of(donor)
        if text in neighbours or donor is node or not readable(donor, visible):
            continue
        variants = [(text, f"`{short(text)}` (copy of line {donor.lineno})")]
        if weight == SAME_FUNCTION:
            variants += _renamed(donor, src, visible)
        for start, where in points:
            # A jump inserted before a statement leaves that statement dead.
            if where == "before" and isinstance(donor, ast.Return | ast.Raise | ast.Break |
                                                ast.Continue):
                continue
            for new, what in variants:
                inserted = f"{indent}{new}\n" if where == "after" else f"{new}\n{indent}"
                if start == len(src.data) and not src.data.endswith(b"\n"):
                    inserted = "\n" + inserted
                yield Edit(start, start, inserted, OPERATOR, node.lineno,
                           f"line {node.lineno}: insert {what} {where} it", weight)


def _is_donor(stmt: ast.AST) -> bool:
    docstring = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
    return isinstance(stmt, DONOR_TYPES) and single_line(stmt) and not docstring


def _donors(src: Source, function: ast.AST | None) -> list[tuple[ast.stmt, float]]:
    """One-line statements (not docstrings), those of the enclosing function first."""
    own = set()
    found = []
    if function is not None:
        for stmt in ast.walk(function):
            if _is_donor(stmt):
                own.add(stmt)
                found.append((stmt, SAME_FUNCTION))
    for stmt in ast.walk(src.tree):
        if _is_donor(stmt) and stmt not in own:
            found.append((stmt, SAME_FILE))
    return found


def _renamed(donor: ast.stmt, src: Source, visible: dict[str, Binding]) -> list[tuple[str, str]]:
    """The donor with one name it reads replaced by another visible name of its kind."""
    start, _ = src.span(donor)
    text = src.of(donor).encode("utf-8")
    variants = []
    for name in (n for n in ast.walk(donor) if isinstance(n, ast.Name)
                 and isinstance(n.ctx, ast.Load) and n.id in visible):  # fmt: skip
        own = visible[name.id].kinds
        if own & NOT_VALUES:
            continue
        others = [other for other, binding in visible.items()
                  if other != name.id and binding.local and compatible(binding.kinds, own)]
        a, b = src.span(name)
        for other in others[:MAX_RENAMES]:
            new = (text[: a - start] + other.encode() + text[b - start :]).decode("utf-8")
            variants.append((new, f"`{short(new)}` (line {donor.lineno} with {other})"))
    return variants


def _last_in_block(node: ast.stmt, parent: ast.AST | None) -> bool:
    blocks = [getattr(parent, name, None) for name in ("body", "orelse", "finalbody")]
    return any(isinstance(block, list) and block and block[-1] is node for block in blocks)


def _line_after(src: Source, line: int) -> int:
    return src.line_starts[line] if line < len(src.line_starts) else len(src.data)
