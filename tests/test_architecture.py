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


def _imported(path: Path) -> set[str]:
    """Every absolute name `path` imports (`a.b`, and `a.b.c` for `from a.b import c`),
    wherever the import statement is."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _imports(path: Path) -> set[str]:
    """Every project module `path` imports."""
    return {name for name in _imported(path) if name in MODULES}


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
    owners = {"evolution.trail.format"}
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


def _imported_roots(path: Path) -> set[str]:
    """The top-level names of everything `path` imports."""
    return {name.split(".")[0] for name in _imported(path)}


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("evolution.run", "evolution.gate"),  # a run knows nothing of verdicts
        ("evolution.trail", "evolution.gate"),  # the trail is written by the gate, not the reverse
        ("evolution.trail", "evolution.run"),
        ("evolution.sandbox", "evolution.gate"),
        ("evolution.sandbox", "evolution.run"),
    ],
)
def test_a_lower_package_never_imports_a_higher_one(lower: str, upper: str) -> None:
    offenders = {
        name: sorted(dep for dep in _imports(path) if dep == upper or dep.startswith(upper + "."))
        for name, path in MODULES.items()
        if name == lower or name.startswith(lower + ".")
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_the_probe_the_launcher_and_the_relay_use_the_standard_library_only() -> None:
    """They run inside the sandbox, next to the code under test, before (the launcher) or
    without (the probe) the project's packages: what they import must be there already."""
    probe = sorted((ROOT / "evolution" / "probe").glob("*.py"))
    # The launcher is copied beside them as `_ratchet_enter`; pytest is the suite's own,
    # and coverage is used only when the run is under it (imported inside a try).
    siblings = {path.stem for path in probe} | {"_ratchet_enter"}
    allowed = set(sys.stdlib_module_names) | siblings | {"__future__"}
    found = {
        str(path.relative_to(ROOT)): sorted(
            _imported_roots(path) - allowed - {"pytest", "coverage"}
        )
        for path in probe
    }
    # The relay runs inside a coding agent's sandbox, before the agent, isolated (-I -S).
    for launcher in (ROOT / "evolution" / "sandbox" / "enter.py",
                     ROOT / "evolution" / "propose" / "agents" / "relay.py"):  # fmt: skip
        found[str(launcher.relative_to(ROOT))] = sorted(_imported_roots(launcher) - allowed)
    assert {path: roots for path, roots in found.items() if roots} == {}
    assert probe, "the probe's files moved: this test must follow them"


def test_the_top_of_the_evolution_layer_holds_only_the_shared_nouns_and_the_commands() -> None:
    """New modules go into the folder that names their part of the architecture."""
    top = {path.stem for path in (ROOT / "evolution").glob("*.py")}
    nouns = {"__init__", "policy", "baseline", "ratchet", "gitrepo"}
    commands = {"views", "console", "demo", "cycle"}
    assert top == nouns | commands
    assert (ROOT / "evolution" / "cli" / "__init__.py").is_file()  # the commands, a package
