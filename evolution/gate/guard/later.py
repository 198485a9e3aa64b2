"""Code that arranges to run later on its own, started while the module is imported.

What runs at import: the module's statements (not an `if __name__ == "__main__":`
block), class bodies, decorators and default values, and, followed through the symbol
table, the bodies of the functions called from there, of this file or of another file
of the tree it imports them from (directly, as decorators,
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

from evolution.gate.guard.modules import Modules
from evolution.gate.guard.names import Resolver
from evolution.gate.guard.table import LATER_CALLS, POOL_METHODS, POOLS, WEAK_CALLBACKS
from evolution.gate.guard.values import Local, Ref

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


class _Where:
    """The module a body belongs to: its resolver, its path (another file of the tree,
    or "" for the one checked), and the call in the checked file through which import
    reached it (findings in other files are reported there)."""

    def __init__(self, resolver: Resolver, path: str = "", anchor: ast.AST | None = None):
        self.resolver, self.path, self.anchor = resolver, path, anchor


class _ImportTime:
    def __init__(self, resolver: Resolver, modules: Modules | None) -> None:
        self.home = _Where(resolver)
        self.modules = modules
        self.found: list[tuple[ast.AST, str]] = []
        self.queue: list[tuple[list[ast.AST], str, _Where]] = []
        self.seen: set[int] = set()

    def enqueue(self, function: ast.AST, via: str, where: _Where) -> None:
        if id(function) in self.seen:
            return
        self.seen.add(id(function))
        if where.path and not via:
            via = f"{getattr(function, 'name', 'a lambda')}() in {where.path}"
        if isinstance(function, ast.Lambda):
            self.queue.append(([function.body], via or "a lambda", where))
        elif isinstance(function, _DEFS):
            self.queue.append((list(function.body), via or f"{function.name}()", where))

    def _locals(self, node: ast.AST, where: _Where) -> list[tuple[ast.AST, _Where]]:
        """The defs and classes `node` may be: of its own module, or, through an
        import, of another module of the tree."""
        found = []
        for value in where.resolver.values(node):
            if isinstance(value, Local):
                found.append((value.node, where))
            elif isinstance(value, Ref) and self.modules is not None and not value.instance:
                for other, path, target in self.modules.find(value.name, where.resolver):
                    if isinstance(target, Local):
                        found.append((target.node, _Where(other, path, where.anchor or node)))
        return found

    def run(self, tree: ast.Module) -> list[tuple[ast.AST, str]]:
        self.queue.append((list(tree.body), "", self.home))
        while self.queue:
            nodes, via, where = self.queue.pop()
            for node in _executed(nodes):
                if isinstance(node, ast.Call):
                    self._call(node, via, where)
                elif isinstance(node, (*_DEFS, ast.ClassDef)):
                    for decorator in node.decorator_list:
                        for function, home in self._locals(decorator, where):
                            self.enqueue(function, via, home)
                    if isinstance(node, ast.ClassDef):
                        self._class(node, via, where)
        return self.found

    def _class(self, node: ast.ClassDef, via: str, where: _Where) -> None:
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                for meta, home in self._locals(keyword.value, where):
                    if isinstance(meta, ast.ClassDef):
                        self._instantiated(meta, keyword, via, home, ("__new__", "__init__"))
        for base in node.bases:
            for cls, home in self._locals(base, where):
                if isinstance(cls, ast.ClassDef):
                    for hook in home.resolver.member(cls, "__init_subclass__", False, 0):
                        if isinstance(hook, Local):
                            self.enqueue(hook.node, via, home)

    def _instantiated(self, cls: ast.ClassDef, node: ast.AST, via: str, where: _Where,
                      methods: tuple[str, ...] = ()) -> None:  # fmt: skip
        """An instance made at import: its constructors run, and so may any special
        method or property (an operator, `with`, iteration, print) of it or of its
        bases."""
        for name in methods or self._implicit(cls, where, 0):
            for method in where.resolver.member(cls, name, True, 0):
                if isinstance(method, Local):
                    self.enqueue(method.node, via, where)
        if any(isinstance(m, Local) for m in where.resolver.member(cls, "__del__", True, 0)):
            self._add(node, f"an instance of {cls.name}, which defines __del__", via, where)

    def _implicit(self, cls: ast.ClassDef, where: _Where, depth: int) -> set[str]:
        names: set[str] = set()
        for item in cls.body:
            if isinstance(item, _DEFS) and item.name != "__del__" and (
                (item.name.startswith("__") and item.name.endswith("__"))
                or any("property" in ast.unparse(d) or ".setter" in ast.unparse(d)
                       for d in item.decorator_list)
            ):  # fmt: skip
                names.add(item.name)
        for base in cls.bases if depth < 8 else []:
            for value, home in self._locals(base, where):
                if isinstance(value, ast.ClassDef):
                    names |= self._implicit(value, home, depth + 1)
        return names

    def _add(self, node: ast.AST, what: str, via: str, where: _Where) -> None:
        if where.path:  # in another file: reported at the call that reached it
            what = f"{what} at {where.path}:{getattr(node, 'lineno', 0)}"
            node = where.anchor or node
        shown = f"{what}, while the module is imported"
        self.found.append((node, shown + (f" (through {via})" if via else "")))

    def _call(self, node: ast.Call, via: str, where: _Where) -> None:
        for target, home in self._locals(node.func, where):
            if isinstance(target, ast.ClassDef):
                self._instantiated(target, node, via, home)
            else:
                self.enqueue(target, via, home)
        for name, args, _nodes in where.resolver.invocations(node):
            owner, _, method = name.rpartition(".")
            if name in LATER_CALLS or (name in WEAK_CALLBACKS and len(args) >= 2) or (
                owner in POOLS and method in POOL_METHODS
            ):
                self._add(node, name, via, where)
            if name in _CALLERS:
                for arg in node.args:
                    for function, home in self._locals(arg, where):
                        self.enqueue(function, via, home)


def runs_later(tree: ast.Module, resolver: Resolver,
               modules: Modules | None = None) -> list[tuple[ast.AST, str]]:  # fmt: skip
    """(node, what) for each thing the module arranges to run later while imported;
    with `modules`, calls into the tree's other modules are followed too."""
    return _ImportTime(resolver, modules).run(tree)
