"""A private folder per test run, and the clean-up of those a killed run left behind.

Each run folder lives outside the repository (so pytest never finds the user's
conftest.py or ini files above it) and holds:
- `tree/`: the commit under test, as a standalone repository of that one commit (not a
  linked worktree: nothing in it leads back to the user's repository);
- `tmp/`: the suite's private temporary folder, `home/`, its private home folder (HOME,
  emptied before each run), and `out/`, where it writes what the gate reads back (the
  JSON report, coverage data); the only places it may write;
- `probe/`: the gate's plugin, canaries and selection, read-only to the suite;
- `pgid`: the running suite's group id, so the next run can end it after a SIGKILL;
- `part-N/`: when the suite runs as several processes at once, each one's own `tmp/`,
  `home/`, `out/`, `probe/` and `pgid` (the tree is shared, read-only).
All of a repository's run folders share one parent, which the suite can neither read
nor write; holding the gate lock, the next run knows every folder there is a leftover.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

from agent.procgroup import end_orphaned_group
from evolution.gitrepo import GitRepo
from evolution.sandbox.plan import hidden_homes, home_secrets

PGID_FILE = "pgid"
IDENTITY_DEFAULT = "~/.config/ratchet/identity.txt"


def runs_root(repo: GitRepo) -> Path:
    digest = hashlib.sha256(str(repo.common_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ratchet-{digest}"


def forbidden_paths(repo: GitRepo) -> tuple[Path, ...]:
    """What a test run must neither read nor write: every checkout of the repository,
    its git directory (refs, objects, hooks, the gate's state), the gate's run folders,
    the agent's root (its `runs/`: ledger, vault, access log), the age identity, and
    the credentials in the home folder."""
    paths = {repo.toplevel, repo.common_dir, runs_root(repo)}
    paths.update(worktree.path for worktree in repo.worktrees())
    if os.environ.get("AGENT_ROOT"):
        paths.add(Path(os.environ["AGENT_ROOT"]))
    paths.add(Path(os.path.expanduser(os.environ.get("AGENT_IDENTITY") or IDENTITY_DEFAULT)))
    paths.update(home_secrets())
    return tuple(sorted(Path(os.path.realpath(p)) for p in paths))


class RunFolder:
    """A run folder with a standalone copy of `commit`, removed on exit."""

    def __init__(self, repo: GitRepo, commit: str) -> None:
        self.repo = repo
        self.commit = commit
        self.root = runs_root(repo)
        self.path = _new_run_folder(self.root)
        self.tree = self.path / "tree"
        self.tmp = self.path / "tmp"
        self.out = self.path / "out"
        self.probe = self.path / "probe"
        self.home = self.path / "home"
        self.forbidden = forbidden_paths(repo)
        self.hidden = tuple(hidden_homes())  # the real homes: not the suite's world
        self.planted: list[Path] = []  # the canaries now in the tree
        self.planted_baseline: bytes | None = None  # the tree's baseline as committed

    def __enter__(self) -> RunFolder:
        for folder in (self.tmp, self.out, self.probe, self.home):
            folder.mkdir()
        try:
            self.repo.export_commit(self.commit, self.tree)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        remove_run_folder(self.path)
        _drop_if_empty(self.root)

    def part(self, index: int) -> RunFolder:
        """A view of this folder for one of several test processes running at once: the
        same tree and canaries, its own tmp, out, probe and group file, so that no
        process can see or change what another writes."""
        part = copy.copy(self)  # shares `planted`: the canaries are planted once
        part.path = self.path / f"part-{index}"
        part.tmp, part.out, part.probe, part.home = (
            part.path / n for n in ("tmp", "out", "probe", "home")
        )
        for folder in (part.path, part.tmp, part.out, part.probe, part.home):
            folder.mkdir(exist_ok=True)
        return part

    def empty_home(self) -> None:
        """Make the private home empty again: each run starts from nothing a previous
        one left there (a re-run included). The folder itself stays: a sandbox already
        entered (a fork server's) granted it by its inode."""
        self.home.mkdir(mode=0o700, exist_ok=True)
        for entry in os.scandir(self.home):
            if entry.is_dir(follow_symlinks=False):
                remove_run_folder(Path(entry.path))
            else:
                os.unlink(entry.path)


def _new_run_folder(root: Path) -> Path:
    # Another process may remove the (empty) parent between the mkdir and the mkdtemp.
    for _attempt in range(5):
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            return Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=root))
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"could not create a run folder in {root}")


def _drop_if_empty(root: Path) -> None:
    """Leave no empty parent behind in the temporary folder: a host that runs many
    repositories' gates would otherwise collect one per repository, and every one is a
    rule the sandbox must list."""
    with contextlib.suppress(OSError):
        root.rmdir()


def remove_run_folder(folder: Path) -> None:
    # A suite may have left read-only folders in its tmp: make them removable first.
    # Never through a symlink (the suite may have planted one pointing anywhere): only
    # real directories are opened, with O_NOFOLLOW, and changed through the descriptor.
    def writable(path: str) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        return True

    def unlock(_function: object, path: str, _error: object) -> None:
        if writable(os.path.dirname(path)):
            with contextlib.suppress(OSError):
                if writable(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)

    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(folder, onexc=unlock)
        else:  # pragma: no cover - Python 3.11
            shutil.rmtree(folder, onerror=unlock)
    except RecursionError:
        # Folders nested deeper than the interpreter's stack (a hostile suite or coding
        # agent can make them): rm walks them without recursion, never through a link.
        # A leftover must never stop the next gate run.
        subprocess.run(["rm", "-rf", "--", str(folder)], capture_output=True, check=False)


def prune_leftovers(repo: GitRepo) -> list[Path]:
    """End orphaned test groups and delete leftover run folders. Call it under the lock."""
    root = runs_root(repo)
    removed: list[Path] = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if not folder.is_dir():
                continue
            for pgid_file in (folder / PGID_FILE, *folder.glob(f"part-*/{PGID_FILE}")):
                end_orphaned_group(pgid_file, folder)
            remove_run_folder(folder)
            removed.append(folder)
        _drop_if_empty(root)
    repo.prune_worktrees()  # linked worktrees of gate versions before 0.2
    return removed
