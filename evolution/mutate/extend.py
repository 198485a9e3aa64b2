"""Operators that add what an expression lacks, borrowed from the file's own uses.

TSSB-3M's single-statement fixes add more often than they change: an argument the call
was missing ("same function, more args", its third most frequent pattern), a call
around an expression ("add function around expression", fifth), a method call or an
attribute access on a value. The ingredient is almost always used elsewhere in the
same file (the plastic surgery hypothesis again): the same function called with one
more argument, a constructor called on a literal, the same object's attribute read.
So each operator offers only what the file itself shows, and only text whose names
the site can read:

- `add-argument`: a call gets a positional argument, or a keyword argument, that
  another call of the same function in the file passes: the next one (`f(a)` ->
  `f(a, b)`), or, where that call passes one more, any of its others in its place
  (`f(a, c)` -> `f(a, b, c)`); or the parameter of a function the file defines by the
  name the site binds;
- `wrap-call`: an expression is passed to a function the file calls with one argument
  (`128` -> `LRUCache(128)`, `items` -> `list(items)`);
- `add-access`: an expression gets an attribute, or a method call, that the file reads
  on the same expression elsewhere (`self._data` -> `self._data.keys()`).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache

from evolution.mutate.scope import BUILTIN_NAMES, NOT_VALUES, readable, unread_at
from evolution.mutate.source import Edit, Source, short

OPERATORS = ("add-argument", "wrap-call", "add-access")
MAX_WRAPPERS = 6
MAX_ACCESSES = 6
SAME_FUNCTION, SAME_FILE = 2.0, 1.0
# Expressions a call, attribute or method may be added to: values, not statements'
# targets or the parts of a name that only lead to another (`os` of `os.path`).
VALUES = (ast.Name, ast.Attribute, ast.Subscript, ast.Call, ast.Constant, ast.List,
          ast.Tuple, ast.Dict, ast.Set, ast.BinOp)  # fmt: skip


def callee(call: ast.Call) -> str | None:
    """What identifies the function a call calls: its name, or `.method`."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return "." + call.func.attr
    return None


@lru_cache(maxsize=4)
def _calls(src: Source) -> dict[str, list[ast.Call]]:
    found: dict[str, list[ast.Call]] = {}
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Call) and (key := callee(node)) is not None:
            found.setdefault(key, []).append(node)
    return found


@lru_cache(maxsize=4)
def _parameters(src: Source) -> dict[str, list[str]]:
    """The parameters of each function the file defines, `self` and `cls` left out."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(src.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = [a.arg for a in [*node.args.posonlyargs, *node.args.args,
                                     *node.args.kwonlyargs]]
            found.setdefault(node.name, [n for n in names if n not in ("self", "cls")])
    return found


def _weight(src: Source, site: ast.AST, donor: ast.AST) -> float:
    function = src.scope.function_of(site)
    return SAME_FUNCTION if function is not None and src.scope.function_of(
        donor) is function else SAME_FILE


def _insert_argument(src: Source, call: ast.Call, text: str, position: int | None
                     ) -> Edit | None:
    """`text` added as the call's positional argument at `position` (before the one
    there, or after the last), or as its last keyword (`position` None)."""
    line = call.lineno
    what = f"line {line}: add the argument `{short(text)}`"
    if position is not None and position < len(call.args):
        start = src.span(call.args[position])[0]
        return Edit(start, start, f"{text}, ", "add-argument", line, what)
    last = call.keywords[-1].value if position is None and call.keywords else (
        call.args[-1] if call.args else None)
    if last is None and call.keywords:  # a positional before the first keyword
        start = src.offset(call.keywords[0].lineno, call.keywords[0].col_offset)
        return Edit(start, start, f"{text}, ", "add-argument", line, what)
    if last is None:
        end = src.span(call)[1]
        if src.text(end - 1, end) != ")" or src.text(src.span(call.func)[1], end - 1).strip(
                ) != "(":
            return None
        return Edit(end - 1, end - 1, text, "add-argument", line, what)
    end = src.span(last)[1]
    return Edit(end, end, f", {text}", "add-argument", line, what)


def _positional(src: Source, node: ast.Call, other: ast.Call
                ) -> Iterator[tuple[ast.expr, int, float]]:
    """The arguments `other` passes that `node` lacks, each with the position to insert
    it at and how much the rest agrees: the next one after `node`'s last, and, when
    `other` passes exactly one more, each of its others in its place (`f(a, c)` ->
    `f(a, b, c)`), likelier when `node`'s arguments are `other`'s without it."""
    count = len(node.args)
    if len(other.args) > count:
        yield other.args[count], count, 1.0
    if len(other.args) != count + 1:
        return
    mine = [src.of(a) for a in node.args]
    for index, extra in enumerate(other.args[:count]):
        rest = [src.of(a) for i, a in enumerate(other.args) if i != index]
        yield extra, index, 1.0 if rest == mine else 0.5


def add_argument(node: ast.AST, src: Source) -> Iterator[Edit]:
    if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args):
        return
    key = callee(node)
    if key is None:
        return
    visible = src.scope.visible(node)
    have = {k.arg for k in node.keywords}
    offered: dict[tuple[str, int | None], float] = {}
    for other in _calls(src)[key]:
        if other is node:
            continue
        weight = _weight(src, node, other)
        for extra, position, agreement in _positional(src, node, other):
            if not isinstance(extra, ast.Starred) and readable(extra, visible):
                text = src.of(extra)
                offered[text, position] = max(offered.get((text, position), 0.0),
                                              weight * agreement)
        for keyword in other.keywords:
            if keyword.arg and keyword.arg not in have and readable(keyword.value, visible):
                text = f"{keyword.arg}={src.of(keyword.value)}"
                offered[text, None] = max(offered.get((text, None), 0.0), weight)
    # A name no code reads, as the last argument: the fault may have dropped its only
    # use (`re.escape()` for `re.escape(separator)`); `rank` puts it first.
    for name in sorted(unread_at(src.unread, node.lineno)):
        bound = visible.get(name)
        if bound is not None and not bound.kinds & NOT_VALUES and not node.keywords:
            offered.setdefault((name, len(node.args)), SAME_FILE)
    parameters = _parameters(src).get(key, [])
    for index, name in enumerate(parameters):
        bound = visible.get(name)
        if name in have or bound is None or bound.kinds & NOT_VALUES:
            continue
        if index == len(node.args) and not node.keywords:
            offered.setdefault((name, index), SAME_FILE)
        offered.setdefault((f"{name}={name}", None), SAME_FILE)
    for (text, position), weight in offered.items():
        edit = _insert_argument(src, node, text, position)
        if edit is not None:
            yield replace(edit, weight=weight)


def is_value_site(node: ast.AST, src: Source) -> bool:
    """An expression that is read as a value where it stands: not a call's function,
    not the object of an attribute (`os` in `os.path`), not an assignment's target, not
    a call whose result is thrown away, not (part of) an annotation."""
    if not isinstance(node, VALUES) or not getattr(node, "lineno", None):
        return False
    if _in_annotation(node, src):
        return False
    if isinstance(getattr(node, "ctx", ast.Load()), ast.Store | ast.Del):
        return False
    parent = src.scope.parents.get(node)
    if (isinstance(parent, ast.Call) and parent.func is node) or isinstance(parent, ast.Expr):
        return False  # a function, or a value thrown away
    if isinstance(parent, ast.Attribute | ast.keyword | ast.Starred | ast.JoinedStr |
                  ast.FormattedValue | ast.arguments):
        return False
    if isinstance(node, ast.Name):
        bound = src.scope.visible(node).get(node.id)
        if bound is not None and bound.kinds & NOT_VALUES:
            return False
    return True


def _in_annotation(node: ast.AST, src: Source) -> bool:
    """`dict[str, int]` of `x: dict[str, int] = {}`, `list[str]` of `-> list[str]`: a
    type, not a value (`len(str, int)` was offered)."""
    child, parent = node, src.scope.parents.get(node)
    while parent is not None and not isinstance(parent, ast.stmt | ast.arg):
        child, parent = parent, src.scope.parents.get(parent)
    return child is getattr(parent, "annotation", None) or child is getattr(
        parent, "returns", None)


@lru_cache(maxsize=4)
def wrappers(src: Source) -> dict[str, Counter[ast.AST | None]]:
    """Functions called with one plain positional argument, by name; the functions
    (None: the module) they are called in, counted."""
    found: dict[str, Counter[ast.AST | None]] = {}
    for key, calls in _calls(src).items():
        if key.startswith("."):
            continue
        for call in calls:
            if len(call.args) == 1 and not call.keywords and not isinstance(
                    call.args[0], ast.Starred):
                found.setdefault(key, Counter())[src.scope.function_of(call)] += 1
    return found


def _words(name: str) -> set[str]:
    """`LRUCache` and `lru_cache` -> {lru, cache}."""
    return {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)}


def wrap_call(node: ast.AST, src: Source) -> Iterator[Edit]:
    """A call around an expression, by a function the file calls with one argument;
    those the enclosing function calls first, and among them those whose name shares
    words with the function's own (`lru_cache` builds an `LRUCache`). How often a
    function is called is no evidence: `callable` and `len` are called everywhere."""
    if not is_value_site(node, src):
        return
    parent = src.scope.parents.get(node)
    around = {callee(n) for n in (node, parent) if isinstance(n, ast.Call)}  # no f(f(x))
    visible = src.scope.visible(node)
    function = src.scope.function_of(node)
    named = _words(getattr(function, "name", ""))
    ranked = []
    for name, uses in wrappers(src).items():
        if name in around or (name not in visible and name not in BUILTIN_NAMES):
            continue
        weight = SAME_FUNCTION if uses[function] else SAME_FILE
        words = _words(name)
        ranked.append((weight * (1 + len(words & named) / max(len(words), 1)), name))
    text = src.of(node)
    for weight, name in sorted(ranked, key=lambda item: (-item[0], item[1]))[:MAX_WRAPPERS]:
        yield src.replace(node, f"{name}({text})", "wrap-call",
                          f"`{short(text, 30)}` -> `{name}({short(text, 30)})`", weight)


@lru_cache(maxsize=4)
def _accesses(src: Source) -> dict[str, dict[str, ast.AST]]:
    """For each expression's text, the accesses the file makes on it (`.attr`, or
    `.method(args)` in full), each with one place it is made."""
    found: dict[str, dict[str, ast.AST]] = {}
    for node in ast.walk(src.tree):
        if not isinstance(node, ast.Attribute) or node.attr.startswith("__"):
            continue
        parent = src.scope.parents.get(node)
        suffix_of = parent if isinstance(parent, ast.Call) and parent.func is node else node
        base_end = src.span(node.value)[1]
        suffix = src.text(base_end, src.span(suffix_of)[1])
        if "\n" in suffix or "#" in suffix:
            continue
        found.setdefault(src.of(node.value), {}).setdefault(suffix, suffix_of)
    return found


def add_access(node: ast.AST, src: Source) -> Iterator[Edit]:
    if not is_value_site(node, src) or isinstance(node, ast.Constant | ast.BinOp):
        return
    text = src.of(node)
    parent = src.scope.parents.get(node)
    visible = src.scope.visible(node)
    offered = []
    for suffix, donor in _accesses(src).get(text, {}).items():
        if donor is parent or not readable(donor, visible):
            continue
        offered.append((_weight(src, node, donor), suffix))
    for weight, suffix in sorted(offered, key=lambda item: (-item[0], item[1]))[:MAX_ACCESSES]:
        yield src.replace(node, f"{text}{suffix}", "add-access",
                          f"`{short(text, 30)}` -> `{short(text + suffix, 40)}`", weight)


FAMILIES = (add_argument, wrap_call, add_access)
