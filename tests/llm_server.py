"""A real OpenAI-compatible chat-completions server on 127.0.0.1, with scripted replies.

The proposer's tests drive the real litellm client against it (through `api_base`), so
retries, fallbacks, timeouts, usage accounting and request contents are all exercised
over real HTTP, with nothing of litellm mocked. Each model name has a queue of steps:
a reply (content and usage), an HTTP error status, or a delay before replying.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    usage: tuple[int, int] = (100, 50)


@dataclass
class Received:
    model: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return json.dumps(self.body, ensure_ascii=False)


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
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                model = str(body.get("model", ""))
                owner.received.append(Received(model, body, dict(self.headers)))
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
                                "message": {"role": "assistant", "content": step.content},
                                "finish_reason": "stop",
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
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
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
