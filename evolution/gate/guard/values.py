"""The abstract values the resolver computes: what an expression may evaluate to.

An expression's value is a frozenset of these (it may hold any of them); UNKNOWN among
them means "something the guard cannot name". Objects outside the file are named by
canonical dotted names: `mock.ANY` is `unittest.mock.ANY`, `os.sys` is `sys`,
`posix._exit` is `os._exit`."""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass

from evolution.gate.guard import fold


class _Unknown:
    def __repr__(self) -> str:
        return "?"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Const:
    """A constant: str, bytes, int, float, bool, None, or a tuple of them."""

    value: object


@dataclass(frozen=True)
class Ref:
    """A named object outside this file, by canonical dotted name ("builtins.getattr",
    "sys.modules", "threading.Thread.start"); `instance` when it was reached through an
    instance (`t.start` for a Thread `t`), which is no attribute of a module."""

    name: str
    instance: bool = False


@dataclass(frozen=True)
class Local:
    """A def, lambda or class of this file."""

    node: ast.AST


@dataclass(frozen=True)
class Inst:
    """An instance of a class (a Ref or a Local)."""

    cls: object


@dataclass(frozen=True)
class Bound:
    """A function bound to its first argument (`x.__getattribute__`, `ns.get`)."""

    func: object
    obj: object


@dataclass(frozen=True)
class Namespace:
    """The attribute dictionary of an object: vars(x), x.__dict__, globals(), locals()
    (a Scope for the last two)."""

    owner: object


@dataclass(frozen=True)
class Partial:
    """functools.partial(func, *args): args as value sets."""

    func: object
    args: tuple[frozenset[object], ...]


@dataclass(frozen=True)
class Getter:
    """operator.attrgetter("a.b")."""

    path: str


@dataclass(frozen=True)
class Caller:
    """operator.methodcaller(name, *args)."""

    name: str
    args: tuple[frozenset[object], ...]


@dataclass(frozen=True)
class Super:
    """super() in a method of a class of this file."""

    cls: ast.ClassDef


@dataclass(frozen=True)
class ConstMethod:
    """A method of a constant string or bytes (`"".join`)."""

    value: object
    name: str


CAP = 16  # most values a set keeps before it becomes "unknown"
Values = frozenset[object]
NOTHING: Values = frozenset({UNKNOWN})
_ALIASES = {"mock": "unittest.mock", "_thread.start_new": "_thread.start_new_thread",
            "posix": "os", "nt": "os", "_operator": "operator", "_functools": "functools",
            "_signal": "signal", "_weakref": "weakref", "_pickle": "pickle",
            "threading._start_new_thread": "_thread.start_new_thread",
            "threading._start_joinable_thread": "_thread.start_joinable_thread",
            "concurrent.futures.thread": "concurrent.futures",
            "concurrent.futures.process": "concurrent.futures", "posixpath": "os.path",
            "multiprocessing.context.Process": "multiprocessing.Process",
            "multiprocessing.process.BaseProcess": "multiprocessing.Process"}  # fmt: skip
# Modules that other modules hold as attributes (`os.sys`, `importlib.sys`, `inspect.os`).
_REEXPORTED = {"sys", "builtins", "os", "gc", "inspect", "importlib", "types", "threading",
               "_thread", "signal", "weakref", "ctypes", "operator", "functools", "atexit",
               "traceback", "pickle", "marshal", "codecs", "base64", "runpy",
               "pkgutil"}  # fmt: skip

def canonical(name: str) -> str:
    """The one name of an object outside the file: a module reached as another module's
    attribute is that module (`os.sys`, `threading._sys`, `f.__builtins__`), and the
    aliases above are their originals."""
    parts = name.split(".")
    for index in range(1, len(parts)):
        part = parts[index]
        module = part if part in _REEXPORTED else part.lstrip("_")
        if part == "__builtins__" or (module in _REEXPORTED and part != parts[index - 1]):
            parts = ["builtins" if part == "__builtins__" else module, *parts[index + 1:]]
            break
    name = ".".join(parts)
    for old in sorted(_ALIASES, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return _ALIASES[old] + name[len(old):]
    return name


def cap(values: set[object]) -> Values:
    consts = [v for v in values if isinstance(v, Const)]
    if len(consts) > CAP:
        values = {v for v in values if not isinstance(v, Const)} | {UNKNOWN}
    return frozenset(values)


def consts(values: Values) -> list[object] | None:
    if any(not isinstance(v, Const) for v in values):
        return None
    return [v.value for v in values if isinstance(v, Const)]


def product(parts: list[Values]) -> list[tuple[object, ...]]:
    """Every combination of the parts' constants (the rest left out); raises Unfoldable
    if a part holds none, or there are too many."""
    consts = [[v.value for v in part if isinstance(v, Const)] for part in parts]
    count = 1
    for values in consts:
        count *= len(values)
    if count == 0 or count > CAP:
        raise fold.Unfoldable
    return list(itertools.product(*consts))


def exact(values: Values) -> object:
    """The one constant `values` holds, or Unfoldable."""
    if len(values) != 1 or not isinstance(value := next(iter(values)), Const):
        raise fold.Unfoldable
    return value.value


def refs(values: frozenset[object]) -> list[str]:
    return sorted(v.name for v in values if isinstance(v, Ref))


def strings(values: frozenset[object]) -> list[str]:
    return sorted(v.value for v in values if isinstance(v, Const) and isinstance(v.value, str))
