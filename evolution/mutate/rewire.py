"""Operators that rewire what an expression refers to, keeping its shape.

The most frequent single-statement fixes in Python are of this kind (TSSB-3M: a changed
identifier, a changed attribute, a wrong function name, swapped arguments): the right
ingredients are on the line, wired wrongly. Replacements come from names bound where
the site stands, of a compatible kind (see `scope`), and from attributes the file uses
in the same role; each edit spans only the token it changes.
"""

from __future__ import annotations

import ast
import builtins
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache

from evolution.mutate.scope import (
    CALLABLE,
    MODULE,
    NOT_VALUES,
    Binding,
    compatible,
    unread_at,
    value_kinds,
)
from evolution.mutate.source import Edit, Source, short

OPERATORS = ("name", "attribute", "builtin", "swap-operands", "swap-elements")
MAX_ALTERNATIVES = 12
MAX_PEERS = 3  # a name's uses in the site's role count up to this many
# A name read twice by one statement was, as often as not, put there by the fault in
# place of another (`(timer)` beside `Store(128, ttl, timer)`): its renamings weigh more.
REPEATED = 2.0
MISMATCHED = 0.25  # a name of another known kind than the one it replaces
NEVER_REPLACED = frozenset({"self", "cls"})
# Builtins and methods people confuse with a sibling (the "similar builtins" of the
# issue), each group closed under swapping.
SIMILAR_GROUPS = (
    ("any", "all"), ("min", "max"), ("sorted", "reversed"), ("list", "tuple", "set"),
    ("int", "round", "float"), ("str", "repr"), ("append", "extend"),
    ("startswith", "endswith"), ("lstrip", "rstrip", "strip"), ("upper", "lower"),
    ("find", "rfind", "index"), ("keys", "values", "items"), ("remove", "discard"),
    ("split", "rsplit"), ("ljust", "rjust"), ("floor", "ceil"), ("isupper", "islower"),
    ("pop", "popleft"), ("appendleft", "append"), ("insert", "append"),
)
SIMILAR: dict[str, tuple[str, ...]] = {}
for _group in SIMILAR_GROUPS:
    for _name in _group:
        SIMILAR[_name] = SIMILAR.get(_name, ()) + tuple(n for n in _group if n != _name)
NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift,
                   ast.MatMult, ast.Add)  # `+` too: strings and lists do not commute
LOOSE = (ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Lambda, ast.NamedExpr)


def _called(node: ast.AST, src: Source) -> bool:
    parent = src.scope.parents.get(node)
    return isinstance(parent, ast.Call) and parent.func is node


def names(node: ast.AST, src: Source) -> Iterator[Edit]:
    """Replace an identifier by another bound where it stands, of a compatible kind."""
    if not isinstance(node, ast.Name) or node.id in NEVER_REPLACED:
        return
    visible = src.scope.visible(node)
    own = visible.get(node.id)
    dead = unread_at(src.unread, getattr(node, "lineno", 0))
    if isinstance(node.ctx, ast.Store):
        if own is None or not own.local:
            return
        choices = {n: b for n, b in visible.items() if b.local and n != node.id
                   and not (b.kinds & NOT_VALUES)}  # fmt: skip
    elif _called(node, src):
        # A callable, or a name of unknown kind no code reads: a parameter whose default
        # names a function (`add=tuple.__add__`), an import (`itemgetter`): its only
        # call may be what the fault renamed.
        unread = _unread_callables(node, src) | {
            n for n in dead if n in visible and not visible[n].kinds
            and not visible[n].local}  # fmt: skip
        choices = {n: b for n, b in visible.items() if CALLABLE in b.kinds or n in unread}
        choices.update({n: Binding(0, {CALLABLE}, False) for n in _called_builtins(src)
                        if n not in visible})  # fmt: skip
    else:
        kinds = own.kinds if own is not None else set()
        parent = src.scope.parents.get(node)
        if MODULE in kinds and isinstance(parent, ast.Attribute):
            return  # `re.sub`: the module is the way to its function, not a value
        kinds = kinds - NOT_VALUES  # a module or function where a value stands: a value
        choices = {n: b for n, b in visible.items() if not (b.kinds & NOT_VALUES)}
    peers = _roles(src).get((src.scope.function_of(node), _role(node, src)), Counter())
    twice = REPEATED if _reads_in_statement(node, src)[node.id] > 1 else 1.0
    reference = _expected(node, src, visible) or (own.kinds if own is not None else set())
    ranked = sorted(
        ((name, twice * _weight(binding, reference, node) * (1 + min(peers[name], MAX_PEERS)))
         for name, binding in choices.items()
         if name != node.id and name not in NEVER_REPLACED),
        key=lambda item: -item[1],
    )
    # A name no code reads is never cut off: it is the likeliest of all (see `rank`).
    kept = ranked[:MAX_ALTERNATIVES] + [c for c in ranked[MAX_ALTERNATIVES:] if c[0] in dead]
    for name, weight in kept:
        yield src.replace(node, name, "name", f"{node.id} -> {name}", weight)


def _weight(binding: Binding, reference: set[str], node: ast.AST) -> float:
    """Locals before globals, names of the kind the site wants (`_expected`, else the
    replaced name's) before unknown ones, those of another known kind last (the name
    the fault put there may be of the wrong kind: toolz's `!= seqs`, a tuple, compared
    with a count, for `!= N`), and names bound closer to the site before farther ones."""
    weight = 2.0 if binding.local else 1.0
    if binding.kinds & reference - {CALLABLE}:
        weight *= 2.0
    elif not compatible(binding.kinds, reference - NOT_VALUES):
        weight *= MISMATCHED
    distance = abs(getattr(node, "lineno", 0) - binding.line)
    return weight / (1.0 + distance / 20.0)


def _expected(node: ast.AST, src: Source, visible: dict[str, Binding]) -> set[str]:
    """The kinds the site's value must have, from what it is compared or combined with
    (`items.count(x) != ?`: a number); empty when nothing says."""
    parent = src.scope.parents.get(node)
    others: list[ast.expr] = []
    if isinstance(parent, ast.Compare) and not any(
            isinstance(op, ast.In | ast.NotIn | ast.Is | ast.IsNot) for op in parent.ops):
        others = [e for e in (parent.left, *parent.comparators) if e is not node]
    elif isinstance(parent, ast.BinOp) and not isinstance(parent.op, ast.Mod):
        others = [parent.right if parent.left is node else parent.left]
    kinds: set[str] = set()
    for other in others:
        if isinstance(other, ast.Name):
            kinds |= visible[other.id].kinds if other.id in visible else set()
        else:
            kinds |= value_kinds(other)
    return kinds - NOT_VALUES


def _shape(value: object, hole: ast.AST, keep: ast.AST | None) -> object:
    if value is hole:
        return "?"
    if isinstance(value, list):
        return tuple(_shape(v, hole, keep) for v in value)
    if isinstance(value, ast.Constant):
        return type(value.value).__name__
    if isinstance(value, ast.Name) and value is keep:
        return value.id
    return type(value).__name__ if isinstance(value, ast.AST) else value


def _role(node: ast.AST, src: Source) -> tuple[object, ...]:
    """The place a name stands in, one level up, its neighbours blurred: `n == 'x'`
    and `incomplete == 'fill'` share one role (compared with a str), `singular[0]` and
    `plural[0]` another. A called function keeps its name (`len(?)` is not `abs(?)`)."""
    parent = src.scope.parents.get(node)
    if parent is None:
        return ()
    keep = parent.func if isinstance(parent, ast.Call) else None
    return (type(parent).__name__, *((field, _shape(value, node, keep))
                                     for field, value in ast.iter_fields(parent)))


@lru_cache(maxsize=4)
def _roles(src: Source) -> dict[tuple[ast.AST | None, tuple[object, ...]], Counter[str]]:
    """For each function (None: the module) and role, how often each name stands there.
    A name the same function uses in the same role as the site is the likeliest
    replacement: the wrong identifier of a real fix is mostly its sibling's (`if n ==
    'ignore'` among `if incomplete == 'fill'`, `singular[0] == singular[0]` beside
    `plural[0]`), and their names' number alone ranked it late on a line of many."""
    roles: dict[tuple[ast.AST | None, tuple[object, ...]], Counter[str]] = {}
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Name):
            key = (src.scope.function_of(node), _role(node, src))
            roles.setdefault(key, Counter())[node.id] += 1
    return roles


def _unread_callables(node: ast.AST, src: Source) -> set[str]:
    """The parameters of the function around `node` that no code reads and whose
    default is a name or an attribute (`add=tuple.__add__`, `_len=len`)."""
    function = src.scope.function_of(node)
    if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        return set()
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults = [*zip(positional[len(positional) - len(arguments.defaults):],
                     arguments.defaults, strict=True),
                *((a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults,
                                         strict=True) if d is not None)]  # fmt: skip
    line = function.lineno
    unread = next((names for first, _, names in src.unread[:-1] if first == line), set())
    return {a.arg for a, d in defaults
            if a.arg in unread and isinstance(d, ast.Name | ast.Attribute)}


def _reads_in_statement(node: ast.AST, src: Source) -> Counter[str]:
    """How often each name is read by the statement `node` stands in."""
    statement = node
    while not isinstance(statement, ast.stmt) and statement in src.scope.parents:
        statement = src.scope.parents[statement]
    return Counter(n.id for n in ast.walk(statement)
                   if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))


@lru_cache(maxsize=4)
def _called_builtins(src: Source) -> frozenset[str]:
    return frozenset(n.func.id for n in ast.walk(src.tree) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Name) and hasattr(builtins, n.func.id))


@lru_cache(maxsize=4)
def _attribute_uses(src: Source) -> dict[bool, dict[str, set[str]]]:
    """For called and for plain attributes: each name, and the bases it is used on."""
    uses: dict[bool, dict[str, set[str]]] = {True: {}, False: {}}
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Attribute) and not node.attr.startswith("__"):
            uses[_called(node, src)].setdefault(node.attr, set()).add(src.of(node.value))
    return uses


def attributes(node: ast.AST, src: Source) -> Iterator[Edit]:
    """Replace `x.a` by `x.b`, where the file uses `b` on the same object or in the
    same role (called or not)."""
    if not isinstance(node, ast.Attribute) or node.attr.startswith("__"):
        return
    called = _called(node, src)
    base = src.of(node.value)
    weights = {attr: 2.0 if base in bases else 1.0
               for attr, bases in _attribute_uses(src)[called].items() if attr != node.attr}
    if node.end_lineno is None or node.end_col_offset is None:
        return
    end = src.offset(node.end_lineno, node.end_col_offset)
    start = end - len(node.attr.encode("utf-8"))
    if src.text(start, end) != node.attr:
        return
    ranked = sorted(weights.items(), key=lambda item: -item[1])[:MAX_ALTERNATIVES]
    for attr, weight in ranked:
        yield Edit(start, end, attr, "attribute", node.lineno,
                   f"line {node.lineno}: .{node.attr} -> .{attr}", weight)


def builtins_swap(node: ast.AST, src: Source) -> Iterator[Edit]:
    """`any` <-> `all`, `min` <-> `max`, `startswith` <-> `endswith`, …"""
    if not isinstance(node, ast.Call):
        return
    func = node.func
    if isinstance(func, ast.Name) and func.id in SIMILAR:
        for other in SIMILAR[func.id]:
            yield src.replace(func, other, "builtin", f"{func.id}() -> {other}()")
    elif isinstance(func, ast.Attribute) and func.attr in SIMILAR:
        end = src.span(func)[1]
        start = end - len(func.attr)
        if src.text(start, end) == func.attr:
            for other in SIMILAR[func.attr]:
                yield Edit(start, end, other, "builtin", node.lineno,
                           f"line {node.lineno}: .{func.attr}() -> .{other}()")


def _swap(src: Source, a: ast.AST, b: ast.AST, operator: str, what: str) -> Edit | None:
    """One edit over a..b with the two texts exchanged and the gap between them kept;
    None when the gap holds a bracket or comment that would not survive the move."""
    (a_start, a_end), (b_start, b_end) = src.span(a), src.span(b)
    gap = src.text(a_end, b_start)
    if any(ch in gap for ch in "()[]{}#\\"):
        return None
    first, second = (f"({src.of(n)})" if isinstance(n, LOOSE) else src.of(n) for n in (b, a))
    line = a.lineno  # type: ignore[attr-defined]
    return Edit(a_start, b_end, f"{first}{gap}{second}", operator, line,
                f"line {line}: swap {what} `{short(src.of(a), 20)}` and "
                f"`{short(src.of(b), 20)}`")


def swap_operands(node: ast.AST, src: Source) -> Iterator[Edit]:
    """`a - b` -> `b - a`, `a in b` -> `b in a`, `f(x, y)` -> `f(y, x)`."""
    pairs: list[tuple[ast.AST, ast.AST, str]] = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, NON_COMMUTATIVE):
        pairs.append((node.left, node.right, "the operands"))
    elif (isinstance(node, ast.Compare) and len(node.ops) == 1
          and isinstance(node.ops[0], ast.In | ast.NotIn)):
        pairs.append((node.left, node.comparators[0], "the operands"))
    elif isinstance(node, ast.Call) and not any(isinstance(a, ast.Starred) for a in node.args):
        pairs += [(a, b, "the arguments") for a, b in zip(node.args, node.args[1:],
                                                          strict=False)]
        if len(node.args) == 3:
            pairs.append((node.args[0], node.args[2], "the arguments"))
    for a, b, what in pairs:
        edit = _swap(src, a, b, "swap-operands", what)
        if edit is not None:
            yield edit


def swap_elements(node: ast.AST, src: Source) -> Iterator[Edit]:
    """`d[j, k]` -> `d[k, j]`, `return a, b` -> `return b, a`, `d[j][k]` -> `d[k][j]`."""
    pairs: list[tuple[ast.AST, ast.AST]] = []
    if isinstance(node, ast.Tuple) and not any(isinstance(e, ast.Starred) for e in node.elts):
        pairs += list(zip(node.elts, node.elts[1:], strict=False))
    elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Subscript)
          and not isinstance(node.slice, ast.Slice | ast.Tuple)
          and not isinstance(node.value.slice, ast.Slice | ast.Tuple)):
        inner, outer = node.value.slice, node.slice
        (i_start, i_end), (o_start, o_end) = src.span(inner), src.span(outer)
        text = (src.text(o_start, o_end) + src.text(i_end, o_start)
                + src.text(i_start, i_end))
        yield Edit(i_start, o_end, text, "swap-elements", node.lineno,
                   f"line {node.lineno}: swap the subscripts `{short(src.of(inner), 20)}` "
                   f"and `{short(src.of(outer), 20)}`")
    for a, b in pairs:
        edit = _swap(src, a, b, "swap-elements", "the elements")
        if edit is not None:
            yield edit


FAMILIES = (names, attributes, builtins_swap, swap_operands, swap_elements)
