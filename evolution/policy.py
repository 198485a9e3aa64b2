"""The gate's policy: what counts as a test run, what a proposal may touch, how strict to be.

The policy is read from main's commit (`deploy/agent.toml`, rendered by the factory from
SPEC.md), never from the candidate or the working tree, so a candidate cannot relax its
own judge. With no file there, the defaults below serve, and work in any git repository
that has a pytest suite. The keys and their rules are agent/schema.py's, shared with the
factory and the runtime.
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

from agent.config import CONFIG_PATH
from agent.errors import EnvironmentFailure, UsageError
from agent.schema import DEFAULT_PROTECTED, EVOLUTION
from agent.tomllines import KeyLines, key_path
from evolution.gitrepo import GitRepo

_DEFAULT = EVOLUTION.defaults()


@dataclass(frozen=True)
class Policy:
    """The `[evolution]` keys the gate reads. Their types, valid values, defaults and
    meaning are declared once, in agent/schema.py's EVOLUTION, which the factory checks
    SPEC.md with too; this is their typed shape."""

    test_command: str = _DEFAULT["test_command"]
    evolvable: tuple[str, ...] = _DEFAULT["evolvable"]
    protected: tuple[str, ...] = DEFAULT_PROTECTED  # the schema's None: the gate's list
    reruns: int = _DEFAULT["reruns"]
    flaky: str = _DEFAULT["flaky"]
    quarantine_days: int = _DEFAULT["quarantine_days"]
    require_improvement: bool = _DEFAULT["require_improvement"]
    max_rejections: int = _DEFAULT["max_rejections"]
    test_timeout_s: float = _DEFAULT["test_timeout_s"]
    run_timeout_s: float = _DEFAULT["run_timeout_s"]
    sandbox: str = _DEFAULT["sandbox"]
    network: str = _DEFAULT["network"]
    writable: tuple[str, ...] = _DEFAULT["writable"]
    shared: tuple[str, ...] = _DEFAULT["shared"]
    read_paths: tuple[str, ...] = _DEFAULT["read_paths"]
    allow: tuple[str, ...] = _DEFAULT["allow"]
    workers: int | str = _DEFAULT["workers"]
    staged: bool = _DEFAULT["staged"]
    behaviour: str = _DEFAULT["behaviour"]
    revert_people: bool = _DEFAULT["revert_people"]
    baseline: str = _DEFAULT["baseline"]
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
        with a verdict (`revert_people`), nor where the baseline is kept (`baseline`: its
        content is in the key already)."""
        fields = dataclasses.asdict(self)
        for not_a_verdict in ("source", "workers", "staged", "revert_people", "baseline"):
            fields.pop(not_a_verdict)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, **overrides: Any) -> Policy:
        """This policy with a caller's values for one run (the command line's), held to
        the schema's rules for the same keys."""
        chosen = {key: value for key, value in overrides.items() if value is not None}
        if isinstance(chosen.get("workers"), str) and chosen["workers"].isdigit():
            chosen["workers"] = int(chosen["workers"])  # `--workers 4` arrives as text
        for key, value in chosen.items():
            found = EVOLUTION.keys[key].problem(value)
            if found is not None:
                option = "--" + key.removesuffix("_s").replace("_", "-")
                raise UsageError(f"{option} {found[0]}, not {value!r}")
        return dataclasses.replace(self, **chosen) if chosen else self


_READ = {f.name for f in dataclasses.fields(Policy)} - {"source"}


def parse_policy(text: str, origin: str) -> Policy:
    """Build a Policy from agent.toml text; an unusable file is an environment failure.

    Only the keys the gate reads are checked: other layers' keys live in `[evolution]`
    too (`objectives`, the cycle's), and a bad one must not stop the gate."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnvironmentFailure(f"{origin}: not valid TOML: {exc}") from None
    section = data.get("evolution", {})
    if isinstance(section, dict):
        section = {key: value for key, value in section.items() if key in _READ}
    values, problems = EVOLUTION.read(section, ("evolution",))
    if problems:
        loc, message = problems[0]
        line = KeyLines().scan(text.splitlines()).line_of(loc)
        # `deploy/agent.toml@abc:12: evolution.flaky must be ...`: the file as committed.
        raise EnvironmentFailure(f"{origin}:{line}: {key_path(loc)} {message}")
    return Policy(**values, source=origin)


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
