"""Keep secret values out of everything Ratchet writes or sends.

A value is secret when it sits in an environment variable the configuration names as an
API key, or whose name says it is one (…API_KEY, …TOKEN, …SECRET, …PASSWORD). Every
prompt, ledger error, trace and commit message passes through `Redactor.__call__`,
which replaces each value with «redacted:NAME». Values shorter than 8 characters are
not treated as secrets: they would match ordinary text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

# The agent lists here the names of the vault secrets it handed a task, so that the
# task's own children (`evolve` running the gate or a model call) treat them as secrets
# whatever they are called.
SECRET_NAMES_VAR = "RATCHET_GRANTED_NAMES"  # a name the secret pattern must not match
SECRET_NAME = re.compile(
    r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY)", re.IGNORECASE
)
MIN_SECRET_LENGTH = 8


def is_secret_name(name: str, named: Iterable[str] = ()) -> bool:
    return name in set(named) or bool(SECRET_NAME.search(name))


def declared_secret_names(env: Mapping[str, str]) -> set[str]:
    return {n for n in env.get(SECRET_NAMES_VAR, "").split(",") if n}


class Redactor:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        usable = {name: value for name, value in secrets.items() if len(value) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is replaced whole.
        self._pairs = sorted(usable.items(), key=lambda item: -len(item[1]))

    @classmethod
    def from_environment(
        cls,
        named: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Redactor:
        """The secrets of `env` (named, or named like secrets), plus `extra` (the vault's)."""
        env = os.environ if env is None else env
        names = set(named) | declared_secret_names(env)
        return cls({**{k: v for k, v in env.items() if is_secret_name(k, names)}, **(extra or {})})

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self._pairs}

    def __call__(self, text: str) -> str:
        for name, value in self._pairs:
            if value in text:
                text = text.replace(value, f"«redacted:{name}»")
        return text


def scrubbed_environment(env: Mapping[str, str], named: Iterable[str] = ()) -> dict[str, str]:
    """`env` without any variable that holds a secret: for test runs and child processes."""
    names = set(named) | declared_secret_names(env)
    return {k: v for k, v in env.items() if not is_secret_name(k, names)}
