"""The static guard: code an automated proposal may not add to an evolvable file.

Before any test runs, the gate reads the Python that a proposal adds or changes and
rejects constructs that reach into the test machinery or the interpreter instead of
doing the script's job: the ways a model has been seen to win by fooling its tests
(METR's reward-hacking reports, the Darwin Gödel Machine, ImpossibleBench). The rules
are the table in `table.py`; `[evolution] allow = ["rule", ...]` in SPEC.md lifts one on
purpose.

The rules apply to what a name refers to, not to how it is spelled: a symbol table of
the module's bindings and imports (`scopes.py`) and a small abstract evaluation over it
(`names.py` and `calls.py`, over the values of `values.py`, with bounded constant
folding in `fold.py`) resolve aliases, namespaces, partials and strings built from
pieces. `visitor.py` applies the rules to what it resolves, `reflection.py` follows the
primitives of reflection, `equality.py` reads comparison methods path by path and finds
values equal to anything, and `later.py` finds what importing the module starts to run
later on its own, into the tree's other modules (`modules.py`).

A construct is reported only if the proposal added it: what the file already held on
main (the same rule, the same construct, in the same definition, as many times) is not,
so a proposal can touch a file that legitimately uses, say, `atexit`, or edit a line
near a `.__self__` or inside a `tuple` subclass's `__radd__`, without being blamed for
it.

This is one layer of several. It cannot see code built at run time from data, nor what
a subprocess runs; across files it follows only what import runs (given a reader of
the tree). The sandbox, the authenticated report channel, the probe's checks and the
canaries are there for what it misses.
"""

from __future__ import annotations

import ast
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from evolution.gate.guard.later import runs_later
from evolution.gate.guard.modules import Modules, Reader
from evolution.gate.guard.names import Resolver
from evolution.gate.guard.table import RULES, STARTUP_FILES
from evolution.gate.guard.visitor import Visitor

__all__ = ["RULES", "Finding", "check_file", "is_python", "iter_rules", "unknown_rules"]


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str
    line: int
    construct: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.construct} ({self.rule}: {RULES[self.rule]})"


def _findings(source: str, path: str = "", read: Reader | None = None,
              ) -> list[tuple[str, int, str, str]]:  # fmt: skip
    """(rule, line, construct, fingerprint) for each construct in `source`."""
    tree = ast.parse(source)
    resolver = Resolver(tree)
    modules = None
    if read is not None:
        modules = Modules(read)
        modules.home(resolver, path)
    visitor = Visitor(resolver, modules)
    visitor.visit(tree)
    later = [("runs-later", node, what) for node, what in runs_later(tree, resolver, modules)]
    if resolver.exhausted:
        raise RecursionError("the guard's evaluation went deeper than it reads")
    found = visitor.found + later
    scopes = _scopes(tree)
    return [
        (rule, getattr(node, "lineno", 0), construct, f"{scopes.get(id(node), '?')}|{construct}")
        for rule, node, construct in found
    ]


def _scopes(tree: ast.AST) -> dict[int, str]:
    """Each node's enclosing definitions (`Key.__radd__`, `groupby`; "" at the top):
    a construct is the same one on main when the same definition holds it, however the
    code around it was edited (a renamed variable, a changed line in its body)."""
    scopes: dict[int, str] = {}
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, scope = stack.pop()
        scopes[id(node)] = scope
        inner = scope
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = f"{scope}.{node.name}" if scope else node.name
            scopes[id(node)] = inner  # a definition's own finding is its own
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))
    return scopes


def is_python(path: str, data: bytes) -> bool:
    return path.endswith((".py", ".pyw")) or (data.startswith(b"#!") and b"python" in (
        data.split(b"\n", 1)[0]
    ))


def check_file(
    path: str,
    old: bytes | None,
    new: bytes,
    allow: tuple[str, ...] = (),
    read: Reader | None = None,
) -> list[Finding]:
    """What `new` adds over `old` (None for a new file) that the rules forbid. `read`
    (a path in the tree -> its bytes, or None) lets the guard follow what import runs
    into the tree's other modules."""
    findings: list[Finding] = []
    name = path.rsplit("/", 1)[-1]
    if "startup-hook" not in allow and (name in STARTUP_FILES or name.endswith(".pth")):
        findings.append(Finding("startup-hook", path, 1, f"adds {name}"))
    if not is_python(path, new):
        return findings
    try:
        added = _findings(new.decode("utf-8"), path, read)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return findings  # the suite will say what is wrong with it
    except RecursionError:  # what the guard cannot read, it refuses
        findings.append(Finding("too-deep", path, 1, "nesting deeper than the guard reads"))
        return [f for f in findings if f.rule not in allow]
    before: Counter[tuple[str, str]] = Counter()
    if old is not None and is_python(path, old):
        with contextlib.suppress(SyntaxError, UnicodeDecodeError, ValueError, RecursionError):
            found = _findings(old.decode("utf-8"), path, read)
            before.update((rule, fp) for rule, _line, _c, fp in found)
    seen: set[tuple[str, int, str]] = set()
    for rule, line, construct, fingerprint in added:
        if before[(rule, fingerprint)] > 0:
            before[(rule, fingerprint)] -= 1
            continue
        if rule in allow or (rule, line, construct) in seen:
            continue
        seen.add((rule, line, construct))
        findings.append(Finding(rule, path, line, construct))
    return sorted(findings, key=lambda f: (f.path, f.line, f.rule))


def unknown_rules(allow: tuple[str, ...]) -> list[str]:
    return [rule for rule in allow if rule not in RULES]


def iter_rules() -> Iterator[tuple[str, str]]:
    yield from RULES.items()
