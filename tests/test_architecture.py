"""The architecture, as tests: the layers stay layered and no module depends on itself.

- `agent/` is the runtime layer: importing any of its modules must load no `evolution`
  module (the runtime calls `evolve` as a subprocess, never as a library).
- No import cycle between the project's modules, counting the imports made only for
  type checking too: a cycle there is a cycle in the design.
- The audit trail's format has one owner: no other module spells a trailer key.
- Every git command goes through `GitRepo`.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "evolution")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "examples" in parts or "probe" in parts:
                continue  # shipped data and the suite-side plugin, not modules of the tool
            name = ".".join(parts).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every project module `path` imports, wherever the import statement is."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in MODULES}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("agent")))
def test_the_runtime_layer_never_loads_the_evolution_layer(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m == 'evolution' or "
        "m.startswith('evolution.'))\n"
        "print(','.join(loaded))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"{module} loaded {done.stdout.strip()}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_between_modules() -> None:
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    # A package's __init__ imported by its own submodules is not a cycle of the design.
    for name in graph:
        graph[name] = {dep for dep in graph[name] if not name.startswith(dep + ".")}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_format_module_spells_a_trailer_key() -> None:
    key = re.compile(r"""["'](Evolve-[A-Z][A-Za-z0-9-]*|Factory-Build)""")
    owners = {"evolution.trailers"}
    spelled = {
        name: key.findall(path.read_text(encoding="utf-8"))
        for name, path in MODULES.items()
        if name not in owners
    }
    assert {name: keys for name, keys in spelled.items() if keys} == {}


def test_every_git_command_goes_through_gitrepo() -> None:
    raw = re.compile(r"""\brepo\.(?:out|run)\(|\.git\.execute\(|\[\s*["']git["']""")
    offenders = {
        name: len(raw.findall(path.read_text(encoding="utf-8")))
        for name, path in MODULES.items()
        if name != "evolution.gitrepo" and not name.startswith("agent")
    }
    assert {name: n for name, n in offenders.items() if n} == {}


def test_the_agent_passes_the_sandbox_grants_to_its_tasks() -> None:
    """The runtime layer cannot import the launcher's constant, so it spells it; a gate
    that an agent's task starts inside a sandbox needs it to plan its own."""
    from agent.tasks import BASE_ENV
    from evolution.sandbox.enter import GRANTED_ENV

    assert GRANTED_ENV in BASE_ENV
