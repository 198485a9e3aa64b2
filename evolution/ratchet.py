"""The ratchet rule, as pure functions: compare a run with the baseline, advance the baseline.

Nothing that passed may stop passing. A baseline-passing test that fails, errors, is
skipped, xfails, xpasses, is deselected or is missing counts as a regression. New tests
may fail; they never passed. A failing test that passes when re-run alone is flaky:
quarantined (not a regression) or, under the `strict` policy, a regression all the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evolution.baseline import PASSED, Baseline
from evolution.policy import Policy
from evolution.pytest_report import RunResult, first_line

MISSING = "missing"
# Outcomes worth a re-run: the others (skip, xfail, xpass) come from markers, not luck.
RERUNNABLE = frozenset({"failed", "error", "rerun"})


@dataclass(frozen=True)
class Regression:
    nodeid: str
    was: str
    now: str
    first_line: str
    text: str


@dataclass
class Comparison:
    regressions: list[Regression] = field(default_factory=list)
    newly_passing: list[str] = field(default_factory=list)
    new_failing: list[Regression] = field(default_factory=list)  # new tests that do not pass
    flaky: dict[str, dict[str, Any]] = field(default_factory=dict)  # found in this run
    quarantined_failures: list[str] = field(default_factory=list)  # known flaky, failed again

    def accepted(self, require_improvement: bool) -> bool:
        if self.regressions:
            return False
        return bool(self.newly_passing) or not require_improvement

    def to_json(self) -> dict[str, Any]:
        return {
            "regressions": [asdict(r) for r in self.regressions],
            "newly_passing": self.newly_passing,
            "new_failing": [asdict(r) for r in self.new_failing],
            "flaky": self.flaky,
            "quarantined_failures": self.quarantined_failures,
        }


def _explain(result: RunResult, nodeid: str, now: str) -> str:
    if now == MISSING:
        import_error = result.import_error_for(nodeid)
        if import_error:
            return "its module no longer imports: " + first_line(import_error)
        return "missing from the run (deleted, renamed or deselected)"
    return result.failures.get(nodeid, "") or now


def suspects(baseline: Baseline, result: RunResult, policy: Policy) -> list[str]:
    """Baseline-passing tests that now fail in a way a re-run could explain."""
    exempt = set(baseline.flaky) if policy.flaky == "quarantine" else set()
    return sorted(
        nodeid
        for nodeid in baseline.passing() - exempt
        if result.outcomes.get(nodeid) in RERUNNABLE
    )


def compare(
    baseline: Baseline,
    result: RunResult,
    policy: Policy,
    reruns: dict[str, dict[str, Any]],
    *,
    automated: bool = False,
) -> Comparison:
    """Judge `result` against `baseline`. `reruns` holds re-run evidence per node id.

    For an automated proposal a test that newly fails and then passes on re-run is not
    excused as flaky: the candidate's own code may be what makes it fail only sometimes
    (a first run broken, re-runs correct), and quarantining it would take the test out
    of the ratchet for good. Tests already quarantined in the baseline stay excused.
    """
    comparison = Comparison()
    quarantine = policy.flaky == "quarantine" and not automated
    for nodeid in sorted(baseline.passing()):
        now = result.outcomes.get(nodeid, MISSING)
        if now == PASSED:
            continue
        # Quarantine and re-run evidence excuse only failures that luck can explain; a
        # test that went missing, or is now skipped or xfail-marked, was hidden on purpose.
        excusable = now in RERUNNABLE
        evidence = reruns.get(nodeid)
        if excusable and nodeid in baseline.flaky and policy.flaky == "quarantine":
            comparison.quarantined_failures.append(nodeid)
            continue
        if excusable and evidence and evidence["passed"] > 0:
            comparison.flaky[nodeid] = evidence
            if quarantine:
                continue
        text = _explain(result, nodeid, now)
        comparison.regressions.append(Regression(nodeid, PASSED, now, first_line(text), text))
    for nodeid in sorted(result.outcomes):
        now = result.outcomes[nodeid]
        was = baseline.tests.get(nodeid)
        if now == PASSED and was != PASSED:
            comparison.newly_passing.append(nodeid)
        elif was is None and now != PASSED:
            text = _explain(result, nodeid, now)
            comparison.new_failing.append(Regression(nodeid, "new", now, first_line(text), text))
    return comparison


def advance(
    old: Baseline, result: RunResult, comparison: Comparison, commit: str, tree: str, now: str
) -> Baseline:
    """The baseline after an accepted run: the passing set only grows."""
    tests = dict(result.outcomes)
    for nodeid in old.passing():
        tests[nodeid] = PASSED  # quarantined failures stay protected
    flaky = {**old.flaky, **comparison.flaky}
    new = Baseline(commit=commit, tree=tree, recorded_at=now, tests=tests, flaky=flaky)
    lost = old.passing() - new.passing()
    if lost:  # would be a bug in compare(): never let it reach main
        raise AssertionError(f"baseline would lose passing tests: {sorted(lost)[:5]}")
    return new
