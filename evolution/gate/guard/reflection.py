"""The primitives of reflection: what getattr, setattr, delattr, hasattr,
object.__getattribute__/__setattr__/__delattr__ and a namespace's lookups reach (the
attribute names they are given, resolved and folded, on the objects they are given),
and where the primitives themselves go. A primitive that is called, bound to a name of
a function's own, or wrapped by functools.partial is followed by the resolver; handed
on anywhere else (stored, passed, returned, a default value, a module or class
attribute another module can import) it is a finding of its own, since what it does
there can no longer be seen. `Visitor` mixes this in."""

from __future__ import annotations

import ast
from collections.abc import Callable

from evolution.gate.guard.names import Resolver
from evolution.gate.guard.scopes import Scope
from evolution.gate.guard.table import FRAME_ATTRS, INTERNAL_ATTRS, REFLECTION, referent_rule
from evolution.gate.guard.values import (
    Bound,
    Const,
    Inst,
    Local,
    Namespace,
    Partial,
    Ref,
    Super,
    refs,
    strings,
)

# What each primitive does with the attribute (or namespace key) it is given.
KINDS = {"builtins.getattr": "get", "builtins.object.__getattribute__": "get",
         "builtins.type.__getattribute__": "get", "builtins.setattr": "set",
         "builtins.object.__setattr__": "set", "builtins.type.__setattr__": "set",
         "builtins.delattr": "del", "builtins.object.__delattr__": "del",
         "builtins.type.__delattr__": "del", "builtins.hasattr": "has",
         "builtins.dict.get": "item", "builtins.dict.__getitem__": "item",
         "builtins.dict.setdefault": "item", "builtins.dict.pop": "item",
         "operator.getitem": "item", "builtins.dict.__setitem__": "set-item"}  # fmt: skip
_WRAPPERS = {"functools.partial", "builtins.staticmethod", "builtins.classmethod"}
_ODD_NAMES = INTERNAL_ATTRS | FRAME_ATTRS | {"_getframe", "_exit"}
_PROTOCOL = {"__setattr__", "__getattribute__", "__delattr__", "__getattr__"}
_READERS = {f"builtins.{name}" for name in ("dict", "list", "sorted", "len", "set", "tuple",
                                            "frozenset", "repr", "str", "print", "iter")}


def dotted(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, "" for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def short(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "…"





class Reflection:
    r: Resolver
    add: Callable[[str, ast.AST, str], None]
    _bound: Callable[[str, ast.AST, ast.AST], None]

    def _reflective(self, values: frozenset[object]) -> str:
        for value in values:
            if isinstance(value, Namespace) and isinstance(value.owner, Scope):
                return "globals()" if value.owner.kind == "module" else "locals()"
            func = value.func if isinstance(value, Partial | Bound) else value
            while isinstance(func, Partial):
                func = func.func
            if isinstance(func, Ref) and func.name in REFLECTION:
                return func.name.removeprefix("builtins.")
        return ""

    def _followed(self, node: ast.AST) -> bool:
        """Whether the resolver follows what `node` holds from where it stands."""
        parent = self.r.parent(node)
        if isinstance(parent, ast.Call):
            if parent.func is node:
                return True
            wraps = {v.name for v in self.r.values(parent.func) if isinstance(v, Ref)}
            return bool(parent.args) and parent.args[0] is node and bool(wraps & _WRAPPERS)
        if isinstance(parent, ast.Attribute | ast.Compare | ast.Expr | ast.Subscript):
            return True
        if isinstance(parent, ast.IfExp | ast.BoolOp | ast.NamedExpr):
            return isinstance(parent, ast.NamedExpr) or getattr(parent, "test", None) is not node
        if isinstance(parent, ast.Tuple | ast.List) and isinstance(
            grand := self.r.parent(parent), ast.Assign
        ) and grand.value is parent:
            return all(isinstance(t, ast.Tuple | ast.List) and len(t.elts) == len(parent.elts)
                       for t in grand.targets) and self._local(grand)  # fmt: skip
        if isinstance(parent, ast.Assign | ast.AnnAssign) and parent.value is node:
            return self._local(parent)
        return False

    def _local(self, statement: ast.Assign | ast.AnnAssign) -> bool:
        """An assignment to names of a function's own (where every use is followed)."""
        scope = self.r.scope(statement)
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        names = [n for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        plain = all(isinstance(n, ast.Name | ast.Tuple | ast.List) for t in targets
                    for n in ast.walk(t) if not isinstance(n, ast.expr_context))  # fmt: skip
        return plain and scope.kind in ("function", "comprehension") and not any(
            n.id in scope.declared for n in names
        )

    def _read_only(self, node: ast.AST) -> bool:
        """A namespace only read where it stands: copied by `**`, formatted by `%`, or
        given to a builtin that reads it (`dict(globals())`, `sorted(vars())`)."""
        parent = self.r.parent(node)
        if isinstance(parent, ast.keyword):
            return parent.arg is None
        if isinstance(parent, ast.BinOp) and parent.right is node:
            return isinstance(parent.op, ast.Mod) and isinstance(parent.left, ast.Constant)
        if isinstance(parent, ast.Call) and node in parent.args:
            readers = {v.name for v in self.r.values(parent.func) if isinstance(v, Ref)}
            return bool(readers) and readers <= _READERS
        return False

    def _escape(self, node: ast.AST) -> None:
        shown = self._reflective(self.r.values(node))
        if shown in ("globals()", "locals()") and self._read_only(node):
            return
        if shown and not self._followed(node):
            self.add("computed-attribute", node,
                     f"{shown} handed on where the guard cannot follow it")  # fmt: skip

    def _access(self, node: ast.Call, primitive: str, args: list[frozenset[object]],
                nodes: list[ast.AST | None]) -> None:  # fmt: skip
        kind, how = KINDS[primitive], primitive.rsplit(".", 1)[-1]
        if len(args) < 2:
            return
        objs = args[0]
        if kind in ("item", "set-item"):
            objs = frozenset(v for v in objs if isinstance(v, Namespace))
            if not objs:
                return  # an ordinary dictionary
        names = strings(args[1])
        literal = isinstance(nodes[1], ast.Constant) if nodes[1] is not None else (
            len(args[1]) == 1 and len(names) == 1
        )
        if not literal and not self._protocol(node, how, objs):
            self.add("computed-attribute", node, f"{how}(…, <computed>)")
        for name in names:
            if name in _ODD_NAMES:
                self.add("introspection", node, f"{how}(…, {name!r})")
            for obj in objs:
                targets = self.r.subscript(frozenset({obj}), frozenset({Const(name)})) if (
                    isinstance(obj, Namespace)) else self.r.attribute(obj, name)
                for target in refs(targets):
                    hit = referent_rule(target)
                    if hit:
                        self.add(hit[0], node, f"{how}(…, {name!r}) ({hit[1]})")
                owner = obj.owner if isinstance(obj, Namespace) else obj
                if kind in ("set", "del", "set-item") and isinstance(owner, Ref) and (
                    not owner.instance
                ):
                    if owner.name == "builtins":
                        self.add("builtins", node, f"{how}(builtins, {name!r}, …)")
                    elif not owner.name.startswith("builtins."):
                        self.add("module-patch", node, f"{how}({owner.name}, {name!r}, …)")
            if kind == "set" and len(nodes) > 2 and nodes[2] is not None:
                self._bound(name, nodes[2], node)

    def _protocol(self, node: ast.AST, how: str, objs: frozenset[object]) -> bool:
        """`super().__setattr__(name, value)` in a class's own __setattr__ (and the like):
        the attribute protocol delegating to the default on the instance itself."""
        scope = self.r.scope(node)
        function = scope.node
        own = all(isinstance(o, Super) or (isinstance(o, Inst) and isinstance(o.cls, Local))
                  for o in objs)  # fmt: skip
        return own and how in _PROTOCOL and getattr(function, "name", "") in _PROTOCOL

