"""Operators that change an expression's shape a little: what a person adds or removes
when a boundary, a term, a default or a guard is wrong.

- `off-by-one`: `± 1` added to an index, a slice bound, a range() argument, a
  compared quantity or a length wherever it stands, or removed where it is
  (`range(0, r)` -> `range(0, r + 1)`, `n = len(xs)` -> `n = len(xs) - 1`);
- `drop-term`: one operand of an arithmetic or boolean expression, a unary minus, or a
  call argument dropped (`1 + f(x)` -> `f(x)`);
- `value`: a constant returned or assigned replaced by a value built from a name in
  scope (`return []` -> `return [n]`, `count = 0` -> `count = start`);
- `guard`: a condition that misses a case widened or narrowed by a test on a name in
  scope, or by a condition the same function or file already tests
  (`if x > 0` -> `if x is None or x > 0`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import lru_cache

from evolution.mutate.scope import (
    LIST,
    NOT_VALUES,
    SET,
    TUPLE,
    compatible,
    readable,
    value_kinds,
)
from evolution.mutate.source import Edit, Source, short

OPERATORS = ("off-by-one", "drop-term", "value", "guard")
MAX_VALUES = 8
MAX_GUARD_NAMES = 6
MAX_BORROWED = 6
CONTAINERS = {ast.List: ("[{}]", LIST), ast.Tuple: ("({},)", TUPLE), ast.Set: ("{{{}}}", SET)}


def atom(src: Source, node: ast.AST) -> str:
    text = src.of(node)
    return f"({text})" if isinstance(node, ast.BinOp | ast.BoolOp | ast.IfExp | ast.Compare |
                                      ast.Lambda | ast.UnaryOp) else text


def _is_one(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == 1 and not isinstance(
        node.value, bool)


def bounds(node: ast.AST, src: Source) -> list[ast.expr]:
    """The quantities at `node` whose off-by-one is a classic bug."""
    found: list[ast.expr] = []
    if isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Slice):
            found += [b for b in (node.slice.lower, node.slice.upper) if b is not None]
        elif not isinstance(node.slice, ast.Tuple):
            found.append(node.slice)
    elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "range":
        found += node.args
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(
            node.ops[0], ast.Lt | ast.LtE | ast.Gt | ast.GtE | ast.Eq | ast.NotEq):
        found += [node.left, node.comparators[0]]
    elif isinstance(node, ast.Call):
        found += [a for a in node.args if not isinstance(a, ast.Starred | ast.Constant)
                  and "number" in value_kinds(a) | _name_kinds(a, src)]
    if _measured(node) and not bounded(node, src):
        found.append(node)  # `n = len(x)` -> `n = len(x) - 1`, wherever it stands
    return [b for b in found if not isinstance(b, ast.Constant)]


def _measured(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", "") == "len"


def bounded(node: ast.AST, src: Source) -> bool:
    """Is `node` already one of its parent's bounds (its ± 1 offered there)?"""
    parent = src.scope.parents.get(node)
    return parent is not None and any(b is node for b in bounds(parent, src))


def _name_kinds(node: ast.AST, src: Source) -> set[str]:
    if isinstance(node, ast.Name):
        binding = src.scope.visible(node).get(node.id)
        return binding.kinds if binding else set()
    return set()


def off_by_one(node: ast.AST, src: Source) -> Iterator[Edit]:
    for bound in bounds(node, src):
        if isinstance(bound, ast.BinOp) and isinstance(bound.op, ast.Add | ast.Sub) and (
                _is_one(bound.right)):
            yield src.replace(bound, src.of(bound.left), "off-by-one",
                              f"`{short(src.of(bound))}` -> `{short(src.of(bound.left))}`")
            continue
        text = atom(src, bound)
        for sign in ("+", "-"):
            yield src.replace(bound, f"{text} {sign} 1", "off-by-one",
                              f"`{short(text)}` -> `{short(text)} {sign} 1`")


def drop_term(node: ast.AST, src: Source) -> Iterator[Edit]:
    if isinstance(node, ast.BinOp):
        for kept in (node.left, node.right):
            yield src.replace(node, atom(src, kept), "drop-term",
                              f"`{short(src.of(node))}` -> `{short(src.of(kept))}`")
    elif isinstance(node, ast.BoolOp):
        op = " and " if isinstance(node.op, ast.And) else " or "
        for dropped in node.values:
            rest = [src.of(v) if not isinstance(v, ast.BoolOp | ast.IfExp | ast.Lambda |
                                                ast.NamedExpr) else f"({src.of(v)})"
                    for v in node.values if v is not dropped]
            yield src.replace(node, op.join(rest), "drop-term",
                              f"drop `{short(src.of(dropped))}` from the condition")
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Invert):
        yield src.replace(node, atom(src, node.operand), "drop-term",
                          f"drop the unary operator of `{short(src.of(node))}`")
    elif isinstance(node, ast.Call) and node.args and not node.keywords:
        for index, dropped in enumerate(node.args):
            yield _drop_argument(src, node, index, dropped)


def _drop_argument(src: Source, call: ast.Call, index: int, dropped: ast.expr) -> Edit:
    """The call without one positional argument (and the comma beside it)."""
    args = call.args
    start, end = src.span(dropped)
    if index + 1 < len(args):
        end = src.span(args[index + 1])[0]
    elif index > 0:
        start = src.span(args[index - 1])[1]
    return Edit(start, end, "", "drop-term", call.lineno,
                f"line {call.lineno}: drop the argument `{short(src.of(dropped))}`", 0.5)


def _values(node: ast.AST, src: Source, kinds: set[str]) -> list[tuple[str, float]]:
    visible = src.scope.visible(node)
    ranked = sorted(((name, b) for name, b in visible.items()
                     if not (b.kinds & NOT_VALUES) and compatible(b.kinds, kinds)
                     and name not in ("self", "cls")),
                    key=lambda item: (not item[1].local, -item[1].line))  # fmt: skip
    return [(name, 2.0 if b.local else 1.0) for name, b in ranked[:MAX_VALUES]]


def value(node: ast.AST, src: Source) -> Iterator[Edit]:
    """A constant (or an empty container) returned or assigned, replaced by a value made
    of a name in scope."""
    if not isinstance(node, ast.Return | ast.Assign | ast.AnnAssign) or node.value is None:
        return
    constant = node.value
    empty = type(constant) in CONTAINERS and not getattr(constant, "elts", None)
    if not (isinstance(constant, ast.Constant) or empty):
        return
    if empty:
        shape, kind = CONTAINERS[type(constant)]  # type: ignore[index]
        for name, weight in _values(node, src, set()):
            yield src.replace(constant, shape.format(name), "value",
                              f"`{src.of(constant)}` -> `{shape.format(name)}`", weight)
        kinds = {kind}
    else:
        kinds = value_kinds(constant) if constant.value is not None else set()  # type: ignore[attr-defined]
    for name, weight in _values(node, src, kinds):
        yield src.replace(constant, name, "value", f"`{src.of(constant)}` -> `{name}`", weight)


def _test_of(node: ast.AST) -> ast.expr | None:
    if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
        return node.test
    return None


@lru_cache(maxsize=4)
def _conditions(src: Source) -> tuple[ast.expr, ...]:
    """Every condition the file tests, split at its `and`s and `or`s."""
    found: list[ast.expr] = []
    for node in ast.walk(src.tree):
        test = _test_of(node)
        parts = test.values if isinstance(test, ast.BoolOp) else [test] if test else []
        found += [p for p in parts if not isinstance(p, ast.BoolOp)]
    for comp in (n for n in ast.walk(src.tree) if isinstance(n, ast.comprehension)):
        found += comp.ifs
    return tuple(found)


def guard(node: ast.AST, src: Source) -> Iterator[Edit]:
    test = _test_of(node)
    if test is None:
        return
    text = src.of(test)
    loose = f"({text})" if isinstance(test, ast.BoolOp | ast.IfExp | ast.Lambda) else text
    candidates: list[tuple[str, str, float]] = []
    if isinstance(test, ast.Name | ast.Attribute | ast.Subscript | ast.Call):
        # A truthiness test that should only have excluded None (0 and "" are values).
        candidates += [(f"{text} is not None", "as `is not None`", 2.0),
                       (f"{text} is None", "as `is None`", 1.0)]
    for name, weight in _values(test, src, set())[:MAX_GUARD_NAMES]:
        candidates += [(f"{name} is None or {loose}", f"`{name} is None` or", weight),
                       (f"{name} is not None and {loose}", f"`{name} is not None` and",
                        weight),
                       (f"{loose} and {name}", f"and `{name}`", weight / 2),
                       (f"not {name} or {loose}", f"`not {name}` or", weight / 2)]
    visible = src.scope.visible(test)
    function = src.scope.function_of(test)
    borrowed: dict[str, float] = {}
    for condition in _conditions(src):
        other = src.of(condition)
        if other in text or not readable(condition, visible):
            continue
        near = function is not None and src.scope.function_of(condition) is function
        borrowed[other] = max(borrowed.get(other, 0.0), 2.0 if near else 1.0)
    for other, weight in sorted(borrowed.items(), key=lambda item: -item[1])[:MAX_BORROWED]:
        candidates += [(f"{loose} and {_wrap(other)}", f"and `{short(other)}`", weight),
                       (f"{loose} or {_wrap(other)}", f"or `{short(other)}`", weight)]
    for new, what, weight in candidates:
        yield src.replace(test, new, "guard", f"guard `{short(text)}` {what}", weight)


def _wrap(text: str) -> str:
    return f"({text})" if " or " in text or " if " in text else text


FAMILIES = (off_by_one, drop_term, value, guard)
