"""Part files: what one CI job's part of a split check proves, and how the combine
verifies a set of them (`evolve check --shard I/N`, `evolve check --combine`).

A part file names what was judged and how: the commit and its tree, the base and the
baseline blob it was held to, the policy's digest, the split (part index, count and
the plan's digest), the runner, the isolation, every test's outcome with the failure
texts and the re-run evidence, the files the part saw with their owners, and a SHA-256
digest of all of that in canonical form. With `RATCHET_PART_KEY` set (a CI secret,
the same on every job), it also carries an HMAC-SHA256 of the same bytes under it.

What that proves, and what it does not:
- the digest catches a part damaged or edited by hand or by a tool that does not know
  the format; anyone who knows it can recompute it, so without a key a part forged
  with care (an outcome edited, the digest recomputed) is accepted as written;
- the HMAC catches every edit by someone without the key. The combine fails closed:
  with a key, a part without a valid MAC is invalid; without one, a part that carries
  a MAC is invalid too (it cannot be checked: a job misconfigured, not a pass);
- the structure is checked whatever the key: every part of the same commit, tree,
  baseline, policy and plan (the combine computes the plan itself), each index exactly
  once, none missing, every test in the part that owns its file and in no other.
  A part that fails any of this makes the combine invalid (exit 3), never a verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.atomicio import atomic_write_text
from agent.errors import InvalidRun
from evolution.run.report import RunResult

FORMAT = "ratchet-part"
VERSION = 1
KEY_ENV = "RATCHET_PART_KEY"


def part_key(environ: dict[str, str] | os._Environ[str]) -> bytes | None:
    """The key parts are signed and verified with, if the CI gives one."""
    value = environ.get(KEY_ENV, "")
    return value.encode() if value else None


def runner_name(environ: dict[str, str] | os._Environ[str]) -> str:
    """Which machine ran a part, for the record: the CI's name for it, else the host's."""
    for name in ("RUNNER_NAME", "CI_RUNNER_DESCRIPTION", "HOSTNAME"):
        if environ.get(name):
            return environ[name]
    return socket.gethostname()


@dataclass
class Part:
    """One verified part file."""

    path: str
    body: dict[str, Any]
    digest: str
    keyed: bool

    @property
    def index(self) -> int:
        return int(self.body["split"]["index"])

    @property
    def count(self) -> int:
        return int(self.body["split"]["count"])

    @property
    def refused(self) -> str:
        return str(self.body.get("refused", ""))

    def result(self) -> RunResult:
        """The part's run, with the files it saw and their owners."""
        data = self.body["result"]
        result = RunResult.from_json(data)
        result.owners = {str(k): int(v) for k, v in dict(data.get("owners") or {}).items()}
        result.durations = {str(k): float(v) for k, v in dict(data.get("durations", {})).items()}
        return result

    def reruns(self) -> dict[str, dict[str, Any]]:
        return {str(k): dict(v) for k, v in dict(self.body.get("reruns", {})).items()}

    def summary(self) -> dict[str, Any]:
        """What the combine's verdict says about this part."""
        outcomes = dict(self.body.get("result", {}).get("outcomes", {}))
        return {
            "index": self.index + 1,
            "count": self.count,
            "file": self.path,
            "runner": self.body.get("runner", ""),
            "sandbox": self.body.get("sandbox", ""),
            "tests": len(outcomes),
            "digest": self.digest,
            "attestation": "hmac" if self.keyed else "digest",
        }


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def body_of(
    result: RunResult | None, reruns: dict[str, dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """A part file's body: `fields` (what was judged, how, by whom) and the run."""
    run: dict[str, Any] = {"outcomes": {}}
    if result is not None:
        run = {
            **result.to_json(),
            "owners": result.owners or {},
            "durations": {k: round(v, 4) for k, v in sorted(result.durations.items())},
        }
    return {"format": FORMAT, "version": VERSION, **fields, "result": run, "reruns": reruns}


def write_part(path: Path, body: dict[str, Any], key: bytes | None) -> str:
    """Write the part file (whole, or not at all); its digest."""
    data = _canonical(body)
    digest = hashlib.sha256(data).hexdigest()
    sealed: dict[str, Any] = {"body": body, "sha256": digest}
    if key is not None:
        sealed["hmac_sha256"] = hmac.new(key, data, hashlib.sha256).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(sealed, indent=1, sort_keys=True) + "\n")
    return digest


def read_part(path: Path, key: bytes | None) -> Part:
    """A part file whose digest (and MAC, with a key) holds, or InvalidRun."""
    name = str(path)
    try:
        sealed = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRun(f"part file {name} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRun(f"part file {name} is not readable JSON ({exc})") from None
    body = sealed.get("body") if isinstance(sealed, dict) else None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise InvalidRun(f"{name} is not a Ratchet part file")
    if body.get("version") != VERSION:
        raise InvalidRun(f"{name}: part file version {body.get('version')!r}, not {VERSION}")
    data = _canonical(body)
    digest = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(str(sealed.get("sha256", "")), digest):
        raise InvalidRun(f"{name}: its digest does not match its content (edited or damaged)")
    mac = sealed.get("hmac_sha256")
    if key is not None:
        want = hmac.new(key, data, hashlib.sha256).hexdigest()
        if not isinstance(mac, str) or not hmac.compare_digest(mac, want):
            raise InvalidRun(
                f"{name}: no valid HMAC under {KEY_ENV} (forged, or signed "
                "with another key, or by a job without the key)"
            )
    elif mac is not None:
        raise InvalidRun(
            f"{name} is signed, but {KEY_ENV} is not set where the parts are "
            "combined: it cannot be verified"
        )
    try:
        part = Part(name, body, digest, key is not None)
        if not 0 <= part.index < part.count:
            raise ValueError(f"part index {part.index} of {part.count}")
        part.result()
        part.reruns()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidRun(f"{name}: malformed part ({exc})") from None
    return part


def verify(parts: list[Part], retries: list[Part], expected: dict[str, Any]) -> None:
    """InvalidRun unless the parts are one whole: all of `expected` (commit, tree, base,
    baseline, policy, plan), one count, each index exactly once and none missing; each
    retry is of one of those parts."""
    if not parts:
        raise InvalidRun("no part files to combine")
    for part in [*parts, *retries]:
        for key, want in expected.items():
            got = part.body.get(key)
            if got != want:
                why = (
                    "give every job and the combine the same policy options"
                    if key == "policy"
                    else "a part of another run"
                )
                raise InvalidRun(
                    f"{part.path}: its {key} is {_short(got)}, but the combine "
                    f"judges {_short(want)}: {why}"
                )
    counts = {part.count for part in [*parts, *retries]}
    if len(counts) != 1:
        raise InvalidRun(f"the parts were split different ways: into {sorted(counts)} parts")
    count = counts.pop()
    seen: dict[int, Part] = {}
    for part in parts:
        if part.index in seen:
            twice = (
                "the same file given twice"
                if part.digest == seen[part.index].digest
                else "two runs of it (give a re-run as --retry)"
            )
            raise InvalidRun(
                f"part {part.index + 1} of {count} is duplicated: {twice} "
                f"({seen[part.index].path}, {part.path})"
            )
        seen[part.index] = part
    missing = [str(i + 1) for i in range(count) if i not in seen]
    if missing:
        raise InvalidRun(
            f"part(s) {', '.join(missing)} of {count} missing: no verdict without every part"
        )
    primaries = {part.digest for part in parts}
    for retry in retries:
        if retry.digest in primaries:
            raise InvalidRun(f"{retry.path} is a part given again as its own retry")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
