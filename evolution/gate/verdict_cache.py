"""Reuse the run of a tree already tested in the same conditions, if the gate wrote it.

The key is everything that can change a verdict: the tested tree, the baseline blob,
the policy digest, and the environment the suite ran in (the interpreter, the installed
distributions and their versions, and the isolation). Each entry carries an HMAC keyed
by `cache.key` in the gate's state folder, which no test run can read (the sandbox
hides the repository's git directory). An entry that does not verify was not written
by the gate: it is ignored, removed and reported, and the tree is tested again.
Entries are operational state, not audit records; deleting them is harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.atomicio import atomic_write_bytes
from evolution.run.report import RunResult

KEEP = 200
KEY_FILE = "cache.key"


def environment_digest(isolation: str) -> str:
    """The interpreter, the installed distributions (name and version, read off their
    metadata folders' names on the import path) and the isolation, hashed."""
    found: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found.update(n for n in names if n.endswith((".dist-info", ".egg-info")))
    described = "\n".join(
        [sys.version, os.path.realpath(sys.executable), platform.machine(), isolation,
         *sorted(found)]
    )  # fmt: skip
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def cache_key(tree: str, baseline_blob: str, policy_digest: str, environment: str) -> str:
    return f"{tree}-{baseline_blob}-{policy_digest}-{environment}"


@dataclass
class VerdictCache:
    state_dir: Path
    ignored: list[str] = field(default_factory=list)  # forged or edited entries seen

    @property
    def folder(self) -> Path:
        return self.state_dir / "verdicts"

    def _key(self) -> bytes:
        """The cache's secret, made once: written whole to a private temporary file and
        linked into place, so a second gate that loses the race reads the winner's whole
        key, never an empty or partial one."""
        path = self.state_dir / KEY_FILE
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.state_dir, prefix=".key-")  # mode 0o600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(32))
            os.link(temporary, path)  # fails if another gate made it first: keep theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
        return path.read_bytes()

    def _mac(self, key: str, payload: bytes) -> str:
        return hmac.new(self._key(), key.encode() + b"\n" + payload, "sha256").hexdigest()

    def get(self, key: str) -> tuple[RunResult, dict[str, dict[str, Any]]] | None:
        data = self.get_data(key)
        try:
            return (None if data is None
                    else (RunResult.from_json(data["result"]), dict(data["reruns"])))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, result: RunResult, reruns: dict[str, dict[str, Any]]) -> None:
        self.put_data(key, {"result": result.to_json(), "reruns": reruns})

    def get_data(self, key: str) -> dict[str, Any] | None:
        """The entry under `key` if the gate wrote it; a forged or edited one is removed
        and reported (`ignored`)."""
        path = self.folder / f"{key}.json"
        try:
            mac, _, payload = path.read_bytes().partition(b"\n")
        except OSError:
            return None
        if not hmac.compare_digest(mac.decode(errors="replace"), self._mac(key, payload)):
            self.ignored.append(path.name)
            path.unlink(missing_ok=True)
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def put_data(self, key: str, data: dict[str, Any]) -> None:
        payload = json.dumps(data, sort_keys=True).encode()
        signed = self._mac(key, payload).encode() + b"\n" + payload
        atomic_write_bytes(self.folder / f"{key}.json", signed)
        self._trim()

    def _trim(self) -> None:
        entries = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for stale in entries[:-KEEP]:
            stale.unlink(missing_ok=True)
