"""The runtime configuration: `deploy/agent.toml`, rendered by the factory from SPEC.md.

Only the tables the runtime itself reads are parsed here (`[budget]`, `[kill]`,
`[ledger]`, `[[llm.models]]`); `[evolution]` belongs to the gate. With no file, the
defaults serve: no model, no cap, `runs/KILL`, `runs/ledger.sqlite`. Two environment
variables override the file, for an operator in a hurry: `SPEND_CAP_USD` and
`AGENT_KILL_FLAG`.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_PATH = "deploy/agent.toml"
LOCAL_PROVIDERS = ("ollama/", "ollama_chat/", "llamafile/", "lm_studio/")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


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


@dataclass(frozen=True)
class RuntimeConfig:
    root: Path
    models: tuple[ModelConfig, ...] = ()
    daily_usd: float | None = None
    kill_flag: Path = field(default=Path("runs/KILL"))
    ledger_path: Path = field(default=Path("runs/ledger.sqlite"))

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


_MODEL_KEYS = {
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


def _model(raw: Any, index: int, origin: str) -> ModelConfig:
    where = f"{origin}: llm.models[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(raw) - set(_MODEL_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}")
    if "model" not in raw:
        raise ConfigError(f"{where}: 'model' is required")
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, _MODEL_KEYS[key]):  # type: ignore[arg-type]
            raise ConfigError(f"{where}.{key} has the wrong type")
        if isinstance(value, float | int) and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{where}.{key} must be a finite number, not negative")
    return ModelConfig(**raw)


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
    cap = budget.get("daily_usd")
    if cap is not None and not _positive(cap):
        raise ConfigError(f"{origin}: budget.daily_usd must be a positive number")
    return RuntimeConfig(
        root=root,
        models=tuple(_model(raw, i, origin) for i, raw in enumerate(raw_models)),
        daily_usd=float(cap) if cap is not None else None,
        kill_flag=Path(str(kill.get("flag", "runs/KILL"))),
        ledger_path=Path(str(ledger.get("path", "runs/ledger.sqlite"))),
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
