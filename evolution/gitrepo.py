"""The git operations Ratchet needs, on top of GitPython.

Everything the gate writes goes through plumbing (merge-tree, commit-tree, update-ref,
a private index file) so that the user's working tree, index and stash are never
touched, no hook fires, and main moves only by a compare-and-swap ref update.

Over 400 lines on purpose: this class is the one owner of git (as aider's GitRepo is),
so that no other module spells a git command (tests/test_architecture.py checks it);
each method is one git operation, and splitting them by caller would put git back in
several places.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from agent.errors import EnvironmentFailure, UsageError
from evolution.trail import format as trailers

# Commits the gate writes carry this identity unless the caller's environment names
# one: an unattended host often has no user.name configured at all.
GATE_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ratchet gate",
    "GIT_AUTHOR_EMAIL": "gate@ratchet.invalid",
    "GIT_COMMITTER_NAME": "Ratchet gate",
    "GIT_COMMITTER_EMAIL": "gate@ratchet.invalid",
}

_MIN_GIT = (2, 38)  # `git merge-tree --write-tree`
# Git exports these to hooks. Left in place they would aim every git command the gate
# runs in its own worktree (and the test suite's own git calls) at the user's checkout.
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")
_ZERO = "0" * 40
_LOST_PUSH = ("stale info", "fetch first", "non-fast-forward", "failed to update ref",
              "cannot lock ref", "incorrect old value")  # fmt: skip


class GitFailed(EnvironmentFailure):
    """A git command failed where the caller did not expect it to."""


@dataclass(frozen=True)
class Worktree:
    path: Path
    head: str | None
    branch: str | None


class GitRepo:
    """One repository, opened from any folder inside its working tree."""

    def __init__(self, path: Path | str = ".") -> None:
        # The index a hook was told to use, kept for `pending_index_tree`; then the
        # variables go, so that nothing below inherits them.
        self.hook_index = os.environ.get("GIT_INDEX_FILE")
        for name in _REPO_ENV:
            os.environ.pop(name, None)
        try:
            self._repo = git.Repo(Path(path), search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise UsageError(
                f"not a git repository: {Path(path).resolve()}",
                hint="run this inside a git repository, or pass --repo PATH",
            ) from None
        except git.GitCommandNotFound:
            raise EnvironmentFailure("git is not installed or not on PATH") from None
        if self._repo.working_tree_dir is None:
            raise UsageError(f"{path} is a bare repository; Ratchet needs a working tree")
        self.toplevel = Path(self._repo.working_tree_dir).resolve()
        self.common_dir = Path(self._repo.common_dir).resolve()
        self._check_version()

    def _check_version(self) -> None:
        version = self._repo.git.version_info[:2]
        if tuple(version) < _MIN_GIT:
            need = ".".join(map(str, _MIN_GIT))
            raise EnvironmentFailure(f"git {need} or newer is needed (found {version})")

    @property
    def state_dir(self) -> Path:
        """Ratchet's private, unversioned state: locks and the verdict cache."""
        return self.common_dir / "evolve"

    # -- running git -----------------------------------------------------------------

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        ok: Sequence[int] = (0,),
        strip: bool = True,
        stdin: Path | None = None,
    ) -> tuple[int, str, str]:
        command = ["git", *args]
        if cwd is not None:
            command = ["git", "-C", str(cwd), *args]
        with open(stdin if stdin is not None else os.devnull, "rb") as source:
            status, out, err = self._repo.git.execute(
                command,
                with_extended_output=True,
                with_exceptions=False,
                env=dict(env) if env else None,
                strip_newline_in_stdout=strip,
                istream=source if stdin is not None else None,
            )
        if status not in ok:
            detail = (err or out or "").strip().splitlines()
            raise GitFailed(f"git {' '.join(args[:3])} failed: {detail[-1] if detail else status}")
        return status, out, err

    def out(self, *args: str, **kwargs: object) -> str:
        return self.run(*args, **kwargs)[1]  # type: ignore[arg-type]

    # -- reading ----------------------------------------------------------------------

    def resolve_commit(self, ref: str) -> str | None:
        status, out, _ = self.run(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok=(0, 1)
        )
        return out if status == 0 and out else None

    def resolve_main(self, name: str | None) -> tuple[str, str]:
        """The main branch's full ref and commit (`name`, else main, else master);
        refuses a branch with no commit."""
        for candidate in [name] if name else ["main", "master"]:
            ref = f"refs/heads/{candidate}"
            commit = self.resolve_commit(ref)
            if commit:
                return ref, commit
        shown = name or "main (or master)"
        raise UsageError(
            f"branch {shown} has no commit in {self.toplevel}",
            hint="commit something first, or name the main branch with --main",
        )

    def tree_of(self, commit: str) -> str:
        return self.out("rev-parse", f"{commit}^{{tree}}")

    def read_file(self, commit: str, path: str) -> bytes | None:
        """The bytes of `path` at `commit`, or None where it does not exist there."""
        return self.read_blob(f"{commit}:{path}")

    def read_blob(self, name: str) -> bytes | None:
        """The bytes of the blob `name` (an id, or `commit:path`), or None without one."""
        status, out, _ = self._repo.git.execute(
            ["git", "cat-file", "blob", name],
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
            strip_newline_in_stdout=False,
        )
        return out if status == 0 else None

    def blob_id(self, commit: str, path: str) -> str | None:
        status, out, _ = self.run("rev-parse", "--verify", "--quiet", f"{commit}:{path}", ok=(0, 1))
        return out if status == 0 and out else None

    def files_in(self, treeish: str, prefix: str = "") -> list[str]:
        """Every file path in `treeish` (under `prefix`, a folder ending in "/")."""
        args = ["ls-tree", "-r", "--name-only", treeish] + (["--", prefix] if prefix else [])
        return self.out(*args).splitlines()

    def blobs_in(self, treeish: str) -> dict[str, str]:
        """{path: blob id} for every file in `treeish`."""
        return {path: blob for path, (_mode, blob) in self.entries_in(treeish).items()}

    def entries_in(self, treeish: str) -> dict[str, tuple[str, str]]:
        """{path: (mode, object id)} for every entry of `treeish`, whatever its path holds."""
        found = {}
        for record in self.out("ls-tree", "-r", "-z", "--full-tree", treeish).split("\0"):
            if record:
                meta, _, path = record.partition("\t")
                mode, _kind, name = meta.split()
                found[path] = (mode, name)
        return found

    def read_files(self, treeish: str, wanted: Callable[[str], bool]) -> dict[str, bytes]:
        """The bytes of every file in `treeish` whose path `wanted` accepts, read through
        one persistent `git cat-file --batch` (one process, not one per file)."""
        found: dict[str, bytes] = {}
        for line in self.out("ls-tree", "-r", "-z", treeish).split("\0"):
            info, _, path = line.partition("\t")
            kind_and_id = info.split()
            if len(kind_and_id) == 3 and kind_and_id[1] == "blob" and wanted(path):
                found[path] = self._repo.odb.stream(bytes.fromhex(kind_and_id[2])).read()
        return found

    def git_path(self, name: str) -> Path:
        """An absolute path inside the git directory (`git rev-parse --git-path`)."""
        path = Path(self.out("rev-parse", "--git-path", name))
        return path if path.is_absolute() else self.toplevel / path

    def index_tree(self) -> str:
        """The tree of the checkout's index (or the one a hook named), as git would commit it."""
        env = None
        if self.hook_index:
            index = Path(self.hook_index)
            env = {"GIT_INDEX_FILE": str(index if index.is_absolute() else self.toplevel / index)}
        return self.out("write-tree", cwd=self.toplevel, env=env)

    def head_ref(self) -> str:
        """The branch the checkout has out (refs/heads/…), or "" when detached."""
        return self.out("symbolic-ref", "--quiet", "HEAD", ok=(0, 1))

    def first_parents(self, head: str, since: str | None = None) -> list[str]:
        """`head`'s first-parent history, newest first (after `since` only, oldest first)."""
        if since is None:
            return self.out("rev-list", "--first-parent", head).split()
        return self.out("rev-list", "--first-parent", "--reverse", f"{since}..{head}").split()

    def parents(self, commit: str) -> list[str]:
        return self.out("rev-list", "--parents", "-n", "1", commit).split()[1:]

    def log_records(self, notes_ref: str, *args: str) -> list[list[str]]:
        """Commits as [sha, committer date, subject, trailers, note] (the note under
        `notes_ref`, "" for none); `args` choose the commits as `git log` would."""
        field, record = "\x1f", "\x1e"
        fmt = field.join(["%H", "%cI", "%s", "%(trailers:only,unfold)", "%N"]) + record
        out = self.out("log", f"--format={fmt}", f"--notes={notes_ref}", *args, strip=False)
        return [item.lstrip("\n").split(field) for item in out.split(record) if item.strip()]

    def noted_commits(self, notes_ref: str) -> list[str]:
        listing = self.out("notes", f"--ref={notes_ref}", "list", ok=(0, 1))
        return [line.split()[1] for line in listing.splitlines() if len(line.split()) == 2]

    def refs_under(self, prefix: str) -> dict[str, str]:
        """{name after `prefix`: commit} for every ref under `prefix`."""
        out = self.out("for-each-ref", "--format=%(objectname) %(refname)", prefix)
        found = {}
        for line in out.splitlines():
            sha, ref = line.split(" ", 1)
            found[ref.removeprefix(prefix)] = sha
        return found

    def config_get(self, key: str) -> str:
        return self.out("config", "--local", "--get", key, ok=(0, 1))

    def config_set(self, key: str, value: str) -> None:
        self.run("config", "--local", key, value)

    def config_unset(self, key: str) -> None:
        self.run("config", "--local", "--unset", key, ok=(0, 5))

    def prune_worktrees(self) -> None:
        self.run("worktree", "prune")

    def revert_into(self, worktree: Path, commit: str) -> None:
        """Revert `commit` in a scratch worktree's index and files, without committing
        (`-m 1` for a merge); GitFailed when it does not apply cleanly."""
        mainline = ["-m", "1"] if len(self.parents(commit)) > 1 else []
        self.run("-c", "core.hooksPath=/dev/null", "revert", "--no-commit", *mainline, commit,
                 cwd=worktree)  # fmt: skip

    def reset_scratch(self, worktree: Path, commit: str) -> None:
        """Point a scratch worktree at `commit`, index and files (a revert that did not
        apply is dropped with it), so that the next revert starts from there."""
        self.run("reset", "-q", "--hard", commit, cwd=worktree)

    def write_tree(self, worktree: Path) -> str:
        return self.out("write-tree", cwd=worktree)

    def merge_base(self, a: str, b: str) -> str | None:
        return self.out("merge-base", a, b, ok=(0, 1)) or None

    def diff(self, base: str, tip: str) -> str:
        return self.out("diff", base, tip)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        status, _, _ = self.run("merge-base", "--is-ancestor", ancestor, descendant, ok=(0, 1))
        return status == 0

    def commits_between(self, base: str, tip: str) -> list[str]:
        out = self.out("rev-list", "--reverse", f"{base}..{tip}")
        return out.split() if out else []

    def count_commits(self, base: str, tip: str) -> int:
        return int(self.out("rev-list", "--count", f"{base}..{tip}") or 0)

    def paths_between(self, base: str, tip: str) -> list[str]:
        """Paths whose content differs between two commits (both sides of a rename)."""
        out = self.out("diff", "--name-only", "--no-renames", base, tip)
        return sorted(set(out.splitlines())) if out else []

    def trailers(self, commit: str) -> dict[str, list[str]]:
        """The trailers of one commit's message, by key (keys keep their spelling)."""
        return trailers.parse_lines(
            self.out("log", "-1", "--format=%(trailers:only,unfold)", commit)
        )

    def changed_paths(self, commit: str) -> list[str]:
        """Paths a commit touches against each of its parents (both sides of a rename)."""
        out = self.out(
            "diff-tree", "-r", "-m", "--no-commit-id", "--name-only", "--no-renames", commit
        )
        return sorted(set(out.splitlines())) if out else []

    def worktrees(self) -> list[Worktree]:
        out = self.out("worktree", "list", "--porcelain")
        found: list[Worktree] = []
        for block in out.split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                key, _, value = line.partition(" ")
                fields[key] = value
            if "worktree" in fields:
                found.append(
                    Worktree(Path(fields["worktree"]), fields.get("HEAD"), fields.get("branch"))
                )
        return found

    def is_clean(self, path: Path) -> bool:
        """No staged or unstaged change to a tracked file in the worktree at `path`."""
        return self.out("status", "--porcelain", "--untracked-files=no", cwd=path) == ""

    # -- writing objects (never the working tree) -------------------------------------

    def hash_blob(self, data: bytes) -> str:
        with tempfile.NamedTemporaryFile(dir=self.state_dir_ready(), delete=False) as handle:
            handle.write(data)
            name = handle.name
        try:
            return self.out("hash-object", "-w", "--no-filters", name)
        finally:
            os.unlink(name)

    def tree_with_file(self, tree: str, path: str, blob: str) -> str:
        """`tree` with `path` set to `blob`, built in a private index file."""
        return self.edit_tree(tree, {path: blob})

    def edit_tree(
        self,
        tree: str | None,
        put: Mapping[str, str],
        drop: Sequence[str] = (),
        modes: Mapping[str, str] | None = None,
    ) -> str:
        """`tree` (None: the empty tree) without the files `drop` and with each path of
        `put` set to its blob (a regular file, unless `modes` says 100755), built in a
        private index file."""
        with tempfile.TemporaryDirectory(dir=self.state_dir_ready()) as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self.run("read-tree", *([tree] if tree else ["--empty"]), env=env)
            if drop:
                self.run("update-index", "--force-remove", "--", *drop, env=env)
            if put:
                mode = modes or {}
                cacheinfo = [
                    arg for path, blob in sorted(put.items())
                    for arg in ("--cacheinfo", f"{mode.get(path, '100644')},{blob},{path}")
                ]  # fmt: skip
                self.run("update-index", "--add", *cacheinfo, env=env)
            return self.out("write-tree", env=env)

    def merge_tree(self, ours: str, theirs: str) -> tuple[str | None, list[str]]:
        """The tree of merging `theirs` into `ours`, or None and the conflicted paths."""
        status, out, _ = self.run(
            "merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs, ok=(0, 1)
        )
        lines = out.splitlines()
        if status == 0:
            return lines[0], []
        return None, sorted(set(lines[1:]))

    def commit_tree(self, tree: str, parents: Sequence[str], message: str) -> str:
        args = ["commit-tree", "--no-gpg-sign", tree]
        for parent in parents:
            args += ["-p", parent]
        args += ["-m", message]
        return self.out(*args, env=_gate_identity())

    def update_ref(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        """Compare-and-swap: point `ref` at `new` only if it still points at `old`.

        `old=None` means the ref must not exist yet. False when someone else moved it.
        """
        status, _, _ = self.run("update-ref", "-m", reason, ref, new, old or _ZERO, ok=(0, 1, 128))
        return status == 0

    def delete_ref(self, ref: str, old: str) -> bool:
        status, _, _ = self.run("update-ref", "-d", ref, old, ok=(0, 1, 128))
        return status == 0

    def fetch_ref(self, remote: str, ref: str, into: str) -> str | None:
        """`remote`'s `ref` copied into the local ref `into` (forced: the remote is the
        authority on its own ref); its commit, or None when the remote has no such ref."""
        status, _, _ = self.run("ls-remote", "--exit-code", remote, ref, ok=(0, 2))
        if status == 2:
            return None
        self.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote,
                 f"+{ref}:{into}")  # fmt: skip
        return self.resolve_commit(into)

    def push_ref(self, remote: str, ref: str, new: str, old: str | None) -> bool:
        """Compare-and-swap on `remote`: set its `ref` to `new` only if it is still `old`
        (None: it must not exist), by `--force-with-lease=REF:OLD`. False when the remote's
        ref was not `old` (someone else moved it); GitFailed on any other refusal."""
        lease = f"--force-with-lease={ref}:{old or ''}"
        status, out, err = self.run("push", "--porcelain", "--no-verify", lease, remote,
                                    f"{new}:{ref}", ok=(0, 1))  # fmt: skip
        if status == 0:
            return True
        # The lease failed here ("stale info"), or at the remote, whose own swap lost to
        # a push that arrived at the same moment ("failed to update ref").
        if any(word in out for word in _LOST_PUSH):
            return False
        detail = [line for line in (out + "\n" + err).splitlines() if line.startswith("!")]
        raise GitFailed(f"git push {ref} to {remote} refused: {(detail or [err.strip()])[-1]}")

    def add_note(self, ref: str, commit: str, text: str) -> None:
        self.run("notes", f"--ref={ref}", "add", "-f", "-m", text, commit, env=_gate_identity())

    def follow_fast_forward(self, worktree: Path, old: str, new: str) -> None:
        """Move a clean checkout's index and files from `old` to `new` (a fast-forward)."""
        self.run("read-tree", "-m", "-u", old, new, cwd=worktree)

    def can_follow(self, worktree: Path, old: str, new: str) -> bool:
        status, _, _ = self.run("read-tree", "-n", "-m", "-u", old, new, cwd=worktree, ok=(0, 128))
        return status == 0

    @classmethod
    def create(cls, path: Path) -> GitRepo:
        """A new repository at `path` whose first branch is main."""
        done = subprocess.run(["git", "init", "-q", "-b", "main", str(path)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            raise GitFailed(f"git init failed: {done.stderr.strip()}")
        return cls(path)

    def commit_paths(self, folder: Path, message: str) -> None:
        """Commit everything under `folder` of the checkout (and nothing else staged),
        as the gate's identity where the environment names none."""
        relative = str(folder.resolve().relative_to(self.toplevel)) or "."
        self.run("add", "-A", "--", relative, cwd=self.toplevel)
        self.run("commit", "--no-verify", "-q", "-m", message, "--", relative,
                 cwd=self.toplevel, env=_gate_identity())  # fmt: skip

    @contextmanager
    def scratch_worktree(self, commit: str) -> Iterator[Path]:
        """A detached linked worktree at `commit`, outside the repository, for git's own
        work (a revert): never for running tests, which could reach the repository
        through it."""
        with tempfile.TemporaryDirectory(prefix="ratchet-scratch-") as parent:
            path = Path(parent) / "wt"
            self.run("-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "--quiet",
                     str(path), commit)
            try:
                yield path
            finally:
                self.run("worktree", "remove", "--force", "--force", str(path), ok=(0, 128))

    def export_commit(self, commit: str, dest: Path) -> None:
        """A standalone repository at `dest` holding `commit` alone, checked out.

        Not a linked worktree: nothing in `dest` points back at this repository (a
        suite run there could otherwise move main or write its hooks). Only the
        commit's own objects are copied, by one pack; `.git/shallow` cuts its history.
        """
        subprocess.run(
            ["git", "init", "-q", "--template=", str(dest)], check=True, capture_output=True
        )
        listing = subprocess.Popen(
            ["git", "-C", str(self.toplevel), "rev-list", "--objects", "--no-object-names",
             "-n", "1", commit],
            stdout=subprocess.PIPE,
        )
        packing = subprocess.Popen(
            ["git", "-C", str(self.toplevel), "pack-objects", "-q", "--stdout"],
            stdin=listing.stdout,
            stdout=subprocess.PIPE,
        )
        assert listing.stdout is not None
        listing.stdout.close()
        unpacked = subprocess.run(
            ["git", "-C", str(dest), "index-pack", "--stdin"],
            stdin=packing.stdout,
            capture_output=True,
            check=False,
        )
        if listing.wait() or packing.wait() or unpacked.returncode:
            raise GitFailed(f"could not copy {commit[:10]} into {dest}: "
                            f"{unpacked.stderr.decode(errors='replace').strip()}")
        gitdir = dest / ".git"
        (gitdir / "shallow").write_text(commit + "\n")
        (gitdir / "HEAD").write_text(commit + "\n")
        self.run("-c", "core.hooksPath=/dev/null", "read-tree", "-u", "--reset", "HEAD",
                 cwd=dest)

    def diff_paths(self, patch: Path) -> list[str]:
        """The paths a unified diff changes; GitFailed when git cannot read it."""
        status, out, err = self.run("apply", "--numstat", str(patch.resolve()), ok=(0, 1, 128))
        if status != 0 or not out.strip():
            raise GitFailed(err.strip() or "empty")
        return [line.split("\t", 2)[2] for line in out.splitlines()]

    def apply_diff(self, base: str, patch: Path, paths: list[str]) -> dict[str, str]:
        """`paths` as they are after applying a unified diff to `base`, in a private
        index (the checkout is never touched); GitFailed when it does not apply."""
        with tempfile.TemporaryDirectory(dir=self.state_dir_ready()) as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self.run("read-tree", base, env=env)
            status, _, err = self.run(
                "apply", "--cached", str(patch.resolve()), env=env, ok=(0, 1, 128)
            )
            if status != 0:
                raise GitFailed(err.strip())
            tree = self.out("write-tree", env=env)
        changed = {}
        for path in paths:
            blob = self.read_file(tree, path)
            if blob is not None:
                changed[path] = blob.decode("utf-8", errors="surrogateescape")
        return changed

    def commit_files(
        self, base: str, files: Mapping[str, str | None], message: str, branch: str
    ) -> str:
        """A commit on `base` with `files` replaced (None: removed; an executable stays
        executable), made into a new branch by plumbing (the checkout, index and stash
        are never touched); refuses an existing branch."""
        put = {
            path: self.hash_blob(content.encode("utf-8", errors="surrogateescape"))
            for path, content in files.items() if content is not None
        }  # fmt: skip
        executable = {path: mode for path, (mode, _blob) in self.entries_in(base).items()
                      if path in put and mode == "100755"}  # fmt: skip
        tree = self.edit_tree(
            self.tree_of(base), put, sorted(p for p, c in files.items() if c is None), executable
        )
        commit = self.commit_tree(tree, [base], message)
        if not self.update_ref(f"refs/heads/{branch}", commit, None, "evolve: propose"):
            raise EnvironmentFailure(f"branch {branch} already exists")
        return commit

    def state_dir_ready(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self.state_dir


def _gate_identity() -> dict[str, str]:
    """The gate's identity for the parts of it the caller's environment does not set."""
    return {key: value for key, value in GATE_IDENTITY.items() if key not in os.environ}


def ignored(rules: bytes, paths: Sequence[str]) -> set[str]:
    """Which of `paths` a .gitignore holding `rules` ignores, as git decides it, in a
    throwaway repository (nothing of a repository whose config may not be trusted is
    read: a coding agent's scratch tree)."""
    if not paths:
        return set()
    with tempfile.TemporaryDirectory() as empty:
        excludes = Path(empty, "excludes")
        excludes.write_bytes(rules)
        listed = Path(empty, "paths")
        listed.write_bytes("\0".join(paths).encode("utf-8", "surrogateescape"))
        repo = GitRepo.create(Path(empty, "repo"))
        _status, out, _err = repo.run(
            "-c", f"core.excludesFile={excludes}", "check-ignore", "--no-index", "--stdin",
            "-z", ok=(0, 1), strip=False, stdin=listed,
        )  # fmt: skip
    return {p for p in out.split("\0") if p}


def slug(text: str, limit: int = 40) -> str:
    """A ref-safe slug: lowercase words joined by dashes."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "change"
