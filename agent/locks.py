"""Single-instance locks that cannot go stale.

The lock is an flock(2) held on an open file descriptor: the kernel drops it when the
holder dies, even by SIGKILL, so no "stale lockfile" clean-up is ever needed. The file's
content (the holder's pid) is only a hint for the message shown to a second caller.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType


class LockBusy(Exception):
    """Raised when another live process holds the lock."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        who = f"pid {holder}" if holder else "another process"
        super().__init__(f"{path} is held by {who}")


class ProcessLock:
    """An exclusive OS lock on `path`, usable as a context manager."""

    def __init__(self, path: Path, *, wait: bool = False, timeout_s: float | None = None) -> None:
        self.path = Path(path)
        self.wait = wait
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not self.wait or (deadline is not None and time.monotonic() >= deadline):
                        raise LockBusy(self.path, _read_holder(fd)) from None
                    time.sleep(0.05)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def lock_holder(path: Path) -> int | None:
    """The pid holding the lock on `path`, or None, without taking the lock.

    Taking it to find out, even for a moment, could make a tick starting at that instant
    skip itself. Linux lists flock holders in /proc/locks by device and inode; elsewhere
    the lock is tried.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return holder_by_trying(Path(path))
    device = (os.major(st.st_dev), os.minor(st.st_dev))
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:56789 0 EOF"; waiters read "1: -> FLOCK".
        if len(fields) >= 6 and fields[1] == "FLOCK":
            major, minor, inode = fields[5].split(":")
            if int(inode) == st.st_ino and (int(major, 16), int(minor, 16)) == device:
                return int(fields[4])
    return None


def holder_by_trying(path: Path) -> int | None:
    """The holder, found by trying the lock: certain, but it holds the lock for a moment."""
    lock = ProcessLock(path)
    try:
        lock.acquire()
    except LockBusy as busy:
        return int(busy.holder) if busy.holder.isdigit() else None
    lock.release()
    return None
