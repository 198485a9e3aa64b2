"""Process groups that die whole, locks that cannot go stale, atomic writes: on real
processes and files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.atomicio import atomic_write_bytes, atomic_write_text
from agent.locks import LockBusy, ProcessLock
from agent.procgroup import group_alive, pid_alive, run_in_group

# The leader records its group id, spawns a grandchild whose pid lands in the file
# `grandchild` once it is running, then hangs (MODE "hang") or exits 0.
LEADER = textwrap.dedent(
    """\
    import os, subprocess, sys, time
    folder = sys.argv[1]
    mode = sys.argv[2]
    with open(os.path.join(folder, "pgid.tmp"), "w") as f:
        f.write(str(os.getpgrp()))
    os.rename(os.path.join(folder, "pgid.tmp"), os.path.join(folder, "pgid"))
    if mode == "stubborn":
        subprocess.Popen([sys.executable, "-c", STUBBORN, folder])
    else:
        grandchild = subprocess.Popen(["sleep", "600"])
        with open(os.path.join(folder, "grandchild.tmp"), "w") as f:
            f.write(str(grandchild.pid))
        os.rename(os.path.join(folder, "grandchild.tmp"), os.path.join(folder, "grandchild"))
    while not os.path.exists(os.path.join(folder, "grandchild")):
        time.sleep(0.01)
    print("leader ready", flush=True)
    if mode == "hang":
        time.sleep(600)
    sys.exit(0)
    """
)
# The grandchild is `sleep 600`, or (mode "stubborn") a Python process that ignores
# SIGTERM, so that only SIGKILL ends it; it records its pid once the handler is set.
STUBBORN = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "p = os.path.join(sys.argv[1], 'grandchild')\n"
    "open(p + '.tmp', 'w').write(str(os.getpid()))\n"
    "os.rename(p + '.tmp', p)\n"
    "time.sleep(600)\n"
)
SCRIPT = f"STUBBORN = {STUBBORN!r}\n" + LEADER


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"time.sleep(600)" in cmdline or cmdline == b"sleep\x00600\x00"


@pytest.fixture
def group_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "group"
    folder.mkdir()
    yield folder
    # Whatever the outcome, leave nothing running.
    for name in ("grandchild", "pgid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int((folder / name).read_text())
            if name == "pgid":
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            elif pid_alive(pid) and _is_ours(pid):
                os.kill(pid, signal.SIGKILL)


def _wait_for(path: Path) -> Callable[[], None]:
    """A poll callback that holds run_in_group's clock until `path` exists.

    The timeout is checked only after poll returns, so the grandchild is certainly
    running before the group is killed, however slow the machine.
    """

    def poll() -> None:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    return poll


def _run(folder: Path, mode: str, timeout_s: float | None, grace_s: float = 2.0):
    return run_in_group(
        [sys.executable, "-c", SCRIPT, str(folder), mode],
        cwd=folder,
        env=os.environ,
        output=folder / "output.log",
        timeout_s=timeout_s,
        grace_s=grace_s,
        poll=_wait_for(folder / "grandchild"),
    )


def _ids(folder: Path) -> tuple[int, int]:
    return int((folder / "pgid").read_text()), int((folder / "grandchild").read_text())


def test_timeout_kills_the_whole_group(group_dir: Path) -> None:
    result = _run(group_dir, "hang", timeout_s=1)
    assert result.timed_out
    assert result.returncode is None
    pgid, grandchild = _ids(group_dir)
    assert not pid_alive(grandchild)
    assert not pid_alive(pgid)
    assert not group_alive(pgid)
    assert "leader ready" in (group_dir / "output.log").read_text()


def test_grandchild_left_behind_by_a_normal_exit_is_killed(group_dir: Path) -> None:
    result = _run(group_dir, "exit", timeout_s=60)
    assert not result.timed_out
    assert result.returncode == 0
    pgid, grandchild = _ids(group_dir)
    assert not pid_alive(grandchild)
    assert not group_alive(pgid)


def test_grandchild_that_ignores_sigterm_is_killed(group_dir: Path) -> None:
    result = _run(group_dir, "stubborn", timeout_s=60, grace_s=0.5)
    assert result.returncode == 0
    pgid, grandchild = _ids(group_dir)
    assert not pid_alive(grandchild)
    assert not group_alive(pgid)


def test_normal_exit_returns_the_code_and_captures_output(tmp_path: Path) -> None:
    output = tmp_path / "out.log"
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(7)"
    pgid_file = tmp_path / "pgid"
    result = run_in_group(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "RATCHET_MARK": "x"},
        output=output,
        timeout_s=60,
        pgid_file=pgid_file,
    )
    assert result.returncode == 7
    assert not result.timed_out
    text = output.read_text()
    assert "to stdout" in text
    assert "to stderr" in text
    assert not pgid_file.exists()  # removed once the group is gone


def test_environment_and_cwd_are_the_ones_given(tmp_path: Path) -> None:
    output = tmp_path / "out.log"
    code = "import os; print(os.getcwd()); print(os.environ['RATCHET_MARK'])"
    result = run_in_group(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "RATCHET_MARK": "marked-42"},
        output=output,
        timeout_s=60,
    )
    assert result.returncode == 0
    lines = output.read_text().splitlines()
    assert Path(lines[0]).resolve() == tmp_path.resolve()
    assert lines[1] == "marked-42"


# --- ProcessLock ---------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """\
    import sys, time
    from pathlib import Path
    from agent.locks import ProcessLock
    lock = ProcessLock(Path(sys.argv[1]))
    lock.acquire()
    print("locked", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    path = tmp_path / "locks" / "gate.lock"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        yield child, path
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_lock_held_by_another_process_is_busy(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    child, path = holder
    with pytest.raises(LockBusy) as caught:
        ProcessLock(path).acquire()
    assert caught.value.holder == str(child.pid)
    assert f"pid {child.pid}" in str(caught.value)
    assert caught.value.path == path


def test_lock_of_a_sigkilled_holder_is_free_at_once(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    child, path = holder
    child.send_signal(signal.SIGKILL)
    child.wait()
    lock = ProcessLock(path)
    lock.acquire()  # no wait: the kernel dropped the dead holder's lock
    try:
        assert path.read_text().strip() == str(os.getpid())
    finally:
        lock.release()


def test_waiting_with_a_timeout_gives_up_with_lock_busy(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    child, path = holder
    with pytest.raises(LockBusy) as caught:
        ProcessLock(path, wait=True, timeout_s=0.3).acquire()
    assert caught.value.holder == str(child.pid)
    assert child.poll() is None  # still the holder: we gave up, it did not die


def test_waiting_gets_the_lock_once_the_holder_dies(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    child, path = holder
    killer = threading.Timer(0.2, child.kill)
    killer.start()
    try:
        with ProcessLock(path, wait=True, timeout_s=60) as lock:
            assert lock.path == path
            assert child.poll() is not None
    finally:
        killer.cancel()


def test_lock_is_exclusive_within_one_process_and_released_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    with ProcessLock(path):
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(LockBusy, match=f"pid {os.getpid()}"):
            ProcessLock(path).acquire()
    second = ProcessLock(path)
    second.acquire()
    second.release()
    second.release()  # harmless twice


# --- atomic writes -------------------------------------------------------------------


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic_write_text(target, "first version, rather long\n")
    assert target.read_text() == "first version, rather long\n"
    atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_write_bytes_honours_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    atomic_write_bytes(target, b"\x00\x01", mode=0o600)
    assert target.read_bytes() == b"\x00\x01"
    assert target.stat().st_mode & 0o777 == 0o600


def test_failed_atomic_write_keeps_the_old_file_and_no_temp_files(tmp_path: Path) -> None:
    # The target is a non-empty folder, so the final rename fails.
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "inside").write_text("keep me")
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]
    assert (target / "inside").read_text() == "keep me"
