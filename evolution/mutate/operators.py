"""Mutation operators over AST node spans, spliced into the source text.

A mutation never re-prints the module: it finds the node, takes the exact byte span
git and a person see (ast positions are UTF-8 byte offsets), and replaces only the
operator token or the node's own text. Comments and formatting outside that span are
unchanged, so an accepted patch reads like a person's one-line fix.

Operators (the GenProg / PyGGI / Magpie families): comparison, arithmetic and boolean
operator swaps; an integer constant off by one; statement deletion; a copy of a
statement from the same file inserted before another; the branches of an `if` swapped
(its test negated); a returned value changed.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

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


@dataclass(frozen=True, order=True)
class Edit:
    """Replace bytes [start, end) of the source with `text`; start == end inserts."""

    start: int
    end: int
    text: str
    operator: str
    line: int
    description: str


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


class _Source:
    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")
        self.line_starts = [0]
        for index, byte in enumerate(self.data):
            if byte == 0x0A:
                self.line_starts.append(index + 1)

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8")


def _token_in_gap(src: _Source, start: int, end: int, symbol: str) -> tuple[int, int] | None:
    """Where `symbol` sits between two operands: only brackets and blanks may surround it
    (a comment or a line continuation in between makes the site unsafe to touch)."""
    gap = src.text(start, end)
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


def mutations(source: str, lines: set[int] | None = None) -> Iterator[Edit]:
    """Every single-edit mutant of `source`, optionally only at the given lines."""
    tree = ast.parse(source)
    src = _Source(source)
    statements = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]
    donors = [s for s in statements if isinstance(s, SIMPLE) and s.lineno == s.end_lineno
              and not isinstance(s, ast.Pass)]  # fmt: skip
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if line is None or (lines is not None and line not in lines):
            continue
        yield from _node_mutations(node, src, donors)


def _node_mutations(node: ast.AST, src: _Source, donors: list[ast.stmt]) -> Iterator[Edit]:
    line = node.lineno  # type: ignore[attr-defined]
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        op = type(node.ops[0])
        site = _token_in_gap(
            src, src.span(node.left)[1], src.span(node.comparators[0])[0], SYMBOLS[op]
        )
        for other in COMPARE_SWAPS.get(op, []) if site else []:
            yield Edit(*site, SYMBOLS[other], "compare", line,
                       f"line {line}: {SYMBOLS[op]} -> {SYMBOLS[other]}")
    elif isinstance(node, ast.BinOp | ast.AugAssign):
        left, right = (node.left, node.right) if isinstance(node, ast.BinOp) else (
            node.target, node.value
        )
        op = type(node.op)
        symbol = SYMBOLS.get(op, "")
        if not symbol:
            return
        aug = isinstance(node, ast.AugAssign)
        site = _token_in_gap(src, src.span(left)[1], src.span(right)[0], symbol + ("=" if aug
                                                                                    else ""))
        for other in BINOP_SWAPS.get(op, []) if site else []:
            new = SYMBOLS[other] + ("=" if aug else "")
            yield Edit(*site, new, "arithmetic", line,
                       f"line {line}: {symbol}{'=' if aug else ''} -> {new}")
    elif isinstance(node, ast.BoolOp):
        symbol = SYMBOLS[type(node.op)]
        other = "or" if symbol == "and" else "and"
        sites = [
            _token_in_gap(src, src.span(a)[1], src.span(b)[0], symbol)
            for a, b in zip(node.values, node.values[1:], strict=False)
        ]
        if sites and all(sites):
            # All operators of the chain at once: one Edit per token would overlap nothing
            # but must travel together, so the chain's span is rewritten token by token.
            start, end = src.span(node)
            text = src.text(start, end).encode("utf-8")
            for site in reversed(sites):
                assert site is not None
                text = text[: site[0] - start] + other.encode() + text[site[1] - start :]
            yield Edit(start, end, text.decode("utf-8"), "boolean", line,
                       f"line {line}: {symbol} -> {other}")
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        start, end = src.span(node)
        inner = src.text(*src.span(node.operand))
        yield Edit(start, end, inner, "boolean", line, f"line {line}: drop `not`")
    elif (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        start, end = src.span(node)
        for delta in (1, -1):
            yield Edit(start, end, str(node.value + delta), "constant", line,
                       f"line {line}: {node.value} -> {node.value + delta}")
    if isinstance(node, ast.If):
        start, end = src.span(node.test)
        test = src.text(start, end)
        yield Edit(start, end, f"not ({test})", "if-swap", line,
                   f"line {line}: swap the branches of `if {test[:40]}`")
    if isinstance(node, ast.Return) and node.value is not None:
        start, end = src.span(node.value)
        current = src.text(start, end)
        for value in (*RETURN_VALUES, f"not ({current})"):
            if value != current:
                yield Edit(start, end, value, "return", line,
                           f"line {line}: return {current[:30]} -> return {value[:30]}")
    if isinstance(node, SIMPLE) and not isinstance(node, ast.Pass):
        start, end = src.span(node)
        yield Edit(start, end, "pass", "delete", line, f"line {line}: delete the statement")
    if isinstance(node, ast.stmt):
        start = src.offset(node.lineno, node.col_offset)
        indent = " " * node.col_offset
        for donor in donors:
            if donor is node:
                continue
            text = src.text(*src.span(donor))
            yield Edit(start, start, f"{text}\n{indent}", "copy", line,
                       f"line {line}: insert a copy of line {donor.lineno} (`{text[:40]}`)")
