"""Bounded capture of a child's output: the first and the last bytes, and how many.

A task that prints without end must not fill the disk or the agent's memory, yet the
lines an operator needs are usually the first (what started) and the last (why it
died). A reader thread drains a pipe, keeps `head` bytes from the start and a rolling
`tail` from the end, and counts the rest.
"""

from __future__ import annotations

import os
import threading

HEAD_BYTES = 16 * 1024
TAIL_BYTES = 16 * 1024
CHUNK = 64 * 1024


class BoundedCapture:
    def __init__(self, head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> None:
        self._limit_head = head
        self._limit_tail = tail
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.has_text = False  # a non-whitespace byte was seen anywhere in the stream
        self._read_fd, self.write_fd = os.pipe()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._read_fd, CHUNK)
            except OSError:
                return
            if not chunk:
                return
            self.total += len(chunk)
            if not self.has_text and chunk.strip():
                self.has_text = True
            room = self._limit_head - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail += chunk
                del self.tail[: max(0, len(self.tail) - self._limit_tail)]

    def close_writer(self) -> None:
        """Our copy of the write end; the child keeps its own until it exits."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def finish(self, timeout_s: float = 2.0) -> None:
        """Wait for end of stream. A process that escaped its group (a double fork into
        a new session) may hold the pipe open forever: after `timeout_s` the capture is
        what it is. The read end is then left to the daemon reader, because closing a
        descriptor another thread blocks on would let it read a reused one."""
        self.close_writer()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            os.close(self._read_fd)

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        """Head and tail, with a marker where bytes were dropped."""
        middle = f"\n[… {self.dropped} bytes not kept …]\n" if self.dropped > 0 else ""
        return (bytes(self.head).decode(errors="replace") + middle
                + bytes(self.tail).decode(errors="replace"))
