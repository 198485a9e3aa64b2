"""Temporary worktrees for test runs, and the clean-up of ones a killed run left behind.

Each run gets a private folder outside the repository (so pytest never finds the main
checkout's conftest.py or ini files above it) holding the worktree, the report, the
progress file and the group id of the running suite. All of a repository's run folders
share one parent, so the next run, holding the gate lock, knows every one it finds
there is a leftover.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from agent.procgroup import end_orphaned_group
from evolution.gitrepo import GitRepo

PGID_FILE = "pgid"


def runs_root(repo: GitRepo) -> Path:
    digest = hashlib.sha256(str(repo.common_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ratchet-{digest}"


class RunFolder:
    """A run folder with a detached worktree at `commit`, removed on exit."""

    def __init__(self, repo: GitRepo, commit: str) -> None:
        self.repo = repo
        self.commit = commit
        root = runs_root(repo)
        root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=root))
        self.worktree = self.path / "wt"

    def __enter__(self) -> RunFolder:
        # No hook may fire for the gate's own checkout (post-checkout, for one).
        self.repo.run(
            "-c",
            "core.hooksPath=/dev/null",
            "worktree",
            "add",
            "--detach",
            "--quiet",
            str(self.worktree),
            self.commit,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        remove_run_folder(self.repo, self.path)


def remove_run_folder(repo: GitRepo, folder: Path) -> None:
    worktree = folder / "wt"
    if worktree.exists():
        repo.run("worktree", "remove", "--force", "--force", str(worktree), ok=(0, 128))
    shutil.rmtree(folder, ignore_errors=True)


def prune_leftovers(repo: GitRepo) -> list[Path]:
    """End orphaned test groups and delete leftover run folders. Call it under the lock."""
    root = runs_root(repo)
    removed: list[Path] = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if not folder.is_dir():
                continue
            end_orphaned_group(folder / PGID_FILE, folder)
            remove_run_folder(repo, folder)
            removed.append(folder)
    repo.run("worktree", "prune")
    return removed

