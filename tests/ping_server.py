"""A real HTTP server on 127.0.0.1 that records healthchecks.io-style pings.

Each POST is kept as (path, body); the server answers `status` after `delay_s`, so a
test can play a healthy endpoint, one that refuses (HTTP 500) or one that hangs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class PingServer:
    status: int = 200
    delay_s: float = 0.0
    received: list[tuple[str, str]] = field(default_factory=list)

    def start(self) -> PingServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                owner.received.append((self.path, body))
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the hanging case)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # Polled often, so that stopping takes milliseconds, not the default half second.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        """A check's URL, as healthchecks.io gives one: a path of its own."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/ping/check-uuid"

    @property
    def paths(self) -> list[str]:
        return [path.removeprefix("/ping/check-uuid") or "/" for path, _ in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
