"""The stored baseline: each test's outcome on main, and the tests quarantined as flaky.

It lives in the repository (`baseline/baseline.json`) so that it moves with main and is
read from main's commit. The file is written one test per line, sorted, so that its
diffs read well and concurrent updates rarely conflict.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.errors import EnvironmentFailure, UsageError

if TYPE_CHECKING:
    from evolution.gitrepo import GitRepo

BASELINE_PATH = "baseline/baseline.json"
SCHEMA = 1
PASSED = "passed"
OUTCOMES = frozenset({"passed", "failed", "error", "skipped", "xfailed", "xpassed", "rerun"})
BROKEN = frozenset({"failed", "error"})


@dataclass
class Baseline:
    commit: str
    tree: str
    recorded_at: str
    tests: dict[str, str]
    flaky: dict[str, dict[str, Any]] = field(default_factory=dict)

    def passing(self) -> set[str]:
        """The ratchet: every one of these must exist and pass in any accepted tree."""
        return {nodeid for nodeid, outcome in self.tests.items() if outcome == PASSED}

    def broken(self) -> dict[str, str]:
        """The tests a proposal is asked to make pass. Not every test that does not pass:
        a skipped or xfailed one is not broken (more-itertools skips a test written for
        Python 3.8 on newer ones), and a repair that waited for it to pass never came."""
        return {nodeid: outcome for nodeid, outcome in sorted(self.tests.items())
                if outcome in BROKEN}

    def only(self, nodeids: Iterable[str]) -> Baseline:
        """This baseline narrowed to some tests: what a run of only those is held to."""
        keep = set(nodeids)
        return Baseline(
            self.commit, self.tree, self.recorded_at,
            {n: o for n, o in self.tests.items() if n in keep},
            {n: e for n, e in self.flaky.items() if n in keep},
        )  # fmt: skip

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.tests.values()).items()))

    def dumps(self) -> str:
        """Canonical text: same content, same bytes."""
        head = {
            "schema": SCHEMA,
            "commit": self.commit,
            "tree": self.tree,
            "recorded_at": self.recorded_at,
            "counts": self.counts(),
        }
        lines = ["{"]
        for key, value in head.items():
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)},")
        lines.append(_block("tests", self.tests) + ",")
        lines.append(_block("flaky", self.flaky))
        lines.append("}")
        return "\n".join(lines) + "\n"

    @classmethod
    def loads(cls, text: str, origin: str) -> Baseline:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EnvironmentFailure(f"{origin}: baseline is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise EnvironmentFailure(
                f"{origin}: unsupported baseline schema {data.get('schema')!r}"
                if isinstance(data, dict)
                else f"{origin}: baseline must be a JSON object"
            )
        tests = data.get("tests")
        flaky = data.get("flaky", {})
        if not isinstance(tests, dict) or not isinstance(flaky, dict):
            raise EnvironmentFailure(f"{origin}: baseline needs 'tests' and 'flaky' objects")
        if not all(isinstance(evidence, dict) for evidence in flaky.values()):
            raise EnvironmentFailure(f"{origin}: each flaky entry must be an object of evidence")
        unknown = sorted({str(v) for v in tests.values()} - OUTCOMES)
        if unknown:
            raise EnvironmentFailure(f"{origin}: unknown outcomes in baseline: {unknown}")
        return cls(
            commit=str(data.get("commit", "")),
            tree=str(data.get("tree", "")),
            recorded_at=str(data.get("recorded_at", "")),
            tests=dict(tests),
            flaky=dict(flaky),
        )


def _block(name: str, items: dict[str, Any]) -> str:
    if not items:
        return f"  {json.dumps(name)}: {{}}"
    body = ",\n".join(
        f"    {json.dumps(key)}: {json.dumps(items[key], sort_keys=True)}" for key in sorted(items)
    )
    return f"  {json.dumps(name)}: {{\n{body}\n  }}"


def read_baseline(repo: GitRepo, commit: str) -> tuple[Baseline, str] | None:
    """The baseline committed at `commit` and its blob id, or None when there is none."""
    blob = repo.blob_id(commit, BASELINE_PATH)
    raw = repo.read_file(commit, BASELINE_PATH)
    if blob is None or raw is None:
        return None
    text = raw.decode("utf-8", errors="replace")
    return Baseline.loads(text, f"{BASELINE_PATH}@{commit[:10]}"), blob


def require_baseline(repo: GitRepo, commit: str) -> tuple[Baseline, str]:
    found = read_baseline(repo, commit)
    if found is None:
        raise UsageError(
            f"main ({commit[:10]}) has no {BASELINE_PATH}",
            hint="record one first: evolve baseline record",
        )
    return found
