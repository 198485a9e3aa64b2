"""Confirm a newly failing test by re-running it apart from the rest of the suite.

Merge-queue users' first complaint is flaky tests blocking everything. Each suspect is
re-run up to `policy.reruns` times; one that passes in any re-run is flaky, with the
counts as evidence. Suspects are re-run together, one round after another, apart from
the rest of the suite and from each other's rounds: each round is a fresh pytest
session forked from a warm interpreter that never imported the tree
(`evolution.run.forkserver`, mutate's fork server), so a round costs the suspects' own
run time and a fork, not a new interpreter with pytest and its plugins imported again
(about a second each, three times over, was most of the time to a rejection). Each
round has its own authenticated channel, its own canaries and the same cross-checks
as any run; where a fork server cannot serve, each round is a process of its own, as
before. A re-run that is itself invalid (it hangs, say) is no evidence of a pass.

Every suspect gets the policy's full count of re-runs, whatever its history: the count
decides how often a flaky test is mistaken for a broken one (a false rejection of
honest work), and a round now costs a fork, so nothing is saved by trusting a clean
record instead.

The evidence says what was seen, where and when: the commit and tree tested, the time,
the first line of the first failure (and of the last re-run's, when one failed), and
every outcome in order (the first run's, then each re-run's), with the counts. A test
quarantined as flaky on main is re-run like any other: one that never passes is broken,
not flaky (`evolution.ratchet`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.errors import InvalidRun
from evolution.policy import Policy
from evolution.run.folder import RunFolder
from evolution.run.forkserver import CandidateRuns
from evolution.run.report import RunResult
from evolution.sandbox.isolation import Isolation

# Runs the selected tests on the run's tree: one round of re-runs.
Runner = Callable[[list[str]], RunResult]


def rerun_suspects(
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    suspects: list[str],
    result: RunResult,
    tree: str,
    when: str,
    *,
    runs: Runner | None = None,
) -> dict[str, dict[str, Any]]:
    """Each suspect's evidence after up to `policy.reruns` rounds. With `runs`, the rounds
    go through it (a caller's fork server, already warm); else through a fork server
    started here, once there is something to confirm."""
    evidence: dict[str, dict[str, Any]] = {
        nodeid: {
            "first_failure": result.first_line(nodeid) or result.outcomes.get(nodeid, ""),
            "tree": tree,
            "commit": run.commit,
            "seen": when,
            "outcomes": [result.outcomes.get(nodeid, "missing")],
            "passed": 0,
            "runs": 0,
        }
        for nodeid in suspects
    }
    if not suspects or not policy.reruns:
        return evidence
    if runs is not None:
        _rounds(policy.reruns, runs, evidence)
        return evidence
    with CandidateRuns(policy, run, isolation) as served:
        _rounds(policy.reruns, served, evidence)
    return evidence


def _rounds(count: int, runs: Runner, evidence: dict[str, dict[str, Any]]) -> None:
    """Up to `count` rounds of the suspects that have not passed yet."""
    remaining = list(evidence)
    for _ in range(count):
        if not remaining:
            break
        try:
            rerun = runs(remaining)
        except InvalidRun as exc:
            rerun = RunResult(outcomes=dict.fromkeys(remaining, "invalid"),
                              failures=dict.fromkeys(remaining, exc.message))  # fmt: skip
        for nodeid in remaining:
            outcome = rerun.outcomes.get(nodeid, "missing")
            evidence[nodeid]["runs"] += 1
            evidence[nodeid]["outcomes"].append(outcome)
            if outcome == "passed":
                evidence[nodeid]["passed"] += 1
            else:
                evidence[nodeid]["last_failure"] = rerun.first_line(nodeid) or outcome
        remaining = [nodeid for nodeid in remaining if evidence[nodeid]["passed"] == 0]
