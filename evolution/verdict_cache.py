"""Reuse the run of a tree already tested against the same baseline and policy.

The key is (tested tree, baseline blob, policy digest): the same three inputs give the
same judgement, so re-validating costs a few git calls instead of a suite. Entries are
operational state in the git directory, not audit records; deleting them is harmless.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.atomicio import atomic_write_text
from evolution.pytest_report import RunResult

KEEP = 200


def cache_key(tree: str, baseline_blob: str, policy_digest: str) -> str:
    return f"{tree}-{baseline_blob}-{policy_digest}"


class VerdictCache:
    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "verdicts"

    def get(self, key: str) -> tuple[RunResult, dict[str, dict[str, Any]]] | None:
        path = self.folder / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return RunResult.from_json(data["result"]), dict(data["reruns"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, result: RunResult, reruns: dict[str, dict[str, Any]]) -> None:
        payload = json.dumps({"result": result.to_json(), "reruns": reruns}, sort_keys=True)
        atomic_write_text(self.folder / f"{key}.json", payload)
        self._trim()

    def _trim(self) -> None:
        entries = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for stale in entries[:-KEEP]:
            stale.unlink(missing_ok=True)
