"""One gate at a time per repository, and a clean slate before each.

Every command that tests a commit or moves main (validate, the pending-merge check, the
safety net, baseline record) runs inside `exclusive`: an OS lock in the git directory,
then the removal of whatever a killed run left behind. Holding the lock is what makes
every leftover safe to delete. What runs inside is the verdict pipeline's business
(`evolution.gate.verdict`), not this module's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from agent.errors import EnvironmentFailure
from agent.locks import LockBusy, ProcessLock
from evolution.gitrepo import GitRepo
from evolution.run.folder import prune_leftovers


@contextmanager
def exclusive(repo: GitRepo, *, wait: bool) -> Iterator[None]:
    """Hold the repository's gate lock (queue behind another gate with `wait`, else fail
    at once, exit 3) and clear what a killed gate left behind."""
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
