"""The secrets access log: append-only JSONL, hash-chained and keyed, so tampering shows.

Each entry records who (a task name or "cli"), which secret, what was done and when,
plus `prev` (the hash of the previous entry), its sequence number, and an HMAC-SHA256
over all of it keyed by a random key that lives only inside the encrypted vault.
`verify` walks the chain and names the first entry that is:
- edited (its HMAC no longer matches),
- deleted or reordered (its `prev` or `seq` does not follow the one before),
- appended by someone without the key (its HMAC cannot match).
Cutting entries off the end is caught by the head file (`<log>.head`: the last seq and
hash, under the same HMAC). Rolling the log and its head back together to an earlier,
consistent state needs an anchor outside the host; that is a documented limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.atomicio import atomic_write_text
from agent.clock import utc_now
from agent.locks import ProcessLock

GENESIS = "0" * 64


class ChainBroken(Exception):
    """The access log does not verify; the message names the entry and why."""


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _mac(key: bytes, fields: dict[str, Any]) -> str:
    return hmac.new(key, _canonical(fields), hashlib.sha256).hexdigest()


def _hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


class AccessLog:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.key = key

    def _read_head(self) -> Head:
        try:
            data = json.loads(self.head_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Head(0, GENESIS)
        except ValueError:
            raise ChainBroken(f"{self.head_path} is not valid JSON") from None
        fields = {"seq": data.get("seq"), "hash": data.get("hash")}
        if not hmac.compare_digest(str(data.get("hmac", "")), _mac(self.key, fields)):
            raise ChainBroken(f"{self.head_path} was not written with the vault's key")
        return Head(int(fields["seq"]), str(fields["hash"]))

    def append(self, who: str, secret: str, action: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with ProcessLock(self.path.with_name(self.path.name + ".lock"), wait=True,
                         timeout_s=30):
            head = self._read_head()
            fields = {
                "seq": head.seq + 1,
                "ts": utc_now().isoformat(),
                "who": who,
                "secret": secret,
                "action": action,
                "prev": head.hash,
            }
            entry = {**fields, "hmac": _mac(self.key, fields)}
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, _canonical(entry) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            new_head = {"seq": entry["seq"], "hash": _hash(entry)}
            atomic_write_text(
                self.head_path,
                json.dumps({**new_head, "hmac": _mac(self.key, new_head)}) + "\n",
                mode=0o600,
            )

    def entries(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for number, line in enumerate(lines, 1):
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise ChainBroken(f"{self.path}:{number}: not a JSON entry") from None
        return entries

    def verify(self) -> int:
        """The number of entries, all verified; ChainBroken at the first bad one."""
        prev, seq = GENESIS, 0
        for number, entry in enumerate(self.entries(), 1):
            where = f"{self.path}:{number}"
            fields = {k: v for k, v in entry.items() if k != "hmac"}
            if not hmac.compare_digest(str(entry.get("hmac", "")), _mac(self.key, fields)):
                raise ChainBroken(f"{where}: edited, or written without the vault's key")
            if entry.get("prev") != prev or entry.get("seq") != seq + 1:
                raise ChainBroken(
                    f"{where}: does not follow the entry before it (deleted or reordered)"
                )
            prev, seq = _hash(entry), seq + 1
        head = self._read_head()
        if (head.seq, head.hash) != (seq, prev):
            raise ChainBroken(
                f"{self.path}: ends at entry {seq}, but the head says {head.seq}: "
                "entries were cut off the end, or added without updating the head"
            )
        return seq
