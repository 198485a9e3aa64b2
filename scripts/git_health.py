"""Health check of the deployment's git repository, which is the agent's audit trail.

Three things go wrong on an unattended host, and each one blocks the ratchet silently:

- corruption (a disk error, a killed write): `git fsck` finds it. It runs in its own
  process group under `--fsck-timeout`, and the whole group is killed on timeout, so a
  hung fsck cannot outlive the check;
- stale worktrees: a gate worktree whose folder vanished (crash, tmp cleaner) stays
  registered and keeps its branch checked out; `git worktree list` marks it `prunable`;
- stale lock files (`index.lock`, `HEAD.lock`, `refs/**/*.lock`, ...): a git process
  killed mid-write leaves its lock behind, and every later write then fails.

With `--fix`, stale worktrees are pruned and lock files older than `--stale-after-s` are
removed; each fix is reported on a `FIXED:` line. Younger locks are left alone: they may
belong to a git command that is running right now.

Git environment variables inherited from the caller (`GIT_DIR`, `GIT_INDEX_FILE`, ...,
set when this runs from a hook) are dropped, so the check always looks at `--repo`.

Exit codes: 0 healthy (possibly after fixes), 1 a problem (not a repository, fsck failed
or timed out, stale things remain), 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# What `git rev-parse --local-env-vars` lists: each one redirects git to another
# repository, index or object store than the one named by --repo.
GIT_LOCAL_ENV = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_CONFIG",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_PARAMETERS",
    "GIT_DIR",
    "GIT_GRAFT_FILE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_OBJECT_DIRECTORY",
    "GIT_PREFIX",
    "GIT_REPLACE_REF_BASE",
    "GIT_SHALLOW_FILE",
    "GIT_WORK_TREE",
)
LOCK_NAMES = (
    "index.lock",
    "HEAD.lock",
    "ORIG_HEAD.lock",
    "FETCH_HEAD.lock",
    "packed-refs.lock",
    "config.lock",
    "shallow.lock",
)
MAX_FSCK_LINES = 10


class Problem(Exception):
    """An expected failure, reported as one line rather than a traceback."""


@dataclass(frozen=True)
class Result:
    returncode: int | None  # None: killed on timeout
    stdout: str
    stderr: str


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCAL_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_group(argv: list[str], cwd: Path, timeout: float) -> Result:
    """Run `argv` in a new session; on timeout kill its whole process group."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise Problem(f"cannot run {argv[0]}: not found") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Result(None, out, err)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return Result(proc.returncode, out, err)


def git(repo: Path, *args: str, timeout: float = 60) -> Result:
    result = run_group(["git", "-C", str(repo), *args], repo, timeout)
    if result.returncode is None:
        raise Problem(f"git {' '.join(args)} timed out after {timeout:g} s")
    return result


def git_dirs(repo: Path) -> tuple[Path, Path]:
    """This worktree's git dir and the common dir shared by all worktrees."""
    result = git(repo, "rev-parse", "--absolute-git-dir", "--git-common-dir")
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) != 2:
        raise Problem(f"not a git repository: {repo} ({first_line(result)})")
    common = Path(lines[1])
    if not common.is_absolute():  # git prints it relative to -C's folder
        common = repo / common
    return Path(lines[0]).resolve(), common.resolve()


def lock_files(git_dir: Path, common: Path) -> Iterator[Path]:
    """Lock files of the repository, including those of every linked worktree."""
    folders = {git_dir, common}
    with contextlib.suppress(OSError):
        folders.update(p for p in (common / "worktrees").iterdir() if p.is_dir())
    seen: set[Path] = set()
    for folder in sorted(folders):
        candidates = [folder / name for name in LOCK_NAMES]
        refs = folder / "refs"
        if refs.is_dir():
            candidates.extend(refs.rglob("*.lock"))
        for path in candidates:
            if path not in seen and path.is_file():
                seen.add(path)
                yield path


def stale_locks(git_dir: Path, common: Path, stale_after_s: float, now: float) -> list[Path]:
    stale: list[Path] = []
    for path in lock_files(git_dir, common):
        with contextlib.suppress(FileNotFoundError):  # released since the listing
            if now - path.stat().st_mtime > stale_after_s:
                stale.append(path)
    return stale


def prunable_worktrees(repo: Path) -> list[tuple[str, str]]:
    """(path, reason) of each worktree that git itself considers prunable."""
    result = git(repo, "worktree", "list", "--porcelain")
    if result.returncode != 0:
        raise Problem(f"git worktree list failed: {first_line(result)}")
    found: list[tuple[str, str]] = []
    for block in result.stdout.split("\n\n"):
        path, reason = "", None
        for line in block.splitlines():
            if line.startswith("worktree "):
                path = line[len("worktree ") :]
            elif line == "prunable" or line.startswith("prunable "):
                reason = line[len("prunable ") :] or "prunable"
        if reason is not None:
            found.append((path, reason))
    return found


def count_worktrees(repo: Path) -> int:
    result = git(repo, "worktree", "list", "--porcelain")
    return sum(1 for line in result.stdout.splitlines() if line.startswith("worktree "))


def first_line(result: Result) -> str:
    for line in (result.stderr + "\n" + result.stdout).splitlines():
        if line.strip():
            return line.strip()
    return f"exit {result.returncode}"


def fsck(repo: Path, timeout: float) -> tuple[list[str], float]:
    started = time.monotonic()
    result = run_group(
        ["git", "-C", str(repo), "fsck", "--no-progress", "--no-dangling"], repo, timeout
    )
    elapsed = time.monotonic() - started
    if result.returncode is None:
        return [f"git fsck timed out after {timeout:g} s (process group killed)"], elapsed
    if result.returncode == 0:
        return [], elapsed
    lines = [
        line.strip()
        for line in (result.stderr + "\n" + result.stdout).splitlines()
        if line.strip()
    ]
    problems = [f"git fsck failed (exit {result.returncode})"]
    problems.extend(f"git fsck: {line}" for line in lines[:MAX_FSCK_LINES])
    if len(lines) > MAX_FSCK_LINES:
        problems.append(f"git fsck: ... and {len(lines) - MAX_FSCK_LINES} more lines")
    return problems, elapsed


def _age(path: Path, now: float) -> str:
    with contextlib.suppress(OSError):
        return f"{(now - path.stat().st_mtime) / 3600:.1f} h old"
    return "age unknown"


def check(repo: Path, fsck_timeout: float, stale_after_s: float, fix: bool) -> int:
    git_dir, common = git_dirs(repo)
    problems, elapsed = fsck(repo, fsck_timeout)
    fixed: list[str] = []

    worktrees = prunable_worktrees(repo)
    if worktrees and fix:
        result = git(repo, "worktree", "prune")
        if result.returncode != 0:
            problems.append(f"git worktree prune failed: {first_line(result)}")
        remaining = {path for path, _ in prunable_worktrees(repo)}
        fixed.extend(
            f"pruned stale worktree {path} ({reason})"
            for path, reason in worktrees
            if path not in remaining
        )
        worktrees = [(p, r) for p, r in worktrees if p in remaining]
    problems.extend(f"stale worktree {path} ({reason})" for path, reason in worktrees)

    now = time.time()
    for lock in stale_locks(git_dir, common, stale_after_s, now):
        age = _age(lock, now)
        if fix:
            try:
                lock.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(f"cannot remove stale lock {lock}: {exc.strerror or exc}")
                continue
            fixed.append(f"removed stale lock {lock} ({age})")
        else:
            problems.append(f"stale lock {lock} ({age}); --fix removes it")

    for line in fixed:
        print(f"FIXED: {line}")
    if problems:
        for line in problems:
            print(f"PROBLEM: {line}")
        return 1
    n = count_worktrees(repo)
    print(
        f"git ok: {repo} fsck clean ({elapsed:.1f} s), {n} worktree{'' if n == 1 else 's'}, "
        "no stale worktrees or locks"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Check the health of a git repository.")
    parser.add_argument("--repo", default=".", help="the repository (default: .)")
    parser.add_argument("--fsck-timeout", type=float, default=100.0, metavar="SECONDS")
    parser.add_argument("--stale-after-s", type=float, default=3600.0, metavar="SECONDS")
    parser.add_argument(
        "--fix", action="store_true", help="prune stale worktrees and remove stale locks"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fsck_timeout <= 0 or args.stale_after_s < 0:
        parser.error("--fsck-timeout must be positive and --stale-after-s not negative")
    repo = Path(os.path.abspath(args.repo))
    if not repo.is_dir():
        print(f"PROBLEM: not a directory: {repo}")
        return 1
    try:
        return check(repo, args.fsck_timeout, args.stale_after_s, args.fix)
    except Problem as exc:
        print(f"PROBLEM: {exc}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
