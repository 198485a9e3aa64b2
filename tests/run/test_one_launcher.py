"""One launcher for every sandboxed start: a gate run, a re-run, a coverage or import
check, `evolve doctor` and the fork server all enter the sandbox through the same argv
builder, plan and status handling, so that none of them can drift into confining the
suite less than another.

The structural tests read the code (a start spelled a second time is the way the fork
server once re-implemented `run_tests`); the last one plans a gate run and a fork server
on the same run folder and policy, and compares what each would have entered.
"""

from __future__ import annotations

import ast
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from repo_setup import IDENTITY, make_sandbox

import evolution.run.confine as confine
import evolution.sandbox.enter as enter
from agent.errors import InvalidRun
from evolution.gitrepo import GitRepo
from evolution.policy import Policy
from evolution.run import forkserver
from evolution.run.environment import environment
from evolution.run.folder import RunFolder
from evolution.run.forkserver import CandidateRuns, ServerUnavailable
from evolution.sandbox.isolation import Isolation

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    ".".join(path.relative_to(ROOT).with_suffix("").parts): path
    for package in ("agent", "evolution")
    for path in sorted((ROOT / package).rglob("*.py"))
}
# Who may call what starts a sandbox, reads its status, or judges a suite's frames.
OWNERS = {
    "launcher_argv": {"evolution.run.confine", "evolution.sandbox.doctor"},
    "launch_plan": {"evolution.run.confine", "evolution.sandbox.doctor"},
    "sandboxed": {"evolution.run.confine"},
    "read_status": {"evolution.run.confine"},
    "result_from_frames": {"evolution.run.launch"},
}


def _tree(module: str) -> ast.Module:
    return ast.parse(SOURCES[module].read_text(encoding="utf-8"))


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring constants in `tree` (prose may name the launcher)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            found.add(id(body[0].value))
    return found


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def test_only_the_isolation_module_builds_the_launcher_command() -> None:
    """`python -I -S enter.py PLAN -- ...` is spelled once: `isolation.launcher_argv`."""
    spelled: dict[str, list[int]] = {}
    for module in SOURCES:
        tree = _tree(module)
        prose = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.List | ast.Tuple):
                words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if {"-I", "-S"} <= words:
                    spelled.setdefault(module, []).append(node.lineno)
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in prose
                and (node.value == "enter.py" or node.value.endswith("/enter.py"))
            ):
                spelled.setdefault(module, []).append(node.lineno)
    assert spelled == {"evolution.sandbox.isolation": spelled.get("evolution.sandbox.isolation")}
    assert spelled["evolution.sandbox.isolation"], "the launcher moved: this test must follow"


def test_every_sandboxed_start_goes_through_one_path() -> None:
    calls: dict[str, set[str]] = {name: set() for name in OWNERS}
    for module in SOURCES:
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.Call) and _called(node) in OWNERS:
                calls[_called(node)].add(module)
    assert {name: callers - OWNERS[name] for name, callers in calls.items()} == {
        name: set() for name in OWNERS
    }
    assert all(calls.values()), f"a start moved: this test must follow it ({calls})"


def test_the_fork_server_uses_only_the_public_helpers_of_the_launcher() -> None:
    """The server imports the launcher's copy (`_ratchet_enter`): whatever it takes from
    it is public in `enter.py`, so a change there sees who else depends on it."""
    used = set()
    for node in ast.walk(_tree("evolution.probe._ratchet_forkserver")):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        from_copy = isinstance(value, ast.Call) and _called(value) == "_enter"
        if from_copy or (isinstance(value, ast.Name) and value.id == "enter"):
            used.add(node.attr)
    assert used, "the server no longer uses the launcher: this test must follow"
    assert sorted(name for name in used if name.startswith("_")) == []
    assert sorted(name for name in used if not hasattr(enter, name)) == []


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunFolder]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in IDENTITY.items():
            patch.setenv(key, value)
        box = make_sandbox(tmp_path_factory.mktemp("one-launcher") / "repo", record=False)
        with RunFolder(GitRepo(box.path), box.head()) as folder:
            yield folder


def _planned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], list[str]]]:
    """Every plan and command handed to the launcher from now on (none is started)."""
    seen: list[tuple[dict[str, Any], list[str]]] = []
    real = confine.launcher_argv

    def record(plan: dict[str, Any], argv: list[str]) -> list[str]:
        seen.append((json.loads(json.dumps(plan)), list(argv)))
        return real(plan, argv)

    monkeypatch.setattr(confine, "launcher_argv", record)
    return seen


def _refuse(*_args: object, **_kwargs: object) -> Any:
    raise OSError("not started by this test")


@pytest.mark.parametrize("network", ["loopback", "host"])
def test_a_fork_server_is_confined_exactly_as_a_gate_run(
    run: RunFolder, monkeypatch: pytest.MonkeyPatch, network: str
) -> None:
    policy = Policy(network=network, writable=("scripts",), read_paths=("/opt",))
    isolation = Isolation(sandboxed=True, network=network)
    seen = _planned(monkeypatch)
    monkeypatch.setattr(confine, "run_in_group", _refuse)
    monkeypatch.setattr(forkserver.subprocess, "Popen", _refuse)
    # A plan lists what the host has (its top-level folders, the interpreters' paths):
    # other processes may add or remove such a path between two plans, so both are
    # taken again until one pair saw the same host (host churn is brief).
    for _ in range(5):
        seen.clear()
        with pytest.raises(InvalidRun, match="not started by this test"):
            confine.confined(
                policy.argv(), run, policy, isolation, env=environment(run),
                output=run.path / "one-launcher.log", timeout_s=1.0,
            )  # fmt: skip
        runs = CandidateRuns(policy, run, isolation)
        assert runs.fallback == ""
        with pytest.raises(ServerUnavailable, match="not started by this test"):
            runs._spawn()
        (gate_plan, gate_argv), (server_plan, server_argv) = seen
        # The status descriptor is each start's own pipe; everything else is the same plan.
        gate_plan.pop("status_fd")
        server_plan.pop("status_fd")
        if server_plan == gate_plan:
            break
    assert gate_argv[0] == server_argv[0] == policy.argv()[0]
    differ = {tuple(r) for r in gate_plan["rules"]} ^ {tuple(r) for r in server_plan["rules"]}
    assert server_plan == gate_plan, f"rules in one plan only: {sorted(differ)}"
    assert gate_plan["network"] == network
    assert [str(run.tree / "scripts"), "rw"] in gate_plan["rules"]


def test_without_a_sandbox_nothing_is_wrapped(
    run: RunFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No launcher, no status pipe: the command starts as it is, for both."""
    seen = _planned(monkeypatch)
    started: list[list[str]] = []

    def record(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(list(argv))
        raise OSError("not started by this test")

    monkeypatch.setattr(forkserver.subprocess, "Popen", record)
    policy = Policy()
    with pytest.raises(ServerUnavailable):
        CandidateRuns(policy, run, Isolation(sandboxed=False, reason="test"))._spawn()
    assert seen == []
    assert started and started[0][0] == policy.argv()[0]
    assert started[0][1] == str(run.probe / forkserver.SERVER)
