"""Run a command in its own process group, and make sure the whole group dies.

`subprocess.run(timeout=...)` kills only the direct child; a test suite or task that
spawned helpers would leave them running. Every command here gets a new session
(so its pgid is its pid), and on timeout, interruption or normal exit the entire group
is sent SIGTERM, then SIGKILL after a grace period. On Linux the leader also gets
PR_SET_PDEATHSIG, so a SIGKILL of *this* process still takes the leader down.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class GroupResult:
    returncode: int | None
    timed_out: bool
    duration_s: float


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass


def _members(pgid: int) -> list[Path] | None:
    """The /proc entries of the live (non-zombie) processes in group `pgid`; None
    without /proc.

    kill(-pgid, 0) alone is not enough: where PID 1 does not reap orphans (containers,
    micro-VMs) a killed grandchild stays a zombie forever and would look alive.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(entry)
    return members


def _live_members(pgid: int) -> bool | None:
    members = _members(pgid)
    return None if members is None else bool(members)


def group_is_ours(pgid: int, folder: Path) -> bool:
    """Whether group `pgid` is alive and one of its processes works inside `folder`.

    A group id recorded by a process that was since SIGKILLed may have been reused by
    an unrelated program: it is only ours to kill when its processes run where ours
    did. The leader may already be gone, leaving grandchildren: any member counts.
    """
    for entry in _members(pgid) or []:
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if Path(cwd) == folder or Path(cwd).is_relative_to(folder):
            return True
    return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    members = _live_members(pgid)
    return True if members is None else members


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").is_dir()
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def read_pgid(path: Path) -> int | None:
    """A group id recorded in `path`; None when absent, garbled, or 0/1 (killpg on those
    would hit our own group or everything)."""
    try:
        pgid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pgid if pgid > 1 else None


def end_orphaned_group(
    pgid_file: Path, folder: Path, grace_s: float = 1.0
) -> tuple[int, bool] | None:
    """End the group a SIGKILLed run recorded in `pgid_file`, if it is really ours (its
    processes work inside `folder`): (pgid, whether it is gone), or None if not ours."""
    pgid = read_pgid(pgid_file)
    if pgid is None or not group_is_ours(pgid, folder):
        return None
    return pgid, kill_group(pgid, grace_s)


def kill_group(pgid: int, grace_s: float = 2.0, reap: Callable[[], object] | None = None) -> bool:
    """SIGTERM the group, wait up to `grace_s`, then SIGKILL. True when it is gone.

    `reap` collects our own child if it is the leader: an unreaped zombie still counts
    as a member of the group, so without it the wait would always run to the end.
    """
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if reap is not None:
                reap()
            if not group_alive(pgid):
                return True
            time.sleep(0.01)
    return not group_alive(pgid)


def run_in_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    output: Path | tuple[int, int],
    timeout_s: float | None,
    grace_s: float = 2.0,
    pgid_file: Path | None = None,
    poll: Callable[[], None] | None = None,
    poll_interval_s: float = 0.1,
    pass_fds: Sequence[int] = (),
    on_start: Callable[[], None] | None = None,
) -> GroupResult:
    """Run `argv` with stdout and stderr to `output`, bounded by `timeout_s` wall time.

    `output` is a file that gets both streams, or a pair of descriptors (stdout, stderr),
    e.g. the write ends of pipes read by a bounded capture. `pass_fds` are inherited by
    the command; `on_start` runs once it has them (to close the parent's copies).

    `pgid_file`, when given, holds the group id while it runs, so that a later run can
    find and end a group orphaned by a SIGKILL of this process.
    """
    start = time.monotonic()

    def spawn(stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=die_with_parent,
            pass_fds=tuple(pass_fds),
        )

    if isinstance(output, tuple):
        proc = spawn(*output)
    else:
        with open(output, "wb") as out:
            proc = spawn(out, subprocess.STDOUT)
    pgid = proc.pid
    if on_start is not None:
        on_start()
    if pgid_file is not None:
        pgid_file.write_text(str(pgid))
    timed_out = False
    try:
        while True:
            try:
                proc.wait(timeout=poll_interval_s)
                break
            except subprocess.TimeoutExpired:
                pass
            if poll is not None:
                poll()
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                timed_out = True
                break
    finally:
        # Always end the whole group: on timeout, on interruption, and after a normal
        # exit too, because a grandchild may still be running in it.
        kill_group(pgid, grace_s, reap=proc.poll)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if pgid_file is not None:
            pgid_file.unlink(missing_ok=True)
    if poll is not None:
        poll()
    return GroupResult(
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        duration_s=time.monotonic() - start,
    )
