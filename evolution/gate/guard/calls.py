"""What calls return, and which primitive a call reaches: the half of the resolver that
applies functions (`names.Resolver` mixes it in).

A call of a def of this file returns what its returns may (parameters unknown); of a
class, an instance; getattr, vars, globals, __import__, import_module, attrgetter,
methodcaller, functools.partial, dict lookups on a namespace and type() are modelled;
pure functions of constants are folded; anything else named with a capital is taken for
a class, and its call for an instance."""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from evolution.gate.guard import fold
from evolution.gate.guard.values import (
    NOTHING,
    UNKNOWN,
    Bound,
    Caller,
    Const,
    ConstMethod,
    Getter,
    Inst,
    Local,
    Namespace,
    Partial,
    Ref,
    Super,
    Values,
    canonical,
    cap,
    exact,
)

if TYPE_CHECKING:
    from evolution.gate.guard.scopes import Scope, Table

Invocation = tuple[str, list[Values], list[ast.AST | None]]  # function, arguments, their nodes
_GETTERS = {"builtins.getattr", "builtins.object.__getattribute__",
            "builtins.type.__getattribute__"}  # fmt: skip
_IMPORTERS = {"builtins.__import__", "importlib.__import__", "importlib.import_module"}
_DICT_READS = {"builtins.dict.get", "builtins.dict.__getitem__", "builtins.dict.setdefault",
               "builtins.dict.pop", "operator.getitem"}  # fmt: skip
_PASS_THROUGH = {"builtins.staticmethod", "builtins.classmethod", "functools.wraps",
                 "functools.cache", "functools.lru_cache"}  # fmt: skip
_FACTORIES = {"unittest.mock.create_autospec": "unittest.mock.MagicMock",
              "unittest.mock.patch": "unittest.mock.MagicMock"}  # fmt: skip



class Calls:
    table: Table
    _returns: dict[ast.AST, Values]
    values: Callable[[ast.AST], Values]
    evaluate: Callable[..., Values]
    attribute: Callable[[object, str], Values]
    subscript: Callable[[Values, Values], Values]
    lookup: Callable[..., Values]
    _lift: Callable[[list[Values], Callable[..., object]], set[object]]

    def _call_node(self, node: ast.Call, scope: Scope,
                   env: dict[str, Values] | None) -> set[object]:  # fmt: skip
        args: list[Values] = []
        for arg in node.args:
            value = self.evaluate(arg.value if isinstance(arg, ast.Starred) else arg, scope, env)
            if not isinstance(arg, ast.Starred):
                args.append(value)
                continue
            items = exact(value)
            if not isinstance(items, tuple):
                return {UNKNOWN}
            args += [frozenset({Const(i)}) for i in items]
        if any(k.arg is None for k in node.keywords):
            return {UNKNOWN}
        kwargs = {k.arg: self.evaluate(k.value, scope, env) for k in node.keywords if k.arg}
        found: set[object] = set()
        for func in self.evaluate(node.func, scope, env):
            found |= self.call(func, args, kwargs, scope)
        return found

    def call(self, func: object, args: list[Values], kwargs: dict[str, Values],
             scope: Scope) -> Values:  # fmt: skip
        if isinstance(func, Bound):
            return self.call(func.func, [frozenset({func.obj}), *args], kwargs, scope)
        if isinstance(func, Partial):
            return self.call(func.func, [*func.args, *args], kwargs, scope)
        if isinstance(func, Getter) and len(args) == 1:
            found = args[0]
            for part in func.path.split("."):
                found = frozenset(r for v in found for r in self.attribute(v, part))
            return found
        if isinstance(func, Caller) and len(args) == 1:
            return frozenset(r for obj in args[0] for m in self.attribute(obj, func.name)
                             for r in self.call(m, list(func.args), {}, scope))  # fmt: skip
        if isinstance(func, ConstMethod):
            return cap(self._lift(args, lambda *c: fold.method(func.value, func.name, list(c),
                                                                {})))  # fmt: skip
        if isinstance(func, Local) and isinstance(func.node, ast.ClassDef):
            return frozenset({Inst(func)})
        if isinstance(func, Local) and isinstance(func.node, ast.Lambda):
            return self.values(func.node.body)
        if isinstance(func, Local):
            return self.returns(func.node)
        if isinstance(func, Ref):
            return cap(self._call_ref(func.name, args, kwargs, scope))
        return NOTHING

    def returns(self, function: ast.AST) -> Values:
        """What a def of this file may return (its parameters unknown)."""
        if function in self._returns:
            return self._returns[function]
        self._returns[function] = NOTHING
        found: set[object] = set()
        for node in _own_nodes(function):
            if isinstance(node, ast.Yield | ast.YieldFrom):
                found = {UNKNOWN}
                break
            if isinstance(node, ast.Return):
                found |= self.values(node.value) if node.value else {Const(None)}
        self._returns[function] = result = cap(found or {Const(None)})
        return result

    def _call_ref(self, name: str, args: list[Values], kwargs: dict[str, Values],
                  scope: Scope) -> set[object]:  # fmt: skip
        first = args[0] if args else frozenset()
        if name in _GETTERS and len(args) >= 2:
            found = {r for obj in args[0] for key in args[1]
                     for r in (self.attribute(obj, key.value) if isinstance(key, Const)
                               and isinstance(key.value, str) else NOTHING)}  # fmt: skip
            return found | (args[2] if len(args) > 2 else set())
        if name == "builtins.vars":
            return {Namespace(v) for v in first} if args else {Namespace(scope)}
        if name in ("builtins.globals", "builtins.locals"):
            return {Namespace(self.table.module if name.endswith("globals") else scope)}
        if name in _IMPORTERS:
            whole = name.endswith("import_module") or len(args) > 3 or "fromlist" in kwargs
            return {Ref(canonical(v.value if whole else v.value.split(".")[0]))
                    if isinstance(v, Const) and isinstance(v.value, str) and v.value
                    and not v.value.startswith(".") else UNKNOWN for v in first}  # fmt: skip
        if name in _DICT_READS and len(args) >= 2:
            return set(self.subscript(args[0], args[1]) | (args[2] if len(args) > 2 else set()))
        if name == "operator.attrgetter" and len(args) == 1:
            return {Getter(v.value) if isinstance(v, Const) and isinstance(v.value, str)
                    else UNKNOWN for v in first}  # fmt: skip
        if name == "operator.methodcaller" and args:
            return {Caller(v.value, tuple(args[1:])) if isinstance(v, Const)
                    and isinstance(v.value, str) else UNKNOWN for v in first}  # fmt: skip
        if name == "functools.partial" and args:
            return {Partial(v, tuple(args[1:])) for v in first}
        if name in _PASS_THROUGH and len(args) == 1:
            return set(first)
        if name == "builtins.super":
            return {Super(scope.cls)} if scope.cls is not None else {UNKNOWN}
        if name == "builtins.type" and len(args) == 1:
            return {_type_of(v) for v in first}
        if name in _FACTORIES:
            return {Inst(Ref(_FACTORIES[name]))}
        if name == "builtins.map" and len(args) == 2:
            items = exact(args[1])
            if not isinstance(items, str | bytes | tuple) or len(items) > 256:
                return {UNKNOWN}
            return {Const(fold.check(tuple(
                exact(frozenset(r for f in first for r in self.call(f, [frozenset({Const(i)})],
                                                                     {}, scope)))
                for i in items)))}  # fmt: skip
        if name in fold.FOLDED and args and not kwargs:
            return self._lift(args, lambda *c: fold.call(name, list(c), {}))
        if class_name(name):
            return {Inst(Ref(name))}
        return {UNKNOWN}

    # -- what a call reaches ----------------------------------------------------------------

    def invocations(self, node: ast.Call) -> list[Invocation]:
        """(primitive, argument values, argument nodes) for each function outside this
        file that `node` calls, bound methods, partials, attrgetters and methodcallers
        unwrapped (an argument that came from one of those has no node)."""
        if any(isinstance(a, ast.Starred) for a in node.args):
            return []
        args = [self.values(a) for a in node.args]
        found: list[Invocation] = []
        for func in self.values(node.func):
            self._unwrap(func, args, list(node.args), found, 0)
        return found

    def _unwrap(self, func: object, args: list[Values], nodes: list[ast.AST | None],
                found: list[Invocation], depth: int) -> None:  # fmt: skip
        if depth > 6:
            return
        if isinstance(func, Bound):
            self._unwrap(func.func, [frozenset({func.obj}), *args], [None, *nodes], found,
                         depth + 1)  # fmt: skip
        elif isinstance(func, Partial):
            self._unwrap(func.func, [*func.args, *args], [None] * len(func.args) + nodes,
                         found, depth + 1)  # fmt: skip
        elif isinstance(func, Getter) and args:
            objs = args[0]
            for part in func.path.split("."):
                found.append(("builtins.getattr", [objs, frozenset({Const(part)})], [None, None]))
                objs = frozenset(r for v in objs for r in self.attribute(v, part))
        elif isinstance(func, Caller) and args:
            name = frozenset({Const(func.name)})
            found.append(("builtins.getattr", [args[0], name], [None, None]))
            for method in {m for obj in args[0] for m in self.attribute(obj, func.name)}:
                self._unwrap(method, list(func.args), [None] * len(func.args), found, depth + 1)
        elif isinstance(func, Ref):
            found.append((func.name, args, nodes))



def class_name(name: str) -> bool:
    """Whether a canonical name is a class's (by the convention, or a builtin type)."""
    last = name.rsplit(".", 1)[-1]
    builtin = name == f"builtins.{last}" and isinstance(getattr(builtins, last, None), type)
    return last[:1].isupper() or builtin


def _type_of(value: object) -> object:
    if isinstance(value, Inst):
        return value.cls
    if isinstance(value, Const):
        return Ref(f"builtins.{type(value.value).__name__}")
    if value == Ref("unittest.mock.ANY"):
        return Ref("unittest.mock._ANY")
    return UNKNOWN


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of functions or classes inside it."""
    stack = list(getattr(function, "body", []))
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                              | ast.ClassDef):  # fmt: skip
                stack.append(child)

