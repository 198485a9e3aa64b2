"""`evolve baseline record` and `evolve baseline show`.

Recording runs the suite on main's commit in a temporary worktree and commits the result
to main with trailers. It refuses to lower the ratchet: a test that passed in the
previous baseline and does not pass now stops the recording unless `--reset` is given,
because a silently shrunk baseline would let the next candidate break that test.

Where the policy keeps the baseline in the shared store (`baseline = "ref"`), the
record commit leaves main's tree as it is and the baseline is stored under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.clock import timestamp
from agent.errors import InvalidRun, Refused
from evolution.baseline import (
    BASELINE_PATH,
    REF,
    STORE_REF,
    expiry,
    read_baseline,
    require_baseline,
)
from evolution.gate import testmap
from evolution.gate.landing import land, refuse_dirty_main
from evolution.gate.lock import exclusive
from evolution.gate.shared import advance_shared
from evolution.gate.verdict import run_trial
from evolution.gitrepo import GitRepo
from evolution.policy import load_policy
from evolution.ratchet import lost, record_suspects, recorded
from evolution.run.launch import ProgressCallback
from evolution.sandbox.isolation import choose
from evolution.trail.write import baseline_record_message


@dataclass
class RecordReport:
    commit: str
    main_before: str
    tested_tree: str
    counts: dict[str, int]
    passing_before: int | None
    passing_after: int
    flaky: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    sandbox: str = ""
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def record(
    repo: GitRepo,
    *,
    main: str | None = None,
    wait: bool = False,
    reset: bool = False,
    reason: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> RecordReport:
    with exclusive(repo, wait=wait):
        main_ref, head = repo.resolve_main(main)
        # Before the suite runs, not after: a recording is not cached, and landing it
        # would move main under the uncommitted changes.
        refuse_dirty_main(repo, main_ref, "recording would move main under them",
                          "commit or stash them, then run: evolve baseline record")  # fmt: skip
        policy = load_policy(repo, head).with_overrides(**(overrides or {}))
        found = read_baseline(repo, head, policy.baseline)
        previous = found[0] if found else None
        tree = repo.tree_of(head)
        when = timestamp()
        isolation = choose(policy, automated=False, unsandboxed=False)
        refresh = testmap.refresh(repo, testmap.state(repo, head), head)
        tried = run_trial(repo, head, tree, policy, isolation, when, record_suspects, progress,
                          with_map=refresh.request)  # fmt: skip
        result = tried.result
        if not result.outcomes:
            raise InvalidRun("the test command collected no tests; nothing to record")
        baseline = recorded(previous, result, tried.reruns, policy, head, tree, when)
        flaky = baseline.flaky
        before = previous.passing() if previous else None
        dropped = lost(previous, baseline)
        if dropped and not reset:
            shown = ", ".join(dropped[:10]) + (" …" if len(dropped) > 10 else "")
            raise Refused(
                f"{len(dropped)} test(s) passed in the stored baseline but not now: {shown}",
                hint="fix them, or pass --reset to lower the ratchet on purpose",
            )
        message = baseline_record_message(
            tree=tree,
            passing_before=None if before is None else len(before),
            passing_after=len(baseline.passing()),
            flaky=flaky,
            sandbox=result.sandbox,
            reason=reason,
            dropped=dropped,
        )
        if policy.baseline == REF:
            # The commit carries the verdict as always; its tree is main's, and the
            # baseline goes to the shared store under it, before main moves.
            commit = repo.commit_tree(tree, [head], message)
            advance_shared(repo, commit, baseline, message=message)
        else:
            blob = repo.hash_blob(baseline.dumps().encode())
            commit = repo.commit_tree(repo.tree_with_file(tree, BASELINE_PATH, blob), [head],
                                      message)  # fmt: skip
        landing = land(repo, main_ref, head, commit, "evolve: record baseline")
        if not landing.moved:
            raise Refused(landing.refused or "main moved while the baseline was being recorded")
        updated = refresh.updated(result.covers, head, set(result.outcomes), when)
        if updated is not None:
            testmap.save(repo, updated)
        return RecordReport(
            commit=commit,
            main_before=head,
            tested_tree=tree,
            counts=baseline.counts(),
            passing_before=None if before is None else len(before),
            passing_after=len(baseline.passing()),
            flaky=sorted(flaky),
            dropped=dropped,
            sandbox=result.sandbox,
            duration_s=result.duration_s,
        )


def age(recorded_at: str) -> str:
    try:
        then = datetime.fromisoformat(recorded_at)
    except ValueError:
        return "unknown"
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def show(repo: GitRepo, main: str | None = None) -> dict[str, Any]:
    _, head = repo.resolve_main(main)
    policy = load_policy(repo, head)
    baseline, _ = require_baseline(repo, head, policy.baseline)
    days = policy.quarantine_days
    return {
        "main": head,
        "stored_in": STORE_REF if policy.baseline == REF else BASELINE_PATH,
        "commit": baseline.commit,
        "tree": baseline.tree,
        "recorded_at": baseline.recorded_at,
        "age": age(baseline.recorded_at),
        "counts": baseline.counts(),
        "passing": len(baseline.passing()),
        "tests": len(baseline.tests),
        "flaky": baseline.flaky,
        "quarantine_days": days,
        "quarantine_expires": {
            nodeid: ends.isoformat(timespec="seconds") if ends else None
            for nodeid, ends in ((n, expiry(e, days)) for n, e in sorted(baseline.flaky.items()))
        },
    }
