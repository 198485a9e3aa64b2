"""The install is reproducible: what the README's commands install is pinned, and CI runs
exactly the README's test command.

These read files only (and run the lines by which `.ci/run` reads the README); `.ci/latest`
is the check that installs the newest releases.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from requirements.lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        found = PIN.match(line)
        if found:
            current = canonicalize_name(found[1])
            pins[current] = (found[2], [])
        elif line.strip().startswith("--hash=sha256:") and current:
            pins[current][1].append(line.strip())
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [req for group in project["optional-dependencies"].values() for req in group]
    return [Requirement(text) for text in [*project["dependencies"], *extras]]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run .ci/lock"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside {requirement}: run .ci/lock"
        )


def test_every_pin_carries_a_hash() -> None:
    pins = _pins()
    assert len(pins) > 20
    assert [name for name, (_version, hashes) in pins.items() if not hashes] == []


def _fenced_commands(markdown: str) -> list[str]:
    block = re.search(r"```sh\n(.*?)```", markdown, re.S)
    assert block, "the README starts with a sh block"
    return [line for line in block[1].splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command_from_the_lock() -> None:
    demo, tests = _fenced_commands((ROOT / "README.md").read_text(encoding="utf-8"))[:2]
    assert demo.endswith("evolve demo") and tests.endswith("python -m pytest")
    for command in (demo, tests):
        assert "-r requirements.lock" in command, command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci
    assert ".venv/bin/ruff check ." in ci
    # The first command is run too, by a new user's path (a clone under the temporary
    # folder, with its venv there), and the test command again on Python 3.13 (a clone of
    # its own, python3 being 3.13 there): both read from the README, so they cannot drift.
    assert any(line.startswith("tmp=$(mktemp -d") for line in ci)
    for name, command in (("demo", demo), ("tests", tests)):
        reading = next(line for line in ci if line.startswith(f"{name}=$(sed -n "))
        read = subprocess.run(["bash", "-c", f'{reading}\nprintf %s "${name}"'], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert read == command, reading
    assert '(cd "$tmp/first-contact" && NO_COLOR=1 bash -c "$demo")' in ci
    assert 'PYENV_VERSION=$pyenv_version bash -c "$tests"' in ci
    # Both commands install the same thing; the tests also need the coding agents their
    # proposers drive, each from its own lock (.ci/agents/).
    assert demo.rsplit("&&", 1)[0] + "&& .ci/agents/install " == tests.rsplit("&&", 1)[0]


def test_the_readme_test_command_runs_on_every_core() -> None:
    """The command stays `python -m pytest`; the configuration spreads it over every core
    with pytest-xdist, keeping each xdist_group on one worker."""
    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "pytest"
    ]["ini_options"]
    options = shlex.split(pytest_ini["addopts"])
    assert options[options.index("-n") + 1] == "auto"
    assert options[options.index("--dist") + 1] == "loadgroup"
    assert "pytest-xdist" in {canonicalize_name(r.name) for r in _declared()}
