"""The ratchet rule, as pure functions: compare a run with the baseline, advance the baseline.

Nothing that passed may stop passing. A baseline-passing test that fails, errors, is
skipped, xfails, xpasses, is deselected or is missing counts as a regression. New tests
may fail; they never passed. A failing test that passes when re-run alone is flaky:
quarantined (not a regression) or, under the `strict` policy, a regression all the same.

Broken is not flaky. A test quarantined as flaky on main is re-run like any other when
it fails, and it is excused only if it passes in one of its re-runs: one that fails in
the run and in every re-run (or is never re-run) is a regression. A quarantine entry
past its expiry excuses nothing, and a test new in the candidate is never excused: it
was never in the baseline's passing set, so it is neither re-run nor quarantined.

Across runners (`pool`): two outcomes for one test on one tree, from a CI job and its
retry or from the gate's re-runs, mean flaky, as merge queues define it. The test
counts as failed with the passes as its re-run evidence, so the rule above decides:
flaky (quarantined, or a regression under `strict`), broken when it never passed, and
a test that is not baseline-passing (new in the candidate, or failing before) is never
retried into a pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agent.clock import timestamp
from evolution.baseline import PASSED, QUARANTINE_DAYS, Baseline, quarantined
from evolution.policy import Policy
from evolution.run.report import RunResult, first_line

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
    # quarantined on main, but failed in the run and every re-run: counted as regressions
    broken_quarantined: list[str] = field(default_factory=list)
    expired_quarantine: list[str] = field(default_factory=list)  # entries that excused nothing

    def accepted(self, require_improvement: bool) -> bool:
        if self.regressions:
            return False
        return bool(self.newly_passing) or not require_improvement

    def rejection(self, require_improvement: bool) -> str:
        """Why the rule rejects this comparison, in the words the gate reports; "" when
        it accepts."""
        if self.regressions:
            return f"{len(self.regressions)} baseline-passing test(s) regressed"
        if not self.accepted(require_improvement):
            return "no newly passing test, and the policy requires an improvement"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "regressions": [asdict(r) for r in self.regressions],
            "newly_passing": self.newly_passing,
            "new_failing": [asdict(r) for r in self.new_failing],
            "flaky": self.flaky,
            "quarantined_failures": self.quarantined_failures,
            "broken_quarantined": self.broken_quarantined,
            "expired_quarantine": self.expired_quarantine,
        }


def _explain(result: RunResult, nodeid: str, now: str) -> str:
    if now == MISSING:
        import_error = result.import_error_for(nodeid)
        if import_error:
            return "its module no longer imports: " + first_line(import_error)
        return "missing from the run (deleted, renamed or deselected)"
    return result.failures.get(nodeid, "") or now


def suspects(baseline: Baseline, result: RunResult, policy: Policy) -> list[str]:
    """Baseline-passing tests that now fail in a way a re-run could explain: the
    quarantined ones too, since only a pass in a re-run shows that one is still flaky
    rather than broken."""
    return sorted(
        nodeid for nodeid in baseline.passing() if result.outcomes.get(nodeid) in RERUNNABLE
    )


def worth_confirming(
    baseline: Baseline, picked: list[str], policy: Policy, *, automated: bool, now: str
) -> list[str]:
    """The suspects to re-run. For a person's change, every one: under `quarantine` a
    pass on re-run excuses it, and under `strict` the report still tells the person who
    reads it flaky from broken. For an automated proposal, only those main quarantines
    (entry not expired, under `quarantine`), whose pass in a re-run is what shows they
    are still flaky rather than broken: any other newly failing test is a regression
    whatever its re-runs show (the proposal's own code may be what fails only
    sometimes), so they are not paid for. Most of an agent's proposals fail, and their
    confirmations were most of the time to a rejection."""
    if not automated:
        return picked
    if policy.flaky != "quarantine":
        return []
    return [n for n in picked if baseline.excuses(n, now, policy.quarantine_days)]


def to_confirm(
    baseline: Baseline, result: RunResult, policy: Policy, *, automated: bool, now: str
) -> list[str]:
    """The suspects of `result` that a judging run re-runs (`worth_confirming`)."""
    picked = suspects(baseline, result, policy)
    return worth_confirming(baseline, picked, policy, automated=automated, now=now)


def _broken(nodeid: str, outcome: str, evidence: dict[str, Any] | None, text: str) -> Regression:
    """The regression of a quarantined test that passed in no re-run."""
    runs = int(evidence.get("runs", 0)) if evidence else 0
    seen = f"in the run and in all {runs} re-run(s)" if runs else "and was not re-run"
    why = f"quarantined as flaky, but it failed {seen}: broken, not flaky"
    last = str(evidence.get("last_failure", "")) if evidence else ""
    if last:
        why += f" (last re-run: {last})"
    line = first_line(text)
    return Regression(nodeid, PASSED, outcome, f"{why}: {line}" if line else why,
                      f"{why}\n{text}")  # fmt: skip


def compare(
    baseline: Baseline,
    result: RunResult,
    policy: Policy,
    reruns: dict[str, dict[str, Any]],
    *,
    automated: bool = False,
    now: str = "",
) -> Comparison:
    """Judge `result` against `baseline` at time `now` (the gate's timestamp; the clock
    when empty). `reruns` holds re-run evidence per node id.

    For an automated proposal a test that newly fails and then passes on re-run is not
    excused as flaky: the candidate's own code may be what makes it fail only sometimes
    (a first run broken, re-runs correct), and quarantining it would take the test out
    of the ratchet for good. A test quarantined in the baseline, its entry not expired,
    is excused if it passes in a re-run; one that passes in none is broken, not flaky.
    """
    comparison = Comparison()
    quarantine = policy.flaky == "quarantine" and not automated
    now = now or timestamp()
    for nodeid in sorted(baseline.passing()):
        outcome = result.outcomes.get(nodeid, MISSING)
        if outcome == PASSED:
            continue
        # Quarantine and re-run evidence excuse only failures that luck can explain; a
        # test that went missing, or is now skipped or xfail-marked, was hidden on purpose.
        excusable = outcome in RERUNNABLE
        evidence = reruns.get(nodeid)
        passed_again = bool(evidence and evidence.get("passed", 0) > 0)
        text = _explain(result, nodeid, outcome)
        if excusable and nodeid in baseline.flaky and policy.flaky == "quarantine":
            if not baseline.excuses(nodeid, now, policy.quarantine_days):
                comparison.expired_quarantine.append(nodeid)
            elif passed_again:
                comparison.quarantined_failures.append(nodeid)
                continue
            else:
                comparison.broken_quarantined.append(nodeid)
                comparison.regressions.append(_broken(nodeid, outcome, evidence, text))
                continue
        if excusable and evidence and passed_again:
            comparison.flaky[nodeid] = evidence
            if quarantine:
                continue
        comparison.regressions.append(Regression(nodeid, PASSED, outcome, first_line(text), text))
    for nodeid in sorted(result.outcomes):
        outcome = result.outcomes[nodeid]
        was = baseline.tests.get(nodeid)
        if outcome == PASSED and was != PASSED:
            comparison.newly_passing.append(nodeid)
        elif was is None and outcome != PASSED:
            text = _explain(result, nodeid, outcome)
            comparison.new_failing.append(
                Regression(nodeid, "new", outcome, first_line(text), text)
            )
    return comparison


Rerun = dict[str, dict[str, Any]]


def pool(baseline: Baseline, runs: list[tuple[RunResult, Rerun]], tree: str, commit: str,
         when: str) -> tuple[RunResult, Rerun]:  # fmt: skip
    """Several valid runs of the same tests on one tree (a part and its retries), each
    with its own re-run evidence, as one run and its evidence. A test's outcome is the
    first that is not a pass, if any run had one; a baseline-passing test's evidence is
    every outcome it had, in order, with the passes counted, so that `compare` finds it
    flaky (passed somewhere) or broken (passed nowhere). Others get no evidence: they
    are never excused."""
    first, _ = runs[0]
    pooled = RunResult(outcomes={}, duration_s=first.duration_s, sandbox=first.sandbox,
                       exitcode=first.exitcode, owners=first.owners)  # fmt: skip
    evidence: Rerun = {}
    protected = baseline.passing()
    for result, _reruns in runs:
        pooled.collector_errors.update(result.collector_errors)
        pooled.durations.update(result.durations)
    for nodeid in sorted({n for result, _ in runs for n in result.outcomes}):
        seen: list[str] = []
        text = ""
        for result, reruns in runs:
            if nodeid not in result.outcomes:
                continue
            outcome = result.outcomes[nodeid]
            seen += list(reruns.get(nodeid, {}).get("outcomes", [outcome]))
            if outcome != PASSED and not text:
                text = result.failures.get(nodeid, "")
        worst = next((o for o in seen if o != PASSED), PASSED)
        pooled.outcomes[nodeid] = worst
        if text:
            pooled.failures[nodeid] = text
        if worst != PASSED and nodeid in protected and len(seen) > 1:
            failed = [o for o in seen if o != PASSED]
            evidence[nodeid] = {
                "first_failure": first_line(text) or worst, "tree": tree, "commit": commit,
                "seen": when, "outcomes": seen, "passed": seen.count(PASSED),
                "runs": len(seen) - 1, **({"last_failure": failed[-1]} if failed else {}),
            }  # fmt: skip
    return pooled, evidence


def advance(
    old: Baseline,
    result: RunResult,
    comparison: Comparison,
    commit: str,
    tree: str,
    now: str,
    days: int = QUARANTINE_DAYS,
) -> Baseline:
    """The baseline after an accepted run: the passing set only grows. The quarantine
    keeps the entries still live at `now` (an expired one excuses nothing, so it goes)
    and gains the tests found flaky in this run, each expiring `days` from now."""
    tests = dict(result.outcomes)
    for nodeid in old.passing():
        tests[nodeid] = PASSED  # quarantined failures stay protected
    flaky = {
        **old.live_quarantine(now, days),
        **{nodeid: quarantined(ev, now, days) for nodeid, ev in comparison.flaky.items()},
    }
    new = Baseline(commit=commit, tree=tree, recorded_at=now, tests=tests, flaky=flaky)
    if dropped := lost(old, new):  # would be a bug in compare(): never let it reach main
        raise AssertionError(f"baseline would lose passing tests: {dropped[:5]}")
    return new


def lost(old: Baseline | None, new: Baseline) -> list[str]:
    """The tests `old` counts as passing and `new` does not: what lowering the ratchet
    would give up (none without an old baseline)."""
    return sorted(old.passing() - new.passing()) if old is not None else []


def record_suspects(result: RunResult) -> list[str]:
    """The tests a recording re-runs: every failure or error of the run, since there is
    no candidate to hold to a baseline, only the tree's own flakiness to find."""
    return sorted(n for n, outcome in result.outcomes.items() if outcome in ("failed", "error"))


def recorded(
    previous: Baseline | None,
    result: RunResult,
    reruns: dict[str, dict[str, Any]],
    policy: Policy,
    commit: str,
    tree: str,
    now: str,
) -> Baseline:
    """The baseline a recording of `commit` makes (`evolve baseline record`). Under the
    `quarantine` policy a test that failed and passed on re-run counts as passing and is
    quarantined; the previous baseline's live entries are kept while their tests pass,
    and an expired one excuses nothing any more. Whether it may replace `previous` is
    `lost`'s to say: a recording never lowers the ratchet unless told to."""
    tests = dict(result.outcomes)
    days = policy.quarantine_days
    flaky = previous.live_quarantine(now, days) if previous else {}
    for nodeid, evidence in reruns.items():
        if evidence["passed"] and policy.flaky == "quarantine":
            tests[nodeid] = PASSED
            if nodeid not in flaky:
                flaky[nodeid] = quarantined(evidence, now, days)
    flaky = {nodeid: ev for nodeid, ev in flaky.items() if tests.get(nodeid) == PASSED}
    return Baseline(commit=commit, tree=tree, recorded_at=now, tests=tests, flaky=flaky)
