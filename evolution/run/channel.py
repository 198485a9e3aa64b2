"""The gate's end of the probe's report channel.

Two pipes per run: the probe reads a fresh 32-byte key from one at import and closes
it; it writes frames on the other, `<hmac> <json>` per line, the HMAC chained over every
earlier frame. A reader thread takes each frame as it arrives, so nothing the suite does
later can change what was already received, and checks the chain: a frame that does not
verify (written by anything but the probe), a malformed line, or a gap in the sequence
stops the reading and is kept as the reason the run cannot be trusted.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

KEY_BYTES = 32
MAX_LINE = 1 << 20  # a frame carries at most a few clipped failure texts


@dataclass
class Frames:
    """What arrived, in order, and the first reason not to trust the rest."""

    items: list[dict[str, Any]] = field(default_factory=list)
    broken: str = ""
    after_end: int = 0  # frames that arrived after the end-of-session record


class Channel:
    def __init__(self) -> None:
        self._key = os.urandom(KEY_BYTES)
        self._read, self.write_fd = os.pipe()
        self.key_fd, key_write = os.pipe()
        os.write(key_write, self._key)
        os.close(key_write)
        self.frames = Frames()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def child_fds(self) -> tuple[int, int]:
        return self.write_fd, self.key_fd

    @property
    def env_value(self) -> str:
        return f"{self.write_fd},{self.key_fd}"

    def started(self) -> None:
        """Call once the child holds its copies: close ours and start reading."""
        self._close_child_ends()
        self._thread = threading.Thread(target=self._reader, name="ratchet-channel", daemon=True)
        self._thread.start()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.frames.items)

    def finish(self, timeout_s: float = 5.0) -> Frames:
        """Wait for the end of the stream (every writer gone), then return the frames.

        The suite's whole process group is dead by now; a writer still holding the pipe
        (a grandchild that left the group) is given `timeout_s`, then ignored.
        """
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                with self._lock:
                    self.frames.broken = self.frames.broken or (
                        "a process outside the suite's group still held the report channel"
                    )
        return self.frames

    def close(self) -> None:
        """Release the descriptors; the read end only once its reader has stopped (a
        descriptor closed under a blocked read could be reused and read by mistake)."""
        self._close_child_ends()
        if self._thread is None or not self._thread.is_alive():
            _close(self._read)
            self._read = -1

    def _close_child_ends(self) -> None:
        _close(self.write_fd)
        _close(self.key_fd)
        self.write_fd = self.key_fd = -1

    def _reader(self) -> None:
        """Verify frames until EOF. After a break it keeps draining, so that a suite
        writing to a full pipe is never left blocked."""
        previous = b""
        seq = 0
        ended = False
        buffer = b""
        while True:
            chunk = os.read(self._read, 65536)
            if not chunk:
                break
            if self.frames.broken:
                continue
            buffer += chunk
            if len(buffer) > MAX_LINE and b"\n" not in buffer:
                self._break("a frame longer than the limit arrived on the report channel")
                continue
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if ended:
                    with self._lock:
                        self.frames.after_end += 1
                    continue
                mac, _, body = line.partition(b" ")
                expected = hmac.new(self._key, previous + body, "sha256").hexdigest()
                if not hmac.compare_digest(mac, expected.encode()):
                    self._break(
                        "a frame on the report channel was not written by the gate's probe "
                        "(its HMAC does not verify)"
                    )
                    break
                previous = bytes.fromhex(expected)
                try:
                    frame = json.loads(body)
                except ValueError:
                    self._break("a frame on the report channel is not JSON")
                    break
                seq += 1
                if frame.get("seq") != seq:
                    self._break("the report channel skipped or repeated a frame")
                    break
                ended = frame.get("kind") == "end"
                with self._lock:
                    self.frames.items.append(frame)
        if buffer and not self.frames.broken:
            self._break("the report channel ended in the middle of a frame")

    def _break(self, reason: str) -> None:
        with self._lock:
            if not self.frames.broken:
                self.frames.broken = reason


def _close(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
