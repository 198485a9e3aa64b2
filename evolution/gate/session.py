"""One gate at a time per repository, and a clean slate before each.

Every command that tests a commit or moves main (validate, baseline record) runs inside
`exclusive`: an OS lock in the git directory, then the removal of whatever a killed run
left behind. Holding the lock is what makes every leftover safe to delete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agent.errors import EnvironmentFailure
from agent.locks import LockBusy, ProcessLock
from evolution.gate.staged import FirstStage, Rejection, run_first
from evolution.gitrepo import GitRepo
from evolution.policy import Policy
from evolution.run.flaky import rerun_suspects
from evolution.run.folder import RunFolder, prune_leftovers
from evolution.run.launch import ProgressCallback
from evolution.run.report import RunResult
from evolution.run.shards import Installments, run_suite
from evolution.sandbox.isolation import Isolation

SuspectPicker = Callable[[RunResult], list[str]]


@contextmanager
def exclusive(repo: GitRepo, *, wait: bool) -> Iterator[None]:
    lock = ProcessLock(repo.state_dir_ready() / "gate.lock", wait=wait)
    try:
        lock.acquire()
    except LockBusy as busy:
        who = f"pid {busy.holder}" if busy.holder else "another process"
        raise EnvironmentFailure(
            f"another gate is running on this repository ({who})",
            hint="wait for it to finish, or pass --wait to queue behind it",
        ) from None
    try:
        prune_leftovers(repo)
        yield
    finally:
        lock.release()


@dataclass
class Trial:
    result: RunResult
    reruns: dict[str, dict[str, Any]]
    early: Rejection | None = None  # the first stage rejected: `result` is only its run


def trial(
    repo: GitRepo,
    commit: str,
    tree: str,
    policy: Policy,
    pick_suspects: SuspectPicker,
    when: str,
    isolation: Isolation,
    progress: ProgressCallback | None = None,
    *,
    first: FirstStage | None = None,
    with_map: bool = False,
    installments: Installments | None = None,
) -> Trial:
    """Test `commit` in a fresh run folder (the first stage's tests first, when given),
    then re-run the suspects the caller picks; with `installments`, maybe in parts over
    several calls (`evolution.run.shards.Unfinished`)."""
    with RunFolder(repo, commit) as folder:
        if first is not None:
            early = run_first(policy, folder, isolation, first, tree, when)
            if early is not None:
                return Trial(early.result, early.reruns, early)
        result = run_suite(repo, policy, folder, isolation, progress=progress,
                           with_map=with_map, installments=installments)  # fmt: skip
        suspects = pick_suspects(result)
        reruns = (
            rerun_suspects(policy, folder, isolation, suspects, result, tree, when)
            if suspects
            else {}
        )
    return Trial(result, reruns)
