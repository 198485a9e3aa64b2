"""A real OpenAI-compatible chat-completions server on 127.0.0.1, with scripted replies.

The proposer's tests drive the real litellm client against it (through `api_base`), so
retries, fallbacks, timeouts, usage accounting and request contents are all exercised
over real HTTP, with nothing of litellm mocked. Each model name has a queue of steps:
a reply (content, tool calls and usage), an HTTP error status, or a delay before replying.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    usage: tuple[int, int] = (100, 50)
    # (name, arguments) of each tool call the reply makes, as a coding agent's model
    # would: the model proxy's tests need answers that act, not only text.
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()

    def message(self, reply: int) -> dict[str, Any]:
        """The assistant message of this step, as reply number `reply`: its calls'
        ids are unique across the server's replies, as a real model's are."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{reply}_{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(arguments)}}
                for i, (name, arguments) in enumerate(self.tool_calls)
            ]  # fmt: skip
        return message


@dataclass
class Received:
    """One request as the server saw it.

    `headers` is the parsed header block itself: HTTP header names are case-insensitive
    (RFC 9110), and SDK releases change the case they send, so lookups must not depend
    on it. Likewise the properties below read only what the protocol fixes.
    """

    model: str
    body: dict[str, Any]
    headers: Message

    @property
    def text(self) -> str:
        return json.dumps(self.body, ensure_ascii=False)

    @property
    def bearer_token(self) -> str | None:
        """The credential of an `Authorization: Bearer` header (the scheme is
        case-insensitive too), or None."""
        scheme, _, token = (self.headers.get("authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    @property
    def messages(self) -> list[dict[str, str]]:
        """The chat messages with each content as one string: the API accepts a string
        or a list of text parts, and a client may send either."""
        return [
            {"role": m["role"], "content": _text_of(m.get("content"))}
            for m in self.body.get("messages", [])
        ]

    @property
    def max_tokens(self) -> int | None:
        """The completion limit asked for: OpenAI's API accepts it under either name,
        and an SDK may send the newer one."""
        for key in ("max_completion_tokens", "max_tokens"):
            if key in self.body:
                return int(self.body[key])
        return None


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


@dataclass
class ScriptedLLM:
    script: dict[str, deque[Step]] = field(default_factory=lambda: defaultdict(deque))
    received: list[Received] = field(default_factory=list)

    def add(self, model: str, *steps: Step) -> None:
        self.script[model].extend(steps)

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                model = str(body.get("model", ""))
                owner.received.append(Received(model, body, self.headers))
                queue = owner.script.get(model)
                step = queue.popleft() if queue else Step(status=500, content="no script")
                if step.delay_s:
                    time.sleep(step.delay_s)
                if step.status != 200:
                    self._send(
                        step.status,
                        {"error": {"message": f"scripted {step.status}", "type": "server_error"}},
                    )
                    return
                prompt, completion = step.usage
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(owner.received)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": step.message(len(owner.received)),
                                "finish_reason": "tool_calls" if step.tool_calls else "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        },
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # Polled often, so that stopping takes milliseconds, not the default half second.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def requests_for(self, model: str) -> list[Received]:
        return [r for r in self.received if r.model == model]
