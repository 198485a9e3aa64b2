"""Real git repositories in temporary folders, driven for real: the helpers the tests
share. Nothing here mocks git or pytest. A `Sandbox` is a fresh repository holding a
tiny agent (`scripts/calc.py`) with a test suite in which exactly one test fails (a
seeded bug), and a recorded baseline on main.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Person",
    "GIT_AUTHOR_EMAIL": "person@example.invalid",
    "GIT_COMMITTER_NAME": "Test Person",
    "GIT_COMMITTER_EMAIL": "person@example.invalid",
}

CALC = '''\
"""A tiny module the sandbox agent evolves."""


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def mul(a, b):
    # seeded bug: should multiply
    return a + b
'''

CALC_TESTS = """\
from scripts.calc import add, mul, sub


def test_add():
    assert add(2, 3) == 5


def test_sub():
    assert sub(5, 3) == 2


def test_mul():
    assert mul(3, 4) == 12
"""


class Sandbox:
    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.path, capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {args} failed: {done.stderr}")
        return done.stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        if files:
            self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "--no-verify", "-m", message)
        return self.head("HEAD")

    def branch(
        self,
        name: str,
        files: dict[str, str],
        *,
        proposal: bool = False,
        delete: tuple[str, ...] = (),
        base: str = "main",
    ) -> str:
        """Commit `files` on a new branch from `base`, then return to main."""
        self.git("switch", "-q", "-c", name, base)
        for rel in delete:
            self.git("rm", "-q", rel)
        message = f"change on {name}"
        if proposal:
            message += f"\n\nEvolve-Proposal: {name.replace('/', '-')}\nEvolve-Proposer: test"
        tip = self.commit(message, files)
        self.git("switch", "-q", "main")
        return tip

    def policy(self, **keys: object) -> None:
        """Commit [evolution] keys to main's deploy/agent.toml, as a person would."""
        lines = ["[evolution]"] + [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
        self.commit("policy", {"deploy/agent.toml": "\n".join(lines) + "\n"})

    def head(self, ref: str = "main") -> str:
        return self.git("rev-parse", ref)

    def baseline(self, ref: str = "main") -> dict:
        return json.loads(self.git("show", f"{ref}:baseline/baseline.json"))

    def evolve(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
        return run_evolve(*args, cwd=self.path, env=env, timeout=timeout)

    def evolve_in_process(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_evolve_in_process(*args, cwd=self.path, env=env)

    def validate_json(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
        done = self.evolve("validate", *args, "--json", env=env)
        return done.returncode, json.loads(done.stdout)


# The Ratchet source this test process imports. At the top level the editable install
# finds it anyway; inside Ratchet's own gate (this suite judged by its own ratchet) the
# install points at the user's checkout, which the sandbox hides, and only the tree on
# PYTHONPATH has it: a child given a PYTHONPATH of its own must keep this on it.
SOURCE = str(Path(__file__).resolve().parent.parent)


def with_source(pythonpath: str | None) -> str:
    return os.pathsep.join(p for p in (pythonpath, SOURCE) if p)


def run_evolve(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    if env and "PYTHONPATH" in env:
        full_env["PYTHONPATH"] = with_source(env["PYTHONPATH"])
    return subprocess.run(
        [sys.executable, "-m", "evolution.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_evolve_in_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`evolve ARGS` through the same Typer app and error boundary, in this process. For
    the commands that call a model: a new interpreter pays seconds to import litellm, this
    one pays once. Each such command keeps one test that runs it as a real subprocess."""
    from typer.testing import CliRunner

    from evolution.cli import app

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        result = CliRunner().invoke(
            app, list(args), env={"NO_COLOR": "1", **(env or {})}, catch_exceptions=False
        )
    return subprocess.CompletedProcess(
        ["evolve", *args], result.exit_code, result.stdout, result.stderr
    )


# The sample's pytest configuration: it does not use Hypothesis, and says so. Installed
# beside the gate (it is this suite's test dependency), Hypothesis's pytest plugin imports
# all of Hypothesis at every session's end (pytest_terminal_summary), about 0.6 s of CPU
# in each of the hundreds of test runs the gate makes here, a third of a small run's cost.
# The realistic suite of test_redteam.py keeps the plugin.
SAMPLE_PYTEST_INI = "[pytest]\naddopts = -p no:hypothesispytest\n"


def make_sandbox(path: Path, *, record: bool = True) -> Sandbox:
    path.mkdir(parents=True, exist_ok=True)
    box = Sandbox(path)
    box.git("init", "-q", "-b", "main")
    box.commit(
        "initial agent",
        {
            "pytest.ini": SAMPLE_PYTEST_INI,
            "scripts/__init__.py": "",
            "scripts/calc.py": CALC,
            "tests/test_calc.py": CALC_TESTS,
        },
    )
    if record:
        done = box.evolve("baseline", "record", "--reruns", "0")
        assert done.returncode == 0, done.stderr
    return box


def copy_sandbox(template: Path, path: Path) -> Sandbox:
    """A recorded repository costs a whole sandboxed pytest run; a copy of one costs a
    file copy. A copy is as good as a new one: nothing in the git directory names its
    folder, and the gate keys its run folders and state by the repository's path."""
    shutil.copytree(template, path, symlinks=True)
    return Sandbox(path)


@contextlib.contextmanager
def git_identity() -> Iterator[None]:
    """The test person's identity for a fixture wider than one test: the autouse
    fixture that sets it is per test, so it is not yet in force when those are built."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in IDENTITY.items():
            patch.setenv(key, value)
        yield


def double_failing_once(folder_variable: str) -> str:
    """A `double(x)` that returns a wrong value on the first call that finds no marker in
    the folder named by the environment variable, and leaves the marker there."""
    return (
        "import os\nimport pathlib\n\n\ndef double(x):\n"
        f"    marker = pathlib.Path(os.environ[{folder_variable!r}]) / 'seen'\n"
        "    if not marker.exists():\n"
        "        marker.write_text('x')\n"
        "        return -1\n"
        "    return 2 * x\n"
    )


def recorded_with_map(path: Path, files: dict[str, str]) -> Path:
    """A repository of `files` (on the sample agent) whose baseline and map the gate
    recorded in one process: a template that a module's tests copy (`copy_sandbox`)."""
    with git_identity():
        box = make_sandbox(path, record=False)
        box.policy(workers=1)
        box.commit("modules and their tests", files)
        done = box.evolve("baseline", "record", "--reruns", "0")
    assert done.returncode == 0, done.stderr
    return box.path


FIXED_CALC = CALC.replace(
    "    # seeded bug: should multiply\n    return a + b\n", "    return a * b\n"
)
BROKEN_ADD = CALC.replace("def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b")


# A test that fails on a first run only, and one new in a candidate that does the same:
# each leaves a marker in a folder the policy lets the sandboxed suite write (`shared`,
# named by FLAKY_DIR), and passes while its marker is there.
CLOCK = '''\
"""How many ticks a beat has."""


def ticks():
    return 3
'''
FLAKY_TEST = """
import os, pathlib

from scripts.clock import ticks


def test_ticks_sometimes():
    marker = pathlib.Path(os.environ["FLAKY_DIR"]) / "seen"
    if not marker.exists():
        marker.write_text("seen")
        raise AssertionError("fails on a first run only")
    assert ticks() == 3
"""
# The attack: the function only the quarantined test checks is broken for good.
BROKEN_CLOCK = CLOCK.replace("return 3", "return 4")
# The look-alike: a neutral change to the same file.
NEUTRAL_CLOCK = CLOCK.replace('"""How many ticks a beat has."""', '"""Ticks per beat."""')

NEW_FLAKY_TEST = """
import os, pathlib


def test_new_and_flaky():
    marker = pathlib.Path(os.environ["FLAKY_DIR"]) / "new-seen"
    if not marker.exists():
        marker.write_text("seen")
        raise AssertionError("fails on a first run only")
"""
