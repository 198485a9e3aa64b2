"""The runtime configuration: `deploy/agent.toml`, rendered by the factory from SPEC.md.

Only the tables the runtime itself reads are parsed here (`[schedule]`, `[[tasks]]`,
`[budget]`, `[kill]`, `[watchdog]`, `[ledger]`, `[[llm.models]]`); `[evolution]` belongs
to the gate. The file is generated and checked by the factory, but the runtime checks it
again: a hand-edited or truncated file must stop the agent with a clear message, not run
half a task list. With no file, the defaults serve: no task, no model, no cap,
`runs/KILL`, `runs/ledger.sqlite`. Two environment variables override the file, for an
operator in a hurry: `SPEND_CAP_USD` and `AGENT_KILL_FLAG`.

Every error names where the bad value came from: the variable, or `deploy/agent.toml:LINE`
with, in its hint, the `SPEC.md:LINE` the factory rendered it from. A cap of 0 is valid:
it means "spend nothing" (see `Ledger.over_cap`).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from agent.errors import UsageError
from agent.tomllines import KeyLines, Loc, key_path, markdown_key_lines

CONFIG_PATH = "deploy/agent.toml"
SPEC_PATH = "SPEC.md"
CAP_VARIABLE = "SPEND_CAP_USD"
PING_URL = r"^https?://[^\s/]+\S*$"  # [watchdog] ping_url, here and in the factory's schema
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
    ping_url: str | None = None  # healthchecks.io style: agent/ping.py

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
            if not _dollars(value):
                raise ConfigError(
                    f"{CAP_VARIABLE} must be a number of dollars, 0 or more: {override!r}",
                    hint=hint,
                )
            return value
        return self.daily_usd

    def secret_env_names(self) -> set[str]:
        return {m.api_key_env for m in self.models if m.api_key_env}


def _finite(value: object) -> TypeGuard[int | float]:
    """A real number: not a bool, not NaN (every comparison with NaN is False, so a NaN
    cap or timeout would silently disable its check), not infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: object) -> bool:
    return _finite(value) and value > 0


def _dollars(value: object) -> bool:
    """A usable cap: 0 (spend nothing) or more."""
    return _finite(value) and value >= 0


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


def _table(data: dict[str, Any], key: str, origin: Origin) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise origin.error("must be a table", key)
    return value


def _checked_table(
    raw: Any, origin: Origin, loc: Loc, keys: KeyTypes, required: tuple[str, ...]
) -> dict[str, Any]:
    """An array entry with only known keys, the required ones, each of its type (a bool
    is never a number)."""
    if not isinstance(raw, dict):
        raise origin.error("must be a table", *loc)
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise origin.error("unknown key", *loc, unknown[0])
    for key in required:
        if key not in raw:
            raise origin.error(f"{key!r} is required", *loc)
    for key, value in raw.items():
        expected = keys[key]
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise origin.error("has the wrong type", *loc, key)
    return raw


def _model(raw: Any, index: int, origin: Origin) -> ModelConfig:
    loc = ("llm", "models", index)
    raw = _checked_table(raw, origin, loc, _MODEL_KEYS, ("model",))
    for key, value in raw.items():
        if isinstance(value, float | int) and not _dollars(value):
            raise origin.error("must be a finite number, not negative", *loc, key)
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
    value: list[Any], origin: Origin, loc: Loc, pattern: re.Pattern[str] | None = None
) -> tuple[str, ...]:
    for item in value:
        if not isinstance(item, str) or (pattern is not None and not pattern.match(item)):
            raise origin.error(f"holds an invalid entry: {item!r}", *loc)
    return tuple(value)


def _task(raw: Any, index: int, origin: Origin) -> TaskConfig:
    loc = ("tasks", index)
    raw = _checked_table(raw, origin, loc, _TASK_KEYS, ("name", "command", "timeout_s", "evidence"))
    for key in ("timeout_s", "every_s"):
        if key in raw and not _positive(raw[key]):
            raise origin.error("must be a positive number", *loc, key)
    evidence = raw["evidence"]
    if evidence not in EVIDENCE_KINDS and not (evidence.startswith("file:") and evidence[5:]):
        raise origin.error('must be "exit", "stdout" or "file:PATH"', *loc, "evidence")
    try:
        argv = tuple(shlex.split(raw["command"]))
    except ValueError as error:
        raise origin.error(f"cannot be split: {error}", *loc, "command") from None
    if not argv:
        raise origin.error("is empty", *loc, "command")
    return TaskConfig(
        name=raw["name"],
        argv=argv,
        timeout_s=float(raw["timeout_s"]),
        evidence=evidence,
        required=raw.get("required", True),
        depends_on=_strings(raw.get("depends_on", []), origin, (*loc, "depends_on")),
        env=_strings(raw.get("env", []), origin, (*loc, "env"), _ENV_NAME),
        every_s=float(raw["every_s"]) if "every_s" in raw else None,
    )


def dependency_order(tasks: list[TaskConfig], origin: Origin) -> tuple[TaskConfig, ...]:
    """Tasks in an order where each follows its dependencies, else the declared order.

    Keeping the declared order where the graph allows makes a tick's trace read like
    the spec.
    """
    by_name: dict[str, TaskConfig] = {}
    for index, task in enumerate(tasks):
        if task.name in by_name:
            raise origin.error(f"two tasks are named {task.name!r}", "tasks", index, "name")
        by_name[task.name] = task
    for index, task in enumerate(tasks):
        for dependency in task.depends_on:
            if dependency not in by_name:
                raise origin.error(
                    f"task {task.name!r} depends on {dependency!r}, which is no task",
                    "tasks", index, "depends_on",
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
            raise origin.error(f"dependency cycle among tasks {', '.join(stuck)}", "tasks")
        ordered.append(ready)
        placed.add(ready.name)
    return tuple(ordered)


def _number(
    table: dict[str, Any], origin: Origin, loc: Loc, valid: Callable[[object], bool], what: str
) -> float | None:
    value = table.get(loc[-1])
    if value is not None and not valid(value):
        raise origin.error(f"must be {what}", *loc)
    return None if value is None else float(value)


def _positive_number(table: dict[str, Any], origin: Origin, *loc: Any) -> float | None:
    return _number(table, origin, loc, _positive, "a positive number")


def parse_runtime(text: str, origin: str | Origin, root: Path) -> RuntimeConfig:
    if isinstance(origin, str):
        origin = Origin(origin)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin.name}: not valid TOML: {exc}") from None
    origin = Origin(origin.name, KeyLines().scan(text.splitlines()))
    budget = _table(data, "budget", origin)
    kill = _table(data, "kill", origin)
    ledger = _table(data, "ledger", origin)
    llm = _table(data, "llm", origin)
    raw_models = llm.get("models", [])
    if not isinstance(raw_models, list):
        raise origin.error("must be an array of tables", "llm", "models")
    cap = _number(
        budget, origin, ("budget", "daily_usd"), _dollars, "a number of dollars, 0 or more"
    )
    schedule = _table(data, "schedule", origin)
    watchdog = _table(data, "watchdog", origin)
    raw_tasks = data.get("tasks", [])
    if not isinstance(raw_tasks, list):
        raise origin.error("must be an array of tables", "tasks")
    tasks = [_task(raw, i, origin) for i, raw in enumerate(raw_tasks)]
    cadence = _positive_number(schedule, origin, "schedule", "cadence_s") or (
        _positive_number(schedule, origin, "schedule", "every_s") or DEFAULT_CADENCE_S
    )
    silence = _positive_number(watchdog, origin, "watchdog", "max_silence_s")
    failed = watchdog.get("max_failed_ticks", 3)
    if isinstance(failed, bool) or not isinstance(failed, int) or failed < 1:
        raise origin.error("must be a positive integer", "watchdog", "max_failed_ticks")
    ping_url = watchdog.get("ping_url")
    if ping_url is not None and not (
        isinstance(ping_url, str) and re.match(PING_URL, ping_url)
    ):
        raise origin.error("must be an http:// or https:// URL", "watchdog", "ping_url")
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
        ping_url=ping_url,
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
