"""The ratchet rule as pure functions: compare, suspects and advance on hand-built data."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evolution.baseline import OUTCOMES, Baseline
from evolution.policy import Policy
from evolution.ratchet import MISSING, advance, compare, suspects
from evolution.run.report import RunResult

QUARANTINE = Policy()
STRICT = Policy(flaky="strict")
IMPROVE = Policy(require_improvement=True)

A = "tests/test_m.py::test_a"
B = "tests/test_m.py::test_b"
C = "tests/test_m.py::test_c"
F = "tests/test_m.py::test_flaky"
OLD_FAIL = "tests/test_m.py::test_old_fail"


def base(tests: dict[str, str], flaky: dict[str, dict[str, Any]] | None = None) -> Baseline:
    return Baseline(
        commit="c0",
        tree="t0",
        recorded_at="2024-01-01T00:00:00+00:00",
        tests=tests,
        flaky=flaky or {},
    )


def run(
    outcomes: dict[str, str],
    failures: dict[str, str] | None = None,
    collector_errors: dict[str, str] | None = None,
) -> RunResult:
    return RunResult(
        outcomes=outcomes, failures=failures or {}, collector_errors=collector_errors or {}
    )


SEEN = "2026-12-01T00:00:00+00:00"
LIVE = "9999-12-31T00:00:00+00:00"  # a quarantine entry that has not expired


def evidence(passed: int, runs: int = 3, expires: str | None = LIVE) -> dict[str, Any]:
    found = {"first_failure": "boom", "tree": "t1", "commit": "c1", "seen": SEEN,
             "outcomes": ["failed"] + ["passed"] * passed + ["failed"] * (runs - passed),
             "passed": passed, "runs": runs}  # fmt: skip
    return found if expires is None else {**found, "expires": expires}


# --- regressions -------------------------------------------------------------------


@pytest.mark.parametrize("now", ["failed", "error", "skipped", "xfailed", "xpassed", "rerun"])
def test_baseline_passing_test_that_stops_passing_is_a_regression(now: str) -> None:
    baseline = base({A: "passed", B: "passed"})
    result = run({A: now, B: "passed"}, failures={A: "E   AssertionError: nope\nmore"})
    comparison = compare(baseline, result, QUARANTINE, {})
    assert [r.nodeid for r in comparison.regressions] == [A]
    regression = comparison.regressions[0]
    assert (regression.was, regression.now) == ("passed", now)
    assert regression.first_line == "AssertionError: nope"
    assert not comparison.accepted(require_improvement=False)


def test_regression_without_failure_text_names_the_outcome() -> None:
    comparison = compare(base({A: "passed"}), run({A: "skipped"}), QUARANTINE, {})
    assert comparison.regressions[0].text == "skipped"


def test_missing_test_is_a_regression() -> None:
    comparison = compare(base({A: "passed", B: "passed"}), run({B: "passed"}), QUARANTINE, {})
    assert len(comparison.regressions) == 1
    regression = comparison.regressions[0]
    assert (regression.nodeid, regression.now) == (A, MISSING)
    assert "deleted, renamed or deselected" in regression.text


def test_missing_test_whose_module_fails_to_import_says_so() -> None:
    result = run(
        {B: "passed"},
        collector_errors={"tests/test_m.py": "Traceback\nE   ImportError: cannot import x"},
    )
    baseline = base({A: "passed", B: "failed"})
    comparison = compare(baseline, result, QUARANTINE, {})
    regression = comparison.regressions[0]
    assert regression.now == MISSING
    assert "no longer imports" in regression.text
    assert "ImportError: cannot import x" in regression.first_line


def test_all_passing_is_accepted_without_regressions() -> None:
    baseline = base({A: "passed", B: "passed"})
    comparison = compare(baseline, run({A: "passed", B: "passed"}), QUARANTINE, {})
    assert comparison.regressions == []
    assert comparison.newly_passing == []
    assert comparison.accepted(require_improvement=False)


# --- improvements and new tests ------------------------------------------------------


def test_newly_passing_baseline_failure() -> None:
    baseline = base({A: "passed", B: "failed"})
    comparison = compare(baseline, run({A: "passed", B: "passed"}), IMPROVE, {})
    assert comparison.newly_passing == [B]
    assert comparison.regressions == []
    assert comparison.accepted(IMPROVE.require_improvement)


def test_require_improvement_rejects_a_run_with_nothing_new() -> None:
    baseline = base({A: "passed", B: "failed"})
    comparison = compare(baseline, run({A: "passed", B: "failed"}), IMPROVE, {})
    assert comparison.regressions == []
    assert not comparison.accepted(IMPROVE.require_improvement)
    assert comparison.accepted(QUARANTINE.require_improvement)


def test_new_failing_tests_are_allowed_and_listed() -> None:
    baseline = base({A: "passed"})
    result = run({A: "passed", B: "failed", C: "passed"}, failures={B: "E   ValueError: new test"})
    comparison = compare(baseline, result, QUARANTINE, {})
    assert comparison.regressions == []
    assert [(r.nodeid, r.was, r.now) for r in comparison.new_failing] == [(B, "new", "failed")]
    assert comparison.new_failing[0].first_line == "ValueError: new test"
    assert comparison.newly_passing == [C]
    assert comparison.accepted(require_improvement=False)


def test_baseline_failure_that_still_fails_is_not_a_regression() -> None:
    baseline = base({A: "passed", OLD_FAIL: "failed"})
    comparison = compare(baseline, run({A: "passed", OLD_FAIL: "error"}), STRICT, {})
    assert comparison.regressions == []
    assert comparison.new_failing == []
    assert comparison.newly_passing == []


# --- flaky tests ---------------------------------------------------------------------


@pytest.mark.parametrize("automated", [False, True], ids=["person", "automated"])
def test_quarantined_test_that_fails_then_passes_a_rerun_is_tolerated_under_quarantine(
    automated: bool,
) -> None:
    baseline = base({A: "passed", F: "passed"}, flaky={F: evidence(1)})
    reruns = {F: evidence(passed=1, runs=1, expires=None)}
    comparison = compare(baseline, run({A: "passed", F: "failed"}), QUARANTINE, reruns,
                         automated=automated)  # fmt: skip
    assert comparison.regressions == []
    assert comparison.quarantined_failures == [F]
    assert comparison.broken_quarantined == []


@pytest.mark.parametrize("automated", [False, True], ids=["person", "automated"])
@pytest.mark.parametrize(
    "reruns", [{F: evidence(passed=0, runs=3, expires=None)}, {}], ids=["reruns-fail", "none"]
)
def test_quarantined_test_that_passes_no_rerun_is_broken_not_flaky(
    automated: bool, reruns: dict[str, dict[str, Any]]
) -> None:
    baseline = base({A: "passed", F: "passed"}, flaky={F: evidence(1)})
    result = run({A: "passed", F: "failed"}, failures={F: "E   AssertionError: gone for good"})
    comparison = compare(baseline, result, QUARANTINE, reruns, automated=automated)
    assert [r.nodeid for r in comparison.regressions] == [F]
    assert comparison.broken_quarantined == [F]
    assert comparison.quarantined_failures == []
    regression = comparison.regressions[0]
    assert "broken, not flaky" in regression.first_line
    assert "gone for good" in regression.text
    assert not comparison.accepted(require_improvement=False)


@pytest.mark.parametrize("automated", [False, True], ids=["person", "automated"])
def test_an_expired_quarantine_excuses_nothing(automated: bool) -> None:
    expired = evidence(1, expires="2026-12-02T00:00:00+00:00")
    baseline = base({A: "passed", F: "passed"}, flaky={F: expired})
    passes_again = {F: evidence(passed=1, runs=1, expires=None)}
    before = compare(baseline, run({A: "passed", F: "failed"}), QUARANTINE, passes_again,
                     automated=automated, now="2026-12-01T12:00:00+00:00")  # fmt: skip
    assert before.quarantined_failures == [F] and before.regressions == []
    after = compare(baseline, run({A: "passed", F: "failed"}), QUARANTINE, passes_again,
                    automated=automated, now="2026-12-02T00:00:00+00:00")  # fmt: skip
    assert after.expired_quarantine == [F]
    assert after.quarantined_failures == []
    # Seen flaky afresh: a person's commit quarantines it again (with new evidence); an
    # automated proposal's flakiness is never excused.
    assert after.flaky == passes_again
    assert [r.nodeid for r in after.regressions] == ([F] if automated else [])


def test_an_entry_without_expiry_expires_its_policy_length_after_it_was_seen() -> None:
    legacy = evidence(1, expires=None)  # seen 2026-12-01, written before entries had one
    baseline = base({A: "passed", F: "passed"}, flaky={F: legacy})
    reruns = {F: evidence(passed=1, runs=1, expires=None)}
    result = run({A: "passed", F: "failed"})
    week = Policy(quarantine_days=7)
    live = compare(baseline, result, week, reruns, now="2026-12-07T23:59:59+00:00")
    assert live.quarantined_failures == [F]
    gone = compare(baseline, result, week, reruns, now="2026-12-08T00:00:00+00:00")
    assert gone.expired_quarantine == [F]
    unknown = base({A: "passed", F: "passed"}, flaky={F: {"passed": 1, "runs": 3}})
    assert compare(unknown, result, QUARANTINE, reruns).expired_quarantine == [F]


@pytest.mark.parametrize("automated", [False, True], ids=["person", "automated"])
def test_a_test_new_in_the_candidate_is_never_excused_as_flaky(automated: bool) -> None:
    new = "tests/test_m.py::test_new"
    baseline = base({A: "passed", F: "passed"}, flaky={F: evidence(1), new: evidence(1)})
    result = run({A: "passed", F: "passed", new: "failed"})
    assert new not in suspects(baseline, result, QUARANTINE)  # never re-run
    # Even with evidence that it passes on a re-run, and an entry of the same name.
    reruns = {new: evidence(passed=1, runs=1, expires=None)}
    comparison = compare(baseline, result, QUARANTINE, reruns, automated=automated)
    assert [r.nodeid for r in comparison.new_failing] == [new]
    assert comparison.flaky == {} and comparison.quarantined_failures == []
    advanced = advance(baseline, result, comparison, "c1", "t1", SEEN)
    assert advanced.tests[new] == "failed"  # recorded as it is: not passing
    assert new not in advanced.passing()


def test_quarantined_test_that_fails_is_a_regression_under_strict() -> None:
    baseline = base({A: "passed", F: "passed"}, flaky={F: evidence(1)})
    comparison = compare(baseline, run({A: "passed", F: "failed"}), STRICT, {})
    assert [r.nodeid for r in comparison.regressions] == [F]
    assert comparison.quarantined_failures == []


@pytest.mark.parametrize("policy", [QUARANTINE, STRICT], ids=["quarantine", "strict"])
def test_quarantined_test_that_goes_missing_is_always_a_regression(policy: Policy) -> None:
    baseline = base({A: "passed", F: "passed"}, flaky={F: evidence(1)})
    comparison = compare(baseline, run({A: "passed"}), policy, {})
    assert [(r.nodeid, r.now) for r in comparison.regressions] == [(F, MISSING)]
    assert comparison.quarantined_failures == []


@pytest.mark.parametrize("now", ["skipped", "xfailed", "xpassed"])
def test_quarantine_does_not_excuse_a_test_hidden_by_a_marker(now: str) -> None:
    baseline = base({A: "passed", F: "passed"}, flaky={F: evidence(1)})
    comparison = compare(baseline, run({A: "passed", F: now}), QUARANTINE, {})
    assert [(r.nodeid, r.now) for r in comparison.regressions] == [(F, now)]
    assert comparison.quarantined_failures == []


def test_rerun_evidence_never_excuses_a_missing_test() -> None:
    baseline = base({A: "passed", B: "passed"})
    comparison = compare(baseline, run({B: "passed"}), QUARANTINE, {A: evidence(passed=1)})
    assert [(r.nodeid, r.now) for r in comparison.regressions] == [(A, MISSING)]
    assert comparison.flaky == {}


def test_rerun_that_passes_makes_a_test_flaky_under_quarantine() -> None:
    baseline = base({A: "passed", B: "passed"})
    reruns = {A: evidence(passed=1)}
    comparison = compare(baseline, run({A: "failed", B: "passed"}), QUARANTINE, reruns)
    assert comparison.regressions == []
    assert comparison.flaky == {A: reruns[A]}
    assert comparison.accepted(require_improvement=False)


def test_rerun_that_passes_is_still_a_regression_under_strict() -> None:
    baseline = base({A: "passed", B: "passed"})
    reruns = {A: evidence(passed=2)}
    comparison = compare(baseline, run({A: "failed", B: "passed"}), STRICT, reruns)
    assert [r.nodeid for r in comparison.regressions] == [A]
    assert comparison.flaky == {A: reruns[A]}


@pytest.mark.parametrize("policy", [QUARANTINE, STRICT], ids=["quarantine", "strict"])
def test_rerun_that_never_passes_is_a_regression(policy: Policy) -> None:
    baseline = base({A: "passed"})
    comparison = compare(baseline, run({A: "failed"}), policy, {A: evidence(passed=0)})
    assert [r.nodeid for r in comparison.regressions] == [A]
    assert comparison.flaky == {}


# --- suspects ------------------------------------------------------------------------


def test_suspects_are_rerunnable_failures_of_baseline_passing_tests() -> None:
    baseline = base(
        {
            "t::failed": "passed",
            "t::error": "passed",
            "t::rerun": "passed",
            "t::skipped": "passed",
            "t::xfailed": "passed",
            "t::xpassed": "passed",
            "t::missing": "passed",
            "t::ok": "passed",
            "t::was_failing": "failed",
            F: "passed",
        },
        flaky={F: evidence(1)},
    )
    result = run(
        {
            "t::failed": "failed",
            "t::error": "error",
            "t::rerun": "rerun",
            "t::skipped": "skipped",
            "t::xfailed": "xfailed",
            "t::xpassed": "xpassed",
            "t::ok": "passed",
            "t::was_failing": "failed",
            "t::new_failing": "failed",
            F: "failed",
        }
    )
    # A quarantined test is re-run like any other: only a pass shows it is still flaky.
    assert suspects(baseline, result, QUARANTINE) == sorted(
        ["t::error", "t::failed", "t::rerun", F]
    )
    assert suspects(baseline, result, STRICT) == sorted(["t::error", "t::failed", "t::rerun", F])


# --- advance -------------------------------------------------------------------------


def test_advance_keeps_passing_tests_merges_flaky_and_drops_vanished() -> None:
    old = base(
        {A: "passed", B: "failed", F: "passed", OLD_FAIL: "failed", C: "passed"},
        flaky={F: evidence(1)},
    )
    result = run({A: "failed", B: "passed", F: "failed", C: "passed", "t::new": "skipped"})
    reruns = {A: evidence(passed=1, expires=None), F: evidence(passed=1, expires=None)}
    comparison = compare(old, result, QUARANTINE, reruns)
    assert comparison.regressions == []
    new = advance(old, result, comparison, "c1", "t1", "2024-01-02T00:00:00+00:00")
    assert new.tests == {
        A: "passed",  # flaky this time: still protected
        B: "passed",  # newly passing
        F: "passed",  # quarantined failure: still protected
        C: "passed",
        "t::new": "skipped",
    }
    assert OLD_FAIL not in new.tests  # vanished and never passed
    # F keeps its entry (and its expiry); A enters the quarantine, expiring in 30 days.
    assert new.flaky == {
        F: evidence(1),
        A: evidence(passed=1, expires="2024-02-01T00:00:00+00:00"),
    }
    assert (new.commit, new.tree, new.recorded_at) == ("c1", "t1", "2024-01-02T00:00:00+00:00")
    assert old.passing() <= new.passing()
    assert new.passing() == {A, B, F, C}


# --- property: an accepted run never shrinks the ratchet ----------------------------

NODE_IDS = [f"tests/test_p.py::test_{i}" for i in range(8)]
OUTCOME_LIST = sorted(OUTCOMES)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Baseline, RunResult, Policy, dict[str, dict[str, Any]]]:
    old_ids = draw(st.lists(st.sampled_from(NODE_IDS), unique=True, max_size=len(NODE_IDS)))
    # Bias towards "passed" so that accepted runs are common.
    outcome = st.one_of(st.just("passed"), st.sampled_from(OUTCOME_LIST))
    tests = {nodeid: draw(outcome) for nodeid in old_ids}
    passing = sorted(n for n, o in tests.items() if o == "passed")
    flaky_ids = draw(st.lists(st.sampled_from(passing), unique=True)) if passing else []
    flaky = {nodeid: evidence(1) for nodeid in flaky_ids}
    new_ids = draw(st.lists(st.sampled_from(NODE_IDS), unique=True, max_size=len(NODE_IDS)))
    outcomes = {nodeid: draw(outcome) for nodeid in new_ids}
    policy = draw(st.sampled_from([QUARANTINE, STRICT, IMPROVE]))
    baseline, result = base(tests, flaky), run(outcomes)
    # As in the gate: re-run evidence exists only for the suspects of this very run.
    reruns = {
        nodeid: evidence(draw(st.integers(0, 2)), runs=2)
        for nodeid in suspects(baseline, result, policy)
    }
    return baseline, result, policy, reruns


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(scenarios())
def test_advance_after_an_accepted_compare_never_loses_a_passing_test(
    scenario: tuple[Baseline, RunResult, Policy, dict[str, dict[str, Any]]],
) -> None:
    old, result, policy, reruns = scenario
    comparison = compare(old, result, policy, reruns, now=SEEN)
    assume(not comparison.regressions)
    new = advance(old, result, comparison, "c1", "t1", SEEN)
    assert old.passing() <= new.passing()
    # Everything that passed in the run is protected from now on, too.
    assert {n for n, o in result.outcomes.items() if o == "passed"} <= new.passing()
    # No baseline-passing test was absent or non-passing without an excuse.
    for nodeid in old.passing():
        now = result.outcomes.get(nodeid, MISSING)
        assert now != MISSING
        if now != "passed":
            assert nodeid in comparison.quarantined_failures or nodeid in comparison.flaky


def test_advance_drops_expired_quarantine_entries_and_keeps_the_live_ones() -> None:
    stale = "tests/test_m.py::test_stale"
    old = base(
        {A: "passed", F: "passed", stale: "passed"},
        flaky={F: evidence(1), stale: evidence(1, expires="2026-12-05T00:00:00+00:00")},
    )
    result = run({A: "passed", F: "passed", stale: "passed"})
    comparison = compare(old, result, QUARANTINE, {}, now="2026-12-06T00:00:00+00:00")
    new = advance(old, result, comparison, "c1", "t1", "2026-12-06T00:00:00+00:00")
    assert new.flaky == {F: evidence(1)}
    assert new.passing() == {A, F, stale}
