"""The runtime configuration: `deploy/agent.toml`, rendered by the factory from SPEC.md.

Only the tables the runtime itself reads are parsed here (`[schedule]`, `[[tasks]]`,
`[budget]`, `[kill]`, `[watchdog]`, `[ledger]`, `[[llm.models]]`); `[evolution]` belongs
to the gate. The file is generated and checked by the factory, but the runtime checks it
again, with the same schema (agent/schema.py): a hand-edited or truncated file must stop
the agent with a clear message, not run half a task list. With no file, the defaults
serve: no task, no model, no cap, `runs/KILL`, `runs/ledger.sqlite`. Two environment
variables override the file, for an operator in a hurry: `SPEND_CAP_USD` and
`AGENT_KILL_FLAG`.

Every error names where the bad value came from: the variable, or `deploy/agent.toml:LINE`
with, in its hint, the `SPEC.md:LINE` the factory rendered it from. A cap of 0 is valid:
it means "spend nothing" (see `Ledger.over_cap`).
"""

from __future__ import annotations

import os
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import schema
from agent.errors import UsageError
from agent.tomllines import KeyLines, Loc, key_path, markdown_key_lines
from agent.tomlschema import read_tables

CONFIG_PATH = "deploy/agent.toml"
SPEC_PATH = "SPEC.md"
CAP_VARIABLE = "SPEND_CAP_USD"
LOCAL_PROVIDERS = ("ollama/", "ollama_chat/", "llamafile/", "lm_studio/")


class ConfigError(UsageError):
    """The configuration cannot be used; the message names the file, line and key.

    It is an input error (exit 2) wherever it surfaces, so no command can turn a bad
    deploy/agent.toml into a traceback. `loc` is the key path, when one is to blame, so
    that the hint can point at the SPEC.md line the value was rendered from."""

    def __init__(self, message: str, *, loc: Loc = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.loc = loc


@dataclass(frozen=True)
class Origin:
    """Where a configuration text came from, to name `FILE:LINE` in its errors."""

    name: str
    lines: KeyLines = field(default_factory=KeyLines)

    def error(self, message: str, *loc: Any) -> ConfigError:
        """`deploy/agent.toml:31: budget.daily_usd: must be ...`, as the factory says it."""
        line = self.lines.line_of(loc)
        return ConfigError(f"{self.name}:{line}: {key_path(loc)}: {message}", loc=loc)


_MODEL = schema.MODELS.keys
_TASK = schema.TASKS.keys
_WATCHDOG = schema.WATCHDOG.keys


@dataclass(frozen=True)
class ModelConfig:
    """One [[llm.models]] entry; the defaults are the schema's (agent/schema.py)."""

    model: str
    timeout_s: float = _MODEL["timeout_s"].default
    max_tokens: int = _MODEL["max_tokens"].default
    api_base: str | None = None
    api_key_env: str | None = None
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None

    @property
    def local(self) -> bool:
        """Local models cost nothing and need no price."""
        return self.model.startswith(LOCAL_PROVIDERS)


_AGENTS = schema.AGENT_LIMITS.keys


@dataclass(frozen=True)
class AgentToolConfig:
    """One [[agents.tools]] entry: a deployment's settings for one coding agent."""

    name: str
    program: str | None = None
    args: tuple[str, ...] = ()
    template: str | None = None
    model: str | None = None
    timeout_s: float | None = None
    direct: bool = False
    budget_usd: float | None = None
    api_key_env: str | None = None


@dataclass(frozen=True)
class AgentsConfig:
    """[agents.limits] for every coding-agent run, and [[agents.tools]], each tool's own."""

    timeout_s: float = _AGENTS["timeout_s"].default
    max_files: int = _AGENTS["max_files"].default
    max_lines: int = _AGENTS["max_lines"].default
    max_bytes: int = _AGENTS["max_bytes"].default
    tools: tuple[AgentToolConfig, ...] = ()

    def tool(self, name: str) -> AgentToolConfig:
        return next((t for t in self.tools if t.name == name), AgentToolConfig(name))


@dataclass(frozen=True)
class TaskConfig:
    """One [[tasks]] entry, its command split: the runtime never runs a shell."""

    name: str
    argv: tuple[str, ...]
    timeout_s: float
    evidence: str  # exit | stdout | file:PATH
    required: bool = _TASK["required"].default
    depends_on: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    every_s: float | None = None  # its own, slower cadence

    @property
    def evidence_file(self) -> Path | None:
        return Path(self.evidence[5:]) if self.evidence.startswith("file:") else None


@dataclass(frozen=True)
class RuntimeConfig:
    """What the runtime reads; with no file, the schema's defaults (agent/schema.py)."""

    root: Path
    models: tuple[ModelConfig, ...] = ()
    daily_usd: float | None = None
    kill_flag: Path = field(default=Path(schema.KILL.keys["flag"].default))
    ledger_path: Path = field(default=Path(schema.LEDGER.keys["path"].default))
    tasks: tuple[TaskConfig, ...] = ()  # in dependency order
    cadence_s: float = schema.DEFAULT_CADENCE_S
    max_silence_s: float = schema.SILENCE_CADENCES * schema.DEFAULT_CADENCE_S
    max_failed_ticks: int = _WATCHDOG["max_failed_ticks"].default
    ping_url: str | None = None  # healthchecks.io style: agent/ping.py
    agents: AgentsConfig = field(default_factory=AgentsConfig)

    @property
    def runs(self) -> Path:
        """Telemetry lives next to the ledger: `runs/` in the reference deployment."""
        return self.ledger.parent

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    @property
    def kill_flag_path(self) -> Path:
        override = os.environ.get("AGENT_KILL_FLAG")
        return self.resolve(Path(override) if override else self.kill_flag)

    @property
    def ledger(self) -> Path:
        return self.resolve(self.ledger_path)

    @property
    def cap_usd(self) -> float | None:
        """The daily cap in USD; 0 means spend nothing, None means no cap."""
        override = os.environ.get(CAP_VARIABLE)
        if override:
            hint = (
                f"the value comes from the environment variable {CAP_VARIABLE}: give a "
                "number of dollars (0 spends nothing), or unset it to use SPEC.md's cap"
            )
            try:
                value = float(override)
            except ValueError:
                raise ConfigError(
                    f"{CAP_VARIABLE} is not a number: {override!r}", hint=hint
                ) from None
            if not schema.spendable(value):
                raise ConfigError(
                    f"{CAP_VARIABLE} must be a number of dollars, 0 or more: {override!r}",
                    hint=hint,
                )
            return value
        return self.daily_usd

    def secret_env_names(self) -> set[str]:
        """The variables that hold the configured keys: the models' and the coding
        agents' own (a direct run's), redacted wherever text leaves the process."""
        keys = {m.api_key_env for m in self.models} | {t.api_key_env for t in self.agents.tools}
        return {name for name in keys if name}


def parse_runtime(text: str, origin: str | Origin, root: Path) -> RuntimeConfig:
    """The runtime's tables of `text`, checked by the one schema (agent/schema.py).

    The first problem stops the agent: a half-valid task list must not run."""
    if isinstance(origin, str):
        origin = Origin(origin)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin.name}: not valid TOML: {exc}") from None
    origin = Origin(origin.name, KeyLines().scan(text.splitlines()))
    values, problems = read_tables(data, schema.RUNTIME_TABLES)
    order: tuple[int, ...] = ()
    if not problems:
        order, problems = schema.task_order(values["tasks"])
    if problems:
        raise origin.error(problems[0].message, *problems[0].loc)
    schedule, watchdog = values["schedule"], values["watchdog"]
    stated = schedule["cadence_s"] or schedule["every_s"]
    cadence = float(stated) if stated else schema.DEFAULT_CADENCE_S
    silence = watchdog["max_silence_s"]
    return RuntimeConfig(
        root=root,
        models=tuple(ModelConfig(**model) for model in values["llm"]["models"]),
        daily_usd=values["budget"]["daily_usd"],
        kill_flag=Path(values["kill"]["flag"]),
        ledger_path=Path(values["ledger"]["path"]),
        tasks=tuple(_task(values["tasks"][index]) for index in order),
        cadence_s=cadence,
        max_silence_s=float(silence) if silence else schema.SILENCE_CADENCES * cadence,
        max_failed_ticks=watchdog["max_failed_ticks"],
        ping_url=watchdog["ping_url"],
        agents=_agents(values["agents"]),
    )


def _agents(agents: dict[str, Any]) -> AgentsConfig:
    tools = []
    for tool in agents["tools"]:
        settings = {**tool, "args": tuple(tool["args"])}
        if settings["timeout_s"] is not None:
            settings["timeout_s"] = float(settings["timeout_s"])
        tools.append(AgentToolConfig(**settings))
    return AgentsConfig(
        timeout_s=float(agents["limits"]["timeout_s"]),
        max_files=agents["limits"]["max_files"],
        max_lines=agents["limits"]["max_lines"],
        max_bytes=agents["limits"]["max_bytes"],
        tools=tuple(tools),
    )


def _task(task: dict[str, Any]) -> TaskConfig:
    """A checked [[tasks]] entry as the runtime runs it: its command split into argv
    (the schema checked that it splits), its times in float seconds."""
    return TaskConfig(
        name=task["name"],
        argv=tuple(shlex.split(task["command"])),
        timeout_s=float(task["timeout_s"]),
        evidence=task["evidence"],
        required=task["required"],
        depends_on=task["depends_on"],
        env=task["env"],
        every_s=None if task["every_s"] is None else float(task["every_s"]),
    )


def load_runtime(
    root: Path,
    text: str | None = None,
    *,
    origin: str | None = None,
    spec_text: str | None = None,
) -> RuntimeConfig:
    """The configuration for the checkout at `root`: `text` if given, else its file.

    `origin` names where `text` came from (e.g. main's commit); `spec_text` is the
    SPEC.md it was rendered from, else `root/SPEC.md` is read, to point a bad value's
    hint at the line to fix: deploy/ is generated, so that is where the fix belongs.
    """
    name = origin or str(root / CONFIG_PATH)
    if text is None:
        path = root / CONFIG_PATH
        if not path.exists():
            return RuntimeConfig(root=root)
        text = path.read_text(encoding="utf-8")
    try:
        return parse_runtime(text, name, root)
    except ConfigError as error:
        error.hint = _spec_hint(error.loc, root, spec_text)
        raise


def _spec_hint(loc: Loc, root: Path, spec_text: str | None) -> str:
    fix = "change SPEC.md and run `factory build` (`factory check` shows a hand edit)"
    if spec_text is None:
        try:
            spec_text = (root / SPEC_PATH).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return f"{CONFIG_PATH} is generated: {fix}"
    lines = markdown_key_lines(spec_text)
    if not loc or not lines.knows(loc):
        return f"{CONFIG_PATH} is generated: {fix}"
    return (
        f"{CONFIG_PATH} is generated from SPEC.md; {key_path(loc)} comes from "
        f"SPEC.md:{lines.line_of(loc)}: {fix}"
    )
