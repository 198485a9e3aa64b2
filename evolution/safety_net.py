"""`evolve validate --post-merge` and `evolve verify`: the second line of defence.

The gate stops bad proposals before they merge, but a person can still fast-forward,
merge by hand, or pull. After such a change main's HEAD is tested against the baseline
of the last commit that carries a verdict. If a baseline-passing test regressed, every
first-parent commit since that verdict is reverted with `git revert` (`-m 1` for merges)
in one new commit: history is never rewritten. If nothing regressed, HEAD gets a
`validated` note, so the check is not repeated and `git push` may carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.clock import timestamp
from agent.errors import EnvironmentFailure, UsageError
from evolution import trailers as t
from evolution.audit import revert_message, validated_note
from evolution.baseline import require_baseline
from evolution.checks import Candidate, first_refusal, proposal_paths
from evolution.gitrepo import GitRepo
from evolution.judge import judge
from evolution.landing import land, main_checkout
from evolution.policy import load_policy
from evolution.ratchet import Comparison
from evolution.sandbox.isolation import choose
from evolution.session import exclusive
from evolution.testrun import ProgressCallback

VERIFIED = frozenset({t.ACCEPTED, t.BASELINE_RECORD, t.REVERTED, t.VALIDATED})


@dataclass
class SafetyReport:
    status: str  # nothing-to-do | passing | reverted
    head: str
    validated: str
    reverted: list[str] = field(default_factory=list)
    revert_commit: str = ""
    regressions: list[dict[str, str]] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    cached: bool = False
    sandbox: str = ""
    refused: str = ""  # why a pre-test check refused the commits, when one did

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "reverted" else 0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "exit_code": self.exit_code}


def verdict_of(repo: GitRepo, commit: str) -> str:
    """The verdict git records for `commit`: a gate trailer, or a note; "" for none."""
    [[_sha, _when, _subject, trailers, note]] = repo.log_records(t.NOTES_REF, "-1", commit)
    own = t.parse(trailers)
    if t.last(own, t.REVERTS):
        return t.REVERTED
    verdict = t.last(own, t.VERDICT)
    if verdict in VERIFIED:
        return verdict
    noted = t.parse(note)
    verdict = t.last(noted, t.VERDICT)
    return verdict if verdict == t.VALIDATED else ""


def last_verified(repo: GitRepo, head: str) -> str | None:
    """The newest first-parent ancestor of `head` (itself included) that carries a verdict."""
    for commit in repo.first_parents(head):
        if verdict_of(repo, commit):
            return commit
    return None


def _revert_all(repo: GitRepo, head: str, commits: list[str], message: str) -> str:
    """One commit on `head` reverting `commits` (newest first), built in a scratch
    worktree (git's own work: no test runs there)."""
    with repo.scratch_worktree(head) as worktree:
        for commit in reversed(commits):
            try:
                repo.revert_into(worktree, commit)
            except EnvironmentFailure as failure:
                raise EnvironmentFailure(
                    f"could not revert {commit[:10]} cleanly: {failure.message}"
                ) from None
        tree = repo.write_tree(worktree)
    return repo.commit_tree(tree, [head], message)


def post_merge(
    repo: GitRepo,
    *,
    main: str | None = None,
    wait: bool = True,
    progress: ProgressCallback | None = None,
) -> SafetyReport:
    with exclusive(repo, wait=wait):
        main_ref, head = repo.resolve_main(main)
        checkout = main_checkout(repo, main_ref)
        if checkout is not None and not repo.is_clean(checkout):
            raise UsageError(
                f"{checkout} has uncommitted changes; the safety net will not move main under them",
                hint="commit or stash them, then run: evolve validate --post-merge",
            )
        verified = last_verified(repo, head)
        if verified is None:
            raise UsageError(
                "no commit on main carries a verdict yet",
                hint="record a baseline first: evolve baseline record",
            )
        report = SafetyReport(status="nothing-to-do", head=head, validated=verified)
        if verified == head:
            return report
        policy = load_policy(repo, verified)
        baseline, blob = require_baseline(repo, verified)
        tree = repo.tree_of(head)
        when = timestamp()
        # Commits that carry a proposal are held to the proposal rules here too: a person
        # may fast-forward main to one, which is what this safety net is for.
        automated, paths = proposal_paths(repo, verified, head)
        refusal = first_refusal(Candidate(repo, verified, tree, policy, automated, paths))
        isolation = choose(policy, automated=automated, unsandboxed=False)
        if refusal is not None:
            return _revert(repo, report, main_ref, head, verified, refusal.reason)
        judgement = judge(repo, head, tree, policy, baseline, blob, when, isolation, progress,
                          automated=automated)  # fmt: skip
        result, comparison = judgement.result, judgement.comparison
        report.cached, report.sandbox = judgement.cached, result.sandbox
        tests = t.tests_value(len(result.outcomes), result.passed())
        if not comparison.regressions:
            note = validated_note(
                head=head, verified=verified, tree=tree, passing=len(baseline.passing()),
                tests=tests, sandbox=result.sandbox, when=when,
            )  # fmt: skip
            repo.add_note(t.NOTES_REF, head, note)
            report.status = "passing"
            return report
        report.regressions = [
            {"nodeid": r.nodeid, "now": r.now, "first_line": r.first_line}
            for r in comparison.regressions
        ]
        commits = repo.first_parents(head, since=verified)
        message = revert_message(commits, comparison, tests, result.sandbox)
        revert = _revert_all(repo, head, commits, message)
        after = judge(
            repo, revert, repo.tree_of(revert), policy, baseline, blob, when, isolation, progress
        ).comparison
        report.still_failing = [r.nodeid for r in after.regressions]
        return _landed(repo, report, main_ref, head, commits, revert)


def _revert(
    repo: GitRepo, report: SafetyReport, main_ref: str, head: str, verified: str, reason: str
) -> SafetyReport:
    """Revert what a pre-test check refused, without running its tests."""
    commits = repo.first_parents(head, since=verified)
    report.refused = reason
    message = revert_message(commits, Comparison(), "", "", refusal=reason)
    return _landed(repo, report, main_ref, head, commits, _revert_all(repo, head, commits,
                                                                      message))


def _landed(
    repo: GitRepo, report: SafetyReport, main_ref: str, head: str, commits: list[str],
    revert: str,
) -> SafetyReport:  # fmt: skip
    landing = land(repo, main_ref, head, revert, "evolve: safety-net revert")
    if not landing.moved:
        raise EnvironmentFailure(
            landing.refused or "main moved while the safety net ran; run it again"
        )
    report.status, report.reverted, report.revert_commit = "reverted", commits, revert
    return report


def verify(repo: GitRepo, commit: str) -> dict[str, Any]:
    """Whether `commit` carries a verdict in git (the pre-push check)."""
    sha = repo.resolve_commit(commit)
    if sha is None:
        raise UsageError(f"no commit named {commit!r}")
    verdict = verdict_of(repo, sha)
    return {"commit": sha, "verdict": verdict or None, "verified": bool(verdict)}
