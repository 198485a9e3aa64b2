"""The symbol table: every binding of every name in a module, by scope.

One pass over the tree records, for each scope (the module, each function, lambda,
class body and comprehension), what each name is bound to: an imported module or one of
its attributes, a def or a class of this file, the expression assigned (evaluated later,
on demand, by `names.Resolver`), one item of an unpacked value, an element of an
iterable, or nothing knowable (a parameter, an `except` name). A method's first
parameter is an instance of its class; attributes assigned on it are the class's
instance attributes. The analysis is flow-insensitive: a name bound several times may
hold any of the values."""

from __future__ import annotations

import ast
from collections import defaultdict
from typing import Any

from evolution.gate.guard.values import Inst, Local, Ref

MUTATORS = {"append", "extend", "insert", "update", "setdefault", "add", "__setitem__",
            "__iadd__", "appendleft", "extendleft"}  # fmt: skip
_NEW_SCOPE = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

# A binding: ("vals", frozenset) | ("expr", node, scope) | ("item", node, scope, index)
# | ("iter", node, scope) | ("unknown",)
Binding = tuple[Any, ...]
UNKNOWN_BINDING: Binding = ("unknown",)


class Scope:
    def __init__(self, node: ast.AST, kind: str, parent: Scope | None) -> None:
        self.node, self.kind, self.parent = node, kind, parent
        self.bindings: dict[str, list[Binding]] = defaultdict(list)
        self.declared: dict[str, str] = {}  # name -> "global" or "nonlocal"
        self.mutated: set[str] = set()
        self.cls: ast.ClassDef | None = None  # for a method: the class it belongs to
        self.self_name = ""  # for a method: its first parameter's name
        self.stars: list[str] = []  # modules star-imported (the module scope)
        self.unconditional: dict[str, int] = {}  # module names bound at top level: first line

    def __repr__(self) -> str:
        return f"<scope {self.kind} {getattr(self.node, 'name', '')}>"


def _decorated(node: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    return any(isinstance(d, ast.Name) and d.id == name for d in node.decorator_list)


class Table:
    """Scopes, the scope and parent of every node, and classes' instance attributes."""

    def __init__(self, tree: ast.Module) -> None:
        self.module = Scope(tree, "module", None)
        self.scope_of: dict[int, Scope] = {}
        self.parent_of: dict[int, ast.AST] = {}
        self.class_scope: dict[ast.ClassDef, Scope] = {}
        self.instance_attrs: dict[ast.ClassDef, dict[str, list[Binding]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.synthetic: list[ast.AST] = []  # nodes made for AugAssign (kept alive)
        for statement in tree.body:
            self._top_level(statement)
        self._children(tree, self.module)

    # -- walking ----------------------------------------------------------------------------

    def _top_level(self, node: ast.stmt) -> None:
        names: list[str] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        for name in names:
            self.module.unconditional.setdefault(name, node.lineno)

    def _children(self, node: ast.AST, scope: Scope) -> None:
        for child in ast.iter_child_nodes(node):
            self.parent_of[id(child)] = node
            self._visit(child, scope)

    def _visit(self, node: ast.AST, scope: Scope) -> None:
        self.scope_of[id(node)] = scope
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            self._function(node, scope)
        elif isinstance(node, ast.ClassDef):
            self._class(node, scope)
        elif isinstance(node, _NEW_SCOPE):
            inner = Scope(node, "comprehension", scope)
            for generator in node.generators:
                self._target(generator.target, ("iter", generator.iter, inner), inner)
            self._children(node, inner)
        else:
            self._binds(node, scope)
            self._children(node, scope)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
                  scope: Scope) -> None:  # fmt: skip
        inner = Scope(node, "function", scope)
        self.scope_of[id(node)] = scope
        params = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        params += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
        outer_parts: list[ast.AST] = [*node.args.defaults,
                                      *[d for d in node.args.kw_defaults if d is not None],
                                      *[p.annotation for p in params if p.annotation]]
        if not isinstance(node, ast.Lambda):
            self._bind(scope, node.name, ("vals", frozenset({Local(node)})))
            outer_parts += node.decorator_list
            if node.returns is not None:
                outer_parts.append(node.returns)
        for part in outer_parts:
            self.parent_of[id(part)] = node
            self._visit(part, scope)
        for param in params:
            inner.bindings[param.arg].append(UNKNOWN_BINDING)
        if scope.kind == "class" and params and not isinstance(node, ast.Lambda):
            if not _decorated(node, "staticmethod") and node.args.posonlyargs + node.args.args:
                cls = scope.node
                assert isinstance(cls, ast.ClassDef)
                inner.cls, inner.self_name = cls, (node.args.posonlyargs + node.args.args)[0].arg
                value = Local(cls) if _decorated(node, "classmethod") else Inst(Local(cls))
                inner.bindings[inner.self_name] = [("vals", frozenset({value}))]
        elif scope.kind == "function" and scope.cls is not None:
            inner.cls, inner.self_name = scope.cls, ""  # a nested function: super() is not
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        for part in body:
            self.parent_of[id(part)] = node
            self._visit(part, inner)

    def _class(self, node: ast.ClassDef, scope: Scope) -> None:
        for part in [*node.bases, *node.keywords, *node.decorator_list]:
            self.parent_of[id(part)] = node
            self._visit(part, scope)
        self._bind(scope, node.name, ("vals", frozenset({Local(node)})))
        inner = Scope(node, "class", scope)
        self.class_scope[node] = inner
        for part in node.body:
            self.parent_of[id(part)] = node
            self._visit(part, inner)

    # -- bindings ---------------------------------------------------------------------------

    def _binds(self, node: ast.AST, scope: Scope) -> None:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self._target(target, ("expr", node.value, scope), scope, node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self._target(node.target, ("expr", node.value, scope), scope, node.value)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                name = ast.Name(node.target.id, ast.Load())
                combined = ast.BinOp(name, node.op, node.value)
                self.synthetic.append(combined)
                self._bind(scope, node.target.id, ("expr", combined, scope))
            elif isinstance(node.target, ast.Subscript | ast.Attribute):
                self._mutates(node.target.value, scope)
        elif isinstance(node, ast.NamedExpr):
            home = scope
            while home.kind == "comprehension" and home.parent is not None:
                home = home.parent
            self._target(node.target, ("expr", node.value, scope), home)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self._target(node.target, ("iter", node.iter, scope), scope)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            self._target(node.optional_vars, UNKNOWN_BINDING, scope)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            self._bind(scope, node.name, UNKNOWN_BINDING)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self._bind(scope, node.rest, UNKNOWN_BINDING)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            kind = "global" if isinstance(node, ast.Global) else "nonlocal"
            scope.declared.update(dict.fromkeys(node.names, kind))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name if alias.asname else alias.name.split(".")[0]
                self._bind(scope, alias.asname or name, ("vals", frozenset({Ref(name)})))
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name == "*":
                    self.module.stars.append(module)
                    continue
                value = Ref(f"{module}.{alias.name}" if module else alias.name)
                self._bind(scope, alias.asname or alias.name, ("vals", frozenset({value})))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in MUTATORS:
                self._mutates(node.func.value, scope)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Subscript | ast.Attribute):
                    self._mutates(target.value, scope)

    def _mutates(self, node: ast.AST, scope: Scope) -> None:
        if isinstance(node, ast.Name):
            scope.mutated.add(node.id)
            self.module.mutated.add(node.id)  # flow-insensitive: any scope may hold it

    def _target(self, target: ast.AST, binding: Binding, scope: Scope,
                value: ast.AST | None = None) -> None:  # fmt: skip
        if isinstance(target, ast.Name):
            self._bind(scope, target.id, binding)
        elif isinstance(target, ast.Tuple | ast.List):
            starred = any(isinstance(e, ast.Starred) for e in target.elts)
            same = (isinstance(value, ast.Tuple | ast.List) and not starred
                    and len(value.elts) == len(target.elts)
                    and not any(isinstance(e, ast.Starred) for e in value.elts))  # fmt: skip
            for index, element in enumerate(target.elts):
                if same:
                    assert isinstance(value, ast.Tuple | ast.List)
                    part = value.elts[index]
                    self._target(element, ("expr", part, binding[2]), scope, part)
                elif isinstance(element, ast.Starred) or starred or binding[0] != "expr":
                    for name in ast.walk(element):
                        if isinstance(name, ast.Name):
                            self._bind(scope, name.id, UNKNOWN_BINDING)
                else:
                    self._target(element, ("item", binding[1], binding[2], index), scope)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            if scope.cls is not None and target.value.id == scope.self_name:
                self.instance_attrs[scope.cls][target.attr].append(binding)
        elif isinstance(target, ast.Subscript):
            self._mutates(target.value, scope)
        elif isinstance(target, ast.Starred):
            self._target(target.value, UNKNOWN_BINDING, scope)

    def _bind(self, scope: Scope, name: str, binding: Binding) -> None:
        declared = scope.declared.get(name)
        if declared == "global":
            scope = self.module
        elif declared == "nonlocal":
            outer = scope.parent
            while outer is not None and (outer.kind == "class" or name not in outer.bindings):
                outer = outer.parent
            scope = outer or self.module
        scope.bindings[name].append(binding)
