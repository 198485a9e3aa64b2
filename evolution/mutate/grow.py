"""Operators that grow an expression from what is in scope where it stands.

Half the misses of the last held-out benchmark were expressions that had to grow: a
name that should have been a difference (`k` -> `k - x`), a value that should have
been squared, clamped (`max(0, e)`) or sliced (`xs[k:]`), an empty list that should
have held one (`[]` for `[[]]`). The ingredients are names bound at the site, so each
operator builds only from those (see `scope`: bound where the site stands, of a kind
that fits), ranks the names the same function already combines with the site's first
(`k - x` where the function compares `k` with `x`), and offers a handful per site,
so a line's other fixes are not buried (the search shares an operator's prior among
its proposals on a line):

- `combine`: a number grown by another name or a small constant the function uses
  (`k` -> `k - x`, `n` -> `n + 1` where no off-by-one site offers it);
- `wrap-builtin`: `max`/`min` with a second argument from scope (`e` -> `max(0, e)`,
  `max(best, e)`), `abs` around a number, `len` around a sequence where a number is
  expected (`range(xs)` -> `range(len(xs))`), each only where `wrap-call` does not
  already offer it;
- `slice`: a sequence sliced by a number in scope (`xs` -> `xs[k:]`, `xs[:k]`,
  `xs[1:]`, `xs[:-1]`);
- `power`: a number squared (`v` -> `v ** 2`, `v * v`);
- `nest`: a container constant one level deeper or shallower (`[]` <-> `[[]]`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import lru_cache

from evolution.mutate.extend import callee, is_value_site, wrappers
from evolution.mutate.scope import (
    BYTES,
    LIST,
    NOT_VALUES,
    NUMBER,
    STR,
    TUPLE,
    value_kinds,
)
from evolution.mutate.shapes import atom, bounded
from evolution.mutate.source import Edit, Source, short

OPERATORS = ("combine", "wrap-builtin", "slice", "power", "nest")
SEQUENCES = frozenset({LIST, STR, TUPLE, BYTES})
ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
MAX_OPERANDS = 4  # names per site; the function's partners of the site's name first
MAX_CONSTANTS = 3
PARTNER = 3.0  # the function already combines or compares the two names
WHOLE = 2.0  # a statement's whole value is clamped more often than one of its operands
ZERO = 3.0  # `max(0, e)`, the commonest clamp, as likely as a partner's name


@lru_cache(maxsize=4)
def _evidence(src: Source) -> tuple[set[tuple[ast.AST | None, str]],
                                     set[tuple[ast.AST | None, str]],
                                     dict[tuple[ast.AST | None, str], set[str]],
                                     set[tuple[ast.AST | None, str]]]:
    """Per function (None: the module): the names used as numbers (in arithmetic, in
    an ordering comparison, as an index or a range() argument), the names used as
    sequences (subscripted, sliced, measured by len(), iterated), for each name the
    names it is combined or compared with there, and the names used as positions (an
    index, a slice bound, a range() argument)."""
    numbers: set[tuple[ast.AST | None, str]] = set()
    sequences: set[tuple[ast.AST | None, str]] = set()
    partners: dict[tuple[ast.AST | None, str], set[str]] = {}
    positions: set[tuple[ast.AST | None, str]] = set()
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Name) and _number_context(node, src) and isinstance(
                src.scope.parents.get(node), ast.Subscript | ast.Slice | ast.Call):
            positions.add((src.scope.function_of(node), node.id))
        pair: list[ast.AST] = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ARITHMETIC):
            pair = [node.left, node.right]
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(
                node.ops[0], ORDERING):
            pair = [node.left, node.comparators[0]]
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            sequences.add((src.scope.function_of(node), node.value.id))
            pair = [] if isinstance(node.slice, ast.Slice | ast.Tuple) else [node.slice]
        elif isinstance(node, ast.Call) and callee(node) == "len" and node.args and isinstance(
                node.args[0], ast.Name):
            sequences.add((src.scope.function_of(node), node.args[0].id))
        elif isinstance(node, ast.For | ast.comprehension) and isinstance(node.iter, ast.Name):
            sequences.add((src.scope.function_of(node.iter), node.iter.id))
        elif isinstance(node, ast.Call) and callee(node) == "range":
            pair = list(node.args)
        names = [n.id for n in pair if isinstance(n, ast.Name)]
        if not names:
            continue
        function = src.scope.function_of(node)
        numbers.update((function, name) for name in names)
        for name in names:
            partners.setdefault((function, name), set()).update(n for n in names if n != name)
    return numbers, sequences, partners, positions


def _kinds(node: ast.AST, src: Source) -> set[str]:
    if isinstance(node, ast.Name):
        binding = src.scope.visible(node).get(node.id)
        return set(binding.kinds) if binding is not None else set()
    return value_kinds(node)  # type: ignore[arg-type]


def _number_context(node: ast.AST, src: Source) -> bool:
    """Does the place `node` stands in take a number?"""
    parent = src.scope.parents.get(node)
    if isinstance(parent, ast.BinOp | ast.AugAssign):
        return isinstance(parent.op, ARITHMETIC)
    if isinstance(parent, ast.Compare):
        return len(parent.ops) == 1 and isinstance(parent.ops[0], ORDERING)
    if isinstance(parent, ast.Subscript):
        return parent.slice is node
    if isinstance(parent, ast.Call):
        return callee(parent) == "range" and node in parent.args
    return isinstance(parent, ast.Slice | ast.UnaryOp) and not isinstance(
        getattr(parent, "op", None), ast.Not)


def is_number(node: ast.AST, src: Source) -> bool:
    """What the site's binding, its own shape or its uses in the function say: a number."""
    kinds = _kinds(node, src)
    if kinds:
        return NUMBER in kinds
    if isinstance(node, ast.BinOp) and isinstance(node.op, ARITHMETIC):
        return is_number(node.left, src) or is_number(node.right, src)
    if isinstance(node, ast.Name) and (src.scope.function_of(node), node.id) in _evidence(src)[0]:
        return True
    return isinstance(node, ast.Name | ast.Subscript | ast.Attribute) and _number_context(
        node, src)


def is_sequence(node: ast.AST, src: Source) -> bool:
    """A list, tuple or bytes by its binding or shape; a str or a value of unknown kind
    only when the function subscripts, measures or iterates it (a key or a label is a
    str that nobody slices)."""
    kinds = _kinds(node, src)
    if kinds & (SEQUENCES - {STR}):
        return True
    if kinds - {STR}:
        return False
    return isinstance(node, ast.Name) and (
        (src.scope.function_of(node), node.id) in _evidence(src)[1])


def operands(node: ast.AST, src: Source) -> list[tuple[str, float]]:
    """Names in scope that could combine with `node` as numbers, best first: those the
    function already combines or compares with it, then known numbers, then locals of
    unknown kind; nearer bindings first."""
    visible = src.scope.visible(node)
    own = getattr(node, "id", None)
    function = src.scope.function_of(node)
    numbers, sequences, partners, _ = _evidence(src)
    near = partners.get((function, own), set()) if own else set()
    line = getattr(node, "lineno", 0)
    ranked = []
    for name, binding in visible.items():
        if name in (own, "self", "cls") or binding.kinds & NOT_VALUES or (
                binding.local and binding.line >= line):
            continue  # a local first bound on the site's own line is not bound yet
        known = NUMBER in binding.kinds or (function, name) in numbers
        if not known and (binding.kinds or not binding.local or (function, name) in sequences):
            continue  # another kind, a sequence, or a global of unknown kind
        weight = (PARTNER if name in near else 1.0) * (2.0 if known else 1.0)
        ranked.append((name, weight / (1.0 + abs(line - binding.line) / 20.0)))
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked[:MAX_OPERANDS]


def _small_constants(node: ast.AST, src: Source) -> list[str]:
    """1, then the function's own small integers (a 2 in `n // 2` elsewhere)."""
    function = src.scope.function_of(node) or src.tree
    found = ["1"]
    for other in ast.walk(function):
        if (isinstance(other, ast.Constant) and type(other.value) is int
                and 1 < abs(other.value) <= 16 and repr(other.value) not in found):
            found.append(repr(other.value))
    return found[:MAX_CONSTANTS]


def _grow_site(node: ast.AST, src: Source) -> bool:
    return isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and is_value_site(
        node, src) and is_number(node, src)


def combine(node: ast.AST, src: Source) -> Iterator[Edit]:
    """`k` -> `k - x`, `k + x`, `k * x`; `n` -> `n + 1`, `n - 2`."""
    if not _grow_site(node, src):
        return
    text = src.of(node)
    for name, weight in operands(node, src):
        for symbol, share in (("-", 1.0), ("+", 1.0), ("*", 0.5)):
            new = f"{text} {symbol} {name}"
            yield src.replace(node, new, "combine", f"`{text}` -> `{new}`", weight * share)
    if bounded(node, src):
        return
    for number in _small_constants(node, src):
        for symbol in ("+", "-"):
            new = f"{text} {symbol} {number}"
            yield src.replace(node, new, "combine", f"`{text}` -> `{new}`", 0.5)


def _not_wrapped_by(node: ast.AST, src: Source, names: set[str]) -> bool:
    parent = src.scope.parents.get(node)
    return not (isinstance(node, ast.Call) and callee(node) in names) and not (
        isinstance(parent, ast.Call) and callee(parent) in names)


def wrap_builtin(node: ast.AST, src: Source) -> Iterator[Edit]:
    """`e` -> `max(0, e)`, `min(limit, e)`, `abs(e)`; `xs` -> `len(xs)` where a number
    is expected. A builtin the site sees shadowed is never offered; one the file already
    calls with a single argument is `wrap-call`'s."""
    if not is_value_site(node, src) or isinstance(node, ast.Constant):
        return
    visible = src.scope.visible(node)
    usable = {b for b in ("max", "min", "abs", "len") if b not in visible}
    usable -= {b for b in ("abs", "len") if b in wrappers(src)}
    text = src.of(node)
    parent = src.scope.parents.get(node)
    whole = WHOLE if isinstance(parent, ast.stmt) else 1.0
    if is_number(node, src) and _not_wrapped_by(node, src, {"max", "min", "abs"}):
        # not a name the expression around already holds: `max(x, total + x)`
        present = {n.id for n in ast.walk(node if parent is None or whole > 1 else parent)
                   if isinstance(n, ast.Name)}
        seconds = [(name, weight) for name, weight in operands(node, src) if name not in present]
        for name, weight in [("0", ZERO), *seconds]:
            for builtin in sorted(usable & {"max", "min"}):
                new = f"{builtin}({name}, {text})"
                lower = 0.5 if (builtin, name) == ("min", "0") else 1.0  # clamps at 0 from below
                yield src.replace(node, new, "wrap-builtin",
                                  f"`{short(text, 30)}` -> `{short(new, 40)}`",
                                  weight * whole * lower)
        if "abs" in usable:
            yield src.replace(node, f"abs({text})", "wrap-builtin",
                              f"`{short(text, 30)}` -> `abs({short(text, 30)})`", whole)
    elif ("len" in usable and isinstance(node, ast.Name | ast.Attribute | ast.Subscript)
          and is_sequence(node, src) and _number_context(node, src)
          and _not_wrapped_by(node, src, {"len"})):
        yield src.replace(node, f"len({text})", "wrap-builtin",
                          f"`{short(text, 30)}` -> `len({short(text, 30)})`")


def slices(node: ast.AST, src: Source) -> Iterator[Edit]:
    """`xs` -> `xs[k:]`, `xs[:k]`, `xs[1:]`, `xs[:-1]`: a sequence cut at a number in
    scope. Not a sequence that is itself subscripted (`xs[i]` is not `xs[k:][i]`)."""
    if not is_value_site(node, src) or not isinstance(node, ast.Name | ast.Attribute):
        return
    parent = src.scope.parents.get(node)
    if isinstance(parent, ast.Subscript) and parent.value is node:
        return
    if not is_sequence(node, src):
        return
    if isinstance(parent, ast.UnaryOp) or node is getattr(parent, "test", None):
        return  # a truthiness test: `if not xs[1:]` is no fix
    text = src.of(node)
    function = src.scope.function_of(node)
    positions = _evidence(src)[3]
    # a bound is a name used as a position, or one of unknown kind (a float is none)
    bounds = [(name, weight) for name, weight in operands(node, src)
              if (function, name) in positions or not src.scope.visible(node)[name].kinds]
    cuts = [(f"[{name}:]", weight) for name, weight in bounds]
    cuts += [(f"[:{name}]", weight) for name, weight in bounds]
    cuts += [("[1:]", 1.0), ("[:-1]", 1.0), ("[::-1]", 0.5)]
    for cut, weight in cuts:
        yield src.replace(node, f"{text}{cut}", "slice",
                          f"`{short(text, 30)}` -> `{short(text, 30)}{cut}`", weight)


def power(node: ast.AST, src: Source) -> Iterator[Edit]:
    """`v` -> `v ** 2`, `v * v`: a number squared (distances, variances, areas)."""
    if not is_value_site(node, src) or not isinstance(
            node, ast.Name | ast.Subscript | ast.Attribute | ast.BinOp):
        return
    if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Add | ast.Sub):
        return
    if not is_number(node, src):
        return
    parent = src.scope.parents.get(node)
    if not (isinstance(parent, ast.Assign | ast.AugAssign | ast.Return) or (
            isinstance(parent, ast.BinOp) and isinstance(parent.op, ARITHMETIC)
            and not isinstance(parent.op, ast.Pow))):
        return  # only a term or a value assigned or returned is squared
    text = atom(src, node)
    for new, weight in ((f"{text} ** 2", 1.0), (f"{text} * {text}", 0.5)):
        yield src.replace(node, new, "power", f"`{short(src.of(node), 30)}` -> `{short(new)}`",
                          weight)


def nest(node: ast.AST, src: Source) -> Iterator[Edit]:
    """`[]` -> `[[]]` (the one subset of an empty set), `[[]]` or `[()]` -> `[]`."""
    if not isinstance(node, ast.List) or not isinstance(node.ctx, ast.Load):
        return
    if not node.elts:
        yield src.replace(node, "[[]]", "nest", "`[]` -> `[[]]`")
    elif len(node.elts) == 1 and isinstance(inner := node.elts[0], ast.List | ast.Tuple) and (
            not inner.elts):
        yield src.replace(node, "[]", "nest", f"`{src.of(node)}` -> `[]`")


FAMILIES = (combine, wrap_builtin, slices, power, nest)
