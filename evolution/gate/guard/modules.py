"""The tree's other modules, read on demand: what a name imported from another file of
the tree is (a def, a class), so that a call made while one module is imported can be
followed into the module that defines the function. Only source is read, never run;
at most `LIMIT` modules, each parsed once."""

from __future__ import annotations

import ast
from collections.abc import Callable

from evolution.gate.guard.names import Resolver

LIMIT = 32
Reader = Callable[[str], bytes | None]  # a path in the tree -> its bytes, or None


def _package(path: str) -> str:
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    return folder.replace("/", ".")


class Modules:
    def __init__(self, read: Reader) -> None:
        self.read = read
        self._parsed: dict[str, tuple[Resolver, str] | None] = {}
        self._package: dict[int, str] = {}

    def home(self, resolver: Resolver, path: str) -> None:
        """Where `resolver`'s module lives (for its relative imports)."""
        self._package[id(resolver)] = _package(path)

    def find(self, name: str, resolver: Resolver) -> list[tuple[Resolver, str, object]]:
        """(its module's resolver, its path, a value) for what the canonical `name`,
        seen from `resolver`'s module, names in a module of the tree."""
        dots = len(name) - len(name.lstrip("."))
        if dots:
            package = self._package.get(id(resolver), "").split(".")
            package = package[: len(package) - (dots - 1)] if dots > 1 else package
            name = ".".join([p for p in package if p] + [name.lstrip(".")])
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = self._module(".".join(parts[:cut]))
            if module is None:
                continue
            other, path = module
            values = other.lookup(parts[cut], other.table.module)
            for attr in parts[cut + 1 :]:
                values = frozenset(r for v in values for r in other.attribute(v, attr))
            return [(other, path, value) for value in values]
        return []

    def _module(self, dotted: str) -> tuple[Resolver, str] | None:
        if dotted in self._parsed:
            return self._parsed[dotted]
        self._parsed[dotted] = None
        if len(self._parsed) > LIMIT:
            return None
        base = dotted.replace(".", "/")
        for path in (f"{base}.py", f"{base}/__init__.py"):
            data = self.read(path)
            if data is None:
                continue
            try:
                resolver = Resolver(ast.parse(data.decode("utf-8")))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                return None
            self.home(resolver, path)
            self._parsed[dotted] = (resolver, path)
            return self._parsed[dotted]
        return None
