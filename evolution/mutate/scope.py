"""Which names a site can see, and what kind of value each could hold.

Rewiring operators replace a name by another, build a value from names, or guard on a
name. Offered every identifier of the file, they would drown the search in mutants
that cannot even run (a module where a number is expected, a loop variable outside its
loop), so each site sees only names bound where it stands: the enclosing functions'
parameters and assignments made before the site, the targets of enclosing loops and
comprehensions, and the module's names. Each name carries the coarse kinds its
bindings and uses suggest (number, str, list, callable, …); an unknown kind fits any
value but never a callable or a module's place.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

NUMBER, STR, BOOL, LIST, DICT, SET, TUPLE, BYTES, NONE = (
    "number", "str", "bool", "list", "dict", "set", "tuple", "bytes", "none")  # fmt: skip
CALLABLE, MODULE = "callable", "module"
NOT_VALUES = frozenset({CALLABLE, MODULE})
NEVER_UNREAD = frozenset({"self", "cls"})  # a method's first parameter may go unused

_ANNOTATION_KINDS = {
    "int": NUMBER, "float": NUMBER, "complex": NUMBER, "str": STR, "bool": BOOL,
    "bytes": BYTES, "list": LIST, "List": LIST, "Sequence": LIST, "Iterable": LIST,
    "dict": DICT, "Dict": DICT, "Mapping": DICT, "set": SET, "Set": SET,
    "frozenset": SET, "tuple": TUPLE, "Tuple": TUPLE, "Callable": CALLABLE, "None": NONE,
}  # fmt: skip
_CALL_KINDS = {
    "len": NUMBER, "int": NUMBER, "float": NUMBER, "sum": NUMBER, "abs": NUMBER,
    "round": NUMBER, "ord": NUMBER, "hash": NUMBER, "str": STR, "repr": STR, "chr": STR,
    "format": STR, "list": LIST, "sorted": LIST, "dict": DICT, "set": SET,
    "frozenset": SET, "tuple": TUPLE, "bool": BOOL, "isinstance": BOOL, "any": BOOL,
    "all": BOOL, "callable": BOOL, "bytes": BYTES,
}  # fmt: skip
_METHOD_KINDS = {
    "join": STR, "format": STR, "lower": STR, "upper": STR, "strip": STR, "lstrip": STR,
    "rstrip": STR, "replace": STR, "count": NUMBER, "index": NUMBER, "find": NUMBER,
    "split": LIST, "keys": LIST, "values": LIST, "items": LIST, "startswith": BOOL,
    "endswith": BOOL, "copy": "", "get": "",
}  # fmt: skip
_CONSTANT_KINDS = {bool: BOOL, int: NUMBER, float: NUMBER, complex: NUMBER, str: STR,
                   bytes: BYTES, type(None): NONE}  # fmt: skip
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def annotation_kinds(node: ast.expr | None) -> set[str]:
    if node is None:
        return set()
    if isinstance(node, ast.Constant) and node.value is None:
        return {NONE}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return annotation_kinds(node.left) | annotation_kinds(node.right)
    if isinstance(node, ast.Subscript):
        name = getattr(node.value, "id", getattr(node.value, "attr", ""))
        if name == "Optional":
            return annotation_kinds(node.slice) | {NONE}
        return annotation_kinds(node.value)
    name = getattr(node, "id", getattr(node, "attr", ""))
    kind = _ANNOTATION_KINDS.get(name)
    return {kind} if kind else set()


def value_kinds(node: ast.expr | None) -> set[str]:
    """What a bound expression evaluates to, as far as its shape tells."""
    if node is None:
        return set()
    if isinstance(node, ast.Constant):
        return {_CONSTANT_KINDS.get(type(node.value), "")} - {""}
    simple = {ast.List: LIST, ast.ListComp: LIST, ast.Dict: DICT, ast.DictComp: DICT,
              ast.Set: SET, ast.SetComp: SET, ast.Tuple: TUPLE, ast.JoinedStr: STR,
              ast.Compare: BOOL, ast.Lambda: CALLABLE}  # fmt: skip
    for node_type, kind in simple.items():
        if isinstance(node, node_type):
            return {kind}
    if isinstance(node, ast.UnaryOp):
        return {BOOL} if isinstance(node.op, ast.Not) else value_kinds(node.operand)
    if isinstance(node, ast.BinOp):
        both = value_kinds(node.left) | value_kinds(node.right)
        return {k for k in (NUMBER, STR, LIST, TUPLE) if k in both}
    if isinstance(node, ast.IfExp):
        return value_kinds(node.body) | value_kinds(node.orelse)
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name):
            kind = _CALL_KINDS.get(node.func.id, "")
        elif isinstance(node.func, ast.Attribute):
            kind = _METHOD_KINDS.get(node.func.attr, "")
        else:
            kind = ""
        return {kind} if kind else set()
    return set()


@dataclass
class Binding:
    """A name bound in a scope: where first, and the kinds its bindings and uses suggest."""

    line: int
    kinds: set[str] = field(default_factory=set)
    local: bool = True


def compatible(a: set[str], b: set[str]) -> bool:
    """Could a value of kinds `a` stand where one of kinds `b` stands? Unknown (empty)
    fits any value; a callable or a module fits only a place of its own kind."""
    if (a & NOT_VALUES) or (b & NOT_VALUES):
        return bool(a & b & NOT_VALUES)
    return not a or not b or bool(a & b)


BUILTIN_NAMES = frozenset(dir(builtins))


def reads(node: ast.AST) -> set[str]:
    """The names `node` reads that it does not bind itself."""
    stored = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Store)}  # fmt: skip
    return {n.id for n in ast.walk(node)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - stored


def readable(node: ast.AST, visible: Mapping[str, Binding]) -> bool:
    """Could `node`'s text, moved to a site that sees `visible`, run there? Every name it
    reads is bound at the site, or a builtin."""
    return all(name in visible or name in BUILTIN_NAMES for name in reads(node))


class ScopeIndex:
    """Bindings per function (and the module), computed once per source."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        self._bindings: dict[ast.AST, dict[str, Binding]] = {}

    def enclosing(self, node: ast.AST) -> list[ast.AST]:
        """The functions and comprehensions around `node`, innermost first."""
        found = []
        current = self.parents.get(node)
        while current is not None:
            if isinstance(current, FUNCTIONS + COMPREHENSIONS):
                found.append(current)
            current = self.parents.get(current)
        return found

    def function_of(self, node: ast.AST) -> ast.AST | None:
        return next((f for f in self.enclosing(node) if isinstance(f, FUNCTIONS)), None)

    @cached_property
    def module_names(self) -> dict[str, Binding]:
        names: dict[str, Binding] = {}
        for node in _own_nodes(self.tree):
            _bind_statement(names, node, local=False)
        self._uses(self.tree, names)
        return names

    def bindings(self, scope: ast.AST) -> dict[str, Binding]:
        if scope not in self._bindings:
            names: dict[str, Binding] = {}
            if isinstance(scope, FUNCTIONS):
                arguments = scope.args
                for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                            *filter(None, [arguments.vararg, arguments.kwarg])]:
                    names[arg.arg] = Binding(scope.lineno, annotation_kinds(arg.annotation))
                    if arg is arguments.vararg:
                        names[arg.arg].kinds = {TUPLE}
                    elif arg is arguments.kwarg:
                        names[arg.arg].kinds = {DICT}
                for node in _own_nodes(scope):
                    _bind_statement(names, node, local=True)
            else:
                for generator in scope.generators:  # type: ignore[attr-defined]
                    for target in ast.walk(generator.target):
                        if isinstance(target, ast.Name):
                            names[target.id] = Binding(generator.target.lineno, set())
            self._uses(scope, names)
            self._bindings[scope] = names
        return self._bindings[scope]

    def visible(self, node: ast.AST) -> dict[str, Binding]:
        """Every name `node` can read, innermost binding first; a function's local is
        visible only from the line of its first binding on (parameters always)."""
        line = getattr(node, "lineno", 0)
        seen: dict[str, Binding] = {}
        for scope in self.enclosing(node):
            for name, binding in self.bindings(scope).items():
                if name not in seen and binding.line <= line:
                    seen[name] = binding
        for name, binding in self.module_names.items():
            seen.setdefault(name, binding)
        return seen

    def _uses(self, scope: ast.AST, names: dict[str, Binding]) -> None:
        """Kinds that uses reveal: a name that is called is a callable; one passed to
        range() or used in arithmetic with a number is a number."""
        for node in ast.walk(scope):
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name) and node.func.id in names:
                    names[node.func.id].kinds.add(CALLABLE)
                if getattr(node.func, "id", "") == "range":
                    for arg in node.args:
                        if isinstance(arg, ast.Name) and arg.id in names:
                            names[arg.id].kinds.add(NUMBER)
            elif (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                  and getattr(node.iter.func, "id", "") == "range"
                  and isinstance(node.target, ast.Name) and node.target.id in names):
                names[node.target.id].kinds.add(NUMBER)


def unread(index: ScopeIndex) -> list[tuple[int, int, frozenset[str]]]:
    """Per function, its first and last line and the names it binds (parameters and
    locals) but never reads, itself or in what it nests; the module's own entry holds
    the names its statements import or assign and no code reads (a string that names
    one, as `__all__` does, counts as a read). A name bound and never
    read is where a one-identifier fault most often left its mark: the fault replaced
    the name's only use (`(timer)` for `(maxsize)`, `for item in _init` for `for item
    in seq`, `_HashedTuple(...)` for the `add` parameter's call). Names that start with
    `_` say they are unread on purpose. Takes the module's `ScopeIndex` (a `Source`
    has one) so that the bindings it works out are shared with the operators."""
    def loaded(node: ast.AST) -> set[str]:
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                and isinstance(n.ctx, ast.Load | ast.Del)}  # fmt: skip

    tree = index.tree
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            bound = {name for name, b in index.bindings(node).items() if b.local}
            names = bound - loaded(node) - NEVER_UNREAD
            found.append((node.lineno, node.end_lineno or node.lineno,
                          frozenset(n for n in names if not n.startswith("_"))))
    exported = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                and isinstance(n.value, str)}  # fmt: skip
    names = _imported_or_assigned(tree) - loaded(tree) - exported
    found.append((1, len(tree.body) and (tree.body[-1].end_lineno or 1),
                  frozenset(n for n in names if not n.startswith("_"))))
    return found


def unread_at(spans: list[tuple[int, int, frozenset[str]]], line: int) -> frozenset[str]:
    """Of `unread`'s answer, the names unread where `line` stands: those of the
    innermost function around it, and the module's."""
    inner = min((s for s in spans[:-1] if s[0] <= line <= s[1]),
                key=lambda s: s[1] - s[0], default=None)
    return spans[-1][2] | (inner[2] if inner is not None else frozenset())


def _imported_or_assigned(tree: ast.Module) -> set[str]:
    """The names the module's own statements import or assign (not its functions or
    classes: a library defines those for others to call)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found.update(t.id for t in targets if isinstance(t, ast.Name))
    return found


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of a function's body, not those of functions or classes nested in it."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        found.append(node)
        if isinstance(node, (*FUNCTIONS, ast.ClassDef, *COMPREHENSIONS)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def _bind_statement(names: dict[str, Binding], node: ast.AST, *, local: bool) -> None:
    line = getattr(node, "lineno", 0)

    def bind(name: str, kinds: set[str]) -> None:
        if name in names:
            names[name].kinds |= kinds
            names[name].line = min(names[name].line, line)
        else:
            names[name] = Binding(line, set(kinds), local)

    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        bind(node.name, {CALLABLE})
    elif isinstance(node, ast.Import | ast.ImportFrom):
        for alias in node.names:
            name = (alias.asname or alias.name).split(".")[0]
            bind(name, {MODULE} if isinstance(node, ast.Import) else set())
    elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        kinds = value_kinds(node.value) if node.value is not None else set()
        if isinstance(node, ast.AnnAssign):
            kinds |= annotation_kinds(node.annotation)
        for target in targets:
            if isinstance(target, ast.Name):
                bind(target.id, kinds)
            else:
                for inner in ast.walk(target):
                    if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                        bind(inner.id, set())
    elif isinstance(node, ast.For | ast.AsyncFor | ast.With | ast.AsyncWith):
        targets = [node.target] if isinstance(node, ast.For | ast.AsyncFor) else [
            item.optional_vars for item in node.items if item.optional_vars is not None]
        for target in targets:
            for inner in ast.walk(target):
                if isinstance(inner, ast.Name):
                    bind(inner.id, set())
    elif isinstance(node, ast.ExceptHandler) and node.name:
        bind(node.name, set())

