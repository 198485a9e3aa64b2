"""Which commits caused what: the safety net's search for a cause before it reverts.

Main's HEAD regressed against the baseline of the last verified commit. That says
something broke, not what: a test can fail because the host changed (a file a shared
folder no longer holds, a variable no longer set), or because one commit among many
broke it. Reverting every commit since the verdict for either reason throws good work
away (issue 23: 30 commits of a team's work, for two environmental failures and a
deliberate deletion). So, before anything is reverted:

1. `environmental`: the regressed tests run on the verified commit itself, in the same
   sandbox, interpreter and policy, through the gate's own selection path
   (`staged.judge_selection`). A test that does not pass there either is not caused by
   the new commits: it is the environment's doing, or the baseline's record of it is
   wrong, and it is never a reason to revert.
2. `bisect`: the other regressions pass on the verified commit and fail at HEAD, so each
   has a first commit where it stops passing. The first-parent commits since are
   bisected with only the regressed tests selected, tests failing at the midpoint
   searched in the earlier half and the rest in the later one: one culprit per test,
   in about log2(commits) selection runs, several culprits in one search.
3. `refused_commits`: a pre-test refusal (a proposal touching protected paths, the
   static guard, deploy/ drifting from SPEC.md) is attributed the same way, per commit,
   without running any test.
What to do with a culprit (revert it, or raise an incident because a person made it)
is the safety net's call; this module only finds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from evolution.baseline import Baseline
from evolution.gate.checks import Candidate, Refusal, first_refusal, proposal_paths
from evolution.gate.staged import judge_selection
from evolution.gitrepo import GitRepo
from evolution.policy import Policy
from evolution.ratchet import Regression
from evolution.run.folder import RunFolder
from evolution.sandbox.isolation import Isolation
from evolution.trail import format as t


@dataclass(frozen=True)
class Probe:
    """Everything a selection run needs besides the commit and the tests: the same
    policy, baseline, sandbox and interpreter as the run that found the regressions."""

    repo: GitRepo
    policy: Policy
    baseline: Baseline
    isolation: Isolation
    when: str
    automated: bool

    def failing(self, commit: str, tests: list[str], *, automated: bool | None = None) -> set[str]:
        """Which of `tests` do not pass at `commit`, judged as the gate judges a selection
        (newly failing ones re-run where a pass can excuse them, flaky ones excused by the
        policy's rules: `ratchet.worth_confirming`); a run that cannot be trusted raises
        InvalidRun, so nothing is blamed on it."""
        if not tests:
            return set()
        automated = self.automated if automated is None else automated
        with RunFolder(self.repo, commit) as run:
            judged = judge_selection(
                self.policy, run, self.isolation, self.baseline.only(tests),
                self.repo.tree_of(commit), self.when, automated=automated,
            )  # fmt: skip
        return {regression.nodeid for regression in judged.comparison.regressions}


def environmental(
    probe: Probe, verified: str, regressions: list[Regression]
) -> tuple[list[Regression], list[Regression]]:
    """(environmental, caused): the regressions that do not pass on the verified commit
    either, and those that do. The verified commit is not a proposal, so its own
    flakiness is excused as the policy says."""
    failing = probe.failing(verified, [r.nodeid for r in regressions], automated=False)
    return (
        [r for r in regressions if r.nodeid in failing],
        [r for r in regressions if r.nodeid not in failing],
    )


def bisect(probe: Probe, commits: list[str], tests: list[str]) -> dict[str, list[str]]:
    """{culprit: the tests it broke}: for each test, the first of `commits` (first-parent
    order, oldest first) at which it does not pass. Every test must pass on the parent
    of the first commit and fail at the last; a midpoint's failing tests are searched
    before it (it included), the passing ones after it. A test that flips more than once
    is blamed on one of its flips: the safety net tests the result and reports what
    still fails."""
    found: dict[str, list[str]] = {}

    def search(group: list[str], low: int, high: int) -> None:
        if low == high:
            found.setdefault(commits[low], []).extend(group)
            return
        middle = (low + high) // 2
        failing = probe.failing(commits[middle], group)
        if broken := [test for test in group if test in failing]:
            search(broken, low, middle)
        if passing := [test for test in group if test not in failing]:
            search(passing, middle + 1, high)

    if commits and tests:
        search(sorted(set(tests)), 0, len(commits) - 1)
    return {commit: sorted(found[commit]) for commit in commits if commit in found}


def is_proposal(repo: GitRepo, commit: str) -> bool:
    """Whether a first-parent commit is, or brings in (a merge), an automated proposal:
    one that carries the proposer's trailer. Anything else reached main by a person's
    hand, and a person's change is not a proposal."""
    automated, _paths = proposal_paths(repo, _first_parent(repo, commit), commit)
    return automated


def reverted_in(repo: GitRepo, commits: list[str]) -> set[str]:
    """The commits a revert among `commits` already undid (its `Evolve-Reverts`): they
    are not blamed again, and their proposal paths no longer count."""
    undone: set[str] = set()
    for commit in commits:
        for value in repo.trailers(commit).get(t.REVERTS, []):
            undone.update(value.split())
    return undone


def proposals_among(repo: GitRepo, commits: list[str], skip: set[str]) -> tuple[bool, set[str]]:
    """Whether any of `commits` (first-parent, `skip` aside) is or brings in an
    automated proposal, and every path those proposals change."""
    automated, paths = False, set()
    for commit in commits:
        if commit in skip:
            continue
        own, changed = proposal_paths(repo, _first_parent(repo, commit), commit)
        automated |= own
        paths |= changed
    return automated, paths


def refused_commits(
    repo: GitRepo, commits: list[str], verified: str, policy: Policy, skip: set[str]
) -> list[tuple[str, Refusal]]:
    """The commits a pre-test check refuses on their own, oldest first. Each is checked
    as the gate checks a merge, its parent as main (a proposal's own paths, the tree as
    it left it); a check on the whole tree (deploy/ against SPEC.md) refuses every
    commit after the one that broke it, so a commit is blamed only when its refusal
    differs from what its parent's tree already earned."""
    blamed: list[tuple[str, Refusal]] = []
    before = _tree_refusal(repo, verified, policy)
    for commit in commits:
        parent = _first_parent(repo, commit)
        automated, paths = False, set()
        if commit not in skip:
            automated, paths = proposal_paths(repo, parent, commit)
        own = first_refusal(Candidate(repo, parent, repo.tree_of(commit), policy, automated,
                                      paths))  # fmt: skip
        inherited = before is not None and own is not None and own.reason == before.reason
        if own is not None and not inherited and commit not in skip:
            blamed.append((commit, own))
        # Without proposal paths, the commit's own check was a check of its tree alone.
        before = _tree_refusal(repo, commit, policy) if automated else own
    return blamed


def revert_command(repo: GitRepo, commit: str) -> str:
    """The command a person runs to revert `commit` on main (`-m 1` for a merge)."""
    mainline = "-m 1 " if len(repo.parents(commit)) > 1 else ""
    return f"git revert --no-edit {mainline}{commit}"


def _tree_refusal(repo: GitRepo, commit: str, policy: Policy) -> Refusal | None:
    """What the checks say of a commit's tree alone, with no proposal in it."""
    return first_refusal(Candidate(repo, commit, repo.tree_of(commit), policy, False, set()))


def _first_parent(repo: GitRepo, commit: str) -> str:
    parents = repo.parents(commit)
    return parents[0] if parents else commit
