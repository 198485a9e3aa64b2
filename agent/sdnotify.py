"""systemd's notify protocol, spoken directly: one datagram per message to NOTIFY_SOCKET.

No dependency is needed for four lines of protocol. `agent run` sends READY=1 once it
holds its lock, WATCHDOG=1 at half of WATCHDOG_USEC, STATUS= lines a person reads in
`systemctl status`, and STOPPING=1 on the way out. The pings come from the main loop
(between tasks and from the task poll), never from a helper thread: a hung loop must
stop pinging so that systemd restarts it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written with a leading "@" and addressed with a NUL.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID, when set, names the process the watchdog is meant for.
        mine = not pid or pid == str(os.getpid())
        self.interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Never block the agent on a busy or absent systemd: a full queue drops
            # the message, and the next ping is only half an interval away.
            sock.setblocking(False)
            try:
                sock.sendto(message.encode(), self.address)
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))
        self._last_ping = time.monotonic()

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def heartbeat(self) -> None:
        """WATCHDOG=1, at most once per half interval: cheap enough to call every poll."""
        if self.interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.interval_s:
            self.send("WATCHDOG=1")
            self._last_ping = now
