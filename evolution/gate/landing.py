"""Move main forward by compare-and-swap, and bring a clean checkout of main along.

Main never moves under a dirty checkout: its files would then look like a staged revert
of the change just landed, one careless commit away from undoing it. In that case the
gate refuses to move main and says why; the verdict is cached, so landing later is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.errors import UsageError
from evolution.gitrepo import GitRepo


@dataclass(frozen=True)
class Landing:
    moved: bool
    raced: bool = False  # main moved under us: validate again
    refused: str = ""  # why main was not moved, for the user
    checkout: Path | None = None


@dataclass(frozen=True)
class LostRace:
    """Main moved between being read and the compare-and-swap: the verdict was about a
    main that is gone, so nothing was decided and the caller judges again on the new
    one. A value of its own, so that no report's reason has to carry it as a word."""

    main_ref: str
    expected: str  # the main the verdict was about


def main_checkout(repo: GitRepo, main_ref: str) -> Path | None:
    for worktree in repo.worktrees():
        if worktree.branch == main_ref:
            return worktree.path
    return None


def refuse_dirty_main(repo: GitRepo, main_ref: str, doing: str, hint: str) -> None:
    """A usage error when main's checkout has uncommitted changes: `doing` says what
    would otherwise move main under them."""
    checkout = main_checkout(repo, main_ref)
    if checkout is not None and not repo.is_clean(checkout):
        raise UsageError(f"{checkout} has uncommitted changes; {doing}", hint=hint)


def land(repo: GitRepo, main_ref: str, old: str, new: str, reason: str) -> Landing:
    checkout = main_checkout(repo, main_ref)
    if checkout is not None:
        if not repo.is_clean(checkout):
            return Landing(
                moved=False,
                refused=f"{main_ref.removeprefix('refs/heads/')} is checked out at {checkout} "
                "with uncommitted changes; commit or stash them, then run the same command "
                "again (the verdict is cached)",
                checkout=checkout,
            )
        if not repo.can_follow(checkout, old, new):
            if repo.resolve_commit(main_ref) != old:
                # Someone committed on main there: the checkout cannot follow `old`..`new`
                # because the race is already lost, not because of files in the way.
                return Landing(moved=False, raced=True, checkout=checkout)
            return Landing(
                moved=False,
                refused=f"files in {checkout} would be overwritten by the merge (untracked "
                "files in the way?); move them, then run the same command again",
                checkout=checkout,
            )
    if not repo.update_ref(main_ref, new, old, reason):
        return Landing(moved=False, raced=True, checkout=checkout)
    if checkout is not None:
        repo.follow_fast_forward(checkout, old, new)
    return Landing(moved=True, checkout=checkout)
