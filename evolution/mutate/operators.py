"""Mutation operators: every single-edit mutant of a module at the lines asked for.

The families follow GenProg / PyGGI / Magpie and the fix patterns of real one-line bugs
(ManySStuBs4J, TSSB-3M):
- tokens (this module): comparison, arithmetic and boolean operator swaps, dropping a
  `not`, an integer constant off by one, a boolean literal flipped, the branches of an
  `if` swapped, a returned value changed, a statement deleted;
- `restore`: a statement of the same function or file inserted where it is missing;
- `rewire`: a name, attribute or similar builtin replaced by another in scope, operands,
  call arguments and tuple or subscript elements swapped;
- `shapes`: ± 1 on an index, bound or argument, a term dropped, a constant replaced by
  a value built from names in scope, a missing guard added to a condition;
- `extend`: an argument, a call around an expression, or an attribute or method access
  added, each borrowed from the file's own uses;
- `grow`: an expression grown from names in scope: combined with another number
  (`k` -> `k - x`), clamped or measured by a builtin (`max(0, e)`, `len(xs)`), sliced
  (`xs[k:]`), squared, or a container constant nested (`[]` -> `[[]]`).
Each edit is a span of the original source (see `source`), so formatting and comments
outside it are kept.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

from evolution.mutate import extend, grow, restore, rewire, shapes
from evolution.mutate.source import Edit, Source, apply_edits, short

__all__ = ["OPERATORS", "Edit", "apply_edits", "mutations"]

COMPARE_SWAPS: dict[type[ast.cmpop], list[type[ast.cmpop]]] = {
    ast.Lt: [ast.LtE, ast.Gt],
    ast.LtE: [ast.Lt, ast.GtE],
    ast.Gt: [ast.GtE, ast.Lt],
    ast.GtE: [ast.Gt, ast.LtE],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
BINOP_SWAPS: dict[type[ast.operator], list[type[ast.operator]]] = {
    ast.Add: [ast.Sub, ast.Mult],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Add, ast.Div, ast.Pow],
    ast.Div: [ast.Mult, ast.FloorDiv],
    ast.FloorDiv: [ast.Div, ast.Mod],
    ast.Mod: [ast.FloorDiv],
    ast.Pow: [ast.Mult],
}
SYMBOLS: dict[type, str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
    ast.Mod: "%", ast.Pow: "**", ast.And: "and", ast.Or: "or",
}  # fmt: skip
RETURN_VALUES = ("None", "True", "False", "0")
# Statements small enough to delete or copy without taking a whole block with them.
SIMPLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise,
          ast.Assert, ast.Pass, ast.Break, ast.Continue)  # fmt: skip
Family = Callable[[ast.AST, Source], Iterator[Edit]]


def _tokens(node: ast.AST, src: Source) -> Iterator[Edit]:
    line = node.lineno  # type: ignore[attr-defined]
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        op = type(node.ops[0])
        site = src.token_in_gap(src.span(node.left)[1], src.span(node.comparators[0])[0],
                                SYMBOLS[op])
        for other in COMPARE_SWAPS.get(op, []) if site else []:
            yield Edit(*site, SYMBOLS[other], "compare", line,
                       f"line {line}: {SYMBOLS[op]} -> {SYMBOLS[other]}")
    elif isinstance(node, ast.BinOp | ast.AugAssign):
        yield from _arithmetic(node, src)
    elif isinstance(node, ast.BoolOp):
        yield from _bool_chain(node, src)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield src.replace(node, src.of(node.operand), "boolean", "drop `not`")
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield src.replace(node, str(not node.value), "constant",
                          f"{node.value} -> {not node.value}")
    elif isinstance(node, ast.Constant) and isinstance(node.value, int):
        for delta in (1, -1):
            yield src.replace(node, str(node.value + delta), "constant",
                              f"{node.value} -> {node.value + delta}")


def _arithmetic(node: ast.BinOp | ast.AugAssign, src: Source) -> Iterator[Edit]:
    left, right = (node.left, node.right) if isinstance(node, ast.BinOp) else (
        node.target, node.value)  # fmt: skip
    op = type(node.op)
    symbol = SYMBOLS.get(op, "")
    if not symbol:
        return
    suffix = "=" if isinstance(node, ast.AugAssign) else ""
    site = src.token_in_gap(src.span(left)[1], src.span(right)[0], symbol + suffix)
    line = node.lineno
    for other in BINOP_SWAPS.get(op, []) if site else []:
        new = SYMBOLS[other] + suffix
        yield Edit(*site, new, "arithmetic", line, f"line {line}: {symbol}{suffix} -> {new}")


def _bool_chain(node: ast.BoolOp, src: Source) -> Iterator[Edit]:
    """Every `and` of a chain becomes `or` (or back) at once: one edit rewriting the
    chain's span token by token."""
    symbol = SYMBOLS[type(node.op)]
    other = "or" if symbol == "and" else "and"
    sites = [src.token_in_gap(src.span(a)[1], src.span(b)[0], symbol)
             for a, b in zip(node.values, node.values[1:], strict=False)]
    if not sites or not all(sites):
        return
    start, _ = src.span(node)
    text = src.of(node).encode("utf-8")
    for site in reversed(sites):
        assert site is not None
        text = text[: site[0] - start] + other.encode() + text[site[1] - start :]
    yield src.replace(node, text.decode("utf-8"), "boolean", f"{symbol} -> {other}")


def _statements(node: ast.AST, src: Source) -> Iterator[Edit]:
    if isinstance(node, ast.If):
        test = src.of(node.test)
        yield src.replace(node.test, f"not ({test})", "if-swap",
                          f"swap the branches of `if {short(test)}`")
    if isinstance(node, ast.Return) and node.value is not None:
        current = src.of(node.value)
        for value in (*RETURN_VALUES, f"not ({current})"):
            if value != current:
                yield src.replace(node.value, value, "return",
                                  f"return {short(current, 30)} -> return {short(value, 30)}")
    if isinstance(node, SIMPLE) and not isinstance(node, ast.Pass):
        yield src.replace(node, "pass", "delete", "delete the statement")


FAMILIES: tuple[Family, ...] = (
    _tokens, _statements, restore.insertions, *rewire.FAMILIES, *shapes.FAMILIES,
    *extend.FAMILIES, *grow.FAMILIES,
)
OPERATORS: tuple[str, ...] = (
    "compare", "arithmetic", "boolean", "constant", "if-swap", "return", "delete",
    restore.OPERATOR, *rewire.OPERATORS, *shapes.OPERATORS, *extend.OPERATORS,
    *grow.OPERATORS,
)


def mutations(source: str | Source, lines: set[int] | None = None) -> Iterator[Edit]:
    """Every single-edit mutant of `source`, optionally only at the given lines (a
    `Source` already made is used as it is: `rank` reads its analyses too)."""
    src = source if isinstance(source, Source) else Source(source)
    for node in ast.walk(src.tree):
        line = getattr(node, "lineno", None)
        if line is None or (lines is not None and line not in lines):
            continue
        for family in FAMILIES:
            yield from family(node, src)
