"""The runtime configuration: `deploy/agent.toml`, rendered by the factory from SPEC.md.

Only the tables the runtime itself reads are parsed here (`[schedule]`, `[[tasks]]`,
`[budget]`, `[kill]`, `[watchdog]`, `[ledger]`, `[[llm.models]]`); `[evolution]` belongs
to the gate. The file is generated and checked by the factory, but the runtime checks it
again: a hand-edited or truncated file must stop the agent with a clear message, not run
half a task list. With no file, the defaults serve: no task, no model, no cap,
`runs/KILL`, `runs/ledger.sqlite`. Two environment variables override the file, for an
operator in a hurry: `SPEND_CAP_USD` and `AGENT_KILL_FLAG`.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import UsageError

CONFIG_PATH = "deploy/agent.toml"
LOCAL_PROVIDERS = ("ollama/", "ollama_chat/", "llamafile/", "lm_studio/")


class ConfigError(UsageError):
    """The configuration cannot be used; the message names the file and the key.

    It is an input error (exit 2) wherever it surfaces, so no command can turn a bad
    deploy/agent.toml into a traceback."""


@dataclass(frozen=True)
class ModelConfig:
    model: str
    timeout_s: float = 60.0
    max_tokens: int = 4096
    api_base: str | None = None
    api_key_env: str | None = None
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None

    @property
    def local(self) -> bool:
        """Local models cost nothing and need no price."""
        return self.model.startswith(LOCAL_PROVIDERS)


EVIDENCE_KINDS = ("exit", "stdout")
DEFAULT_CADENCE_S = 300


@dataclass(frozen=True)
class TaskConfig:
    name: str
    argv: tuple[str, ...]
    timeout_s: float
    evidence: str  # exit | stdout | file:PATH
    required: bool = True
    depends_on: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    every_s: float | None = None  # its own, slower cadence

    @property
    def evidence_file(self) -> Path | None:
        return Path(self.evidence[5:]) if self.evidence.startswith("file:") else None


@dataclass(frozen=True)
class RuntimeConfig:
    root: Path
    models: tuple[ModelConfig, ...] = ()
    daily_usd: float | None = None
    kill_flag: Path = field(default=Path("runs/KILL"))
    ledger_path: Path = field(default=Path("runs/ledger.sqlite"))
    tasks: tuple[TaskConfig, ...] = ()  # in dependency order
    cadence_s: float = DEFAULT_CADENCE_S
    max_silence_s: float = 3 * DEFAULT_CADENCE_S
    max_failed_ticks: int = 3

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
        override = os.environ.get("SPEND_CAP_USD")
        if override:
            try:
                value = float(override)
            except ValueError:
                raise ConfigError(f"SPEND_CAP_USD is not a number: {override!r}") from None
            if not _positive(value):
                raise ConfigError(f"SPEND_CAP_USD must be a positive number: {override!r}")
            return value
        return self.daily_usd

    def secret_env_names(self) -> set[str]:
        return {m.api_key_env for m in self.models if m.api_key_env}


def _positive(value: object) -> bool:
    """A usable cap: a finite number above zero (NaN would silently disable the cap)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


KeyTypes = dict[str, type | tuple[type, ...]]
_MODEL_KEYS: KeyTypes = {
    "model": str,
    "timeout_s": (int, float),
    "max_tokens": int,
    "api_base": str,
    "api_key_env": str,
    "input_usd_per_mtok": (int, float),
    "output_usd_per_mtok": (int, float),
}


def _table(data: dict[str, Any], key: str, origin: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{origin}: [{key}] must be a table")
    return value


def _checked_table(
    raw: Any, where: str, keys: KeyTypes, required: tuple[str, ...]
) -> dict[str, Any]:
    """An array entry with only known keys, the required ones, each of its type (a bool
    is never a number)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}")
    for key in required:
        if key not in raw:
            raise ConfigError(f"{where}: {key!r} is required")
    for key, value in raw.items():
        expected = keys[key]
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise ConfigError(f"{where}.{key} has the wrong type")
    return raw


def _model(raw: Any, index: int, origin: str) -> ModelConfig:
    where = f"{origin}: llm.models[{index}]"
    raw = _checked_table(raw, where, _MODEL_KEYS, ("model",))
    for key, value in raw.items():
        if isinstance(value, float | int) and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{where}.{key} must be a finite number, not negative")
    return ModelConfig(**raw)


_TASK_KEYS: KeyTypes = {
    "name": str,
    "command": str,
    "timeout_s": (int, float),
    "required": bool,
    "depends_on": list,
    "evidence": str,
    "env": list,
    "every_s": (int, float),
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _strings(
    value: list[Any], where: str, pattern: re.Pattern[str] | None = None
) -> tuple[str, ...]:
    for item in value:
        if not isinstance(item, str) or (pattern is not None and not pattern.match(item)):
            raise ConfigError(f"{where} holds an invalid entry: {item!r}")
    return tuple(value)


def _task(raw: Any, index: int, origin: str) -> TaskConfig:
    where = f"{origin}: tasks[{index}]"
    raw = _checked_table(raw, where, _TASK_KEYS, ("name", "command", "timeout_s", "evidence"))
    for key in ("timeout_s", "every_s"):
        if key in raw and not _positive(raw[key]):
            raise ConfigError(f"{where}.{key} must be a positive number")
    evidence = raw["evidence"]
    if evidence not in EVIDENCE_KINDS and not (evidence.startswith("file:") and evidence[5:]):
        raise ConfigError(f'{where}.evidence must be "exit", "stdout" or "file:PATH"')
    try:
        argv = tuple(shlex.split(raw["command"]))
    except ValueError as error:
        raise ConfigError(f"{where}.command cannot be split: {error}") from None
    if not argv:
        raise ConfigError(f"{where}.command is empty")
    return TaskConfig(
        name=raw["name"],
        argv=argv,
        timeout_s=float(raw["timeout_s"]),
        evidence=evidence,
        required=raw.get("required", True),
        depends_on=_strings(raw.get("depends_on", []), f"{where}.depends_on"),
        env=_strings(raw.get("env", []), f"{where}.env", _ENV_NAME),
        every_s=float(raw["every_s"]) if "every_s" in raw else None,
    )


def dependency_order(tasks: list[TaskConfig], origin: str) -> tuple[TaskConfig, ...]:
    """Tasks in an order where each follows its dependencies, else the declared order.

    Keeping the declared order where the graph allows makes a tick's trace read like
    the spec.
    """
    by_name: dict[str, TaskConfig] = {}
    for task in tasks:
        if task.name in by_name:
            raise ConfigError(f"{origin}: two tasks are named {task.name!r}")
        by_name[task.name] = task
    for task in tasks:
        for dependency in task.depends_on:
            if dependency not in by_name:
                raise ConfigError(
                    f"{origin}: task {task.name!r} depends on {dependency!r}, which is no task"
                )
    ordered: list[TaskConfig] = []
    placed: set[str] = set()
    while len(ordered) < len(tasks):
        ready = next(
            (
                t
                for t in tasks
                if t.name not in placed and all(d in placed for d in t.depends_on)
            ),
            None,
        )
        if ready is None:
            stuck = sorted(t.name for t in tasks if t.name not in placed)
            raise ConfigError(f"{origin}: dependency cycle among tasks {', '.join(stuck)}")
        ordered.append(ready)
        placed.add(ready.name)
    return tuple(ordered)


def _positive_number(table: dict[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is not None and not _positive(value):
        raise ConfigError(f"{where}.{key} must be a positive number")
    return None if value is None else float(value)


def parse_runtime(text: str, origin: str, root: Path) -> RuntimeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    budget = _table(data, "budget", origin)
    kill = _table(data, "kill", origin)
    ledger = _table(data, "ledger", origin)
    llm = _table(data, "llm", origin)
    raw_models = llm.get("models", [])
    if not isinstance(raw_models, list):
        raise ConfigError(f"{origin}: llm.models must be an array of tables")
    cap = _positive_number(budget, "daily_usd", f"{origin}: budget")
    schedule = _table(data, "schedule", origin)
    watchdog = _table(data, "watchdog", origin)
    raw_tasks = data.get("tasks", [])
    if not isinstance(raw_tasks, list):
        raise ConfigError(f"{origin}: tasks must be an array of tables")
    tasks = [_task(raw, i, origin) for i, raw in enumerate(raw_tasks)]
    cadence = _positive_number(schedule, "cadence_s", f"{origin}: schedule") or (
        _positive_number(schedule, "every_s", f"{origin}: schedule") or DEFAULT_CADENCE_S
    )
    silence = _positive_number(watchdog, "max_silence_s", f"{origin}: watchdog")
    failed = watchdog.get("max_failed_ticks", 3)
    if isinstance(failed, bool) or not isinstance(failed, int) or failed < 1:
        raise ConfigError(f"{origin}: watchdog.max_failed_ticks must be a positive integer")
    return RuntimeConfig(
        root=root,
        models=tuple(_model(raw, i, origin) for i, raw in enumerate(raw_models)),
        daily_usd=cap,
        kill_flag=Path(str(kill.get("flag", "runs/KILL"))),
        ledger_path=Path(str(ledger.get("path", "runs/ledger.sqlite"))),
        tasks=dependency_order(tasks, origin),
        cadence_s=cadence,
        max_silence_s=silence or 3 * cadence,
        max_failed_ticks=failed,
    )


def load_runtime(root: Path, text: str | None = None) -> RuntimeConfig:
    """The configuration for the checkout at `root`: `text` if given, else its file."""
    origin = str(root / CONFIG_PATH)
    if text is None:
        path = root / CONFIG_PATH
        if not path.exists():
            return RuntimeConfig(root=root)
        text = path.read_text(encoding="utf-8")
    return parse_runtime(text, origin, root)
