"""`evolve validate`: the pre-merge gate.

The "not rocket science" rule: test the merge result, not the branch, and move main to
exactly the commit that was tested. The merge is built with plumbing (merge-tree and
commit-tree), put through the pre-test checks (`evolution.gate.checks`), judged in the
sandbox against the baseline read from main's commit (`evolution.gate.verdict`), and main is
moved by a compare-and-swap ref update. If main moved meanwhile (a `LostRace`),
everything is done again on the new main.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from agent.clock import timestamp
from agent.errors import EnvironmentFailure, UsageError
from evolution.baseline import BASELINE_PATH, REF, Baseline, require_baseline
from evolution.gate.behaviour import check as check_behaviour
from evolution.gate.checks import Candidate, Refusal, proposal_paths
from evolution.gate.landing import LostRace, land
from evolution.gate.lock import exclusive
from evolution.gate.shared import advance_shared
from evolution.gate.verdict import Judged, Refused, Trial, advanced, judge_candidate
from evolution.gitrepo import GitRepo, slug
from evolution.policy import load_policy
from evolution.ratchet import Comparison
from evolution.run.launch import ProgressCallback
from evolution.trail import format as t
from evolution.trail.write import gate_commit_message, rejection_note

ENGINE_BRANCH_PREFIX = "evolve/"
MAX_ATTEMPTS = 5


@dataclass
class GateOptions:
    branch: str
    main: str | None = None
    merge: bool = True
    wait: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    progress: ProgressCallback | None = None
    unsandboxed: bool = False  # run an automated proposal's tests without a sandbox


@dataclass
class GateReport:
    verdict: str  # accepted | rejected | up-to-date | skipped
    branch: str
    proposal: str
    reason: str = ""
    merged: bool = False
    cached: bool = False
    main_before: str = ""
    main_after: str = ""
    merge_commit: str = ""
    tested_tree: str = ""
    tests_run: int = 0
    passed: int = 0
    passing_before: int = 0
    passing_after: int = 0
    comparison: Comparison | None = None
    archived_as: str = ""
    protected_paths: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    guard: list[str] = field(default_factory=list)  # the static guard's findings
    sandbox: str = ""  # the isolation the tests ran in
    cache_ignored: list[str] = field(default_factory=list)  # forged cache entries seen
    stage: str = ""  # what decided: "first" (the tests tied to the change), "full", "cached"
    first_tests: int = 0  # how many tests the first stage ran (0: none)
    test_map: str = ""  # the map from files to tests the first stage came from
    behaviour: dict[str, Any] = field(default_factory=dict)  # the replay's evidence
    duration_s: float = 0.0
    attempts: int = 1

    @property
    def exit_code(self) -> int:
        if self.verdict == "accepted":
            return 0 if self.merged or self.reason == "" else 1
        return 0 if self.verdict in ("up-to-date", "skipped") else 1

    def to_json(self) -> dict[str, Any]:
        data = {key: value for key, value in self.__dict__.items() if key != "comparison"}
        comparison = self.comparison.to_json() if self.comparison else Comparison().to_json()
        data.update(comparison)
        data["exit_code"] = self.exit_code
        return data


def proposal_id(repo: GitRepo, branch: str, tip: str) -> str:
    """The proposer's id when the tip carries one, else a name derived from the branch."""
    found = repo.trailers(tip).get(t.PROPOSAL)
    if found:
        return found[-1]
    return slug(branch.removeprefix(ENGINE_BRANCH_PREFIX), limit=60) + f"-{tip[:8]}"


def archive_rejection(repo: GitRepo, branch: str, tip: str, proposal: str, note: str) -> str:
    """Keep the rejected tip under refs/evolve/rejected/<id> and attach the verdict note."""
    ref = t.REJECTED_PREFIX + proposal
    existing = repo.resolve_commit(ref)
    if existing and existing != tip:
        ref = f"{ref}-{tip[:8]}"
    repo.update_ref(ref, tip, repo.resolve_commit(ref), f"evolve: rejected {branch}")
    repo.add_note(t.NOTES_REF, tip, note)
    _drop_engine_branch(repo, branch, tip)
    return ref


def _drop_engine_branch(repo: GitRepo, branch: str, tip: str) -> None:
    """Branches under evolve/ are the engine's own scratch space: archived, then removed."""
    name = branch.removeprefix("refs/heads/")
    if name.startswith(ENGINE_BRANCH_PREFIX) and repo.resolve_commit(f"refs/heads/{name}") == tip:
        repo.delete_ref(f"refs/heads/{name}", tip)


def _refused(report: GateReport, refusal: Refusal) -> None:
    """The report of a candidate a pre-test check refused: why, and what it found."""
    report.reason = refusal.reason
    report.protected_paths = refusal.protected_paths
    report.conflicts = refusal.conflicts
    report.guard = refusal.guard


def validate(repo: GitRepo, options: GateOptions) -> GateReport:
    started = time.monotonic()
    with exclusive(repo, wait=options.wait):
        for attempt in range(1, MAX_ATTEMPTS + 1):
            report = _attempt(repo, options)
            if isinstance(report, LostRace):
                continue  # nothing was decided about the new main: judge again on it
            report.attempts = attempt
            report.duration_s = round(time.monotonic() - started, 3)
            return report
    raise EnvironmentFailure(
        f"main kept moving during validation ({MAX_ATTEMPTS} attempts); try again"
    )


def _attempt(repo: GitRepo, options: GateOptions) -> GateReport | LostRace:
    main_ref, main = repo.resolve_main(options.main)
    tip = repo.resolve_commit(options.branch)
    if tip is None:
        raise UsageError(f"no branch or commit named {options.branch!r}")
    if main_ref in (options.branch, f"refs/heads/{options.branch}"):
        raise UsageError("validate a branch other than main itself")
    policy = load_policy(repo, main).with_overrides(**options.overrides)
    baseline, baseline_blob = require_baseline(repo, main, policy.baseline)
    proposal = proposal_id(repo, options.branch, tip)
    report = GateReport(
        verdict="rejected",
        branch=options.branch,
        proposal=proposal,
        main_before=main,
        main_after=main,
        passing_before=len(baseline.passing()),
        passing_after=len(baseline.passing()),
    )
    if repo.is_ancestor(tip, main):
        report.verdict, report.reason = "up-to-date", "already contained in main"
        return report

    automated, paths = proposal_paths(repo, main, tip)
    tree, conflicts = repo.merge_tree(main, tip)
    candidate = Candidate(repo, main, tree, policy, automated, paths, conflicts)
    when = timestamp()
    trial = Trial(
        candidate, baseline, baseline_blob, when, parents=(main, tip),
        message=f"Merge {options.branch} into {main_ref.removeprefix('refs/heads/')}",
        unsandboxed=options.unsandboxed, progress=options.progress,
    )  # fmt: skip
    verdict = judge_candidate(trial)
    if isinstance(verdict, Refused):
        _refused(report, verdict.refusal)
        return _reject(repo, options, report, baseline, tip, comparison=None)

    comparison = verdict.comparison
    merge_commit = verdict.commit
    _judged(report, verdict)
    if not verdict.accepted:
        report.reason = verdict.reason
        return _reject(repo, options, report, baseline, tip, comparison)

    if automated and policy.behaviour != "off":
        behaviour = check_behaviour(candidate, merge_commit, verdict.isolation,
                                    comparison.newly_passing)  # fmt: skip
        report.behaviour = behaviour.to_json()
        refusal = behaviour.refusal(policy)
        if refusal is not None:
            report.reason = refusal
            return _reject(repo, options, report, baseline, tip, comparison)

    report.verdict = "accepted"
    new_baseline = advanced(trial, verdict)
    report.passing_after = len(new_baseline.passing())
    if not options.merge:
        return report
    shared = policy.baseline == REF  # the baseline lives in the store, not the tree
    if shared:
        gate_tree = tree
    else:
        blob = repo.hash_blob(new_baseline.dumps().encode())
        gate_tree = repo.tree_with_file(tree, BASELINE_PATH, blob)
    message = gate_commit_message(
        branch=options.branch,
        proposal=proposal,
        comparison=comparison,
        tree=tree,
        passing_before=report.passing_before,
        passing_after=report.passing_after,
        tests_run=report.tests_run,
        passed=report.passed,
        sandbox=report.sandbox,
    )
    gate_commit = repo.commit_tree(gate_tree, [merge_commit], message)
    if shared:
        # Stored before main moves: an entry for a gate commit that then loses the race
        # for main is never read (no main descends from it); a main without its entry
        # would be judged against the older baseline.
        advance_shared(repo, gate_commit, new_baseline, message=message)
    landing = land(repo, main_ref, main, gate_commit, f"evolve: accept {options.branch}")
    if landing.raced:
        return LostRace(main_ref, main)
    if not landing.moved:
        report.reason = landing.refused
        return report
    report.merged = True
    report.main_after = gate_commit
    _drop_engine_branch(repo, options.branch, tip)
    return report


def _judged(report: GateReport, verdict: Judged) -> None:
    """The report of a tested candidate: what was tested, how, and what it showed."""
    result = verdict.result
    report.tested_tree, report.merge_commit = verdict.tree, verdict.commit
    report.cached, report.cache_ignored = verdict.cached, verdict.cache_ignored
    report.stage, report.first_tests = verdict.stage, verdict.first_tests
    report.test_map = verdict.test_map
    report.sandbox, report.comparison = result.sandbox, verdict.comparison
    report.tests_run, report.passed = len(result.outcomes), result.passed()


def _reject(
    repo: GitRepo,
    options: GateOptions,
    report: GateReport,
    baseline: Baseline,
    tip: str,
    comparison: Comparison | None,
) -> GateReport:
    if options.merge:
        note = rejection_note(
            branch=options.branch,
            proposal=report.proposal,
            reason=report.reason,
            comparison=comparison,
            tree=report.tested_tree,
            baseline_commit=baseline.commit,
            passing_before=report.passing_before,
            tests_run=report.tests_run,
            passed=report.passed,
            judged_at=timestamp(),
            sandbox=report.sandbox,
        )
        report.archived_as = archive_rejection(repo, options.branch, tip, report.proposal, note)
    return report


def _pending_merge_heads(repo: GitRepo) -> list[str]:
    """The commits being merged: git names them to the hook as GITHEAD_<sha> variables
    (it writes MERGE_HEAD only when a merge stops), else MERGE_HEAD if present."""
    heads = sorted(name[len("GITHEAD_") :] for name in os.environ if name.startswith("GITHEAD_"))
    if heads:
        return heads
    merge_head = repo.git_path("MERGE_HEAD")
    if merge_head.exists():
        return merge_head.read_text().split()
    raise UsageError("no merge is in progress (no GITHEAD_* variable and no MERGE_HEAD)")


def validate_pending_merge(
    repo: GitRepo,
    *,
    main: str | None = None,
    wait: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    unsandboxed: bool = False,
) -> GateReport:
    """Judge the merge git is about to record (the pre-merge-commit hook).

    It tests the index exactly as the merge commit will hold it, conflict resolutions
    included, and writes nothing: git records the merge only if this accepts it.
    """
    started = time.monotonic()
    with exclusive(repo, wait=wait):
        main_ref, main_commit = repo.resolve_main(main)
        head_ref = repo.head_ref()
        report = GateReport(verdict="skipped", branch="MERGE_HEAD", proposal="")
        if head_ref != main_ref:
            report.reason = f"HEAD is {head_ref or 'detached'}, not {main_ref}: nothing to gate"
            return report
        heads = _pending_merge_heads(repo)
        policy = load_policy(repo, main_commit).with_overrides(**(overrides or {}))
        baseline, baseline_blob = require_baseline(repo, main_commit, policy.baseline)
        report.main_before = report.main_after = main_commit
        report.passing_before = report.passing_after = len(baseline.passing())
        report.proposal = proposal_id(repo, "merge", heads[0])
        automated, paths = False, set()
        for head in heads:
            found, changed = proposal_paths(repo, main_commit, head)
            automated, paths = automated or found, paths | changed
        candidate = Candidate(repo, main_commit, repo.index_tree(), policy, automated, paths)
        verdict = judge_candidate(Trial(
            candidate, baseline, baseline_blob, timestamp(), parents=(main_commit, *heads),
            message="pending merge (pre-merge-commit)", unsandboxed=unsandboxed,
            progress=progress,
        ))  # fmt: skip
        if isinstance(verdict, Refused):
            _refused(report, verdict.refusal)
            report.verdict = "rejected"
            return report
        _judged(report, verdict)
        report.verdict = "accepted" if verdict.accepted else "rejected"
        report.reason = verdict.reason
        report.duration_s = round(time.monotonic() - started, 3)
        return report
