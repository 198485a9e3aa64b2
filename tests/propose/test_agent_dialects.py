"""The model proxy's three dialects, on what the real agents sent and on the wire.

`claude-request.json` and `codex-request.json` are the second request of a real run of
Claude Code 2.1.197 and Codex CLI 0.171.0 through the real proxy (trimmed: long texts
cut, a few of the tools kept): the model had asked for a tool call creating hello.txt
and the request carries its result. No CLI runs here; the proxy tests drive a real
`ModelProxy` on a Unix socket, the real litellm client and the scripted model server.
"""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import ScriptedLLM, Step

from agent.config import CAP_VARIABLE, ModelConfig, RuntimeConfig
from agent.ledger import Ledger
from agent.llm import Completion, LLMClient
from agent.redact import Redactor
from evolution.propose.agents import dialects
from evolution.propose.agents.proxy import ModelProxy

SAMPLES = Path(__file__).parent / "agent_samples"
KEY_ENV = "RATCHET_TEST_MODEL_KEY"
WRITE = ("Write", {"file_path": "hello.txt", "content": "Hello!\n"})

# What each dialect's answer says, reduced to (text, [(tool name, arguments)]): the
# same whether read from the JSON answer or put back together from its stream.
Said = tuple[str, list[tuple[str, dict[str, Any]]]]


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


def chat_request(**extra: Any) -> dict[str, Any]:
    """An OpenAI chat request as an agent built on the SDK sends it (no CLI we run
    speaks this dialect, so it is written here)."""
    return {
        "model": "any",
        "messages": [
            {"role": "system", "content": "You edit files."},
            {"role": "user", "content": "Create hello.txt."},
        ],
        "tools": [{"type": "function", "function": {
            "name": "Write", "description": "Write a file",
            "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}}}}],
        **extra,
    }  # fmt: skip


def completion(text: str = "", *calls: tuple[str, dict[str, Any]]) -> Completion:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(arguments)}}
            for i, (name, arguments) in enumerate(calls)
        ]  # fmt: skip
    return Completion(text, "openai/primary", 120, 30, 0.00018, message=message,
                      finish_reason="tool_calls" if calls else "stop")  # fmt: skip


def sse(stream: bytes) -> list[tuple[str | None, Any]]:
    """A stream as (event name, data) pairs, data parsed unless it is `[DONE]`."""
    pairs = []
    for block in stream.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        data = fields["data"]
        pairs.append((fields.get("event"), data if data == "[DONE]" else json.loads(data)))
    return pairs


# --- each dialect's answer, read back as a client reads it -----------------------


def openai_said(answer: dict[str, Any]) -> Said:
    message = answer["choices"][0]["message"]
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
             for c in message.get("tool_calls") or []]  # fmt: skip
    return message["content"] or "", calls


def openai_streamed(events: list[tuple[str | None, Any]]) -> Said:
    assert events[-1] == (None, "[DONE]")
    text, calls = "", {}
    for _, chunk in events[:-1]:
        delta = chunk["choices"][0]["delta"]
        text += delta.get("content") or ""
        for call in delta.get("tool_calls") or []:
            name, arguments = calls.get(call["index"], ("", ""))
            calls[call["index"]] = (name + call["function"].get("name", ""),
                                    arguments + call["function"].get("arguments", ""))  # fmt: skip
    return text, [(name, json.loads(arguments)) for name, arguments in calls.values()]


def anthropic_said(answer: dict[str, Any]) -> Said:
    blocks = answer["content"]
    text = "".join(b["text"] for b in blocks if b["type"] == "text")
    return text, [(b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]


def anthropic_streamed(events: list[tuple[str | None, Any]]) -> Said:
    assert [name for name, _ in events] == [data["type"] for _, data in events]
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    blocks: dict[int, dict[str, Any]] = {}
    for _, data in events:
        if data["type"] == "content_block_start":
            blocks[data["index"]] = {**data["content_block"], "json": ""}
        elif data["type"] == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["json"] += delta["partial_json"]
    text = "".join(b["text"] for b in blocks.values() if b["type"] == "text")
    return text, [(b["name"], json.loads(b["json"])) for b in blocks.values()
                  if b["type"] == "tool_use"]  # fmt: skip


def responses_said(answer: dict[str, Any]) -> Said:
    assert answer["object"] == "response" and answer["status"] == "completed"
    text = "".join(part["text"] for item in answer["output"] if item["type"] == "message"
                   for part in item["content"])  # fmt: skip
    return text, [(item["name"], json.loads(item["arguments"])) for item in answer["output"]
                  if item["type"] == "function_call"]  # fmt: skip


def responses_streamed(events: list[tuple[str | None, Any]]) -> Said:
    """As Codex reads a stream: text from the deltas, items from `output_item.done`,
    the whole turn from `response.completed`, which must come last."""
    assert [name for name, _ in events] == [data["type"] for _, data in events]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    done = [data["item"] for name, data in events if name == "response.output_item.done"]
    assert done == events[-1][1]["response"]["output"]
    text = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    calls = [(item["name"], json.loads(item["arguments"])) for item in done
             if item["type"] == "function_call"]  # fmt: skip
    return text, calls


READERS: dict[str, tuple[dialects.Dialect, Callable[..., Said], Callable[..., Said]]] = {
    "openai": (dialects.OPENAI, openai_said, openai_streamed),
    "anthropic": (dialects.ANTHROPIC, anthropic_said, anthropic_streamed),
    "responses": (dialects.RESPONSES, responses_said, responses_streamed),
}
PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages?beta=true",
    "responses": "/v1/responses",
}
REQUESTS: dict[str, Callable[[], dict[str, Any]]] = {
    "openai": lambda: chat_request(stream=True),
    "anthropic": lambda: sample("claude-request.json"),
    "responses": lambda: sample("codex-request.json"),
}
# What the model behind the proxy receives of each request: the last message's role
# (the recorded ones end with a tool's result) and one of the tools offered.
UPSTREAM = {"openai": ("user", "Write"), "anthropic": ("tool", "Write"),
            "responses": ("tool", "exec_command")}  # fmt: skip


# --- requests --------------------------------------------------------------------


def test_claude_codes_request_becomes_openai_messages_and_tools() -> None:
    request = dialects.ANTHROPIC.parse(sample("claude-request.json"))
    roles = [m["role"] for m in request.messages]
    assert roles == ["system", "user", "system", "assistant", "tool"]
    system = request.messages[0]["content"]
    assert system.startswith("x-anthropic-billing-header") and "\nYou are a Claude agent" in system
    assert request.messages[1]["content"].endswith("Create hello.txt with a greeting.")
    (call,) = request.messages[3]["tool_calls"]
    assert call["id"] == request.messages[4]["tool_call_id"] == "call_1_0"
    assert call["function"]["name"] == "Write"
    assert json.loads(call["function"]["arguments"])["content"] == "Hello, world!\n"
    assert request.messages[4]["content"].startswith("File created successfully")
    tools = request.params["tools"]
    assert [t["function"]["name"] for t in tools] == ["Bash", "Read", "Write"]
    assert tools[2]["function"]["parameters"]["required"] == ["file_path", "content"]
    assert (request.max_tokens, request.stream, request.model) == (32000, True, "primary")


def test_codexs_request_becomes_openai_messages_and_function_tools_only() -> None:
    request = dialects.RESPONSES.parse(sample("codex-request.json"))
    roles = [m["role"] for m in request.messages]
    assert roles == ["system", "system", "user", "user", "assistant", "tool"]
    assert request.messages[0]["content"].startswith("You are a coding agent")
    assert "\n<permissions instructions>" in request.messages[1]["content"]
    assert request.messages[3]["content"] == "Create hello.txt with a greeting."
    (call,) = request.messages[4]["tool_calls"]
    assert (call["id"], call["function"]["name"]) == ("call_1_0", "exec_command")
    command = "printf 'Hello, world!\\n' > hello.txt"
    assert json.loads(call["function"]["arguments"]) == {"cmd": command}
    assert request.messages[5]["tool_call_id"] == "call_1_0"
    assert request.messages[5]["content"].startswith("Chunk ID:")
    # The sample also offers a namespace of sub-agent tools and the hosted web search.
    tools = request.params["tools"]
    assert [t["function"]["name"] for t in tools] == ["exec_command", "view_image"]
    assert tools[0]["function"]["parameters"]["required"] == ["cmd"]
    assert request.params["tool_choice"] == "auto"
    assert (request.max_tokens, request.stream, request.model) == (None, True, "primary")


def test_responses_items_merge_calls_drop_reasoning_and_keep_the_limits() -> None:
    request = dialects.RESPONSES.parse({
        "model": "m", "instructions": "Be brief.", "max_output_tokens": 500,
        "temperature": 0.2, "top_p": 0.9, "tool_choice": {"type": "function", "name": "run"},
        "tools": [{"type": "function", "name": "run", "parameters": {"type": "object"}},
                  {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
                  {"type": "local_shell"}],
        "input": [
            {"role": "user", "content": "go"},
            {"type": "reasoning", "summary": [], "encrypted_content": "opaque"},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Running both."}]},
            {"type": "function_call", "call_id": "a", "name": "run", "arguments": "{}"},
            {"type": "function_call", "call_id": "b", "name": "run", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "a",
             "output": [{"type": "input_text", "text": "ok"}]},
            {"type": "function_call_output", "call_id": "b", "output": "also ok"},
        ],
    })  # fmt: skip
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Running both.", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "run", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "run", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "ok"},
        {"role": "tool", "tool_call_id": "b", "content": "also ok"},
    ]  # fmt: skip
    assert [t["function"]["name"] for t in request.params["tools"]] == ["run"]
    assert request.params["tool_choice"] == {"type": "function", "function": {"name": "run"}}
    assert (request.params["temperature"], request.params["top_p"]) == (0.2, 0.9)
    assert request.max_tokens == 500 and not request.stream
    assert dialects.RESPONSES.parse({"input": "hi"}).messages == [{"role": "user", "content": "hi"}]


def test_a_chat_request_passes_as_it_is() -> None:
    request = dialects.OPENAI.parse(chat_request(max_completion_tokens=64, stop=["\n\n"]))
    assert request.messages == chat_request()["messages"]
    assert request.params == {"tools": chat_request()["tools"], "stop": ["\n\n"]}
    assert request.max_tokens == 64


@pytest.mark.parametrize(
    "path", ["/v1/responses", "/responses", "/v1/responses/", "/v1/messages?beta=true",
             "/v1/chat/completions"],
)  # fmt: skip
def test_each_path_has_its_dialect(path: str) -> None:
    expected = {"responses": dialects.RESPONSES, "messages": dialects.ANTHROPIC,
                "completions": dialects.OPENAI}  # fmt: skip
    route = path.split("?")[0].rstrip("/").rsplit("/", 1)[1]
    assert dialects.dialect_of(path) is expected[route]
    assert dialects.dialect_of("/v1/responses/count_tokens") is None


# --- answers ---------------------------------------------------------------------

ANSWERS = {
    "text": (completion("Created hello.txt."), ("Created hello.txt.", [])),
    "calls": (completion("", WRITE, ("Bash", {"command": "ls"})),
              ("", [WRITE, ("Bash", {"command": "ls"})])),
    "text and a call": (completion("Writing it.", WRITE), ("Writing it.", [WRITE])),
}  # fmt: skip


@pytest.mark.parametrize("dialect", READERS)
@pytest.mark.parametrize("case", ANSWERS)
def test_an_answer_renders_as_json_and_as_a_stream_that_say_the_same(
    dialect: str, case: str
) -> None:
    speaker, said, streamed = READERS[dialect]
    chain, expected = ANSWERS[case]
    answer = speaker.answer(dialects.ChatRequest(messages=[]), chain, created=1)
    assert said(answer) == expected
    assert streamed(sse(b"".join(speaker.events(answer)))) == expected


def test_a_response_carries_codexs_fields() -> None:
    answer = dialects.RESPONSES.answer(
        dialects.ChatRequest(messages=[]), completion("Done.", WRITE), created=7
    )
    message, call = answer["output"]
    assert message["role"] == "assistant" and message["content"][0]["type"] == "output_text"
    assert call["type"] == "function_call" and call["call_id"] == "call_0"
    assert answer["usage"] == {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150}
    events = sse(b"".join(dialects.RESPONSES.events(answer)))
    assert [name for name, _ in events].count("response.output_item.added") == 2
    assert events[0][1]["response"]["status"] == "in_progress"


def test_an_empty_answer_is_still_a_message_for_codex() -> None:
    answer = dialects.RESPONSES.answer(dialects.ChatRequest(messages=[]), completion(), created=1)
    assert [item["type"] for item in answer["output"]] == ["message"]


@pytest.mark.parametrize(
    ("dialect", "shape"),
    [("openai", {"error"}), ("responses", {"error"}), ("anthropic", {"type", "error"})],
)
def test_errors_take_each_dialects_shape(dialect: str, shape: set[str]) -> None:
    error = READERS[dialect][0].error("no", "permission_error")
    assert set(error) == shape
    assert error["error"]["message"] == "no" and error["error"]["type"] == "permission_error"


# --- through a real proxy ---------------------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the proxy's Unix socket, as the relay carries an agent's requests."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.path))


def post(proxy: ModelProxy, dialect: str, key: str | None) -> tuple[int, bytes]:
    """The dialect's recorded request, with its key in the header its SDK uses."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers.update({"x-api-key": key} if dialect == "anthropic"
                       else {"Authorization": f"Bearer {key}"})  # fmt: skip
    connection = UnixConnection(proxy.socket_path)
    try:
        connection.request("POST", PATHS[dialect], json.dumps(REQUESTS[dialect]()), headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.fixture
def folder() -> Iterator[Path]:
    """A short folder: a Unix socket's path must fit in 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="ratchet-proxy-") as path:
        yield Path(path)


def start_proxy(folder: Path, server: ScriptedLLM, cap: float | None) -> ModelProxy:
    config = RuntimeConfig(root=folder, daily_usd=cap, models=(ModelConfig(
        model="openai/primary", api_base=server.url, api_key_env=KEY_ENV,
        input_usd_per_mtok=1, output_usd_per_mtok=2),))  # fmt: skip
    ledger = folder / "ledger.sqlite"
    return ModelProxy(
        folder / "proxy.sock", lambda: LLMClient(config, Ledger(ledger), Redactor({}), retries=0)
    )


def outcomes(folder: Path) -> list[str]:
    with sqlite3.connect(folder / "ledger.sqlite") as db:
        return [row[0] for row in db.execute("SELECT outcome FROM llm_calls ORDER BY id")]


@pytest.fixture(autouse=True)
def _model_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-scripted")
    monkeypatch.delenv(CAP_VARIABLE, raising=False)
    monkeypatch.delenv("AGENT_KILL_FLAG", raising=False)


@pytest.mark.parametrize("dialect", READERS)
def test_a_streamed_call_goes_through_the_proxy_and_the_ledger(
    dialect: str, llm: ScriptedLLM, folder: Path
) -> None:
    llm.add("primary", Step(tool_calls=(WRITE,), usage=(300, 20)))
    with start_proxy(folder, llm, cap=5.0) as proxy:
        status, body = post(proxy, dialect, proxy.token)
    assert status == 200, body
    assert READERS[dialect][2](sse(body)) == ("", [WRITE])
    (sent,) = llm.received
    last_role, a_tool = UPSTREAM[dialect]
    assert sent.body["messages"][-1]["role"] == last_role
    assert a_tool in {tool["function"]["name"] for tool in sent.body["tools"]}
    assert (proxy.log.calls, proxy.log.tokens) == (1, 320)
    assert outcomes(folder) == ["ok"]


@pytest.mark.parametrize("dialect", READERS)
def test_the_proxy_refuses_a_call_without_its_key_and_one_over_the_cap(
    dialect: str, llm: ScriptedLLM, folder: Path
) -> None:
    with start_proxy(folder, llm, cap=0.0) as proxy:
        unkeyed = post(proxy, dialect, None)
        wrong = post(proxy, dialect, "sk-guess")
        capped = post(proxy, dialect, proxy.token)
    error = READERS[dialect][0].error("", "")
    for status, body in (unkeyed, wrong):
        assert status == 401 and set(json.loads(body)) == set(error)
    status, body = capped
    assert status == 402 and set(json.loads(body)) == set(error)
    assert "spend cap" in json.loads(body)["error"]["message"]
    assert proxy.log.unauthorised == 2 and proxy.log.refused is not None
    assert proxy.log.refused[0] == "capped"
    assert outcomes(folder) == ["refused-cap"] and not llm.received


def raw_post(proxy: ModelProxy, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = UnixConnection(proxy.socket_path)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("body", "length", "status"),
    [
        (b"[1, 2]", None, 400),  # JSON, but not an object
        (b'{"messages": [], "max_tokens": 1e999}', None, 400),  # a limit past any integer
        (b"{}", "-5", 413),  # a length that would read to the end of the stream
        (b"{}", "many", 413),
    ],
    ids=["an array", "an infinite limit", "a negative length", "no number"],
)
def test_a_bad_request_gets_an_answer_and_costs_nothing(
    body: bytes, length: str | None, status: int, llm: ScriptedLLM, folder: Path
) -> None:
    with start_proxy(folder, llm, cap=5.0) as proxy:
        headers = {"Authorization": f"Bearer {proxy.token}",
                   "Content-Length": length or str(len(body))}  # fmt: skip
        answer = raw_post(proxy, body, headers)
    assert answer[0] == status, answer
    assert not llm.received and proxy.log.calls == 0


def test_a_caller_without_the_key_is_refused_before_its_body_is_read(
    llm: ScriptedLLM, folder: Path
) -> None:
    """It announces 30 MB and sends none: the answer comes anyway, at once."""
    with start_proxy(folder, llm, cap=5.0) as proxy:
        connection = UnixConnection(proxy.socket_path)
        connection.putrequest("POST", "/v1/chat/completions")
        connection.putheader("Content-Length", str(30 << 20))
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 401
        connection.close()
