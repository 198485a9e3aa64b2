"""The model proxy: the only model a coding agent can reach, and where its spend is capped.

A coding agent makes its own model calls, as many as it likes. So that one cap covers
them as it covers the `llm` proposer's, the agent is pointed (by its base-URL flag or
variable) at this proxy, which Ratchet starts for the run, and every call goes through
the same client (`agent.llm.LLMClient`): the kill flag is checked, the worst case is
reserved in the shared ledger, and only then is the call forwarded to the configured
model chain, with its fallbacks. At the cap, or with the kill flag present, the proxy
answers with an error the agent sees (HTTP 402 or 403: neither is retried by the
OpenAI or Anthropic clients; Codex CLI retries them five times, which costs nothing)
and remembers why, so that the run ends as `capped` or `killed`
whatever the agent does next: the session stops the agent at the first refusal.

It speaks the three dialects the agents use: OpenAI's chat completions
(`/v1/chat/completions`: aider, mini-swe-agent, most others), OpenAI's Responses API
(`/v1/responses`: Codex CLI, which speaks nothing else) and Anthropic's messages
(`/v1/messages`: Claude Code), each with or without streaming (a stream is the whole
answer at once, in as few events as the dialect allows: the cap is decided before the
first byte, so nothing is gained by streaming tokens as they come). It listens on a Unix socket in
the run's folder, not a TCP port: the agent's sandbox has a network namespace of its
own with nothing but a loopback interface, and the relay (`relay.py`) inside it joins
the agent's 127.0.0.1 port to this socket. Each run's proxy asks for a token of its
own, so no other process of the machine can spend through it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from agent.llm import Completion, LLMClient, LLMRefused, LLMUnavailable
from evolution.propose.agents import dialects

ClientFactory = Callable[[], LLMClient]
# Neither is retried by the OpenAI and Anthropic SDKs (they retry 408, 409, 429 and 5xx),
# nor by litellm: the agent stops instead of waiting out a cap that will not lift today.
REFUSED_STATUS = {"capped": 402, "killed": 403}
UNAVAILABLE_STATUS = 502
MAX_BODY = 32 * 1024 * 1024
DRAIN_S = 2.0  # a stopped run waits this long for a call in flight, no longer


@dataclass
class ProxyLog:
    """What the proxy saw: the calls it forwarded (and what they cost), and the first
    refusal, which decides how the proposal ends."""

    calls: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    model: str = ""
    refused: tuple[str, str] | None = None  # (status, message)
    unauthorised: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, completion: Completion) -> None:
        with self.lock:
            self.calls += 1
            self.cost_usd += completion.cost_usd
            self.tokens += completion.tokens
            self.model = completion.model

    def count_unauthorised(self) -> None:
        with self.lock:
            self.unauthorised += 1

    def refuse(self, status: str, message: str) -> None:
        with self.lock:
            if self.refused is None:
                self.refused = (status, message)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class ModelProxy:
    """A proxy on `socket_path` for one agent run; a context manager."""

    def __init__(
        self,
        socket_path: Path,
        client: ClientFactory,
        *,
        purpose: str = "agent",
    ) -> None:
        self.socket_path = socket_path
        self.token = "ratchet-" + secrets.token_urlsafe(24)
        self.log = ProxyLog()
        self._client = client
        self._purpose = purpose
        # One call at a time: the cap's reservation is decided in order, and a
        # ledger connection belongs to one thread.
        self._calls = threading.Lock()

    def __enter__(self) -> ModelProxy:
        self.server = _Server(str(self.socket_path), _handler(self))
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        # A call still in flight (the agent was stopped mid-call) is settled in the
        # ledger when its model answers or times out; its reservation counts until
        # then. Wait a moment for it, so that its cost is usually in the log, but never
        # for the model: a kill must stop at once.
        if self._calls.acquire(timeout=DRAIN_S):
            self._calls.release()
        with contextlib.suppress(OSError):
            self.socket_path.unlink(missing_ok=True)

    def authorised(self, headers: Any) -> bool:
        scheme, _, bearer = (headers.get("authorization") or "").partition(" ")
        offered = {headers.get("x-api-key") or "", headers.get("x-goog-api-key") or ""}
        if scheme.lower() == "bearer":
            offered.add(bearer.strip())
        return any(secrets.compare_digest(value, self.token) for value in offered if value)

    def forward(self, request: dialects.ChatRequest) -> Completion:
        """The chain's answer to one request, through the one client; refusals are
        remembered, and reported to whoever watches the run."""
        with self._calls:
            client = self._client()
            try:
                completion = client.complete(
                    request.messages,
                    purpose=self._purpose,
                    params=request.params,
                    max_tokens=request.max_tokens,
                )
            except LLMRefused as refused:
                self.log.refuse(refused.status, str(refused))
                raise
            finally:
                client.ledger.close()
        self.log.add(completion)
        return completion


def _handler(proxy: ModelProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self) -> str:  # a Unix socket's peer has no address
            return "agent"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            """Claude Code opens its connection with `HEAD /` before the first call:
            an answer without a body, so that it does not log a failed warm-up."""
            self._send(200, "text/plain", b"")

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, dialects.model_list(proxy.log.model))
            else:
                self._json(404, dialects.openai_error("not found", "not_found_error"))

        def do_POST(self) -> None:
            dialect = dialects.dialect_of(self.path)
            if dialect is None:
                self._json(404, dialects.openai_error(f"no endpoint {self.path}", "not_found"))
                return
            if not proxy.authorised(self.headers):  # before reading a byte of the body
                proxy.log.count_unauthorised()
                self._json(401, dialect.error("this proxy's key is required", "authentication"))
                return
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self._json(413, dialect.error("no request of that length", "invalid_request"))
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                request = dialect.parse(body)
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as bad:
                self._json(400, dialect.error(f"bad request: {bad}", "invalid_request_error"))
                return
            try:
                completion = proxy.forward(request)
                answer = dialect.answer(request, completion, created=int(time.time()))
            except LLMRefused as refused:
                self._json(
                    REFUSED_STATUS.get(refused.status, 403),
                    dialect.error(f"Ratchet refused the call: {refused}", "permission_error"),
                )
                return
            except LLMUnavailable as unavailable:
                self._json(UNAVAILABLE_STATUS, dialect.error(str(unavailable), "api_error"))
                return
            except Exception as error:
                # A fault of ours (the ledger locked, a model's odd answer): the agent is
                # told, the run is not left hanging on a connection nobody answers.
                self._json(500, dialect.error(f"the proxy failed: {type(error).__name__}",
                                              "api_error"))  # fmt: skip
                return
            if request.stream:
                self._stream(dialect.events(answer))
            else:
                self._json(200, answer)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(payload).encode())

        def _stream(self, events: list[bytes]) -> None:
            self._send(200, "text/event-stream", b"".join(events))

        def _send(self, status: int, kind: str, data: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the agent gave up, or was stopped: nothing to answer

    return Handler
