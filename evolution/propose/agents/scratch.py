"""What a coding agent changed in its scratch tree, read without trusting the tree.

The agent had the scratch tree to itself: its `.git` (a repository of one commit that
Ratchet made, for tools that want one) may now hold anything, a config with filters or
hooks included, so no git command is run on it. The tree is walked in Python instead,
each file hashed as git hashes a blob and compared with the target commit's tree as
the repository (not the scratch copy) lists it. The agent's own commits, stashes and
branches are in `.git`, which is never read: only the files count.

What is not part of a change: `.git`, the caches any test run leaves (`__pycache__`,
`.pytest_cache`, ...), the files the tool writes for itself (the adapter's droppings)
and new files that the repository's root `.gitignore` ignores. A symbolic link the
agent made, or a file it turned into one, is refused: the gate's checks read files, and
a link could point them anywhere.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from evolution.gitrepo import GitRepo, ignored
from evolution.propose.base import Failed

CACHE_DIRS = frozenset({
    ".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
    ".tox", ".nox", ".venv", "node_modules", ".coverage",
})  # fmt: skip
CACHE_FILES = ("*.pyc", "*.pyo", ".coverage", ".coverage.*")
# A file this large is no source change (read whole into memory, then into a commit).
MAX_FILE_BYTES = 4 << 20


class ScratchRefused(Failed):
    """The scratch tree holds something a change may not be made of."""


@dataclass
class TreeDiff:
    files: dict[str, str | None] = field(default_factory=dict)  # path -> content, None: deleted
    lines: int = 0  # added plus removed

    @property
    def empty(self) -> bool:
        return not self.files


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _skipped(name: str, droppings: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in (*CACHE_FILES, *droppings))


def _walk(tree: Path, droppings: tuple[str, ...]) -> dict[str, Path]:
    """Every file under `tree` a change may be made of (links to folders included, as
    files: os.walk does not follow them, and they are refused later)."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(tree):
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        dirs[:] = sorted(
            d for d in dirs
            if d not in CACHE_DIRS and d not in links and not _skipped(d, droppings)
        )  # fmt: skip
        for name in [*files, *links]:
            if not _skipped(name, droppings):
                path = Path(folder, name)
                found[path.relative_to(tree).as_posix()] = path
    return found


def _ignored(repo: GitRepo, commit: str, paths: list[str]) -> set[str]:
    """Which of the new `paths` the commit's root .gitignore ignores."""
    rules = repo.read_file(commit, ".gitignore")
    return ignored(rules, paths) if rules is not None else set()


def _lines(old: bytes, new: bytes) -> int:
    a = old.decode("utf-8", "replace").splitlines()
    b = new.decode("utf-8", "replace").splitlines()
    return sum(1 for line in difflib.ndiff(a, b) if line[:2] in ("+ ", "- "))


def diff_tree(repo: GitRepo, commit: str, tree: Path, droppings: tuple[str, ...] = ()) -> TreeDiff:
    """The change the agent left in `tree`, against `commit`'s tree."""
    base = repo.entries_in(commit)
    found = _walk(tree, droppings)
    unwanted = _ignored(repo, commit, [rel for rel in found if rel not in base])
    diff = TreeDiff()
    for rel, path in sorted(found.items()):
        if rel in unwanted or base.get(rel, ("",))[0] == "160000":
            continue  # ignored by the repository, or a submodule's folder
        data = _content(rel, path, base.get(rel))
        if data is None:
            continue
        diff.files[rel] = data.decode("utf-8", "surrogateescape")
        diff.lines += _lines(repo.read_file(commit, rel) or b"" if rel in base else b"", data)
    for rel, (mode, _blob) in sorted(base.items()):
        if rel not in found and mode != "160000" and not _under_skipped(rel, droppings):
            diff.files[rel] = None
            diff.lines += _lines(repo.read_file(commit, rel) or b"", b"")
    return diff


def _content(rel: str, path: Path, entry: tuple[str, str] | None) -> bytes | None:
    """The new content of a file the agent may have changed; None if unchanged. Only
    regular files of a sane size make a change: a link could point the gate's checks
    anywhere, and a pipe or a device would hang the read."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(path).encode()
        if entry is not None and entry[0] == "120000" and blob_id(target) == entry[1]:
            return None
        raise ScratchRefused(f"the agent left a symbolic link at {rel}: a change is files only")
    if not stat.S_ISREG(info.st_mode):
        raise ScratchRefused(f"the agent left {rel}, which is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ScratchRefused(f"the agent left {rel} of {info.st_size} bytes, over the "
                             f"{MAX_FILE_BYTES} a changed file may hold")  # fmt: skip
    data = path.read_bytes()
    return None if entry is not None and blob_id(data) == entry[1] else data


def _under_skipped(rel: str, droppings: tuple[str, ...]) -> bool:
    """A committed file inside a folder the walk does not enter (a committed `.venv`):
    not deleted, only unseen."""
    parts = rel.split("/")
    return any(p in CACHE_DIRS or _skipped(p, droppings) for p in parts)
