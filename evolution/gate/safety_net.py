"""`evolve safety-net` and `evolve verify`: the second line of defence.

The gate stops bad proposals before they merge, but a person can still fast-forward,
merge by hand, or pull. After such a change main's HEAD is tested against the baseline
of the last commit that carries a verdict (the verified commit). Cause before revert
(invariant 19), so that nothing good is lost:
- a pre-test check that refuses the new commits is pinned on the commits that earned it;
- the regressed tests run on the verified commit itself, in the same sandbox: one that
  fails there too is environmental, an incident, never a reason to revert;
- bisection over the first-parent commits since names the commit that broke each of
  the others (`evolution.gate.culprits`).
A culprit that is an automated proposal is reverted, alone, in a revert commit of its
own naming its tests (`-m 1` for a merge); history is never rewritten, and commits that
are not culprits stay. A person's commit is not a proposal: by default it raises an
incident naming it and the command that would revert it (`revert_people = true` in the
policy reverts it like a proposal).

Whatever was reverted is tested. With nothing failing and no incident left, main's new
HEAD gets a `validated` note: a verdict, so the next run starts from it and `git push`
may carry it. Otherwise HEAD gets an `incident` note, carries no verdict, and every run
reports the incident again (exit 1) until a person acts: reverts the culprit, fixes the
environment, or re-records the baseline on purpose (`evolve baseline record --reset`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.clock import timestamp
from agent.errors import EnvironmentFailure, UsageError
from evolution.baseline import require_baseline
from evolution.gate import culprits
from evolution.gate.checks import PRE_TEST_CHECKS, Candidate, Refusal
from evolution.gate.landing import land, refuse_dirty_main
from evolution.gate.lock import exclusive
from evolution.gate.verdict import Judged, Settle, Trial, judge_candidate
from evolution.gitrepo import GitRepo
from evolution.policy import load_policy
from evolution.ratchet import MISSING, Comparison, Regression
from evolution.run.launch import ProgressCallback
from evolution.run.shards import Unfinished
from evolution.trail import format as t
from evolution.trail.write import incident_note, revert_message, validated_note

# Verdicts a commit's own trailers can carry that make it a verified start. A revert
# is not one by itself (see `verdict_of`).
VERIFIED = frozenset({t.ACCEPTED, t.BASELINE_RECORD, t.VALIDATED})
RESET = "evolve baseline record --reset"
# Of a run's budget, what judging main may take: the rest is for finding causes (the
# regressed tests on the verified commit, bisection), reverting and noting.
JUDGE_SHARE = 0.75


@dataclass
class Incident:
    """What the safety net found and must leave to a person.

    kind: `environmental` (fails on the verified commit too), `person-commit` (a
    person's commit broke it, or a check refused it), `revert-conflict` (a culprit whose
    revert does not apply cleanly), `unresolved` (still failing after the reverts)."""

    kind: str
    tests: list[str]
    culprit: str = ""
    subject: str = ""
    command: str = ""  # what a person runs to act on it
    detail: str = ""  # the sentence a person reads

    def line(self) -> str:
        return f"{self.kind}: {self.detail}"

    def short(self) -> str:
        """The few words that fit a task's detail: kind, culprit, tests, command."""
        who = f" {self.culprit[:10]}" if self.culprit else ""
        more = f" +{len(self.tests) - 1}" if len(self.tests) > 1 else ""
        tests = f" ({self.tests[0]}{more})" if self.tests else ""
        return f"{self.kind}{who}{tests}: {self.command}"


@dataclass
class SafetyReport:
    status: str  # nothing-to-do | passing | reverted | incident | unfinished
    head: str
    validated: str  # the verified commit whose baseline HEAD was judged against
    reverted: list[str] = field(default_factory=list)  # the culprits reverted
    revert_commit: str = ""  # main's HEAD after the reverts
    reverts: list[dict[str, Any]] = field(default_factory=list)  # one per revert commit
    regressions: list[dict[str, str]] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    cached: bool = False
    sandbox: str = ""
    refused: str = ""  # why a pre-test check refused the commits, when one did
    parts: list[int] = field(default_factory=list)  # unfinished: [judged, of]

    @property
    def exit_code(self) -> int:
        """1 when the safety net reverted something or left an incident: either way main
        regressed, and an incident a person must act on must not read as success; and
        when it is unfinished: main is not verified yet, so what depends on it waits."""
        return 1 if self.status in ("reverted", "incident", "unfinished") else 0

    def summary(self) -> str:
        """One plain line for a task's detail, a ping or a log: what happened and, for
        an incident, what to run."""
        parts = [incident.short() for incident in self.incidents]
        if self.status == "unfinished":
            parts.append(f"unfinished: {self.parts[0]} of {self.parts[1]} parts of the "
                         "suite judged, kept; the next run goes on")  # fmt: skip
        if self.reverts:
            parts.append("reverted " + ", ".join(r["reverts"][:10] for r in self.reverts))
        return "safety net: " + ("; ".join(parts) or self.status)

    def to_json(self) -> dict[str, Any]:
        data = {**self.__dict__, "incidents": [asdict(i) for i in self.incidents]}
        return {**data, "exit_code": self.exit_code}


def verdict_of(repo: GitRepo, commit: str) -> str:
    """The verdict git records for `commit`: a gate trailer, or a note; "" for none.

    A safety-net revert counts only with the `validated` note the safety net gives the
    result once it has tested it: reverting one culprit of several leaves a tree that
    may still fail, and the next run must not take it for a verified start."""
    [[_sha, _when, _subject, trailers, note]] = repo.log_records(t.NOTES_REF, "-1", commit)
    own, noted = t.parse(trailers), t.parse(note)
    validated = t.last(noted, t.VERDICT) == t.VALIDATED
    if t.last(own, t.REVERTS):
        return t.REVERTED if validated else ""
    verdict = t.last(own, t.VERDICT)
    if verdict in VERIFIED:
        return verdict
    return t.VALIDATED if validated else ""


def last_verified(repo: GitRepo, head: str) -> str | None:
    """The newest first-parent ancestor of `head` (itself included) that carries a verdict."""
    for commit in repo.first_parents(head):
        if verdict_of(repo, commit):
            return commit
    return None


def post_merge(
    repo: GitRepo,
    *,
    main: str | None = None,
    wait: bool = True,
    progress: ProgressCallback | None = None,
    budget_s: float | None = None,
) -> SafetyReport:
    """With `budget_s` (an agent task's timeout: the seconds this run may take, waiting
    for the lock included), a suite expected to outlast it is judged in installments
    kept across runs: this run reports `unfinished` and the next goes on."""
    deadline = None if budget_s is None else time.monotonic() + budget_s * JUDGE_SHARE
    with exclusive(repo, wait=wait):
        main_ref, head = repo.resolve_main(main)
        refuse_dirty_main(repo, main_ref, "the safety net will not move main under them",
                          "commit or stash them, then run: evolve safety-net")  # fmt: skip
        verified = last_verified(repo, head)
        if verified is None:
            raise UsageError(
                "no commit on main carries a verdict yet",
                hint="record a baseline first: evolve baseline record",
            )
        if verified == head:
            return SafetyReport(status="nothing-to-do", head=head, validated=verified)
        net = _SafetyNet(repo, main_ref, head, verified, progress, deadline)
        try:
            return net.run()
        except Unfinished as unfinished:
            return SafetyReport(status="unfinished", head=head, validated=verified,
                                parts=[unfinished.done, unfinished.total])  # fmt: skip


class _SafetyNet:
    """One run of the safety net over the commits since `verified`."""

    def __init__(
        self, repo: GitRepo, main_ref: str, head: str, verified: str,
        progress: ProgressCallback | None, deadline: float | None,
    ) -> None:  # fmt: skip
        self.repo, self.main_ref, self.head, self.verified = repo, main_ref, head, verified
        self.progress, self.deadline = progress, deadline
        self.policy = load_policy(repo, verified)
        self.baseline, self.blob = require_baseline(repo, verified)
        self.when = timestamp()
        self.commits = repo.first_parents(head, since=verified)
        self.undone = culprits.reverted_in(repo, self.commits)
        # Commits that carry a proposal are held to the proposal rules here too: a person
        # may fast-forward main to one, which is what this safety net is for.
        self.automated, self.paths = culprits.proposals_among(repo, self.commits, self.undone)
        self.tip = head
        self.report = SafetyReport(status="passing", head=head, validated=verified)

    def run(self) -> SafetyReport:
        judgement = self._judge(self.head, automated=self.automated, settle=self._settle)
        result = judgement.result
        # The causes are looked for in the sandbox that found the regressions.
        probe = culprits.Probe(self.repo, self.policy, self.baseline, judgement.isolation,
                               self.when, self.automated)  # fmt: skip
        self.report.cached, self.report.sandbox = judgement.cached, result.sandbox
        regressions = judgement.comparison.regressions
        if regressions and judgement.cached:
            # A cached verdict is the tree's, from another day: the host may have
            # changed since. Nothing is blamed on a failure that does not happen now.
            now = probe.failing(self.tip, [r.nodeid for r in regressions])
            regressions = [r for r in regressions if r.nodeid in now]
        self.report.regressions = [
            {"nodeid": r.nodeid, "now": r.now, "first_line": r.first_line} for r in regressions
        ]
        tests = t.tests_value(len(result.outcomes), result.passed())
        self.report.still_failing = [r.nodeid for r in regressions]
        if regressions:
            before = self.tip
            self._find_causes(probe, regressions, tests, result.sandbox)
            if self.tip != before:
                judgement = self._judge(self.tip, automated=False)
                self.report.still_failing = [r.nodeid for r in judgement.comparison.regressions]
        self._unexplained()
        return self._finish(judgement)

    # -- stages ------------------------------------------------------------------------------

    def _settle(self, refusal: Refusal) -> str:
        """Refused commits, before any test runs: a proposal is reverted untested, a
        person's reported; the tip that leaves is what gets judged."""
        refused = culprits.refused_commits(
            self.repo, self.commits, self.verified, self.policy, self.undone
        )
        if refused:
            self.report.refused = refusal.reason
        plan = []
        for commit, why in refused:
            if self._revertible(commit):
                message = revert_message([commit], Comparison(), "", "", refusal=why.reason)
                plan.append((commit, [], message))
            else:
                self._person(commit, [], f"a pre-test check refused it: {why.reason}")
        self._revert(plan)
        return self.tip

    def _find_causes(self, probe: culprits.Probe, regressions: list[Regression],
                     tests: str, sandbox: str) -> None:  # fmt: skip
        """Environmental ones set apart, the rest bisected; each culprit reverted alone,
        or reported."""
        environmental, caused = culprits.environmental(probe, self.verified, regressions)
        if environmental:
            names = [r.nodeid for r in environmental]
            self.report.incidents.append(Incident(
                "environmental", names, command=RESET,
                detail=f"{', '.join(names)} also fail(s) on the verified commit "
                f"{self.verified[:10]}, in the same sandbox: not caused by the new commits. "
                f"The baseline's record of passing is in question: fix the environment "
                f"(a shared folder, a variable, a service), or drop it on purpose: {RESET}",
            ))  # fmt: skip
        commits = self.repo.first_parents(self.tip, since=self.verified)
        found = culprits.bisect(probe, commits, [r.nodeid for r in caused])
        by_name = {r.nodeid: r for r in caused}
        plan = []
        for commit in reversed(commits):  # newest first: later changes revert cleanly
            if commit not in found:
                continue
            broken = [by_name[name] for name in found[commit]]
            if commit in self.undone or t.REVERTS in self.repo.trailers(commit):
                self._unresolved([r.nodeid for r in broken], commit)
            elif self._revertible(commit):
                comparison = Comparison(regressions=broken)
                plan.append((commit, found[commit],
                             revert_message([commit], comparison, tests, sandbox)))  # fmt: skip
            else:
                deleted = [r.nodeid for r in broken if r.now == MISSING]
                why = f"it broke {', '.join(found[commit])}"
                if deleted:
                    why += (f" ({', '.join(deleted)} no longer exist(s): if that was on "
                            f"purpose, re-record the baseline: {RESET})")  # fmt: skip
                self._person(commit, found[commit], why)
        self._revert(plan)

    def _unexplained(self) -> None:
        """Tests still failing that no incident accounts for: said, never approved."""
        accounted = {name for incident in self.report.incidents for name in incident.tests}
        left = [name for name in self.report.still_failing if name not in accounted]
        if left:
            self._unresolved(left, "")

    def _finish(self, judgement: Judged) -> SafetyReport:
        if self.tip != self.head:
            landing = land(self.repo, self.main_ref, self.head, self.tip,
                           "evolve: safety-net revert")  # fmt: skip
            if not landing.moved:
                raise EnvironmentFailure(
                    landing.refused or "main moved while the safety net ran; run it again"
                )
            self.report.revert_commit = self.tip
        result = judgement.result
        tests = t.tests_value(len(result.outcomes), result.passed())
        passing = len(self.baseline.passing())
        if self.report.incidents:
            note = incident_note(
                head=self.tip, verified=self.verified, passing=passing,
                incidents=[(i.kind, i.culprit, i.tests, i.line()) for i in self.report.incidents],
                tests=tests, sandbox=result.sandbox, when=self.when,
            )  # fmt: skip
        else:
            note = validated_note(
                head=self.tip, verified=self.verified, tree=self.repo.tree_of(self.tip),
                passing=passing, tests=tests, sandbox=result.sandbox, when=self.when,
            )  # fmt: skip
        self.repo.add_note(t.NOTES_REF, self.tip, note)
        if self.report.reverts:
            self.report.status = "reverted"
        elif self.report.incidents:
            self.report.status = "incident"
        return self.report

    # -- helpers -----------------------------------------------------------------------------

    def _judge(self, commit: str, *, automated: bool, settle: Settle | None = None) -> Judged:
        """`commit` against the verified commit: HEAD, its refusals settled first, or the
        tip after the reverts. On every tick's critical path, it never pays for a due
        coverage map (a multiple of a bare run): the gate's own full runs refresh it."""
        candidate = Candidate(self.repo, self.verified, self.repo.tree_of(commit), self.policy,
                              automated, self.paths if automated else set())  # fmt: skip
        trial = Trial(candidate, self.baseline, self.blob, self.when, commit=commit,
                      progress=self.progress, refresh_map=False, deadline=self.deadline,
                      checks=PRE_TEST_CHECKS if settle else ())  # fmt: skip
        verdict = judge_candidate(trial, settle)
        assert isinstance(verdict, Judged)  # a refusal was settled, never left as the verdict
        return verdict

    def _revertible(self, commit: str) -> bool:
        """Automated proposals are reverted; a person's commit only when the policy says."""
        return self.policy.revert_people or culprits.is_proposal(self.repo, commit)

    def _person(self, commit: str, tests: list[str], why: str) -> None:
        command = culprits.revert_command(self.repo, commit)
        subject = self.repo.log_records(t.NOTES_REF, "-1", commit)[0][2]
        self.report.incidents.append(Incident(
            "person-commit", tests, commit, subject, command,
            f'{commit[:10]} "{subject}" reached main by a person\'s hand and {why}. It is '
            f"not a proposal, so it was not reverted (revert_people = true would); to "
            f"revert it: {command}",
        ))  # fmt: skip

    def _unresolved(self, tests: list[str], commit: str) -> None:
        blamed = (f" (bisection blames {commit[:10]}, which is a revert or was reverted "
                  "already)" if commit else "")  # fmt: skip
        self.report.incidents.append(Incident(
            "unresolved", tests, commit, command="git bisect",
            detail=f"{', '.join(tests)} still fail(s) and no single commit since "
            f"{self.verified[:10]} could be reverted for it{blamed}: find the cause by "
            "hand, then run: evolve safety-net",
        ))  # fmt: skip

    def _revert(self, plan: list[tuple[str, list[str], str]]) -> None:
        """Each (culprit, its tests, message) in its own revert commit on the tip,
        built in a scratch worktree (git's own work: no test runs there). A culprit whose
        revert does not apply cleanly is left, as an incident."""
        if not plan:
            return
        with self.repo.scratch_worktree(self.tip) as worktree:
            for commit, tests, message in plan:
                try:
                    self.repo.revert_into(worktree, commit)
                except EnvironmentFailure as failure:
                    self.repo.reset_scratch(worktree, self.tip)
                    command = culprits.revert_command(self.repo, commit)
                    self.report.incidents.append(Incident(
                        "revert-conflict", tests, commit, command=command,
                        detail=f"{commit[:10]} is a culprit but its revert does not apply "
                        f"cleanly ({failure.message}): run {command} and resolve it",
                    ))  # fmt: skip
                    continue
                revert = self.repo.commit_tree(self.repo.write_tree(worktree), [self.tip],
                                               message)  # fmt: skip
                self.repo.reset_scratch(worktree, revert)
                self.report.reverts.append({"commit": revert, "reverts": commit, "tests": tests})
                self.report.reverted.append(commit)
                self.tip = revert


def verify(repo: GitRepo, commit: str) -> dict[str, Any]:
    """Whether `commit` carries a verdict in git (the pre-push check)."""
    sha = repo.resolve_commit(commit)
    if sha is None:
        raise UsageError(f"no commit named {commit!r}")
    verdict = verdict_of(repo, sha)
    return {"commit": sha, "verdict": verdict or None, "verified": bool(verdict)}
