"""SPEC.md: a human document whose fenced ```toml blocks are the system's only policy.

The blocks are found with markdown-it-py, read with tomllib, merged, and checked by the
one schema of agent.toml (agent/schema.py, the one the runtime and the gate read the
rendered file with) in its SPEC.md mode: every table closed, required keys stated,
whole seconds. The factory adds what only it needs: the `[hardening]` table, cron
syntax, the static guard's rule names, and timeouts that fit the cadence. Every error
names `SPEC.md:LINE` and the key path, e.g.
`SPEC.md:41: tasks[1].timeout_s: must be under the cadence (300 s)`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agent import schema
from agent.errors import UsageError
from agent.tomllines import KeyLines, key_path, toml_fences
from agent.tomlschema import TABLE, TEXT, WHOLE, Key, Pattern, Problem, Table, read_tables
from evolution.factory.cron import CronError, cron_for_every, parse_cron


class SpecError(UsageError):
    """One or more problems, each as `file:line: key.path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid spec", lines=problems, details={"problems": problems})
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


# The sandboxing settings of the generated units (templates/hardening.j2) that
# [hardening.relax] may turn off, each with the reason the spec gives for it.
RELAXABLE = (
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "PrivateNetwork",
    "PrivateUsers",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "ProtectProc",
    "RestrictAddressFamilies",
    "IPAddressDeny",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "RemoveIPC",
    "UMask",
)


def _relax(value: dict[str, Any]) -> str | None:
    """Each relaxed setting is one the factory writes, with its reason on one line."""
    for setting, reason in value.items():
        if setting not in RELAXABLE:
            known = ", ".join(RELAXABLE)
            return f"{setting} is not a sandboxing setting the factory writes: {known}"
        if not isinstance(reason, str) or len(reason) < 10 or "\n" in reason:
            return f"{setting}: give the reason on one line, at least 10 characters"
    return None


# The generated units' resource limits, and the sandboxing relaxed on purpose: the
# factory's own table, in SPEC.md only (the units carry it, not agent.toml).
HARDENING = Table(("hardening",), keys={
    # systemd's syntax: bytes with an optional K, M, G or T, a percentage, or infinity.
    "memory_max": Key(TEXT, "2G", pattern=Pattern(r"[1-9][0-9]*[KMGT]?|[1-9][0-9]?%|infinity",
                                                  "bytes with K, M, G or T, a percentage, "
                                                  "or infinity")),
    "cpu_quota": Key(TEXT, "100%", pattern=Pattern(r"[1-9][0-9]*%", "a percentage")),
    "tasks_max": Key(WHOLE, 512, minimum=1),
    "relax": Key(TABLE, MappingProxyType({}), check=_relax),
})  # fmt: skip
SPEC_TABLES = (*schema.AGENT_TOML, HARDENING)


class Section:
    """A checked table of the spec, its keys read as attributes (`spec.watchdog.
    max_silence_s`), for the templates and the factory's code. It declares nothing: the
    keys, their kinds and defaults are the schema's."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a spec is read-only: {name}")

    def __repr__(self) -> str:
        return f"Section({self._values!r})"


Spec = Section  # the whole spec: spec.system, spec.tasks[0].timeout_s, ...


def _spec(values: dict[str, Any]) -> Spec:
    """The checked tables as sections: an array of tables as a tuple of them, a parent
    table (`[llm]`) as a section of its tables."""
    nested: dict[str, Any] = {}
    for table in SPEC_TABLES:
        value: Any = values
        for part in table.path:
            value = value[part]
        target = nested
        for part in table.path[:-1]:
            target = target.setdefault(part, {})
        target[table.path[-1]] = tuple(map(Section, value)) if table.array else Section(value)
    return Section({k: Section(v) if isinstance(v, dict) else v for k, v in nested.items()})


@dataclass(frozen=True)
class ParsedSpec:
    spec: Spec
    text: str
    path: Path
    lines: KeyLines


def _merge(target: dict[str, Any], extra: dict[str, Any], where: str) -> None:
    for key, value in extra.items():
        if key not in target:
            target[key] = value
        elif isinstance(target[key], list) and isinstance(value, list):
            target[key].extend(value)
        elif isinstance(target[key], dict) and isinstance(value, dict):
            _merge(target[key], value, f"{where}.{key}" if where else key)
        else:
            raise ValueError(f"{where + '.' if where else ''}{key} is defined twice")


def _consistency(spec: Spec, lines: KeyLines, name: str) -> list[str]:
    problems = []
    cadence = spec.schedule.cadence_s

    def problem(loc: tuple[Any, ...], message: str) -> None:
        problems.append(f"{name}:{lines.line_of(loc)}: {key_path(loc)}: {message}")

    for index, task in enumerate(spec.tasks):
        if task.timeout_s >= cadence:
            problem(("tasks", index, "timeout_s"), f"must be under the cadence ({cadence} s)")
    for index, model in enumerate(spec.llm.models):
        if model.timeout_s >= cadence:
            problem(
                ("llm", "models", index, "timeout_s"), f"must be under the cadence ({cadence} s)"
            )
    every = spec.schedule.every_s
    if every is not None and cron_for_every(every) is None:
        message = f"cron cannot fire every {every} s: use a divisor of an hour or of a day"
        problem(("schedule", "every_s"), message)
    if spec.schedule.cron:
        cron = parse_cron(spec.schedule.cron)
        if cron.days_restricted and cron.weekdays_restricted:
            problem(("schedule", "cron"), "restrict the day of month or the weekday, not both")
    if spec.watchdog.max_silence_s <= cadence:
        problem(("watchdog", "max_silence_s"), f"must exceed the cadence ({cadence} s)")
    return problems


def _factory_checks(values: dict[str, Any]) -> list[Problem]:
    """What the schema leaves to the factory: cron syntax and the static guard's rule
    names live in the evolution layer, which agent/schema.py may not import."""
    from evolution.gate.guard import unknown_rules

    problems = []
    cron = values["schedule"]["cron"]
    if cron is not None:
        try:
            parse_cron(cron).min_interval_s()
        except CronError as error:
            message = f"not a valid cron expression: {error}"
            problems.append(Problem(("schedule", "cron"), message))
    unknown = unknown_rules(tuple(values["evolution"]["allow"]))
    if unknown:
        message = f"unknown static-guard rule(s): {', '.join(unknown)}"
        problems.append(Problem(("evolution", "allow"), message))
    return problems


def _say(name: str, lines: KeyLines, problem: Problem) -> str:
    """`SPEC.md:41: tasks[1].timeout_s: must be ...`: the file, the line, the key."""
    return f"{name}:{lines.line_of(problem.loc)}: {key_path(problem.loc)}: {problem.message}"


def parse_spec_text(text: str, name: str = "SPEC.md") -> Spec:
    return _parse(text, name)[0]


def _parse(text: str, name: str) -> tuple[Spec, KeyLines]:
    """The validated spec, and where each of its keys is written (for messages)."""
    lines = KeyLines()
    merged: dict[str, Any] = {}
    blocks = toml_fences(text)
    if not blocks:
        raise SpecError([f"{name}:1: (top level): no ```toml block found"])
    for first_line, body in blocks:
        try:
            data = tomllib.loads(body)
        except tomllib.TOMLDecodeError as error:
            match = re.search(r"line (\d+)", str(error))
            line = first_line + int(match.group(1)) - 1 if match else first_line
            raise SpecError([f"{name}:{line}: (toml): {error}"]) from None
        lines.scan(body.splitlines(), first_line)
        try:
            _merge(merged, data, "")
        except ValueError as error:
            raise SpecError([f"{name}:{first_line}: {error}"]) from None
    values, found = read_tables(merged, SPEC_TABLES, spec=True)
    found += _factory_checks(values)
    if found:
        raise SpecError([_say(name, lines, problem) for problem in found])
    schedule = values["schedule"]
    if (schedule["every_s"] is None) == (schedule["cron"] is None):
        line = lines.line_of(("schedule",))
        raise SpecError([f"{name}:{line}: schedule: give exactly one of every_s or cron"])
    schedule["cadence_s"] = schedule["every_s"] or parse_cron(schedule["cron"]).min_interval_s()
    spec = _spec(values)
    problems = [_say(name, lines, problem) for problem in schema.task_order(values["tasks"])[1]]
    problems += _consistency(spec, lines, name)
    if problems:
        raise SpecError(problems)
    return spec, lines


def parse_spec(path: Path) -> ParsedSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError([f"{path}: cannot read: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise SpecError([f"{path}: not UTF-8 text"]) from None
    spec, lines = _parse(text, path.name)
    return ParsedSpec(spec, text, path, lines)
