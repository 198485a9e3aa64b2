"""The repair search: localise, mutate, evaluate in stages, minimise.

Stage 1 runs the failing tests alone against a candidate; stage 2 runs every test of
their test files that passed before (a neighbour the edit breaks is caught cheaply);
the whole suite is the gate's job, on the branch the caller makes. Single edits are
tried first, the most suspicious lines first. An edit that makes some failing tests
pass without breaking any is kept as a foothold, and the search goes one level deeper
from it (GenProg's accumulation, bounded). A multi-edit repair is then minimised: every
edit whose removal still passes both stages is dropped.

The search is bounded by candidate count and by wall time; both are reported.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from agent.errors import InvalidRun
from evolution.mutate.forkserver import CandidateRuns
from evolution.mutate.localise import Localisation
from evolution.mutate.operators import OPERATORS, Edit, apply_edits, mutations
from evolution.mutate.restore import OPERATOR as RESTORE
from evolution.policy import Policy

MAX_FOOTHOLDS = 3
CANDIDATE_TEST_TIMEOUT_S = 10.0  # a mutant can loop forever; a seeded fix never needs this


@dataclass
class SearchLimits:
    max_candidates: int = 400
    max_seconds: float = 60.0


@dataclass
class SearchResult:
    edits: tuple[Edit, ...] = ()
    source: str = ""
    evaluated: int = 0
    seconds: float = 0.0
    stopped: str = ""  # repaired | candidates | time | exhausted
    lines: list[int] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        return bool(self.edits)

    @property
    def per_minute(self) -> float:
        return self.evaluated / self.seconds * 60 if self.seconds > 0 else 0.0


@dataclass
class Evaluator:
    """Writes a candidate into the run folder's tree and runs the two stages on it
    (through `runs`: a fork server in the sandbox, or one pytest process each)."""

    runs: CandidateRuns
    target: str
    failing: list[str]
    neighbours: list[str]
    evaluated: int = 0

    def _passing(self, source: str, tests: list[str]) -> list[str] | None:
        """Which of `tests` pass with `source` as the target, or None for an unusable run."""
        (self.runs.run.tree / self.target).write_text(source, encoding="utf-8")
        try:
            result = self.runs(tests)
        except InvalidRun:
            return None
        return [n for n in tests if result.outcomes.get(n) == "passed"]

    def fixed(self, source: str) -> int | None:
        """How many failing tests pass (stage 1), or None when the run is unusable."""
        self.evaluated += 1
        passing = self._passing(source, self.failing)
        return None if passing is None else len(passing)

    def neighbours_hold(self, source: str) -> bool:
        """Stage 2: every test of the failing tests' files that passed before still does."""
        if not self.neighbours:
            return True
        return self._passing(source, self.neighbours) == self.neighbours

    def plausible(self, source: str) -> bool:
        fixed = self.fixed(source)
        return fixed == len(self.failing) and self.neighbours_hold(source)


def candidates(source: str, applied: tuple[Edit, ...], lines: list[int]) -> Iterator[Edit]:
    """Single edits on top of `applied`: every one-token and one-span edit on the ranked
    lines first (most suspicious line first, then by operator), then the restored statements.

    A restored statement is a candidate per donor statement for every line, so tried line by
    line they would bury the cheap edits of a slightly less suspicious line (and lines
    often tie). Every offset refers to the original source, so an edit that overlaps one
    already applied is skipped rather than re-parsed."""
    taken = [(e.start, e.end) for e in applied]
    found = {line: list(mutations(source, {line})) for line in lines}
    for copies in (False, True):
        for line in lines:
            chosen = [e for e in found[line] if (e.operator == RESTORE) == copies]
            chosen.sort(key=lambda e: OPERATORS.index(e.operator))
            for edit in chosen:
                if any((edit.start < end and start < edit.end) or edit.start == start
                       for start, end in taken):
                    continue
                yield edit


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def search(
    evaluator: Evaluator,
    source: str,
    localisation: Localisation,
    limits: SearchLimits,
    *,
    tried: set[str] | None = None,
    on_candidate: Callable[[int], None] | None = None,
) -> SearchResult:
    """Find a plausible repair of `source`. `tried` holds sources already judged (and
    rejected by the gate) in this process, so a second call goes on where it left."""
    started = time.monotonic()
    tried = set() if tried is None else tried
    lines = localisation.ranked_lines()
    result = SearchResult(lines=lines[:10])
    failing_total = len(evaluator.failing)
    footholds: dict[tuple[Edit, ...], int] = {(): 0}  # edits -> failing tests they fix
    frontier: list[tuple[Edit, ...]] = [()]
    depth = 0
    while frontier and depth < 2:
        for applied in frontier:
            for edit in candidates(source, applied, lines):
                if evaluator.evaluated >= limits.max_candidates:
                    return _stop(result, evaluator, started, "candidates")
                if time.monotonic() - started > limits.max_seconds:
                    return _stop(result, evaluator, started, "time")
                edits = (*applied, edit)
                text = apply_edits(source, edits)
                if text in tried or not _parses(text):
                    continue
                tried.add(text)
                fixed = evaluator.fixed(text)
                if on_candidate is not None:
                    on_candidate(evaluator.evaluated)
                if fixed is None:
                    continue
                if fixed == failing_total and evaluator.neighbours_hold(text):
                    minimal = minimise(evaluator, source, edits)
                    result.edits = minimal
                    result.source = apply_edits(source, minimal)
                    return _stop(result, evaluator, started, "repaired")
                if fixed > footholds[applied] and evaluator.neighbours_hold(text):
                    footholds[edits] = fixed
        depth += 1
        deeper = [edits for edits in footholds if len(edits) == depth]
        frontier = sorted(deeper, key=lambda edits: -footholds[edits])[:MAX_FOOTHOLDS]
    return _stop(result, evaluator, started, "exhausted")


def minimise(evaluator: Evaluator, source: str, edits: tuple[Edit, ...]) -> tuple[Edit, ...]:
    """Drop every edit the repair does not need (one at a time, until none can go)."""
    kept = list(edits)
    changed = True
    while changed and len(kept) > 1:
        changed = False
        for edit in list(kept):
            trial = tuple(e for e in kept if e is not edit)
            if evaluator.plausible(apply_edits(source, trial)):
                kept = list(trial)
                changed = True
                break
    return tuple(kept)


def _stop(result: SearchResult, evaluator: Evaluator, started: float, why: str) -> SearchResult:
    result.evaluated = evaluator.evaluated
    result.seconds = time.monotonic() - started
    result.stopped = why
    return result


def evaluator_policy(policy: Policy) -> Policy:
    """The gate's policy with short limits: a mutant that loops is cut off quickly."""
    return replace(
        policy,
        test_timeout_s=min(policy.test_timeout_s, CANDIDATE_TEST_TIMEOUT_S),
        run_timeout_s=min(policy.run_timeout_s, 120.0),
    )
