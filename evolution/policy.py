"""The gate's policy: what counts as a test run, what a proposal may touch, how strict to be.

The policy is read from main's commit, never from the candidate or the working tree, so
a candidate cannot relax its own judge. It lives in one of three places (`PLACES`):
`[tool.ratchet]` in pyproject.toml, where a Python project keeps its tools' settings;
ratchet.toml, the same keys at its top level, for a repository without a pyproject.toml;
or `[evolution]` in deploy/agent.toml, the reference deployment's file, rendered by the
factory from SPEC.md. The rule is that there is one: main holding the policy in two of
them is an error naming both, never a silent choice. With none, the defaults below
serve, and work in any git repository that has a pytest suite. The keys and their rules
are agent/schema.py's, shared with the factory and the runtime; the command line's
switches override them for one run.
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
from agent.errors import UsageError
from agent.schema import DEFAULT_PROTECTED, EVOLUTION
from agent.tomllines import KeyLines, key_path
from agent.tomlschema import Problem
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


@dataclass(frozen=True)
class Place:
    """A file the policy may be written in, and the table of it that holds the keys."""

    path: str
    table: tuple[str, ...]  # (): the file's top level
    shared: bool  # other layers' keys live in the table too: only the gate's are checked

    @property
    def shown(self) -> str:
        """`pyproject.toml [tool.ratchet]`, as a person would look for it."""
        return f"{self.path} [{'.'.join(self.table)}]" if self.table else self.path


PYPROJECT = Place("pyproject.toml", ("tool", "ratchet"), shared=False)
RATCHET_TOML = Place("ratchet.toml", (), shared=False)
DEPLOYMENT = Place(CONFIG_PATH, ("evolution",), shared=True)
PLACES = (PYPROJECT, RATCHET_TOML, DEPLOYMENT)
# The files a proposal may never change, whatever `protected` says: its judge's policy.
POLICY_FILES = tuple(place.path for place in PLACES)


@dataclass(frozen=True)
class Committed:
    """The place that holds the policy on a commit, as read from it."""

    place: Place
    origin: str  # `pyproject.toml@abc1234567`: the file as committed
    text: str
    data: dict[str, Any]

    def section(self) -> Any:
        return _section(self.data, self.place)


def _document(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{origin}: not valid TOML: {exc}") from None


def _section(data: dict[str, Any], place: Place) -> Any:
    """The place's table in a parsed file, or None where the file has none."""
    node: Any = data
    for part in place.table:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def parse_policy(text: str, origin: str, place: Place = DEPLOYMENT) -> Policy:
    """Build a Policy from the text of one of the PLACES (by default agent.toml)."""
    return _policy(Committed(place, origin, text, _document(text, origin)))


def _policy(found: Committed) -> Policy:
    """Check the keys against the schema; a bad one is an input error naming the file as
    committed, its line and the key (`pyproject.toml@abc:12: tool.ratchet.flaky must be
    ...`).

    In agent.toml's shared `[evolution]` only the keys the gate reads are checked: other
    layers' keys live there too (`objectives`, the cycle's), and a bad one must not stop
    the gate. A table of the gate's own refuses a key it does not know (a typo)."""
    place, section = found.place, found.section()
    section = {} if section is None else section
    problems: list[Problem] = []
    if isinstance(section, dict):
        if place.shared:
            section = {key: value for key, value in section.items() if key in _READ}
        else:
            problems += [
                Problem((*place.table, key), "is not a key of the gate's policy")
                for key in sorted(set(section) - set(EVOLUTION.keys))
            ]
    values, found_problems = EVOLUTION.read(section, place.table)
    problems += found_problems
    if problems:
        loc, message = problems[0]
        line = KeyLines().scan(found.text.splitlines()).line_of(loc)
        raise UsageError(
            f"{found.origin}:{line}: {key_path(loc)} {message}",
            hint=f"fix it in {place.path} on main: the gate reads its policy from there",
        )
    values = {key: value for key, value in values.items() if key in _READ}
    return Policy(**values, source=found.origin)


def committed_policy(repo: GitRepo, commit: str) -> Committed | None:
    """Which of the PLACES holds the policy at `commit`, or None (the defaults serve).

    There is no order of precedence to learn or to get wrong: a policy in two places is
    an error naming both, since a judge whose rules depend on which file wins is a judge
    nobody can read at a glance."""
    found = []
    for place in PLACES:
        raw = repo.read_file(commit, place.path)
        if raw is None:
            continue
        text, origin = raw.decode("utf-8", errors="replace"), f"{place.path}@{commit[:10]}"
        committed = Committed(place, origin, text, _document(text, origin))
        if committed.section() is not None:
            found.append(committed)
    if len(found) > 1:
        raise UsageError(
            f"the gate's policy is in {len(found)} places at {commit[:10]}: "
            + " and ".join(f.place.shown for f in found)
            + "; Ratchet reads it from one",
            hint="move its keys into one of them and remove the other "
            "(pyproject.toml's [tool.ratchet] is where a Python project keeps it)",
        )
    return found[0] if found else None


def load_policy(repo: GitRepo, commit: str) -> Policy:
    """The policy as committed at `commit` (main), or the defaults when none is committed."""
    found = committed_policy(repo, commit)
    return Policy() if found is None else _policy(found)


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
