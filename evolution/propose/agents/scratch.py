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
from dataclasses import dataclass, field
from pathlib import Path

from evolution.gitrepo import GitRepo, ignored
from evolution.propose.base import Failed

CACHE_DIRS = frozenset({
    ".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
    ".tox", ".nox", ".venv", "node_modules", ".coverage",
})  # fmt: skip
CACHE_FILES = ("*.pyc", "*.pyo", ".coverage", ".coverage.*")


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
    diff = TreeDiff()
    for rel, path in sorted(found.items()):
        if path.is_symlink():
            mode, blob = base.get(rel, ("", ""))
            if mode == "120000" and blob_id(os.readlink(path).encode()) == blob:
                continue
            raise ScratchRefused(f"the agent left a symbolic link at {rel}: a change is files only")
        if rel in base and base[rel][0] == "160000":
            continue  # a submodule's folder: not the agent's to change
        data = path.read_bytes()
        if rel in base and blob_id(data) == base[rel][1]:
            continue
        old = repo.read_file(commit, rel) if rel in base else b""
        diff.files[rel] = data.decode("utf-8", "surrogateescape")
        diff.lines += _lines(old or b"", data)
    for rel in sorted(_ignored(repo, commit, [p for p in diff.files if p not in base])):
        del diff.files[rel]
    for rel, (mode, _blob) in sorted(base.items()):
        if rel not in found and mode != "160000" and not _under_skipped(rel, droppings):
            diff.files[rel] = None
            diff.lines += _lines(repo.read_file(commit, rel) or b"", b"")
    return diff


def _under_skipped(rel: str, droppings: tuple[str, ...]) -> bool:
    """A committed file inside a folder the walk does not enter (a committed `.venv`):
    not deleted, only unseen."""
    parts = rel.split("/")
    return any(p in CACHE_DIRS or _skipped(p, droppings) for p in parts)
