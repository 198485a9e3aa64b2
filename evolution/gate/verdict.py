"""The verdict pipeline: how the gate, the pending-merge check and the safety net judge
a tree, written once.

1. The pre-test checks (`evolution.gate.checks`). A refusal ends the trial before any
   test runs, unless the caller settles it: the safety net reverts the refused commits
   and names the commit to judge instead.
2. The isolation (`evolution.sandbox.isolation.choose`), chosen only once the checks
   pass: a candidate refused outright never needs a sandbox, and never fails for the
   lack of one.
3. The judging: the gate's own earlier run of the same tree (the verdict cache), else
   the staged first stage that may only reject, then the full suite with its suspects
   re-run, compared with the baseline by the ratchet rule (`evolution.ratchet`).

A suite split across CI jobs (`evolve check --shard`, `--combine`) goes the same way: a
part is a trial of the same commit that runs only its share of the suite and is held to
the baseline's tests in that share (`Split`); the parts, once verified, are judged
together by `judge_combined`, after the same pre-test checks.

What a caller does with the verdict (land it, answer git's hook, revert a culprit) is
the caller's; how a tree is judged is not, so that the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evolution.baseline import Baseline
from evolution.gate import staged, testmap
from evolution.gate.checks import PRE_TEST_CHECKS, Candidate, Refusal, first_refusal
from evolution.gate.staged import FirstStage, Rejection, run_first
from evolution.gate.verdict_cache import VerdictCache, cache_key, environment_digest
from evolution.gitrepo import GitRepo
from evolution.policy import Policy
from evolution.ratchet import Comparison, advance, compare, to_confirm
from evolution.run.flaky import rerun_suspects
from evolution.run.folder import RunFolder
from evolution.run.launch import MapRequest, ProgressCallback
from evolution.run.report import RunResult
from evolution.run.shards import Installments, run_suite
from evolution.run.split import owner_of, run_part
from evolution.sandbox.isolation import Isolation, choose

SuspectPicker = Callable[[RunResult], list[str]]
# What a caller does with a refusal instead of stopping: the commit to judge in its place.
Settle = Callable[[Refusal], str]


@dataclass(frozen=True)
class Trial:
    """What judging one candidate needs: the candidate the checks see, the baseline it is
    held to, and how to run it. One object instead of a long parameter list, so that the
    three callers say what differs between them and nothing else.

    The tested commit is `commit` when it exists (the safety net tests main's own
    commits), else one written after the checks pass from the candidate's tree on
    `parents` (a merge that may never be recorded: the gate's, the hook's)."""

    candidate: Candidate
    baseline: Baseline
    baseline_blob: str  # the baseline's blob id: part of the verdict cache's key
    when: str  # the gate's timestamp: quarantine expiry, re-run evidence
    commit: str = ""
    parents: tuple[str, ...] = ()
    message: str = ""
    unsandboxed: bool = False  # an automated proposal may run without a sandbox
    progress: ProgressCallback | None = None
    # Without it a due map is not collected: the safety net's run is on every tick's
    # critical path, and a map costs a multiple of a bare run (the gate refreshes it).
    refresh_map: bool = True
    # With it (`time.monotonic()`), a full run expected to miss it goes in installments
    # kept across calls (`evolution.run.shards.Unfinished` until the last part has run).
    deadline: float | None = None
    checks: tuple[str, ...] = PRE_TEST_CHECKS  # () when the refusals were settled before
    split: Split | None = None  # run only this part of the suite (no cache, no stages)


@dataclass(frozen=True)
class Split:
    """Part `index` (from 0) of `count` of a suite split across machines, by `plan`."""

    index: int
    count: int
    plan: dict[str, int]

    def owns(self, nodeid: str) -> bool:
        return owner_of(self.plan, self.count, nodeid) == self.index


@dataclass(frozen=True)
class Refused:
    """A pre-test check refused the candidate: no test ran."""

    refusal: Refusal


@dataclass(frozen=True)
class Judged:
    """A tree tested and compared with the baseline (an invalid run raises instead: it
    is never a verdict)."""

    commit: str
    tree: str
    isolation: Isolation
    result: RunResult
    comparison: Comparison
    reason: str  # why the ratchet rule (under the policy's) rejects it; "" when it accepts
    cached: bool
    cache_ignored: list[str] = field(default_factory=list)  # forged entries seen, removed
    stage: str = "full"  # which stage decided: "first", "full" or "cached"
    first_tests: int = 0  # how many tests the first stage ran (0: there was none)
    test_map: str = ""  # the map's state, described
    reruns: dict[str, dict[str, Any]] = field(default_factory=dict)  # a part's, a combine's

    @property
    def accepted(self) -> bool:
        return not self.reason


Verdict = Refused | Judged


def advanced(trial: Trial, judged: Judged) -> Baseline:
    """The baseline an accepted verdict leaves: the ratchet's advance over the trial's
    baseline, its quarantine kept for the policy's days. The gate commits it; a check
    hands it to whoever advances the shared baseline after the queue merges."""
    return advance(trial.baseline, judged.result, judged.comparison, judged.commit,
                   judged.tree, trial.when, trial.candidate.policy.quarantine_days)  # fmt: skip


def judge_candidate(trial: Trial, settle: Settle | None = None) -> Verdict:
    """Refusal checks, then the isolation, then the judging of `trial`. Without `settle`
    a refusal is the verdict; with it, the commit it returns is judged instead."""
    candidate = trial.candidate
    commit = trial.commit
    refusal = first_refusal(candidate, trial.checks)
    if refusal is not None:
        if settle is None:
            return Refused(refusal)
        commit = settle(refusal)
    isolation = choose(candidate.policy, automated=candidate.automated,
                       unsandboxed=trial.unsandboxed)  # fmt: skip
    repo = candidate.repo
    if commit:
        tree = repo.tree_of(commit)
    else:
        assert candidate.tree is not None  # the clean-merge check refuses a conflicted one
        tree = candidate.tree
        commit = repo.commit_tree(tree, trial.parents, trial.message)
    return _judge(trial, commit, tree, isolation)


def _judge(trial: Trial, commit: str, tree: str, isolation: Isolation) -> Judged:
    """Reuse the gate's own run of `tree`, or test it (first stage, then the full suite),
    and compare the outcome with the baseline; an automated proposal's new flakiness is
    never excused."""
    candidate, baseline = trial.candidate, trial.baseline
    repo, policy, automated = candidate.repo, candidate.policy, candidate.automated
    if trial.split is not None:
        return _judge_part(trial, trial.split, commit, tree, isolation)
    key = cache_key(
        tree, trial.baseline_blob, policy.digest(), environment_digest(isolation.cache_tag)
    )
    cache = VerdictCache(repo.state_dir)

    def confirming(result: RunResult) -> list[str]:
        return to_confirm(baseline, result, policy, automated=automated, now=trial.when)

    def verdict(result: RunResult, comparison: Comparison, **how: Any) -> Judged:
        return Judged(commit, tree, isolation, result, comparison,
                      comparison.rejection(policy.require_improvement),
                      cache_ignored=list(cache.ignored), **how)  # fmt: skip

    cached = cache.get(key)
    # An entry whose re-runs this trial needs were not made (an automated proposal's
    # run of the tree a person now proposes) is not this trial's verdict: run anew.
    if cached is not None and set(confirming(cached[0])) <= cached[1].keys():
        result, reruns = cached
        comparison = compare(baseline, result, policy, reruns, automated=automated,
                             now=trial.when)  # fmt: skip
        return verdict(result, comparison, cached=True, stage="cached")
    state = testmap.state(repo, commit)
    first = staged.plan(repo, commit, baseline, state, automated) if policy.staged else None
    refresh = testmap.refresh(repo, state, commit) if state.refresh and trial.refresh_map else None
    tried = run_trial(
        repo, commit, tree, policy, isolation, trial.when, confirming, trial.progress,
        first=first, with_map=refresh.request if refresh else None,
        installments=None if trial.deadline is None
        else Installments(cache, key, trial.deadline),
    )  # fmt: skip
    described = state.describe()
    first_tests = len(first.tests) if first is not None else 0
    if tried.early is not None:
        return verdict(tried.result, tried.early.comparison, cached=False, stage="first",
                       first_tests=first_tests, test_map=described)  # fmt: skip
    result, reruns = tried.result, tried.reruns
    cache.put(key, result, reruns)
    comparison = compare(baseline, result, policy, reruns, automated=automated, now=trial.when)
    updated = refresh.updated(result.covers, commit, set(result.outcomes), trial.when) \
        if refresh is not None and not comparison.regressions else None
    if updated is not None:
        testmap.save(repo, updated)
        described += "; refreshed by this run"
    return verdict(result, comparison, cached=False, stage="full", first_tests=first_tests,
                   test_map=described)  # fmt: skip


def _judge_part(trial: Trial, split: Split, commit: str, tree: str,
                isolation: Isolation) -> Judged:  # fmt: skip
    """One part of the suite, its suspects re-run, compared with the baseline's tests
    in that part: a part's own verdict, which can only be narrower than the whole's."""
    candidate = trial.candidate
    repo, policy = candidate.repo, candidate.policy
    baseline = trial.baseline.only(n for n in trial.baseline.tests if split.owns(n))
    with RunFolder(repo, commit) as folder:
        result = run_part(policy, folder, isolation, split.index, split.count, split.plan,
                          trial.progress)  # fmt: skip
        picked = to_confirm(baseline, result, policy, automated=candidate.automated,
                            now=trial.when)  # fmt: skip
        reruns = rerun_suspects(policy, folder, isolation, picked, result, tree, trial.when)
    comparison = compare(baseline, result, policy, reruns, automated=candidate.automated,
                         now=trial.when)  # fmt: skip
    return Judged(commit, tree, isolation, result, comparison,
                  comparison.rejection(policy.require_improvement), cached=False,
                  stage="part", reruns=reruns)  # fmt: skip


def judge_combined(trial: Trial, result: RunResult, reruns: dict[str, dict[str, Any]],
                   isolation: Isolation) -> Verdict:  # fmt: skip
    """The verdict on `trial.commit` from its parts' results, verified and merged by the
    caller (`evolution.gate.check.combine`), which ran under `isolation`: the same
    pre-test checks, then the ratchet rule on the whole. No test runs here."""
    candidate = trial.candidate
    refusal = first_refusal(candidate, trial.checks)
    if refusal is not None:
        return Refused(refusal)
    policy = candidate.policy
    comparison = compare(trial.baseline, result, policy, reruns, automated=candidate.automated,
                         now=trial.when)  # fmt: skip
    return Judged(trial.commit, candidate.repo.tree_of(trial.commit), isolation, result,
                  comparison, comparison.rejection(policy.require_improvement), cached=False,
                  stage="combined", reruns=reruns)  # fmt: skip


@dataclass
class TrialRun:
    """One test run of a commit and the re-runs of its suspects."""

    result: RunResult
    reruns: dict[str, dict[str, Any]]
    early: Rejection | None = None  # the first stage rejected: `result` is only its run


def run_trial(
    repo: GitRepo,
    commit: str,
    tree: str,
    policy: Policy,
    isolation: Isolation,
    when: str,
    pick_suspects: SuspectPicker,
    progress: ProgressCallback | None = None,
    *,
    first: FirstStage | None = None,
    with_map: MapRequest | None = None,
    installments: Installments | None = None,
) -> TrialRun:
    """Test `commit` in a fresh run folder (the first stage's tests first, when given),
    then re-run the suspects the caller picks; with `installments`, maybe in parts over
    several calls. The pipeline's run, and the one `evolve baseline record` makes."""
    with RunFolder(repo, commit) as folder:
        if first is not None:
            early = run_first(policy, folder, isolation, first, tree, when)
            if early is not None:
                return TrialRun(early.result, early.reruns, early)
        result = run_suite(repo, policy, folder, isolation, progress=progress,
                           with_map=with_map, installments=installments)  # fmt: skip
        picked = pick_suspects(result)
        reruns = rerun_suspects(policy, folder, isolation, picked, result, tree, when)
    return TrialRun(result, reruns)
