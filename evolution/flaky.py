"""Confirm a newly failing test by re-running it apart from the rest of the suite.

Merge-queue users' first complaint is flaky tests blocking everything. Each suspect is
re-run up to `policy.reruns` times; one that passes in any re-run is flaky, with the
counts as evidence. Suspects are re-run together in one pytest process per round,
apart from the rest of the suite, which keeps the cost at one process start per round.
A re-run that is itself invalid (it hangs, say) is no evidence of a pass.
"""

from __future__ import annotations

from typing import Any

from agent.errors import InvalidRun
from evolution.policy import Policy
from evolution.pytest_report import RunResult
from evolution.runfolder import RunFolder
from evolution.sandbox.isolation import Isolation
from evolution.testrun import run_tests


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
            "seen": when,
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
        except InvalidRun:
            rerun = RunResult(outcomes={})
        for nodeid in remaining:
            evidence[nodeid]["runs"] += 1
            if rerun.outcomes.get(nodeid) == "passed":
                evidence[nodeid]["passed"] += 1
        remaining = [nodeid for nodeid in remaining if evidence[nodeid]["passed"] == 0]
    return evidence
