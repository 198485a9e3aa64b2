"""Code that arranges to run later on its own, started while the module is imported.

What runs at import: the module's statements (not an `if __name__ == "__main__":`
block), class bodies, decorators and default values, and, followed through the symbol
table, the bodies of this file's functions called from there (directly, as decorators,
through map/filter/sorted, as the special methods and properties of an instance made
there, as a metaclass or an __init_subclass__). In that code, starting a thread
or a process, a timer, a pool's task, a signal handler or alarm, a finalizer or a weak
reference's callback, a trace or profile function, or making an instance of a class with
__del__ is a finding: from then on, code runs whenever it likes, during any test. The
same calls in a function that only a caller (a test, a command line's main()) runs are
not."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from evolution.guard.names import Resolver
from evolution.guard.table import LATER_CALLS, POOL_METHODS, POOLS, WEAK_CALLBACKS
from evolution.guard.values import Local

_CALLERS = {"builtins.map", "builtins.filter", "builtins.sorted", "builtins.min",
            "builtins.max", "functools.reduce", "builtins.list", "builtins.any",
            "builtins.all"}  # fmt: skip
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _main_guard(test: ast.expr) -> bool:
    """`__name__ == "__main__"`, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = {ast.dump(test.left), ast.dump(test.comparators[0])}
    wanted = {ast.dump(ast.Name("__name__", ast.Load())), ast.dump(ast.Constant("__main__"))}
    return sides == wanted and isinstance(test.ops[0], ast.Eq)


def _executed(nodes: list[ast.AST]) -> Iterator[ast.AST]:
    """The nodes that run when `nodes` run: not the bodies of defs and lambdas (their
    decorators and defaults, yes), nor a __main__ block."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _DEFS):
            children: list[ast.AST] = [*node.decorator_list, *node.args.defaults,
                                       *[d for d in node.args.kw_defaults if d]]
        elif isinstance(node, ast.Lambda):
            children = [*node.args.defaults, *[d for d in node.args.kw_defaults if d]]
        elif isinstance(node, ast.If) and _main_guard(node.test):
            children = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        stack += reversed(children)


class _ImportTime:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.found: list[tuple[ast.AST, str]] = []
        self.queue: list[tuple[list[ast.AST], str]] = []
        self.seen: set[int] = set()

    def enqueue(self, function: ast.AST, via: str) -> None:
        if id(function) in self.seen:
            return
        self.seen.add(id(function))
        if isinstance(function, ast.Lambda):
            self.queue.append(([function.body], via or "a lambda"))
        elif isinstance(function, _DEFS):
            self.queue.append((list(function.body), via or f"{function.name}()"))

    def _locals(self, node: ast.AST) -> list[ast.AST]:
        return [v.node for v in self.resolver.values(node) if isinstance(v, Local)]

    def run(self, tree: ast.Module) -> list[tuple[ast.AST, str]]:
        self.queue.append((list(tree.body), ""))
        while self.queue:
            nodes, via = self.queue.pop()
            for node in _executed(nodes):
                if isinstance(node, ast.Call):
                    self._call(node, via)
                elif isinstance(node, (*_DEFS, ast.ClassDef)):
                    for decorator in node.decorator_list:
                        for function in self._locals(decorator):
                            self.enqueue(function, via)
                    if isinstance(node, ast.ClassDef):
                        self._class(node, via)
        return self.found

    def _class(self, node: ast.ClassDef, via: str) -> None:
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                for meta in self._locals(keyword.value):
                    if isinstance(meta, ast.ClassDef):
                        self._instantiated(meta, keyword, via, ("__new__", "__init__"))
        for base in node.bases:
            for cls in self._locals(base):
                if isinstance(cls, ast.ClassDef):
                    for hook in self.resolver.member(cls, "__init_subclass__", False, 0):
                        if isinstance(hook, Local):
                            self.enqueue(hook.node, via)

    def _instantiated(self, cls: ast.ClassDef, where: ast.AST, via: str,
                      methods: tuple[str, ...] = ()) -> None:  # fmt: skip
        """An instance made at import: its constructors run, and so may any special
        method or property (an operator, `with`, iteration, print) of it or of its
        bases of this file."""
        for name in methods or self._implicit(cls, 0):
            for method in self.resolver.member(cls, name, True, 0):
                if isinstance(method, Local):
                    self.enqueue(method.node, via)
        if any(isinstance(m, Local) for m in self.resolver.member(cls, "__del__", True, 0)):
            self._add(where, f"an instance of {cls.name}, which defines __del__", via)

    def _implicit(self, cls: ast.ClassDef, depth: int) -> set[str]:
        names: set[str] = set()
        for item in cls.body:
            if isinstance(item, _DEFS) and item.name != "__del__" and (
                (item.name.startswith("__") and item.name.endswith("__"))
                or any("property" in ast.unparse(d) or ".setter" in ast.unparse(d)
                       for d in item.decorator_list)
            ):  # fmt: skip
                names.add(item.name)
        for base in cls.bases if depth < 8 else []:
            for value in self._locals(base):
                if isinstance(value, ast.ClassDef):
                    names |= self._implicit(value, depth + 1)
        return names

    def _add(self, node: ast.AST, what: str, via: str) -> None:
        shown = f"{what}, while the module is imported"
        self.found.append((node, shown + (f" (through {via})" if via else "")))

    def _call(self, node: ast.Call, via: str) -> None:
        for value in self.resolver.values(node.func):
            if not isinstance(value, Local):
                continue
            if isinstance(value.node, ast.ClassDef):
                self._instantiated(value.node, node, via)
            else:
                self.enqueue(value.node, via)
        for name, args, _nodes in self.resolver.invocations(node):
            owner, _, method = name.rpartition(".")
            if name in LATER_CALLS or (name in WEAK_CALLBACKS and len(args) >= 2) or (
                owner in POOLS and method in POOL_METHODS
            ):
                self._add(node, name, via)
            if name in _CALLERS:
                for arg in node.args:
                    for function in self._locals(arg):
                        self.enqueue(function, via)


def runs_later(tree: ast.Module, resolver: Resolver) -> list[tuple[ast.AST, str]]:
    """(node, what) for each thing the module arranges to run later while imported."""
    return _ImportTime(resolver).run(tree)
