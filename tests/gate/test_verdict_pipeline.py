"""The verdict pipeline (`evolution.gate.verdict`): one way to judge a tree, for the gate,
the pending-merge check and the safety net.

Each caller's paths through it, in this process against real repositories and real
sandboxed pytest runs: a refusal (no test runs), an invalid run (never a verdict,
nothing changes), an accepted and a rejected candidate, and a lost race on main (a value
the caller acts on, never a word in a report). Main is moved mid-run by a person's
commit made from the progress callback: a real race, nothing of the gate mocked.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from repo_setup import BROKEN_ADD, CALC_TESTS, FIXED_CALC, Sandbox

from agent.errors import EnvironmentFailure, InvalidRun
from evolution.baseline import Baseline, require_baseline
from evolution.gate.checks import Candidate, Refusal, proposal_paths
from evolution.gate.landing import LostRace
from evolution.gate.safety_net import post_merge
from evolution.gate.validate import GateOptions, GateReport, _attempt, validate
from evolution.gate.validate import validate_pending_merge as pending
from evolution.gate.verdict import Judged, Refused, Trial, judge_candidate
from evolution.gitrepo import GitRepo
from evolution.policy import Policy, load_policy
from evolution.ratchet import Comparison, Regression, lost, record_suspects, recorded
from evolution.run.launch import Progress
from evolution.run.report import RunResult

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

MUL = "tests/test_calc.py::test_mul"
ADD = "tests/test_calc.py::test_add"
# A suite that dies while pytest loads it: no report, so no verdict (invariant 4).
DIES = {"tests/conftest.py": "import os\n\nos._exit(3)\n"}
# An automated proposal may not touch the tests (invariant 5).
CHEATS = {"tests/test_calc.py": CALC_TESTS.replace("== 12", "== 7")}


def trial_of(box: Sandbox, branch: str) -> Trial:
    """What the gate builds for `branch` merged into main."""
    repo = GitRepo(box.path)
    main, tip = box.head(), box.head(branch)
    policy = load_policy(repo, main)
    baseline, blob = require_baseline(repo, main)
    automated, paths = proposal_paths(repo, main, tip)
    tree, conflicts = repo.merge_tree(main, tip)
    candidate = Candidate(repo, main, tree, policy, automated, paths, conflicts)
    return Trial(candidate, baseline, blob, "2030-01-01T00:00:00+00:00", parents=(main, tip),
                 message=f"Merge {branch}")  # fmt: skip


def person_commits_once(
    box: Sandbox, note: str = "hello"
) -> tuple[Callable[[Progress], None], list[str]]:
    """A progress callback that has a person commit `note` to main the first time the
    run reports, and the list that then holds the commit."""
    moved: list[str] = []

    def progress(_state: Progress) -> None:
        if not moved:
            moved.append(box.commit("a person commits meanwhile", {"NOTES.md": note + "\n"}))

    return progress, moved


# -- the pipeline itself -------------------------------------------------------------------


def test_a_refusal_is_the_verdict_and_nothing_is_tested(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/cheat", CHEATS, proposal=True)
    runs = GitRepo(sandbox.path).state_dir / "runs"
    before = sorted(runs.iterdir()) if runs.exists() else []

    verdict = judge_candidate(trial_of(sandbox, "evolve/cheat"))

    assert isinstance(verdict, Refused)
    assert verdict.refusal.protected_paths == ["tests/test_calc.py"]
    assert (sorted(runs.iterdir()) if runs.exists() else []) == before


def test_a_settled_refusal_has_the_commit_the_caller_names_judged(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/cheat", CHEATS, proposal=True)
    settled: list[Refusal] = []

    def settle(refusal: Refusal) -> str:
        settled.append(refusal)
        return sandbox.head()  # main as it is: what is left once the refusal is undone

    verdict = judge_candidate(trial_of(sandbox, "evolve/cheat"), settle)

    assert [r.protected_paths for r in settled] == [["tests/test_calc.py"]]
    assert isinstance(verdict, Judged)
    assert verdict.commit == sandbox.head()
    assert verdict.comparison.newly_passing == [] and verdict.comparison.regressions == []
    assert (verdict.accepted, verdict.reason) == (True, "")  # no improvement required


def test_an_accepted_merge_is_tested_as_a_new_commit_and_cached(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    trial = trial_of(sandbox, "evolve/fix")

    first = judge_candidate(trial)
    again = judge_candidate(trial)

    assert isinstance(first, Judged) and isinstance(again, Judged)
    assert first.accepted and first.reason == "" and first.comparison.newly_passing == [MUL]
    parents = sandbox.git("rev-list", "--parents", "-1", first.commit).split()[1:]
    assert parents == [sandbox.head(), sandbox.head("evolve/fix")]
    assert first.tree == trial.candidate.tree
    assert (first.cached, first.stage) == (False, "full")
    assert (again.cached, again.stage, again.accepted) == (True, "cached", True)


def test_a_regression_is_rejected_with_the_rules_words(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/break", {"scripts/calc.py": BROKEN_ADD}, proposal=True)

    verdict = judge_candidate(trial_of(sandbox, "evolve/break"))

    assert isinstance(verdict, Judged) and not verdict.accepted
    assert [r.nodeid for r in verdict.comparison.regressions] == [ADD]
    assert verdict.reason == "1 baseline-passing test(s) regressed"


def test_an_invalid_run_is_never_a_verdict(sandbox: Sandbox) -> None:
    sandbox.branch("dies", DIES)
    with pytest.raises(InvalidRun):
        judge_candidate(trial_of(sandbox, "dies"))


# -- the gate: evolve validate ---------------------------------------------------------------


def test_the_gate_archives_a_refused_proposal_untested(sandbox: Sandbox) -> None:
    main = sandbox.head()
    sandbox.branch("evolve/cheat", CHEATS, proposal=True)

    report = validate(GitRepo(sandbox.path), GateOptions(branch="evolve/cheat"))

    assert (report.verdict, report.exit_code, report.tests_run) == ("rejected", 1, 0)
    assert report.protected_paths == ["tests/test_calc.py"] and report.merge_commit == ""
    assert report.archived_as.startswith("refs/evolve/rejected/")
    assert sandbox.head() == main


def test_the_gate_lands_an_accepted_proposal(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)

    report = validate(GitRepo(sandbox.path), GateOptions(branch="evolve/fix"))

    assert (report.verdict, report.merged, report.attempts) == ("accepted", True, 1)
    assert report.exit_code == 0
    assert (report.passing_before, report.passing_after) == (2, 3)
    assert sandbox.head() == report.main_after
    assert sandbox.git("rev-parse", "main^") == report.merge_commit


def test_the_gate_rejects_a_regression_and_keeps_it(sandbox: Sandbox) -> None:
    main = sandbox.head()
    sandbox.branch("evolve/break", {"scripts/calc.py": BROKEN_ADD}, proposal=True)

    report = validate(GitRepo(sandbox.path), GateOptions(branch="evolve/break"))

    assert (report.verdict, report.reason) == ("rejected", "1 baseline-passing test(s) regressed")
    assert report.archived_as and sandbox.head() == main


def test_the_gate_changes_nothing_on_an_invalid_run(sandbox: Sandbox) -> None:
    main = sandbox.head()
    sandbox.branch("dies", DIES)

    with pytest.raises(InvalidRun):
        validate(GitRepo(sandbox.path), GateOptions(branch="dies"))

    assert sandbox.head() == main
    assert sandbox.git("for-each-ref", "refs/evolve/rejected/") == ""


def test_a_lost_race_is_a_value_and_the_gate_judges_again_on_the_new_main(
    sandbox: Sandbox,
) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    main = sandbox.head()
    progress, moved = person_commits_once(sandbox)

    lost = _attempt(GitRepo(sandbox.path), GateOptions(branch="evolve/fix", progress=progress))

    assert lost == LostRace("refs/heads/main", main)
    assert sandbox.head() == moved[0]  # the person's commit stands

    progress, moved = person_commits_once(sandbox, "hello again")
    report = validate(GitRepo(sandbox.path), GateOptions(branch="evolve/fix", progress=progress))

    assert isinstance(report, GateReport)
    assert (report.verdict, report.merged, report.attempts) == ("accepted", True, 2)
    assert report.main_before == moved[0] and report.reason == ""
    assert sandbox.git("merge-base", "--is-ancestor", moved[0], "main", check=False) == ""


# -- the pending-merge check (pre-merge-commit) ------------------------------------------


def merging(box: Sandbox, branch: str) -> None:
    """A merge git has prepared and not yet recorded, as the hook sees it."""
    box.git("merge", "--no-ff", "--no-commit", branch, check=False)
    assert (box.path / ".git" / "MERGE_HEAD").exists()


def test_the_pending_merge_check_refuses_a_proposal_untested(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/cheat", CHEATS, proposal=True)
    merging(sandbox, "evolve/cheat")

    report = pending(GitRepo(sandbox.path))

    assert (report.verdict, report.tests_run, report.merge_commit) == ("rejected", 0, "")
    assert report.protected_paths == ["tests/test_calc.py"]


def test_the_pending_merge_check_accepts_and_writes_nothing(sandbox: Sandbox) -> None:
    main = sandbox.head()
    sandbox.branch("fix", {"scripts/calc.py": FIXED_CALC})
    merging(sandbox, "fix")

    report = pending(GitRepo(sandbox.path))

    assert (report.verdict, report.exit_code, report.reason) == ("accepted", 0, "")
    assert report.comparison is not None and report.comparison.newly_passing == [MUL]
    assert report.tested_tree == sandbox.git("write-tree") and sandbox.head() == main


def test_the_pending_merge_check_rejects_a_regression(sandbox: Sandbox) -> None:
    sandbox.branch("break", {"scripts/calc.py": BROKEN_ADD})
    merging(sandbox, "break")

    report = pending(GitRepo(sandbox.path))

    assert (report.verdict, report.exit_code) == ("rejected", 1)
    assert report.reason == "1 baseline-passing test(s) regressed"


def test_the_pending_merge_check_gives_no_verdict_on_an_invalid_run(sandbox: Sandbox) -> None:
    sandbox.branch("dies", DIES)
    merging(sandbox, "dies")
    with pytest.raises(InvalidRun):
        pending(GitRepo(sandbox.path))


# -- the safety net (post-merge) ---------------------------------------------------------


def proposal_on_main(box: Sandbox, files: dict[str, str]) -> str:
    """An automated proposal that reached main without the gate."""
    return box.commit("evolve: x\n\nEvolve-Proposal: x\nEvolve-Proposer: test", files)


def test_the_safety_net_reverts_a_refused_proposal_untested(sandbox: Sandbox) -> None:
    cheat = proposal_on_main(sandbox, CHEATS)

    report = post_merge(GitRepo(sandbox.path))

    assert (report.status, report.reverted) == ("reverted", [cheat])
    assert "protected" in report.refused
    assert report.regressions == []  # judged after the revert: nothing left failing
    assert sandbox.head() == report.revert_commit


def test_the_safety_net_validates_a_good_commit(sandbox: Sandbox) -> None:
    good = sandbox.commit("a person fixes mul", {"scripts/calc.py": FIXED_CALC})

    report = post_merge(GitRepo(sandbox.path))

    assert (report.status, report.exit_code, report.head) == ("passing", 0, good)
    assert "validated" in sandbox.git("notes", "--ref=evolve", "show", good)


def test_the_safety_net_reverts_a_regressing_proposal(sandbox: Sandbox) -> None:
    broke = proposal_on_main(sandbox, {"scripts/calc.py": BROKEN_ADD})

    report = post_merge(GitRepo(sandbox.path))

    assert (report.status, report.reverted, report.still_failing) == ("reverted", [broke], [])
    assert [r["nodeid"] for r in report.regressions] == [ADD]


def test_the_safety_net_changes_nothing_on_an_invalid_run(sandbox: Sandbox) -> None:
    head = sandbox.commit("a person's suite that dies", DIES)
    with pytest.raises(InvalidRun):
        post_merge(GitRepo(sandbox.path))
    assert sandbox.head() == head
    assert sandbox.git("notes", "--ref=evolve", "list", head, check=False) == ""


def test_the_safety_net_never_reverts_over_a_main_that_moved(sandbox: Sandbox) -> None:
    proposal_on_main(sandbox, {"scripts/calc.py": BROKEN_ADD})
    progress, moved = person_commits_once(sandbox)

    with pytest.raises(EnvironmentFailure, match="main moved"):
        post_merge(GitRepo(sandbox.path), progress=progress)

    assert sandbox.head() == moved[0]  # the person's commit stands; no revert over it


# -- the ratchet rule a recording uses (pure: evolution.ratchet) ---------------------------

NOW = "2030-01-01T00:00:00+00:00"


def test_a_recording_quarantines_a_test_that_passed_on_re_run_unless_strict() -> None:
    run = RunResult(outcomes={ADD: "failed", MUL: "passed", "t::gone": "error"})
    reruns = {ADD: {"passed": 1, "runs": 2, "first_failure": "boom"}}
    assert record_suspects(run) == sorted([ADD, "t::gone"])

    kept = recorded(None, run, reruns, Policy(), "c1", "t1", NOW)
    strict = recorded(None, run, reruns, Policy(flaky="strict"), "c1", "t1", NOW)

    assert kept.tests[ADD] == "passed" and list(kept.flaky) == [ADD]
    assert (strict.tests[ADD], strict.flaky) == ("failed", {})


def test_a_recording_keeps_live_entries_only_while_their_tests_pass() -> None:
    entry = {"passed": 1, "runs": 2, "expires": "9999-12-31T00:00:00+00:00"}
    previous = Baseline("c0", "t0", NOW, {ADD: "passed", MUL: "passed"}, {ADD: entry, MUL: entry})
    run = RunResult(outcomes={ADD: "passed", MUL: "failed"})

    new = recorded(previous, run, {}, Policy(), "c1", "t1", NOW)

    assert list(new.flaky) == [ADD]
    assert lost(previous, new) == [MUL]
    assert lost(None, new) == []


def test_the_rules_words_for_a_rejection() -> None:
    regressed = Comparison(regressions=[Regression(ADD, "passed", "failed", "boom", "boom")])
    assert regressed.rejection(False) == "1 baseline-passing test(s) regressed"
    assert Comparison().rejection(True) == (
        "no newly passing test, and the policy requires an improvement"
    )
    assert Comparison().rejection(False) == "" == Comparison(newly_passing=[MUL]).rejection(True)
