"""The gate's policy: what counts as a test run, what a proposal may touch, how strict to be.

The policy is read from main's commit (`deploy/agent.toml`, rendered by the factory from
SPEC.md), never from the candidate or the working tree, so a candidate cannot relax its
own judge. With no file there, the defaults below serve, and work in any git repository
that has a pytest suite.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from typing import Any

from agent.errors import EnvironmentFailure, UsageError
from agent.tomllines import KeyLines
from evolution.gitrepo import GitRepo

CONFIG_PATH = "deploy/agent.toml"

DEFAULT_PROTECTED = (
    "tests/",
    "test_*.py",
    "*_test.py",
    "conftest.py",
    "pytest.ini",
    "pyproject.toml",
    "setup.cfg",
    "tox.ini",
    "baseline/",
    "hooks/",
    "evolution/",
    "SPEC.md",
    "deploy/",
    ".ci/",
)


@dataclass(frozen=True)
class Policy:
    test_command: str = "python -m pytest"
    evolvable: tuple[str, ...] = ("scripts/",)
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    reruns: int = 3
    flaky: str = "quarantine"  # or "strict"
    quarantine_days: int = 30  # how long a flaky test's quarantine entry excuses failures
    require_improvement: bool = False
    max_rejections: int = 5
    test_timeout_s: float = 300.0
    run_timeout_s: float = 3600.0
    sandbox: str = "auto"  # or "required": never run a suite without the OS sandbox
    network: str = "loopback"  # or "host": what the sandboxed suite may reach
    writable: tuple[str, ...] = ()  # tree paths the sandboxed suite may write
    shared: tuple[str, ...] = ()  # folders outside the tree it may write, outliving runs
    read_paths: tuple[str, ...] = ()  # folders it may read that it does not by default
    allow: tuple[str, ...] = ()  # static-guard rules lifted on purpose
    workers: int | str = "auto"  # test processes at once: a count, or "auto" (the cores)
    staged: bool = True  # run the tests the map ties to a change first; they may reject
    behaviour: str = "strict"  # or "report", "off": the replay outside the harness
    # The safety net reverts a person's commit it found guilty only when asked: by
    # default it raises an incident, because a person's change is not a proposal.
    revert_people: bool = False
    source: str = field(default="defaults", compare=False)

    def argv(self) -> list[str]:
        """The test command as argv; a leading `python` means the interpreter running evolve.

        That keeps `python -m pytest` pointing at an environment that has the
        pytest-json-report and pytest-timeout plugins the gate needs.
        """
        argv = shlex.split(self.test_command)
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        return argv

    def worker_count(self) -> int:
        """How many test processes a full run uses: `auto` is the cores this process may
        run on, so a `taskset` or a cgroup's cpuset is honoured."""
        if self.workers != "auto":
            return int(self.workers)
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return os.cpu_count() or 1

    def digest(self) -> str:
        """A hash of everything that can change a verdict, for the verdict cache key.
        The worker count and the staging are not: a split run is held to the serial
        run's checks, and only a full run is cached. Nor is what the safety net does
        with a verdict (`revert_people`)."""
        fields = dataclasses.asdict(self)
        for not_a_verdict in ("source", "workers", "staged", "revert_people"):
            fields.pop(not_a_verdict)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, **overrides: Any) -> Policy:
        """This policy with a caller's values for one run (the command line's)."""
        chosen = {key: value for key, value in overrides.items() if value is not None}
        for key, value in chosen.items():
            if key in _CHOICES and value not in _CHOICES[key]:
                shown = " or ".join(_CHOICES[key])
                raise UsageError(f"{key} takes {shown}, not {value!r}")
        if "workers" in chosen:
            chosen["workers"] = _workers(chosen["workers"], UsageError, "--workers")
        return dataclasses.replace(self, **chosen) if chosen else self


_KEYS = {
    "test_command": str,
    "evolvable": list,
    "protected": list,
    "reruns": int,
    "flaky": str,
    "quarantine_days": int,
    "require_improvement": bool,
    "max_rejections": int,
    "test_timeout_s": (int, float),
    "run_timeout_s": (int, float),
    "sandbox": str,
    "network": str,
    "writable": list,
    "shared": list,
    "read_paths": list,
    "allow": list,
    "workers": (int, str),
    "staged": bool,
    "behaviour": str,
    "revert_people": bool,
}
_CHOICES = {
    "flaky": ("quarantine", "strict"),
    "sandbox": ("auto", "required"),
    "network": ("loopback", "host"),
    "behaviour": ("strict", "report", "off"),
}


def parse_policy(text: str, origin: str) -> Policy:
    """Build a Policy from agent.toml text; an unusable file is an environment failure."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnvironmentFailure(f"{origin}: not valid TOML: {exc}") from None
    lines = KeyLines().scan(text.splitlines())

    def at(*loc: str) -> str:
        """`deploy/agent.toml@abc:12`: the file, as committed, and the line of the key."""
        return f"{origin}:{lines.line_of(loc)}"

    section = data.get("evolution", {})
    if not isinstance(section, dict):
        raise EnvironmentFailure(f"{at('evolution')}: [evolution] must be a table")
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key not in _KEYS:
            continue  # other layers' keys live here too; the factory validates them
        expected = _KEYS[key]
        where = at("evolution", key)
        if isinstance(value, bool) and expected is not bool:
            raise EnvironmentFailure(f"{where}: evolution.{key} has the wrong type")
        if not isinstance(value, expected):  # type: ignore[arg-type]
            raise EnvironmentFailure(f"{where}: evolution.{key} has the wrong type")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise EnvironmentFailure(f"{where}: evolution.{key} must be a list of strings")
        values[key] = tuple(value) if isinstance(value, list) else value
    for key, choices in _CHOICES.items():
        if key in values and values[key] not in choices:
            shown = " or ".join(f'"{choice}"' for choice in choices)
            raise EnvironmentFailure(f"{at('evolution', key)}: evolution.{key} must be {shown}")
    if "quarantine_days" in values and values["quarantine_days"] < 1:
        raise EnvironmentFailure(
            f"{at('evolution', 'quarantine_days')}: evolution.quarantine_days must be a "
            f"whole number of days from 1"
        )
    for path in values.get("read_paths", ()):
        if not os.path.isabs(os.path.expanduser(path)) or os.path.normpath(path) == "/":
            raise EnvironmentFailure(
                f"{at('evolution', 'read_paths')}: evolution.read_paths takes absolute "
                f"folders (or ~/...), and not / itself: {path!r}"
            )
    if "workers" in values:
        where = f"{at('evolution', 'workers')}: evolution.workers"
        values["workers"] = _workers(values["workers"], EnvironmentFailure, where)
    return Policy(**values, source=origin)


def _workers(value: object, error: type[Exception], where: str) -> int | str:
    """`auto`, or a whole number of processes from 1 (a string of digits from the
    command line too)."""
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise error(f'{where} must be "auto" or a number of processes from 1, not {value!r}')


def load_policy(repo: GitRepo, commit: str) -> Policy:
    """The policy as committed at `commit` (main), or the defaults when none is committed."""
    raw = repo.read_file(commit, CONFIG_PATH)
    if raw is None:
        return Policy()
    return parse_policy(raw.decode("utf-8", errors="replace"), f"{CONFIG_PATH}@{commit[:10]}")


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether a repository path falls under any pattern.

    `dir/` protects a folder from the repository root; a pattern without a slash
    (`conftest.py`, `test_*.py`) matches that file name in any folder; anything else is
    a glob on the whole path.
    """
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.endswith("/"):
            if path.startswith(pattern) or path == pattern.rstrip("/"):
                return True
        elif "/" not in pattern:
            if fnmatch.fnmatchcase(name, pattern):
                return True
        elif fnmatch.fnmatchcase(path, pattern):
            return True
    return False
