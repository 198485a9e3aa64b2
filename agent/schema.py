"""The one schema of `deploy/agent.toml`, and so of SPEC.md's ```toml blocks.

Three readers check this configuration: the factory (SPEC.md, before it renders
deploy/), the runtime (`agent`, every tick) and the gate (the policy in `[evolution]`,
read from main's commit). They used to declare the keys, their types, ranges and
defaults each in its own way, and drifted apart (a cap of `inf` passed the factory, a
negative `reruns` passed the gate). Here every key is declared once, as data, and one
reader applies it; each caller only says where the text came from, so that its errors
can name the file and line.

Two modes, because the two files are written by different hands:
- `spec=True`, SPEC.md, written by a person and rendered into systemd units and cron
  lines: every table is closed (a typo is an error), the keys marked `spec="required"`
  must be stated, seconds are whole (timers and cron take no fractions), and names
  follow their `spec_pattern` (they become unit, file and variable names).
- `spec=False`, deploy/agent.toml, normally the factory's output but also written by
  hand (tests, an operator in a hurry, a repository without SPEC.md): what is missing
  takes its default, and only the runtime's array entries (`[[tasks]]`,
  `[[llm.models]]`) refuse unknown keys; other layers' keys share the tables.

The declaring and checking is agent/tomlschema.py's; this module says what agent.toml
holds. It is the runtime layer's (it must not import `evolution`); the factory adds
its own table (`[hardening]`) and the checks that need the evolution layer (cron
syntax, static-guard rule names) on top. Standard library only.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.tomlschema import (
    FLAG,
    REQUIRED,
    TEXT,
    TEXTS,
    WHOLE,
    Key,
    Kind,
    Pattern,
    Problem,
    Table,
    finite,
)

NAME = r"^[a-z][a-z0-9-]{0,40}$"  # a system or task name: it names units and files
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
PING_URL = r"^https?://[^\s/]+\S*$"  # [watchdog] ping_url (agent/ping.py)
EVIDENCE_KINDS = ("exit", "stdout")  # or "file:PATH"
DEFAULT_CADENCE_S = 300  # a hand-written agent.toml without [schedule]
SILENCE_CADENCES = 3  # without watchdog.max_silence_s: three missed ticks is silence

# What a proposal may never touch when `[evolution] protected` is not stated. The
# rendered agent.toml leaves the key out unless SPEC.md states it, so that a newer
# Ratchet's longer list protects an older deployment without a rebuild.
DEFAULT_PROTECTED = (
    "tests/",
    "test_*.py",
    "*_test.py",
    "conftest.py",
    "pytest.ini",
    "pyproject.toml",
    "ratchet.toml",
    "setup.cfg",
    "tox.ini",
    "baseline/",
    "hooks/",
    "evolution/",
    "SPEC.md",
    "deploy/",
    ".ci/",
    ".github/",
    ".gitlab-ci.yml",
)


def spendable(value: object) -> bool:
    """A usable amount of dollars: 0 (spend nothing) or more, and finite."""
    return finite(value) and value >= 0  # type: ignore[operator]


SECONDS = Kind(
    "a number of seconds",
    (int, float),
    spec_types=(int,),  # SPEC.md: systemd timers and cron take whole seconds
    spec_what="a whole number of seconds",
    valid=lambda v: finite(v) and v > 0,
    invalid="must be a positive number",
)
DOLLARS = Kind(
    "a number of dollars",
    (int, float),
    valid=spendable,  # 0 is valid: it means "spend nothing"
    invalid="must be a number of dollars, 0 or more",
    convert=float,
    wrong_type="must be a number of dollars, 0 or more",
)
PRICE = Kind(  # USD per million tokens
    "a number of dollars",
    (int, float),
    valid=spendable,
    invalid="must be a finite number, not negative",
    convert=float,
)
WORKERS = Kind('"auto" or a whole number', (int, str))


NAME_PATTERN = Pattern(
    NAME, "lowercase letters, digits and '-', starting with a letter, 41 at most"
)
ENV_PATTERN = Pattern(ENV_NAME, "a variable name (letters, digits and '_')")


def task_order(tasks: Sequence[Mapping[str, Any]]) -> tuple[tuple[int, ...], list[Problem]]:
    """The order to run tasks in (indexes), each after its dependencies, and the problems
    of the graph: a name used twice, a dependency on no task, a cycle.

    Where the graph allows, the declared order is kept, so that a tick's trace reads
    like the spec. A cycle is reported once, as its path (`a -> b -> a`), at the
    `depends_on` of its first task."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for index, task in enumerate(tasks):
        name = task["name"]
        if name in first:
            message = f"{name!r} is already the name of tasks[{first[name]}]"
            problems.append(Problem(("tasks", index, "name"), message))
        first.setdefault(name, index)
    for index, task in enumerate(tasks):
        for position, dependency in enumerate(task["depends_on"]):
            if dependency not in first:
                loc = ("tasks", index, "depends_on", position)
                problems.append(Problem(loc, f"no task is named {dependency!r}"))
    if problems:
        return (), problems
    order: list[int] = []
    placed: set[str] = set()
    while len(order) < len(tasks):
        ready = next(
            (
                index
                for index, task in enumerate(tasks)
                if task["name"] not in placed and all(d in placed for d in task["depends_on"])
            ),
            None,
        )
        if ready is None:
            stuck = {t["name"]: list(t["depends_on"]) for t in tasks if t["name"] not in placed}
            cycle = _cycle(stuck)
            loc = ("tasks", first[cycle[0]], "depends_on")
            return (), [Problem(loc, "dependency cycle: " + " -> ".join(cycle))]
        order.append(ready)
        placed.add(tasks[ready]["name"])
    return tuple(order), []


def _cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle of a graph in which every node is on or behind one (what Kahn's
    algorithm leaves unplaced): walk dependencies from the first name until one
    repeats."""
    path = [min(graph)]
    while True:
        nxt = next(d for d in graph[path[-1]] if d in graph)
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)


# --- the keys -------------------------------------------------------------------------


def _command(value: str) -> str | None:
    """The runtime runs it without a shell: it must split into a program and its
    arguments."""
    try:
        argv = shlex.split(value)
    except ValueError as error:
        return f"cannot be split: {error}"
    return None if argv else "is empty"


def _evidence(value: str) -> str | None:
    if value in EVIDENCE_KINDS or (value.startswith("file:") and len(value) > 5):
        return None
    return 'must be "exit", "stdout" or "file:PATH"'


def _folders(*, absolute: bool, home: bool = False) -> Callable[[list[str]], str | None]:
    """Paths for the sandbox: inside the repository (relative) or outside it (absolute,
    or `~/...` where the gate expands it), never climbing out with '..', never `/`."""

    def check(paths: list[str]) -> str | None:
        for path in paths:
            shown = os.path.expanduser(path) if home else path
            if (
                shown.startswith("/") != absolute
                or ".." in path.split("/")
                or (absolute and os.path.normpath(shown) == "/")
            ):
                if not absolute:
                    return f"takes paths inside the repository, without '..': {path!r}"
                home_too = " (or ~/...)" if home else ""
                return f"takes absolute folders{home_too}, without '..' and not / itself: {path!r}"
        return None

    return check


def _workers(value: int | str) -> str | None:
    if value == "auto" or (isinstance(value, int) and value >= 1):
        return None
    return 'must be "auto" or a number of processes from 1'


def _not_empty(value: str) -> str | None:
    return None if value else "is empty"


def _absolute_or_empty(value: str) -> str | None:
    return None if not value or value.startswith("/") else "must be an absolute path"


SYSTEM = Table(("system",), spec="required", keys={
    "name": Key(TEXT, spec="required", pattern=NAME_PATTERN),
    "description": Key(TEXT, spec="required", check=_not_empty),
    "root": Key(TEXT, "", check=_absolute_or_empty),  # "": /opt/<name>
    "user": Key(TEXT, ""),  # "": <name>
})  # fmt: skip

SCHEDULE = Table(("schedule",), spec="required", keys={
    "every_s": Key(SECONDS),
    "cron": Key(TEXT),  # its syntax is the factory's to check (evolution/factory/cron.py)
    "cadence_s": Key(SECONDS, spec="never"),  # rendered from every_s or cron
})  # fmt: skip

TASKS = Table(("tasks",), array=True, closed=True, spec="required", keys={
    "name": Key(TEXT, REQUIRED, spec_pattern=NAME_PATTERN),
    "command": Key(TEXT, REQUIRED, check=_command),
    "timeout_s": Key(SECONDS, REQUIRED),
    "required": Key(FLAG, True),
    "depends_on": Key(TEXTS, ()),
    "evidence": Key(TEXT, REQUIRED, check=_evidence),
    # The agent's environment variables this task may see; nothing else leaks in.
    "env": Key(TEXTS, (), items=ENV_PATTERN),
    # A slower cadence of its own: it runs on the first tick this long after its last run.
    "every_s": Key(SECONDS),
})  # fmt: skip

BUDGET = Table(("budget",), spec="required", keys={
    "daily_usd": Key(DOLLARS, spec="required"),  # None: no cap; 0: spend nothing
})  # fmt: skip

KILL = Table(("kill",), keys={"flag": Key(TEXT, "runs/KILL")})

WATCHDOG = Table(("watchdog",), spec="required", keys={
    "max_silence_s": Key(SECONDS, spec="required"),  # None: SILENCE_CADENCES cadences
    "max_failed_ticks": Key(WHOLE, 3, minimum=1),
    # healthchecks.io style: <url>/start, <url>, <url>/fail (agent/ping.py)
    "ping_url": Key(TEXT, pattern=Pattern(PING_URL, "an http:// or https:// URL")),
})  # fmt: skip

LEDGER = Table(("ledger",), spec="never", keys={"path": Key(TEXT, "runs/ledger.sqlite")})

MODELS = Table(("llm", "models"), array=True, closed=True, keys={
    "model": Key(TEXT, REQUIRED, check=_not_empty),
    "timeout_s": Key(SECONDS, 60.0, spec="required"),
    "max_tokens": Key(WHOLE, 4096, spec="required", minimum=1),
    "api_base": Key(TEXT),
    "api_key_env": Key(TEXT, spec_pattern=ENV_PATTERN),
    "input_usd_per_mtok": Key(PRICE),
    "output_usd_per_mtok": Key(PRICE),
})  # fmt: skip

# The coding-agent proposers (`agent:NAME`, evolution/propose/agents/): limits for every
# agent, and one entry per tool whose defaults a deployment changes.
AGENT_LIMITS = Table(("agents", "limits"), keys={
    "timeout_s": Key(SECONDS, 900),  # wall clock per run; then its whole group is killed
    "max_files": Key(WHOLE, 10, minimum=1),  # a larger change is refused, not committed
    "max_lines": Key(WHOLE, 400, minimum=1),  # lines added plus removed
    "max_bytes": Key(WHOLE, 65536, minimum=1),  # bytes of the added lines (a 3 MB line is one)
})  # fmt: skip

AGENT_TOOLS = Table(("agents", "tools"), array=True, closed=True, keys={
    "name": Key(TEXT, REQUIRED, pattern=Pattern(r"^[a-z][a-z0-9-]{0,30}$", "an adapter's name")),
    "program": Key(TEXT),  # the executable: a name on PATH or an absolute path
    "args": Key(TEXTS, ()),  # added after the adapter's own flags
    "template": Key(TEXT),  # agent:command: the whole command line, with placeholders
    "model": Key(TEXT),  # the model name the agent is told (default: the chain's first)
    "timeout_s": Key(SECONDS),  # instead of [agents.limits] timeout_s
    # Run without the model proxy (a tool that cannot take a base URL): only when said
    # here, with what a run may spend reserved before it starts, and the tool's own key.
    "direct": Key(FLAG, False),
    "budget_usd": Key(DOLLARS),
    "api_key_env": Key(TEXT, spec_pattern=ENV_PATTERN),
})  # fmt: skip

EVOLUTION = Table(("evolution",), keys={
    "test_command": Key(TEXT, "python -m pytest"),
    "evolvable": Key(TEXTS, ("scripts/",)),
    "protected": Key(TEXTS, None),  # None: DEFAULT_PROTECTED, the gate's own list
    "reruns": Key(WHOLE, 3, minimum=0),
    "flaky": Key(TEXT, "quarantine", choices=("quarantine", "strict")),
    # How long a flaky test's quarantine entry excuses its failures, in days.
    "quarantine_days": Key(WHOLE, 30, minimum=1),
    "require_improvement": Key(FLAG, False),
    "max_rejections": Key(WHOLE, 5, minimum=1),
    "objectives": Key(TEXTS, ()),  # read by the evolution cycle, not the gate
    "test_timeout_s": Key(SECONDS, 300.0, spec="never"),
    "run_timeout_s": Key(SECONDS, 3600.0, spec="never"),
    # The test run's sandbox: "required" refuses to run any suite without one.
    "sandbox": Key(TEXT, "auto", choices=("auto", "required")),
    "network": Key(TEXT, "loopback", choices=("loopback", "host")),
    "writable": Key(TEXTS, (), check=_folders(absolute=False)),  # tree paths it may write
    "shared": Key(TEXTS, (), check=_folders(absolute=True)),  # folders outside, outliving runs
    "read_paths": Key(TEXTS, (), check=_folders(absolute=True, home=True)),  # may read too
    "allow": Key(TEXTS, ()),  # static-guard rules lifted on purpose (the factory checks names)
    # Test processes at once for a full run: "auto" (the cores) or a count; 1 for a
    # suite whose tests cannot run beside each other (a fixed port, a shared file).
    "workers": Key(WORKERS, "auto", check=_workers),
    "staged": Key(FLAG, True),  # the tests the map ties to a change run first, may reject
    # What a behaviour change no test asked for does to an automated proposal: "strict"
    # rejects it, "report" only reports it, "off" skips the replay (evolution.gate.behaviour).
    "behaviour": Key(TEXT, "strict", choices=("strict", "report", "off")),
    # The safety net reverts a person's commit that broke a test only when this is
    # true; by default it raises an incident naming the commit and how to revert it.
    "revert_people": Key(FLAG, False),
    # Where main's baseline lives: "file" (baseline/baseline.json on main, moving with it)
    # or "ref" (outside the tree, in refs/notes/ratchet keyed by commit, shared by every
    # runner that fetches it and advanced by compare-and-swap; evolution.gate.shared).
    "baseline": Key(TEXT, "file", choices=("file", "ref")),
})  # fmt: skip

RUNTIME_TABLES = (
    SCHEDULE, TASKS, BUDGET, KILL, WATCHDOG, LEDGER, MODELS, AGENT_LIMITS, AGENT_TOOLS
)  # fmt: skip
AGENT_TOML = (SYSTEM, *RUNTIME_TABLES, EVOLUTION)
