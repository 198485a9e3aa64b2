"""scripts/git_health.py on real repositories made with `git init` in tmp_path: a real
corrupted loose object, a real stale index.lock, a real prunable worktree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.git_health import GIT_LOCAL_ENV, main

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCAL_ENV}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


def age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def out_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Never let git discover a repository above tmp_path.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "data.txt").write_text("".join(f"line {i} of some data\n" for i in range(300)))
    git(path, "add", "data.txt")
    git(path, "commit", "-q", "--no-verify", "-m", "initial")
    return path


def test_healthy_repository_prints_one_summary_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repo", str(repo)]) == 0
    out = out_lines(capsys)
    assert len(out) == 1
    assert out[0].startswith(f"git ok: {repo} fsck clean (")
    assert out[0].endswith("1 worktree, no stale worktrees or locks")


def test_corrupted_loose_object_fails_fsck(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = git(repo, "rev-parse", "HEAD:data.txt")
    loose = repo / ".git" / "objects" / blob[:2] / blob[2:]
    loose.chmod(0o644)
    data = bytearray(loose.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    loose.write_bytes(bytes(data))
    assert main(["--repo", str(repo)]) == 1
    out = out_lines(capsys)
    assert out[0].startswith("PROBLEM: git fsck failed (exit ")
    assert all(line.startswith("PROBLEM: ") for line in out)
    assert any(f"corrupt loose object '{blob}'" in line for line in out[1:])


def test_stale_index_lock_is_reported_then_fixed(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")
    age(lock, 2 * HOUR)
    assert main(["--repo", str(repo)]) == 1
    out = out_lines(capsys)
    assert out == [f"PROBLEM: stale lock {lock} (2.0 h old); --fix removes it"]
    assert lock.exists(), "without --fix nothing is touched"

    assert main(["--repo", str(repo), "--fix"]) == 0
    out = out_lines(capsys)
    assert out[0] == f"FIXED: removed stale lock {lock} (2.0 h old)"
    assert out[1].startswith("git ok: ")
    assert len(out) == 2
    assert not lock.exists()
    git(repo, "commit", "-q", "--allow-empty", "--no-verify", "-m", "git works again")


def test_young_locks_are_left_alone(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")
    assert main(["--repo", str(repo), "--fix"]) == 0
    assert lock.exists(), "a young lock may belong to a git command running now"
    assert out_lines(capsys)[0].startswith("git ok: ")
    assert main(["--repo", str(repo), "--stale-after-s", "0"]) == 1
    assert "stale lock" in capsys.readouterr().out


def test_locks_under_refs_and_in_the_common_dir_are_found(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locks = [
        repo / ".git" / "refs" / "heads" / "main.lock",
        repo / ".git" / "packed-refs.lock",
        repo / ".git" / "config.lock",
        repo / ".git" / "HEAD.lock",
    ]
    for lock in locks:
        lock.write_bytes(b"")
        age(lock, 3 * HOUR)
    assert main(["--repo", str(repo)]) == 1
    out = "\n".join(out_lines(capsys))
    for lock in locks:
        assert f"PROBLEM: stale lock {lock} " in out
    assert main(["--repo", str(repo), "--fix"]) == 0
    assert not any(lock.exists() for lock in locks)


def test_prunable_worktree_is_reported_then_pruned(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "side", str(worktree))
    shutil.rmtree(worktree)
    assert main(["--repo", str(repo)]) == 1
    out = out_lines(capsys)
    assert len(out) == 1
    assert out[0].startswith(f"PROBLEM: stale worktree {worktree} (")

    assert main(["--repo", str(repo), "--fix"]) == 0
    out = out_lines(capsys)
    assert out[0].startswith(f"FIXED: pruned stale worktree {worktree} (")
    assert out[1].startswith("git ok: ")
    assert str(worktree) not in git(repo, "worktree", "list", "--porcelain")


def test_a_linked_worktree_sees_the_repository_wide_locks(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "side", str(worktree))
    its_index_lock = repo / ".git" / "worktrees" / "wt" / "index.lock"
    packed = repo / ".git" / "packed-refs.lock"
    for lock in (its_index_lock, packed):
        lock.write_bytes(b"")
        age(lock, 2 * HOUR)
    # From the main worktree and from the linked one, both locks are found.
    for where in (repo, worktree):
        assert main(["--repo", str(where)]) == 1
        out = "\n".join(out_lines(capsys))
        assert f"stale lock {its_index_lock} " in out
        assert f"stale lock {packed} " in out
    assert main(["--repo", str(worktree), "--fix"]) == 0
    assert out_lines(capsys)[-1].startswith(f"git ok: {worktree} fsck clean")


def test_git_environment_of_the_caller_is_ignored(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if called from a hook of another repository: these would redirect every git
    # command away from --repo.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere" / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "elsewhere" / "index"))
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(tmp_path / "elsewhere" / "objects"))
    assert main(["--repo", str(repo)]) == 0
    assert out_lines(capsys)[0].startswith(f"git ok: {repo} ")


def test_not_a_git_repository_is_one_clear_line(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert main(["--repo", str(plain)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"PROBLEM: not a git repository: {plain} (")
    assert len(captured.out.splitlines()) == 1
    assert captured.err == ""

    assert main(["--repo", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().out == f"PROBLEM: not a directory: {tmp_path / 'missing'}\n"


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_fsck_timeout_kills_the_whole_process_group(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A real `git` on PATH for everything except fsck, which hangs in a grandchild.
    real_git = shutil.which("git")
    assert real_git
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    pidfile = tmp_path / "fsck.pid"
    shim = shim_dir / "git"
    shim.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do\n'
        '  if [ "$a" = fsck ]; then\n'
        "    sleep 60 &\n"
        f'    echo $! > "{pidfile}.tmp" && mv "{pidfile}.tmp" "{pidfile}"\n'
        "    wait\n"
        "    exit 0\n"
        "  fi\n"
        "done\n"
        f'exec "{real_git}" "$@"\n'
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")
    assert main(["--repo", str(repo), "--fsck-timeout", "1"]) == 1
    out = out_lines(capsys)
    assert out == ["PROBLEM: git fsck timed out after 1 s (process group killed)"]
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(grandchild), "the hung fsck's child outlived the timeout"


def test_bad_options_are_usage_errors(repo: Path) -> None:
    for argv in (["--fsck-timeout", "0"], ["--stale-after-s", "-1"], ["--bogus"]):
        with pytest.raises(SystemExit) as exc:
            main(["--repo", str(repo), *argv])
        assert exc.value.code == 2


def test_real_subprocess(repo: Path, tmp_path: Path) -> None:
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")
    age(lock, 2 * HOUR)
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCAL_ENV}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "scripts/git_health.py", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    stale = run("--repo", str(repo))
    assert stale.returncode == 1
    assert stale.stdout.startswith("PROBLEM: stale lock ")
    fixed = run("--repo", str(repo), "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.splitlines()[-1].startswith("git ok: ")
    healthy = run("--repo", str(repo))
    assert healthy.returncode == 0
    assert len(healthy.stdout.splitlines()) == 1

    plain = tmp_path / "plain"
    plain.mkdir()
    not_repo = run("--repo", str(plain))
    assert not_repo.returncode == 1
    assert not_repo.stdout.startswith("PROBLEM: not a git repository: ")
    assert "Traceback" not in not_repo.stderr
