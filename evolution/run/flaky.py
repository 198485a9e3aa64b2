"""Confirm a newly failing test by re-running it apart from the rest of the suite.

Merge-queue users' first complaint is flaky tests blocking everything. Each suspect is
re-run up to `policy.reruns` times; one that passes in any re-run is flaky, with the
counts as evidence. Suspects are re-run together in one pytest process per round,
apart from the rest of the suite, which keeps the cost at one process start per round.
A re-run that is itself invalid (it hangs, say) is no evidence of a pass.

The evidence says what was seen, where and when: the commit and tree tested, the time,
the first line of the first failure (and of the last re-run's, when one failed), and
every outcome in order (the first run's, then each re-run's), with the counts. A test
quarantined as flaky on main is re-run like any other: one that never passes is broken,
not flaky (`evolution.ratchet`).
"""

from __future__ import annotations

from typing import Any

from agent.errors import InvalidRun
from evolution.policy import Policy
from evolution.run.folder import RunFolder
from evolution.run.launch import run_tests
from evolution.run.report import RunResult
from evolution.sandbox.isolation import Isolation


def rerun_suspects(
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    suspects: list[str],
    result: RunResult,
    tree: str,
    when: str,
) -> dict[str, dict[str, Any]]:
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
    remaining = list(suspects)
    for _ in range(policy.reruns):
        if not remaining:
            break
        try:
            rerun = run_tests(policy, run, isolation, select=remaining)
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
    return evidence
