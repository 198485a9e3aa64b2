"""The gate under bad conditions: hangs, crashes, kills, races, flaky tests, import leaks."""

from __future__ import annotations

import errno
import json
import os
import signal
import site
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from repo_setup import CALC, FIXED_CALC, Sandbox, make_sandbox, run_evolve

from agent.procgroup import group_alive
from evolution.gitrepo import GitRepo
from evolution.run.folder import runs_root
from tests.agent_setup import wait_for

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them


def _refs(box: Sandbox) -> str:
    return box.git("for-each-ref")


def _start_validate(box: Sandbox, *args: str, env: dict[str, str] | None = None):
    return subprocess.Popen(
        [sys.executable, "-m", "evolution.cli", "validate", *args],
        cwd=box.path,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_folders(box: Sandbox) -> list[Path]:
    root = runs_root(GitRepo(box.path))
    return sorted(root.iterdir()) if root.is_dir() else []


SLOW_ADD = CALC.replace(
    "def add(a, b):\n    return a + b",
    "def add(a, b):\n    import time\n    time.sleep(60)\n    return a + b",
)


def test_hanging_test_times_out_and_counts_as_a_regression(sandbox: Sandbox) -> None:
    main_before = sandbox.head()
    sandbox.branch("evolve/slow", {"scripts/calc.py": SLOW_ADD}, proposal=True)
    code, report = sandbox.validate_json("evolve/slow", "--test-timeout", "1", "--reruns", "0")
    assert code == 1, report
    [regression] = report["regressions"]
    assert regression["nodeid"] == "tests/test_calc.py::test_add"
    assert "Timeout" in regression["first_line"]
    assert sandbox.head() == main_before


def _processes_running(argv: list[str]) -> list[str]:
    """Host pids whose command line is exactly `argv` (pids inside the sandbox's own PID
    namespace mean nothing outside it, so a process is found by what it runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = entry.joinpath("cmdline").read_bytes().decode().split("\0")[:-1]
            except OSError:
                continue
            if cmdline == argv:
                found.append(entry.name)
    return found


def test_run_over_its_limit_is_invalid_and_leaves_no_process(
    sandbox: Sandbox, shared_dir: Path
) -> None:
    started_file = shared_dir / "started"
    sandbox.policy(shared=[str(shared_dir)])
    sleeper = ["sleep", f"600.{uuid.uuid4().int % 10**6}"]  # this test's own
    stubborn = f"""
        import signal, subprocess, time

        def test_stubborn():
            subprocess.Popen({sleeper!r})
            open({str(started_file)!r}, "w").write("started")
            signal.signal(signal.SIGALRM, signal.SIG_IGN)  # defeats pytest-timeout
            time.sleep(600)
    """
    sandbox.branch("stubborn", {"tests/test_stubborn.py": stubborn})
    refs = _refs(sandbox)

    done = sandbox.evolve("validate", "stubborn", "--run-timeout", "3", "--test-timeout", "1")

    assert done.returncode == 3, done.stdout + done.stderr
    assert "exceeded its 3 s limit" in done.stderr
    assert _refs(sandbox) == refs  # no verdict, no note, no archive
    assert started_file.exists()
    wait_for(lambda: not _processes_running(sleeper), timeout=10, what="no sleeper left")


def test_crashing_conftest_is_an_invalid_run(sandbox: Sandbox) -> None:
    sandbox.branch("crash", {"tests/conftest.py": "raise RuntimeError('conftest boom')\n"})
    refs = _refs(sandbox)
    code, report = sandbox.validate_json("crash")
    assert code == 3
    assert "conftest" in report["error"]
    assert "conftest boom" in (report["hint"] or "")
    assert _refs(sandbox) == refs


FLAKY_TEST = """
    import os, pathlib

    def test_sometimes():
        marker = pathlib.Path(os.environ["FLAKY_DIR"]) / "seen"
        if not marker.exists():
            marker.write_text("seen")
            raise AssertionError("fails on a first run only")
"""


def test_flaky_test_is_quarantined_or_counted_by_policy(tmp_path: Path, shared_dir: Path) -> None:
    flaky_dir = shared_dir  # the suite writes its marker there, from inside the sandbox
    (flaky_dir / "seen").write_text("seen")
    env = {"FLAKY_DIR": str(flaky_dir)}
    box = make_sandbox(tmp_path / "repo", record=False)
    box.policy(shared=[str(flaky_dir)])
    box.commit("add a flaky test", {"tests/test_flaky.py": FLAKY_TEST})
    assert box.evolve("baseline", "record", env=env).returncode == 0
    box.branch("neutral", {"scripts/readme.txt": "hello\n"})

    (flaky_dir / "seen").unlink()
    code, strict = box.validate_json("neutral", "--flaky", "strict", "--no-merge", env=env)
    assert code == 1
    assert [r["nodeid"] for r in strict["regressions"]] == ["tests/test_flaky.py::test_sometimes"]
    assert "tests/test_flaky.py::test_sometimes" in strict["flaky"]

    (flaky_dir / "seen").unlink()
    code, report = box.validate_json("neutral", env=env)
    assert code == 0 and report["merged"], report
    evidence = report["flaky"]["tests/test_flaky.py::test_sometimes"]
    assert evidence["passed"] == 1 and evidence["runs"] == 1
    assert "fails on a first run only" in evidence["first_failure"]
    assert "tests/test_flaky.py::test_sometimes" in box.baseline()["flaky"]
    trailers = box.git("log", "-1", "--format=%(trailers:key=Evolve-Flaky,valueonly)")
    assert trailers == "tests/test_flaky.py::test_sometimes"


def test_kill_9_mid_run_changes_nothing_and_next_run_cleans_up(sandbox: Sandbox) -> None:
    main_before, refs = sandbox.head(), _refs(sandbox)
    sandbox.branch("evolve/slow", {"scripts/calc.py": SLOW_ADD}, proposal=True)
    refs = _refs(sandbox)
    gate = _start_validate(sandbox, "evolve/slow", "--test-timeout", "120")
    wait_for(
        lambda: any((f / "pgid").exists() for f in _run_folders(sandbox)),
        timeout=30,
        what="the test run to start",
    )
    [folder] = _run_folders(sandbox)
    pgid = int((folder / "pgid").read_text())

    gate.send_signal(signal.SIGKILL)
    gate.communicate()

    assert sandbox.head() == main_before and _refs(sandbox) == refs
    # the suite died with its parent (PR_SET_PDEATHSIG), not 60 s later
    wait_for(lambda: not group_alive(pgid), timeout=10, what="the orphaned suite to die")
    assert folder.exists()  # the leftover, for the next run to prune

    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    code, report = sandbox.validate_json("evolve/fix")
    assert code == 0 and report["merged"], report
    assert not folder.exists()
    assert not folder.parent.exists(), "an empty parent of run folders is left in the tmp"
    assert len(sandbox.git("worktree", "list").splitlines()) == 1


def test_second_gate_exits_clearly_while_one_runs(sandbox: Sandbox, shared_dir: Path) -> None:
    gate_file = shared_dir / "release"  # the sandboxed suite sees it only in a shared path
    sandbox.policy(shared=[str(shared_dir)])
    waiting = f"""
        import pathlib, time

        def test_waits():
            for _ in range(600):
                if pathlib.Path({str(gate_file)!r}).exists():
                    return
                time.sleep(0.05)
    """
    sandbox.branch("slow", {"tests/test_waits.py": waiting})
    first = _start_validate(sandbox, "slow", "--no-merge")
    wait_for(lambda: any((f / "pgid").exists() for f in _run_folders(sandbox)), timeout=30)

    second = sandbox.evolve("validate", "slow", "--no-merge")
    gate_file.write_text("go")
    first.communicate(timeout=60)

    assert second.returncode == 3
    assert "another gate is running" in second.stderr and "--wait" in second.stderr
    assert first.returncode == 0


def test_two_gates_at_once_both_land_and_no_baseline_update_is_lost(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    sandbox.branch("extra", {"tests/test_extra.py": "def test_extra():\n    assert True\n"})

    gates = [_start_validate(sandbox, name, "--wait", "--json") for name in ("evolve/fix", "extra")]
    results = [gate.communicate(timeout=120) for gate in gates]

    assert [gate.returncode for gate in gates] == [0, 0], results
    reports = [json.loads(out) for out, _ in results]
    assert all(report["merged"] for report in reports)
    tests = sandbox.baseline()["tests"]
    assert tests["tests/test_calc.py::test_mul"] == "passed"
    assert tests["tests/test_extra.py::test_extra"] == "passed"
    verdicts = sandbox.git("log", "--format=%(trailers:key=Evolve-Verdict,valueonly)", "main")
    assert verdicts.split().count("accepted") == 2


def test_main_moving_during_validation_triggers_revalidation(
    sandbox: Sandbox, shared_dir: Path
) -> None:
    sync = shared_dir
    sandbox.policy(shared=[str(sync)])
    waiting = f"""
        import pathlib, time

        def test_waits():
            sync = pathlib.Path({str(sync)!r})
            (sync / "started").touch()
            for _ in range(600):
                if (sync / "go").exists():
                    return
                time.sleep(0.05)
    """
    sandbox.branch("waits", {"tests/test_waits.py": waiting})
    gate = _start_validate(sandbox, "waits", "--json")
    wait_for(lambda: (sync / "started").exists(), timeout=30, what="the first test run")
    moved = sandbox.commit("a person commits to main meanwhile", {"NOTES.md": "hello\n"})
    (sync / "go").touch()
    out, err = gate.communicate(timeout=120)

    report = json.loads(out)
    assert gate.returncode == 0, err
    assert report["attempts"] == 2 and report["merged"]
    assert report["main_before"] == moved
    assert sandbox.git("merge-base", "--is-ancestor", moved, "main", check=False) == ""


# The tests that write to this interpreter's site-packages run on one xdist worker, one
# after another, beside the red-team test that lists site-packages before and after an
# attack (test_redteam.py): a .pth written here while that test runs elsewhere would read
# as planted by its attack. No other test looks at site-packages.
SITE_PACKAGES = pytest.mark.xdist_group("site-packages")


def _editable_pth(name: str, target: Path) -> Path:
    """What an editable install leaves in site-packages: a .pth naming the checkout.

    Written directly (pip would need the network for build dependencies). When
    site-packages is read-only, as inside the gate's own sandbox, the test is skipped.
    The tests that call it are in the SITE_PACKAGES group.
    """
    pth = Path(site.getsitepackages()[0]) / f"__editable__.{name}.pth"
    try:
        pth.write_text(str(target) + "\n")
    except OSError as exc:  # EACCES under Landlock, EROFS where the venv is bound read-only
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        pytest.skip("site-packages is read-only here (inside the gate's sandbox)")
    return pth


@pytest.fixture
def editable_src_layout(tmp_path: Path):
    """A src-layout package 'installed' in editable mode from the main checkout."""
    name = f"ratchetiso{uuid.uuid4().hex[:8]}"
    box = make_sandbox(tmp_path / "repo", record=False)
    box.commit(
        "a src-layout package",
        {
            f"src/{name}/__init__.py": "def value():\n    return 1\n",
            "tests/test_pkg.py": (
                f"import {name}\n\ndef test_value():\n    assert {name}.value() == 1\n"
            ),
        },
    )
    pth = _editable_pth(name, box.path / "src")
    try:
        assert box.evolve("baseline", "record", "--reruns", "0").returncode == 0
        yield box, name
    finally:
        pth.unlink()


@SITE_PACKAGES
def test_candidate_code_is_tested_despite_an_editable_install(editable_src_layout) -> None:
    box, name = editable_src_layout
    box.branch("break-pkg", {f"src/{name}/__init__.py": "def value():\n    return 2\n"})
    code, report = box.validate_json("break-pkg", "--reruns", "0")
    assert code == 1, report
    assert [r["nodeid"] for r in report["regressions"]] == ["tests/test_pkg.py::test_value"]


def test_a_path_into_the_checkout_cannot_shadow_the_candidate(tmp_path: Path) -> None:
    """Sandboxed, the checkout is unreadable and the variable naming it is dropped: the
    candidate's own tree is what runs, so deleting helper.py is an honest regression."""
    box = make_sandbox(tmp_path / "repo", record=False)
    box.commit(
        "a helper module at the top level",
        {
            "helper.py": "X = 1\n",
            "tests/test_helper.py": "import helper\n\ndef test_x():\n    assert helper.X == 1\n",
        },
    )
    env = {"PYTHONPATH": str(box.path)}  # a stray path that shadows the candidate
    assert box.evolve("baseline", "record", env=env).returncode == 0
    box.branch("drop-helper", {}, delete=("helper.py",))
    code, report = box.validate_json("drop-helper", env=env)
    assert code == 1, report
    [regression] = report["regressions"]
    assert regression["nodeid"] == "tests/test_helper.py::test_x"
    assert "helper" in regression["first_line"]


@SITE_PACKAGES
def test_import_from_main_checkout_is_detected_without_a_sandbox(tmp_path: Path) -> None:
    """Without a sandbox an editable install can still reach the checkout (a .pth in
    site-packages names it), and the probe's module list catches it."""
    box = make_sandbox(tmp_path / "repo", record=False)
    name = f"ratchetleak{uuid.uuid4().hex[:8]}"
    box.commit(
        "a top-level module",
        {f"{name}.py": "X = 1\n",
         "tests/test_helper.py": f"import {name}\n\ndef test_x():\n    assert {name}.X == 1\n"},
    )
    pth = _editable_pth(name, box.path)
    env = {"RATCHET_SANDBOX": "none"}
    try:
        assert box.evolve("baseline", "record", env=env).returncode == 0
        box.branch("drop-helper", {}, delete=(f"{name}.py",))
        code, report = box.validate_json("drop-helper", env=env)
    finally:
        pth.unlink()
    assert code == 3, report
    assert "imported code from the main checkout" in report["error"]
    assert name in report["error"]


def test_not_a_git_repo_for_baseline(tmp_path: Path) -> None:
    done = run_evolve("baseline", "record", cwd=tmp_path)
    assert done.returncode == 2 and "not a git repository" in done.stderr


def test_the_suite_runs_without_secret_variables(sandbox: Sandbox) -> None:
    leaky = CALC_TESTS_PRINTING_ENV
    sandbox.branch("leaky", {"tests/test_env.py": leaky})
    env = {"SERVICE_API_KEY": "sk-should-never-be-seen-123", "PLAIN_SETTING": "visible"}
    code, report = sandbox.validate_json("leaky", "--no-merge", env=env)
    assert code == 0, report
    outcomes = {r["nodeid"]: r for r in report["new_failing"]}
    assert "tests/test_env.py::test_no_secret_in_env" not in outcomes


CALC_TESTS_PRINTING_ENV = """
    import os

    def test_no_secret_in_env():
        assert "SERVICE_API_KEY" not in os.environ
        assert os.environ["PLAIN_SETTING"] == "visible"
"""
