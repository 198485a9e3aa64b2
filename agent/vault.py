"""The secrets vault: one age-encrypted file, a manifest of what each secret is for and
which tasks may have it, and a tamper-evident log of every access.

- The identity (an age X25519 key, via pyrage) lives outside the repository by default
  (`$XDG_CONFIG_HOME/ratchet/identity.txt`, mode 0600); `AGENT_IDENTITY` or
  `--identity` names another file. Without it nothing can be read.
- The vault (`runs/vault.age`) holds, encrypted as one JSON document: each secret's
  value, purpose and tasks, and the random key of the access log's HMAC. It is written
  to a temporary file, fsynced and renamed, and the previous version is kept as
  `vault.age.prev`, so a crash mid-write loses nothing: a vault that does not decrypt
  falls back to the previous one, and says so.
- Every read and change is appended to the access log (`agent.accesslog`) *before*
  the value is handed out: no secret is read without a record.
"""

from __future__ import annotations

import json
import os
import secrets as random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.accesslog import AccessLog
from agent.atomicio import atomic_write_bytes
from agent.clock import utc_now
from agent.errors import UsageError

VAULT_NAME = "vault.age"
LOG_NAME = "secrets-access.jsonl"
NAME_PATTERN = "^[A-Z][A-Z0-9_]{0,63}$"


class VaultError(UsageError):
    """The vault or the identity cannot be used; the message says which and why."""


def default_identity_path() -> Path:
    override = os.environ.get("AGENT_IDENTITY")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "ratchet" / "identity.txt"


@dataclass
class Entry:
    value: str
    purpose: str
    tasks: list[str]
    created: str
    updated: str

    def public(self, name: str) -> dict[str, Any]:
        return {"name": name, "purpose": self.purpose, "tasks": self.tasks,
                "created": self.created, "updated": self.updated}


@dataclass
class Contents:
    secrets: dict[str, Entry] = field(default_factory=dict)
    log_key: str = ""

    def dumps(self) -> bytes:
        return json.dumps(
            {"version": 1, "log_key": self.log_key,
             "secrets": {n: e.__dict__ for n, e in sorted(self.secrets.items())}},
            sort_keys=True,
        ).encode()

    @classmethod
    def loads(cls, data: bytes) -> Contents:
        raw = json.loads(data)
        return cls(
            secrets={n: Entry(**e) for n, e in raw.get("secrets", {}).items()},
            log_key=str(raw["log_key"]),
        )


def _pyrage() -> Any:
    import pyrage

    return pyrage


def create_identity(path: Path) -> str:
    """A new identity at `path` (mode 0600, never overwritten); returns its recipient."""
    x25519 = _pyrage().x25519
    identity = x25519.Identity.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise VaultError(f"{path} already exists: an identity is never overwritten") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(f"# ratchet vault identity, created {utc_now().isoformat()}\n")
        handle.write(f"# recipient: {identity.to_public()}\n{identity}\n")
    return str(identity.to_public())


def load_identity(path: Path) -> Any:
    x25519 = _pyrage().x25519
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VaultError(
            f"no identity at {path}: run `agent secrets init`, or set AGENT_IDENTITY"
        ) from None
    except OSError as error:
        raise VaultError(f"cannot read the identity {path}: {error.strerror}") from None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise VaultError(f"{path} is readable by others (mode {mode:o}): chmod 600 it")
    keys = [line.strip() for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-")]
    if not keys:
        raise VaultError(f"{path} holds no age identity (AGE-SECRET-KEY-…)")
    try:
        return x25519.Identity.from_str(keys[0])
    except Exception as error:
        raise VaultError(f"{path}: not a valid age identity: {error}") from None


class Vault:
    def __init__(self, runs: Path, identity_path: Path | None = None) -> None:
        self.path = Path(runs) / VAULT_NAME
        self.previous = self.path.with_name(VAULT_NAME + ".prev")
        self.identity_path = identity_path or default_identity_path()
        self._identity: Any = None
        self._contents: Contents | None = None
        self.recovered = False  # the current file did not decrypt; the previous one did

    @property
    def exists(self) -> bool:
        return self.path.exists() or self.previous.exists()

    @property
    def identity(self) -> Any:
        if self._identity is None:
            self._identity = load_identity(self.identity_path)
        return self._identity

    def init(self) -> str:
        if self.exists:
            raise VaultError(f"{self.path} already exists")
        recipient = (
            str(self.identity.to_public()) if self.identity_path.exists()
            else create_identity(self.identity_path)
        )
        self._contents = Contents(log_key=random.token_hex(32))
        self._write()
        self.log.append("cli", "-", "init")
        return recipient

    def _decrypt(self, path: Path) -> Contents:
        pyrage = _pyrage()
        data = path.read_bytes()
        try:
            return Contents.loads(pyrage.decrypt(data, [self.identity]))
        except pyrage.DecryptError as error:
            if "no matching keys" in str(error).lower():
                raise VaultError(
                    f"{path} was not encrypted for the identity {self.identity_path}"
                ) from None
            raise VaultError(f"{path} is corrupt: {error}") from None
        except (ValueError, KeyError, TypeError) as error:
            raise VaultError(f"{path} decrypts to something that is not a vault: {error}") from None

    @property
    def contents(self) -> Contents:
        if self._contents is None:
            if not self.exists:
                raise VaultError(f"no vault at {self.path}: run `agent secrets init`")
            try:
                self._contents = self._decrypt(self.path)
            except (VaultError, FileNotFoundError) as error:
                if not self.previous.exists() or "not encrypted for" in str(error):
                    raise
                self._contents = self._decrypt(self.previous)
                self.recovered = True
        return self._contents

    def _write(self) -> None:
        pyrage = _pyrage()
        assert self._contents is not None
        data = pyrage.encrypt(self._contents.dumps(), [self.identity.to_public()])
        if self.path.exists():
            # The version being replaced stays readable until the new one is in place.
            atomic_write_bytes(self.previous, self.path.read_bytes(), mode=0o600)
        atomic_write_bytes(self.path, data, mode=0o600)
        self.recovered = False

    @property
    def log(self) -> AccessLog:
        return AccessLog(self.path.with_name(LOG_NAME), bytes.fromhex(self.contents.log_key))

    # The operations. Each one is on the record before it takes effect.

    def names(self) -> list[dict[str, Any]]:
        self.log.append("cli", "*", "list")
        return [entry.public(name) for name, entry in sorted(self.contents.secrets.items())]

    def set(self, name: str, value: str, purpose: str, tasks: list[str], who: str = "cli"
            ) -> bool:
        import re

        if not re.match(NAME_PATTERN, name):
            raise VaultError(f"{name!r} is not a secret name (A-Z, 0-9 and _, from a letter)")
        if not value:
            raise VaultError("an empty value is not a secret")
        now = utc_now().isoformat()
        existing = self.contents.secrets.get(name)
        self.log.append(who, name, "rotate" if existing else "set")
        self.contents.secrets[name] = Entry(
            value, purpose or (existing.purpose if existing else ""),
            tasks or (existing.tasks if existing else []),
            existing.created if existing else now, now,
        )
        self._write()
        return existing is not None

    def get(self, name: str, who: str = "cli") -> str:
        entry = self.contents.secrets.get(name)
        if entry is None:
            raise VaultError(f"no secret named {name}")
        self.log.append(who, name, "get")
        return entry.value

    def remove(self, name: str) -> None:
        if name not in self.contents.secrets:
            raise VaultError(f"no secret named {name}")
        self.log.append("cli", name, "rm")
        del self.contents.secrets[name]
        self._write()

    def for_task(self, task: str) -> dict[str, str]:
        """The secrets whose manifest names `task`, each read on the record."""
        granted = {}
        for name, entry in sorted(self.contents.secrets.items()):
            if task in entry.tasks:
                self.log.append(f"task:{task}", name, "get")
                granted[name] = entry.value
        return granted

    def values(self) -> dict[str, str]:
        """Every value, for redaction only: never handed to a process or a prompt."""
        return {name: entry.value for name, entry in self.contents.secrets.items()}
