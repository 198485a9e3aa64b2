"""Judging a candidate: the questions the search asks, and their answers from test runs.

The search asks four questions of a candidate source, cheapest first: does it import
(only asked when module-level code changed), how many failing tests does it fix, do
the neighbours that passed still pass, and does every test of the test files that
concern the target still pass. `Evaluator` is that interface, so the search can be
driven by a predicate in a test; `CandidateEvaluator` answers each stage with one run
of the selected tests through `CandidateRuns` (the fork server in the sandbox, or one
pytest process per candidate where a server cannot serve).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from agent.errors import InvalidRun
from evolution.mutate.hangs import hung
from evolution.policy import Policy
from evolution.run.forkserver import CandidateRuns
from evolution.run.launch import imports


class Evaluator(Protocol):
    failing: list[str]
    evaluated: int  # candidates judged by a test run (stage 1), for the bounds
    hung: bool  # whether its last run had a test cut off at its time limit (read after `fixed`)

    def imports(self, source: str) -> bool:
        """Whether the target, as `source`, still imports."""
        ...

    def fixed(self, source: str) -> int | None:
        """How many failing tests pass (stage 1), or None for an unusable run."""
        ...

    def neighbours_hold(self, source: str) -> bool:
        """Stage 2: every test of the failing tests' files that passed before still does."""
        ...

    def whole_files_hold(self, source: str) -> bool:
        """Stage 3: every passing test of the test files that concern the target still
        does (the gate then runs the whole suite)."""
        ...


def module_name(target: str) -> str:
    """`src/pkg/mod.py` -> `pkg.mod`: what the test runs import the target as."""
    parts = list(PurePosixPath(target).with_suffix("").parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@dataclass
class CandidateEvaluator:
    """Writes a candidate into the run folder's tree and runs each stage on it through
    `runs`."""

    runs: CandidateRuns
    target: str
    failing: list[str]
    neighbours: list[str]
    related: list[str] = field(default_factory=list)  # stage 3's tests
    # The time limits of stages 1 and 2, measured on their tests (`candidate_policy`);
    # stage 3's tests were not measured and keep the runner's.
    limits: Policy | None = None
    evaluated: int = 0
    hung: bool = False

    def _write(self, source: str) -> None:
        (self.runs.run.tree / self.target).write_text(source, encoding="utf-8")

    def _passing(self, source: str, tests: list[str], measured: bool = True) -> list[str] | None:
        """Which of `tests` pass with `source` as the target, or None for an unusable run.
        `measured`: the tests' times are known, so the candidate's limits apply."""
        self._write(source)
        self.hung = False
        try:
            with self.runs.limited(self.limits if measured else None):
                limit = self.runs.policy.test_timeout_s
                result = self.runs(tests)
        except InvalidRun:
            return None
        self.hung = bool(hung(result.outcomes, result.durations, limit))
        return [n for n in tests if result.outcomes.get(n) == "passed"]

    def imports(self, source: str) -> bool:
        self._write(source)
        runs = self.runs
        return imports(runs.policy, runs.run, runs.isolation, module_name(self.target))

    def fixed(self, source: str) -> int | None:
        self.evaluated += 1
        passing = self._passing(source, self.failing)
        return None if passing is None else len(passing)

    def neighbours_hold(self, source: str) -> bool:
        return not self.neighbours or self._passing(source, self.neighbours) == self.neighbours

    def whole_files_hold(self, source: str) -> bool:
        extra = sorted(set(self.related) - set(self.neighbours))
        return not extra or self._passing(source, extra, measured=False) == extra
