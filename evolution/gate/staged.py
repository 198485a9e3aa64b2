"""The staged verdict: the tests that can see a change first, the whole suite after.

A cascade, as AlphaEvolve and OpenEvolve judge: a cheap stage that can only reject, then
the stage that decides. The first stage runs the baseline's passing tests that the map
(`evolution.gate.testmap`) ties to the files the candidate changes, plus every test the map
has never seen. A regression there that its re-runs confirm (not flaky, by the same
rules as the full run) rejects at once. Anything else, including a first stage that
could not run, goes on to the full suite, and only the full suite can accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import InvalidRun
from evolution.baseline import Baseline
from evolution.gate.testmap import MapState
from evolution.gitrepo import GitRepo
from evolution.policy import Policy
from evolution.ratchet import Comparison, compare, to_confirm
from evolution.run.flaky import rerun_suspects
from evolution.run.folder import RunFolder
from evolution.run.forkserver import CandidateRuns
from evolution.run.report import RunResult
from evolution.sandbox.isolation import Isolation

MAX_SHARE = 0.5  # a first stage of more than half the suite would save nothing


@dataclass(frozen=True)
class FirstStage:
    tests: list[str]
    baseline: Baseline  # narrowed to `tests`
    automated: bool


@dataclass
class Rejection:
    """A selection's run, re-runs and comparison: for the first stage, one that decided
    (its regressions are confirmed)."""

    result: RunResult
    reruns: dict[str, dict[str, Any]]
    comparison: Comparison


def plan(
    repo: GitRepo, commit: str, baseline: Baseline, state: MapState, automated: bool
) -> FirstStage | None:
    """The first stage for `commit`, or None: no usable map, nothing it ties to the
    change, or too much of the suite to gain anything."""
    test_map = state.usable
    if test_map is None:
        return None
    changed = repo.paths_between(test_map.commit, commit)
    tests = test_map.first_tests(changed, baseline.passing())
    if not tests or len(tests) > MAX_SHARE * len(baseline.tests):
        return None
    return FirstStage(tests, baseline.only(tests), automated)


def run_first(
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    stage: FirstStage,
    tree: str,
    when: str,
) -> Rejection | None:
    """Run the first stage; a Rejection when it confirms a regression, else None."""
    try:
        judged = judge_selection(policy, run, isolation, stage.baseline, tree, when,
                                 automated=stage.automated, stop=True)  # fmt: skip
    except InvalidRun:
        return None  # the full run will say what is wrong, with the whole suite's context
    return judged if judged.comparison.regressions else None


def judge_selection(
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    baseline: Baseline,
    tree: str,
    when: str,
    *,
    automated: bool,
    stop: bool = False,
) -> Rejection:
    """The tests of `baseline` (narrowed to a selection) on the run's tree, judged as the
    gate judges any run: newly failing ones re-run, then compared. Whether it rejects is
    the caller's to say (the comparison's regressions); InvalidRun when it cannot tell.
    The first stage and the safety net's search for a cause both judge this way. A
    selected test the tree lacks, or whose module no longer imports, is missing: a
    regression, not a run that says nothing.

    The selection and its re-runs are forks of one warm server (`CandidateRuns`), each a
    fresh pytest session: the server's start, which a process of its own would pay
    anyway, is paid once, and a confirmation costs the suspects' own run time.

    With `stop` (the first stage, which can only reject), the run ends at the first
    failure of a test the baseline has passing and does not quarantine, and is judged on
    the tests that ran: a rejection needs one confirmed regression, not all of them. A
    failure its re-runs excuse leaves no regression, and the full suite decides."""
    with CandidateRuns(policy, run, isolation) as runs:
        stop_on = [n for n in baseline.passing() if n not in baseline.flaky] if stop else None
        result = runs(baseline.tests, by_file=True, stop_on=stop_on)
        if result.stopped:
            baseline = baseline.only(result.outcomes)
        picked = to_confirm(baseline, result, policy, automated=automated, now=when)
        reruns = rerun_suspects(policy, run, isolation, picked, result, tree, when, runs=runs)
    comparison = compare(baseline, result, policy, reruns, automated=automated, now=when)
    return Rejection(result, reruns, comparison)
