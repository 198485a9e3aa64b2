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
import itertools
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
# Bounds of the walk: what no change needs, and what a hostile agent could leave to
# exhaust the gate's stack, memory or time.
MAX_DEPTH = 64
MAX_ENTRIES = 50_000


class ScratchRefused(Failed):
    """The scratch tree holds something a change may not be made of."""


@dataclass
class TreeDiff:
    files: dict[str, str | None] = field(default_factory=dict)  # path -> content, None: deleted
    old: dict[str, bytes] = field(default_factory=dict)  # what each changed path held before

    @property
    def empty(self) -> bool:
        return not self.files

    def size(self) -> tuple[int, int]:
        """Lines added plus removed, and the bytes of the added lines: what the limits
        weigh (a 3 MB line is one line). Line-based matching, never character-based:
        the time stays near linear in the files' size."""
        lines = added = 0
        for rel, content in self.files.items():
            new = [] if content is None else content.splitlines()
            old = self.old.get(rel, b"").decode("utf-8", "replace").splitlines()
            hunks = difflib.unified_diff(old, new, n=0, lineterm="")
            for line in itertools.islice(hunks, 2, None):  # past the two file headers
                if line[:1] in ("+", "-"):
                    lines += 1
                if line[:1] == "+":
                    added += len(line[1:].encode("utf-8", "surrogateescape"))
        return lines, added


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _skipped(name: str, droppings: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in (*CACHE_FILES, *droppings))


def _walk(tree: Path, droppings: tuple[str, ...]) -> dict[str, Path]:
    """Every entry under `tree` a change may be made of (links to folders as entries:
    they are never entered, and refused later). Iterative and bounded: the agent may
    have left folders nested deeper than any stack, or millions of files."""
    found: dict[str, Path] = {}
    stack = [(tree, 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ScratchRefused(f"the agent left folders nested deeper than {MAX_DEPTH}")
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            raise ScratchRefused(
                f"the agent left {folder.relative_to(tree)} unreadable ({error.strerror})"
            ) from None
        for entry in entries:
            if _skipped(entry.name, droppings):
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in CACHE_DIRS:
                    stack.append((Path(entry.path), depth + 1))
                continue
            found[Path(entry.path).relative_to(tree).as_posix()] = Path(entry.path)
            if len(found) > MAX_ENTRIES:
                raise ScratchRefused(f"the agent left more than {MAX_ENTRIES} files")
    return found


def _ignored(repo: GitRepo, commit: str, paths: list[str]) -> set[str]:
    """Which of the new `paths` the commit's root .gitignore ignores."""
    rules = repo.read_file(commit, ".gitignore")
    return ignored(rules, paths) if rules is not None else set()


def snapshot(tree: Path) -> dict[str, str]:
    """The blob id of every file of the freshly exported tree, as it lies on disk: what
    "unchanged" means afterwards. Not the commit's own ids: the export applies the
    repository's attributes (line endings, `ident`), so a file the agent never touched
    may differ from its blob."""
    return {rel: blob_id(path.read_bytes()) for rel, path in _walk(tree, ()).items()
            if path.is_file() and not path.is_symlink()}  # fmt: skip


def diff_tree(
    repo: GitRepo, commit: str, tree: Path, before: dict[str, str],
    droppings: tuple[str, ...] = (),
) -> TreeDiff:  # fmt: skip
    """The change the agent left in `tree`, against the tree as it was exported
    (`before`) from `commit`."""
    base = repo.entries_in(commit)
    found = _walk(tree, droppings)
    unwanted = _ignored(repo, commit, [rel for rel in found if rel not in base])
    diff = TreeDiff()
    for rel, path in sorted(found.items()):
        if rel in unwanted or base.get(rel, ("",))[0] == "160000":
            continue  # ignored by the repository, or a submodule's folder
        data = _content(rel, path, base.get(rel), before.get(rel))
        if data is None:
            continue
        diff.files[rel] = data.decode("utf-8", "surrogateescape")
        if rel in base:
            diff.old[rel] = repo.read_file(commit, rel) or b""
    for rel, (mode, _blob) in sorted(base.items()):
        if rel not in found and mode != "160000" and not _under_skipped(rel, droppings):
            diff.files[rel] = None
            diff.old[rel] = repo.read_file(commit, rel) or b""
    return diff


def _content(
    rel: str, path: Path, entry: tuple[str, str] | None, exported: str | None
) -> bytes | None:
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
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ScratchRefused(f"the agent left {rel} unreadable ({error.strerror})") from None
    if blob_id(data) in {exported, entry[1] if entry else None}:
        return None
    return data


def _under_skipped(rel: str, droppings: tuple[str, ...]) -> bool:
    """A committed file inside a folder the walk does not enter (a committed `.venv`):
    not deleted, only unseen."""
    parts = rel.split("/")
    return any(p in CACHE_DIRS or _skipped(p, droppings) for p in parts)
