"""SPEC.md: a human document whose fenced ```toml blocks are the system's only policy.

The blocks are found with markdown-it-py, read with tomllib, merged, and validated by a
typed schema (pydantic v2) that forbids unknown keys. Every error names `SPEC.md:LINE`
and the key path, e.g. `SPEC.md:41: tasks[1].timeout_s: must be under the cadence (300 s)`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from agent.config import PING_URL
from agent.errors import UsageError
from agent.tomllines import KeyLines, key_path, toml_fences
from evolution.factory.cron import CronError, cron_for_every, parse_cron

NAME = r"^[a-z][a-z0-9-]{0,40}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class SpecError(UsageError):
    """One or more problems, each as `file:line: key.path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid spec", lines=problems, details={"problems": problems})
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class System(_Strict):
    name: str = Field(pattern=NAME)
    description: str = Field(min_length=1)
    root: str = ""  # where the deployment lives on the host; default /opt/<name>
    user: str = ""  # the unix user it runs as; default <name>

    @field_validator("root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value


class Schedule(_Strict):
    every_s: int | None = Field(default=None, gt=0)
    cron: str | None = None

    @field_validator("cron")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_cron(value).min_interval_s()
            except CronError as error:
                raise ValueError(f"not a valid cron expression: {error}") from None
        return value

    @property
    def cadence_s(self) -> int:
        if self.every_s is not None:
            return self.every_s
        assert self.cron is not None
        return parse_cron(self.cron).min_interval_s()


class Task(_Strict):
    name: str = Field(pattern=NAME)
    command: str = Field(min_length=1)
    timeout_s: int = Field(gt=0)
    required: bool = True
    depends_on: list[str] = Field(default_factory=list)
    evidence: str
    # Names of the agent's environment variables this task may see; nothing else leaks in.
    env: list[Annotated[str, Field(pattern=ENV_NAME)]] = Field(default_factory=list)
    # A slower cadence of its own (e.g. the evolution cycle): it runs on the first tick
    # at least this long after its previous run.
    every_s: int | None = Field(default=None, gt=0)

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, value: str) -> str:
        if value in ("exit", "stdout") or (value.startswith("file:") and len(value) > 5):
            return value
        raise ValueError('must be "exit", "stdout" or "file:PATH"')


class Budget(_Strict):
    daily_usd: float = Field(ge=0)  # 0 means spend nothing: only zero-cost models answer

    @field_validator("daily_usd", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Kill(_Strict):
    flag: str = "runs/KILL"


class Watchdog(_Strict):
    max_silence_s: int = Field(gt=0)
    max_failed_ticks: int = Field(default=3, gt=0)
    # healthchecks.io style: <url>/start, <url>, <url>/fail (agent/ping.py)
    ping_url: str | None = Field(default=None, pattern=PING_URL)


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


class Hardening(_Strict):
    """The generated units' resource limits, and the sandboxing relaxed on purpose."""

    # systemd's syntax: bytes with an optional K, M, G or T, a percentage, or infinity.
    memory_max: str = Field(default="2G", pattern=r"^([1-9][0-9]*[KMGT]?|[1-9][0-9]?%|infinity)$")
    cpu_quota: str = Field(default="100%", pattern=r"^[1-9][0-9]*%$")
    tasks_max: int = Field(default=512, gt=0)
    relax: dict[str, Annotated[str, Field(min_length=10, pattern=r"^[^\n]*$")]] = Field(
        default_factory=dict
    )

    @field_validator("relax")
    @classmethod
    def _known(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(RELAXABLE))
        if unknown:
            raise ValueError(
                f"{unknown[0]} is not a sandboxing setting the factory writes: "
                + ", ".join(RELAXABLE)
            )
        return value


class LLMModel(_Strict):
    model: str = Field(min_length=1)
    timeout_s: int = Field(gt=0)
    max_tokens: int = Field(gt=0)
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME)
    input_usd_per_mtok: float | None = Field(default=None, ge=0)
    output_usd_per_mtok: float | None = Field(default=None, ge=0)


class LLM(_Strict):
    models: list[LLMModel] = Field(default_factory=list)


class Evolution(_Strict):
    test_command: str = "python -m pytest"
    evolvable: list[str] = Field(default_factory=lambda: ["scripts/"])
    protected: list[str] | None = None  # None: the gate's default list
    reruns: int = Field(default=3, ge=0)
    flaky: Literal["quarantine", "strict"] = "quarantine"
    require_improvement: bool = False
    max_rejections: int = Field(default=5, gt=0)
    objectives: list[str] = Field(default_factory=list)
    # The test run's sandbox: "required" refuses to run any suite without one.
    sandbox: Literal["auto", "required"] = "auto"
    network: Literal["loopback", "host"] = "loopback"
    writable: list[str] = Field(default_factory=list)  # tree paths the suite may write
    shared: list[str] = Field(default_factory=list)  # absolute folders it may write too
    read_paths: list[str] = Field(default_factory=list)  # absolute folders it may read too
    # How long a flaky test's quarantine entry excuses its failures, in days.
    quarantine_days: int = Field(default=30, ge=1)
    allow: list[str] = Field(default_factory=list)  # static-guard rules lifted on purpose
    # Test processes at once for a full run: "auto" (the cores) or a count; 1 for a
    # suite whose tests cannot run beside each other (a fixed port, a shared file).
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    staged: bool = True  # the tests the map ties to a change run first and may reject
    # What a behaviour change no test asked for does to an automated proposal: "strict"
    # rejects it, "report" only reports it, "off" skips the replay (evolution.gate.behaviour).
    behaviour: Literal["strict", "report", "off"] = "strict"
    # The safety net reverts a person's commit that broke a test only when this is true;
    # by default it raises an incident naming the commit and the command that reverts it.
    revert_people: bool = False

    @field_validator("allow")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        from evolution.gate.guard import unknown_rules

        unknown = unknown_rules(tuple(value))
        if unknown:
            raise ValueError(f"unknown static-guard rule(s): {', '.join(unknown)}")
        return value

    @field_validator("shared", "writable", "read_paths")
    @classmethod
    def _plain_paths(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """`shared`, `read_paths`: absolute folders; `writable`: paths inside the repository;
        never '..'."""
        absolute = info.field_name in ("shared", "read_paths")
        for path in value:
            if path.startswith("/") != absolute or ".." in path.split("/"):
                where = "an absolute path" if absolute else "a path inside the repository"
                raise ValueError(f"{path!r} must be {where}, without '..'")
        return value


class Spec(_Strict):
    system: System
    schedule: Schedule
    tasks: list[Task] = Field(min_length=1)
    budget: Budget
    kill: Kill = Field(default_factory=Kill)
    watchdog: Watchdog
    hardening: Hardening = Field(default_factory=Hardening)
    llm: LLM = Field(default_factory=LLM)
    evolution: Evolution = Field(default_factory=Evolution)


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

    seen: dict[str, int] = {}
    for index, task in enumerate(spec.tasks):
        if task.name in seen:
            problem(
                ("tasks", index, "name"),
                f"{task.name!r} is already the name of tasks[{seen[task.name]}]",
            )
        seen.setdefault(task.name, index)
        if task.timeout_s >= cadence:
            problem(("tasks", index, "timeout_s"), f"must be under the cadence ({cadence} s)")
    for index, task in enumerate(spec.tasks):
        for dep_index, dependency in enumerate(task.depends_on):
            if dependency not in seen:
                problem(
                    ("tasks", index, "depends_on", dep_index), f"no task is named {dependency!r}"
                )
    cycle = _find_cycle({t.name: t.depends_on for t in spec.tasks})
    if cycle:
        index = seen[cycle[0]]
        problem(("tasks", index, "depends_on"), "dependency cycle: " + " -> ".join(cycle))
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


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt in graph and state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return []


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
    try:
        spec = Spec.model_validate(merged)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = tuple(item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            elif item["type"] == "missing":
                message = "required key is missing"
            problems.append(f"{name}:{lines.line_of(loc)}: {key_path(loc)}: {message}")
        raise SpecError(problems) from None
    if (spec.schedule.every_s is None) == (spec.schedule.cron is None):
        line = lines.line_of(("schedule",))
        raise SpecError([f"{name}:{line}: schedule: give exactly one of every_s or cron"])
    problems = _consistency(spec, lines, name)
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
