"""Restore a missing statement: insert a one-line statement the same function or file
already has, where it could run.

The ingredients of most one-line fixes already exist elsewhere in the program (Barr et
al., "The plastic surgery hypothesis", FSE 2014), and a forgotten statement usually
has a twin nearby: the other branch appends to the same list, the other loop
increments the same counter. A donor is inserted before a statement, or after the last
statement of a block, at that statement's indentation, only where every name it reads
is bound; a donor from the same function may also take another name of the same kind
in place of one of its own (`out.append(a)` restored as `out.append(b)`). A donor that
reads names the site does not see is a template: those names (at most two) become
locals the site sees, of a compatible kind (another function's `out.append(node)`
restored as `result.append(x)` at the end of a loop, its `return out` as `return
total` after one), from the nearest few such donors only, at a lower weight. A
statement that a donor holds whole is also completed as that donor (`stack.pop()` as
`node = stack.pop()`, a bare `return` as `return out`).
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator

from evolution.mutate.scope import (
    BUILTIN_NAMES,
    NOT_VALUES,
    Binding,
    compatible,
    readable,
    reads,
)
from evolution.mutate.source import Edit, Source, short, single_line

OPERATOR = "restore"
DONOR_TYPES = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise,
               ast.Assert, ast.Break, ast.Continue)  # fmt: skip
SAME_FUNCTION, SAME_FILE, ADAPTED = 3.0, 1.0, 0.5
MAX_RENAMES = 4
MAX_ADAPTED_DONORS = 12  # templates per site, the nearest; a large file has hundreds
MAX_UNBOUND, MAX_CHOICES = 2, 2
MIN_COMPLETED = 5  # a shorter statement (`n`, `x()`) is part of too many others
JUMPS = (ast.Return, ast.Raise, ast.Break, ast.Continue)  # what follows one never runs


def insertions(node: ast.AST, src: Source) -> Iterator[Edit]:
    if not isinstance(node, ast.stmt):
        return
    scope = src.scope
    visible = scope.visible(node)
    function = scope.function_of(node)
    points = [(src.offset(node.lineno, node.col_offset), "before")]
    if (_last_in_block(node, scope.parents.get(node)) and node.end_lineno is not None
            and not isinstance(node, JUMPS)):
        points.append((_line_after(src, node.end_lineno), "after"))
    indent = " " * node.col_offset
    own = src.of(node)
    neighbours = {own}
    # `stack.pop()` completed as `node = stack.pop()`, a bare `return` as `return out`
    completable = _is_donor(node) and (len(own) >= MIN_COMPLETED or isinstance(
        node, ast.Return))
    fresh = {name for name, b in visible.items() if b.local and b.line == node.lineno}
    adapted = 0
    for donor, weight in _donors(src, function, node.lineno):
        text = src.of(donor)
        if text in neighbours or donor is node:
            continue
        if readable(donor, visible):
            variants = [(text, f"`{short(text)}` (copy of line {donor.lineno})", weight)]
            if weight == SAME_FUNCTION:
                variants += [(new, what, weight) for new, what in _renamed(donor, src, visible)]
        elif adapted < MAX_ADAPTED_DONORS and (variants := _adapted(donor, src, visible)):
            adapted += 1
        else:
            continue
        variants = [variant for variant in variants if variant[0] not in neighbours]
        neighbours.update(new for new, _, _ in variants)  # `return out` copied or adapted: once
        for start, where in points:
            # A jump inserted before a statement leaves that statement dead.
            if where == "before" and isinstance(donor, JUMPS):
                continue
            for new, what, share in variants:
                if where == "before" and fresh and reads(ast.parse(new)) & fresh:
                    continue  # `w` is not bound yet before `w = v * 2`
                inserted = f"{indent}{new}\n" if where == "after" else f"{new}\n{indent}"
                if start == len(src.data) and not src.data.endswith(b"\n"):
                    inserted = "\n" + inserted
                yield Edit(start, start, inserted, OPERATOR, node.lineno,
                           f"line {node.lineno}: insert {what} {where} it", share)
        if completable:
            for new, what, share in variants:
                if _holds(new, own):
                    yield src.replace(node, new, OPERATOR, f"complete `{short(own)}` as {what}",
                                      share)


def _holds(statement: str, part: str) -> bool:
    """Does `statement` hold `part` whole, not as a piece of a longer name (`return x`
    is not part of `return xs`)?"""
    return re.search(rf"(?<![\w.]){re.escape(part)}(?!\w)", statement) is not None


def _is_donor(stmt: ast.AST) -> bool:
    docstring = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
    return isinstance(stmt, DONOR_TYPES) and single_line(stmt) and not docstring


def _donors(src: Source, function: ast.AST | None, line: int) -> list[tuple[ast.stmt, float]]:
    """One-line statements (not docstrings), those of the enclosing function first, the
    file's others nearest to `line` first."""
    own = set()
    found = []
    if function is not None:
        for stmt in ast.walk(function):
            if _is_donor(stmt):
                own.add(stmt)
                found.append((stmt, SAME_FUNCTION))
    others = [stmt for stmt in ast.walk(src.tree) if _is_donor(stmt) and stmt not in own]
    others.sort(key=lambda stmt: abs(stmt.lineno - line))
    return found + [(stmt, SAME_FILE) for stmt in others]


def _adapted(donor: ast.stmt, src: Source, visible: dict[str, Binding]
             ) -> list[tuple[str, str, float]]:
    """The donor as a template: each name it reads that the site does not see replaced
    by a local the site sees, of a compatible kind, nearest first (`out.append(node)` of
    another function restored as `result.append(x)`). At most MAX_UNBOUND names, each
    by one of MAX_CHOICES locals, two names never by the same one; a mapping's weight
    falls with its choices' ranks (`return seen` as `return found`, the list, before
    `return node`)."""
    own = src.scope.visible(donor)
    unbound = sorted(n for n in reads(donor) if n not in visible and n not in BUILTIN_NAMES)
    if not unbound or len(unbound) > MAX_UNBOUND or any(
            n in own and own[n].kinds & NOT_VALUES for n in unbound):
        return []
    kept = reads(donor) - set(unbound)
    choices = []
    for name in unbound:
        kinds = own[name].kinds if name in own else set()
        fitting = sorted(
            (other for other, b in visible.items() if b.local and other not in kept
             and other not in ("self", "cls") and not b.kinds & NOT_VALUES
             and compatible(b.kinds, kinds)),
            key=lambda other: (not (visible[other].kinds & kinds), -visible[other].line))
        choices.append(fitting[:MAX_CHOICES])
    start, _ = src.span(donor)
    text = src.of(donor).encode("utf-8")
    spans = [(src.span(n), n.id) for n in ast.walk(donor)
             if isinstance(n, ast.Name) and n.id in unbound]
    variants = []
    for mapping in itertools.product(*(list(enumerate(c)) for c in choices)):
        names = {name: other for name, (_, other) in zip(unbound, mapping, strict=True)}
        if len(set(names.values())) < len(names):
            continue
        rank = sum(index for index, _ in mapping)
        new = text
        for (a, b), name in sorted(spans, reverse=True):
            new = new[: a - start] + names[name].encode() + new[b - start :]
        adapted = new.decode("utf-8")
        variants.append((adapted, f"`{short(adapted)}` (line {donor.lineno} adapted)",
                         ADAPTED / (1 + rank)))
    return variants


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
