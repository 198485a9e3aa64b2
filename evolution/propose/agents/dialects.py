"""The three API dialects the model proxy speaks, as translations to and from one request.

The model chain is called through litellm in OpenAI's shape, so a request in any
dialect becomes a `ChatRequest` of OpenAI messages and parameters, and the chain's answer
is rendered back in the dialect it was asked in: as one JSON body, or as the events of a
stream. Only what coding agents send is translated (text, tool definitions, tool calls
and their results, the system prompt, stop words, the output limit); images, extended
thinking and reasoning, and tools that are not plain functions (a provider's hosted
web search, Codex's freeform patch tool) are dropped, which an agent sees as a model
that ignored them or a tool it was not offered.

Over 400 lines: three dialects, each a translation both ways (a request in, an answer
and a stream out), sharing the helpers that turn tools and their choice into OpenAI's
shape; a module per dialect would scatter those helpers or import each other's.
"""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.llm import PASSED_PARAMS, Completion


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None
    stream: bool = False
    model: str = ""  # what the agent asked for: answered with the model that served it


class Dialect(Protocol):
    def parse(self, body: dict[str, Any]) -> ChatRequest: ...

    def answer(
        self, request: ChatRequest, completion: Completion, *, created: int
    ) -> dict[str, Any]: ...

    def events(self, answer: dict[str, Any]) -> list[bytes]: ...

    def error(self, message: str, kind: str) -> dict[str, Any]: ...


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body["messages"]
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
    ):
        raise ValueError("messages must be a list of objects with a role")
    return messages


def _request(
    body: dict[str, Any], messages: list[dict[str, Any]], params: dict[str, Any],
    *limits: str,
) -> ChatRequest:  # fmt: skip
    """The request every dialect parses into: its output limit under the first of
    `limits` the body sets, its stream flag, and the model it asked for."""
    limit = next((body[key] for key in limits if body.get(key) is not None), None)
    return ChatRequest(
        messages=messages,
        params=params,
        max_tokens=None if limit is None else int(limit),
        stream=bool(body.get("stream")),
        model=str(body.get("model") or ""),
    )


def _taken(body: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The parameters `body` sets, under OpenAI's name ({ours: theirs})."""
    return {ours: body[theirs] for ours, theirs in names.items() if body.get(theirs) is not None}


def _sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


def _usage(completion: Completion) -> tuple[int, int]:
    return completion.prompt_tokens, completion.completion_tokens


def _function_tool(name: str, description: str, parameters: Any) -> dict[str, Any]:
    """A tool in OpenAI chat's shape, whichever dialect declared it."""
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


def _tool_params(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    """The tools and the choice among them, as litellm takes them: a choice only when
    there are tools to choose from (a provider refuses one without)."""
    if not tools:
        return {}
    return {"tools": tools} if choice is None else {"tools": tools, "tool_choice": choice}


def openai_error(message: str, kind: str) -> dict[str, Any]:
    """An error as OpenAI's APIs (chat completions and Responses alike) answer one."""
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def model_list(model: str) -> dict[str, Any]:
    """`GET /v1/models`: the one model behind the proxy (the chain's, as last served)."""
    name = model or "ratchet"
    return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "ratchet"}]}


class OpenAIChat:
    """`POST /v1/chat/completions`."""

    def parse(self, body: dict[str, Any]) -> ChatRequest:
        params = _taken(body, {key: key for key in PASSED_PARAMS})
        return _request(body, _messages(body), params, "max_completion_tokens", "max_tokens")

    def answer(
        self, request: ChatRequest, completion: Completion, *, created: int
    ) -> dict[str, Any]:
        message = {"role": "assistant", "content": completion.text}
        if completion.message.get("tool_calls"):
            message["tool_calls"] = completion.message["tool_calls"]
        prompt, output = _usage(completion)
        return {
            "id": "chatcmpl-ratchet-" + secrets.token_hex(8),
            "object": "chat.completion",
            "created": created,
            "model": completion.model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": completion.finish_reason}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": output,
                      "total_tokens": prompt + output},
        }  # fmt: skip

    def events(self, answer: dict[str, Any]) -> list[bytes]:
        choice = answer["choices"][0]
        delta = dict(choice["message"])
        if "tool_calls" in delta:
            delta["tool_calls"] = [
                {**call, "index": i} for i, call in enumerate(delta["tool_calls"])
            ]
        head = {key: answer[key] for key in ("id", "created", "model")}
        chunk = {**head, "object": "chat.completion.chunk"}
        return [
            _sse({**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
            _sse({**chunk, "choices": [{"index": 0, "delta": {},
                                        "finish_reason": choice["finish_reason"]}],
                  "usage": answer["usage"]}),
            _sse("[DONE]"),
        ]  # fmt: skip

    def error(self, message: str, kind: str) -> dict[str, Any]:
        return openai_error(message, kind)


_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


# The text parts of a message's content: Anthropic's, and the Responses API's (which
# types a part by who wrote it).
_TEXT_PARTS = ("text", "input_text", "output_text")


def _text(content: Any) -> str:
    """The text of a content: a string, or its text parts one per line (they are
    separate paragraphs: Claude Code's system blocks end without a newline)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS
        )  # fmt: skip
    return ""


class AnthropicMessages:
    """`POST /v1/messages`."""

    def parse(self, body: dict[str, Any]) -> ChatRequest:
        messages: list[dict[str, Any]] = []
        system = _text(body.get("system"))
        if system:
            messages.append({"role": "system", "content": system})
        for message in _messages(body):
            messages += self._message(message)
        tools = [
            _function_tool(tool["name"], tool.get("description", ""), tool["input_schema"])
            for tool in body.get("tools") or [] if isinstance(tool, dict) and "input_schema" in tool
        ]  # fmt: skip
        params = _tool_params(tools, self._tool_choice(body.get("tool_choice")))
        params.update(_taken(body, {"stop": "stop_sequences", "temperature": "temperature",
                                    "top_p": "top_p"}))  # fmt: skip
        return _request(body, messages, params, "max_tokens")

    @staticmethod
    def _tool_choice(choice: Any) -> Any:
        if not isinstance(choice, dict):
            return None
        kind = choice.get("type")
        if kind == "tool":
            return {"type": "function", "function": {"name": choice.get("name", "")}}
        return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))

    @staticmethod
    def _message(message: dict[str, Any]) -> list[dict[str, Any]]:
        """One Anthropic message as OpenAI messages: a user's tool results become tool
        messages (first: they answer the previous turn's calls), an assistant's tool
        uses become its tool calls."""
        role, content = message["role"], message.get("content")
        if isinstance(content, str):
            return [{"role": role, "content": content}]
        blocks = [b for b in content or [] if isinstance(b, dict)]
        text = _text(blocks)
        if role == "assistant":
            calls = [
                {"id": b.get("id", ""), "type": "function",
                 "function": {"name": b.get("name", ""),
                              "arguments": json.dumps(b.get("input", {}))}}
                for b in blocks if b.get("type") == "tool_use"
            ]  # fmt: skip
            out: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                out["tool_calls"] = calls
            return [out]
        results = [
            {"role": "tool", "tool_call_id": b.get("tool_use_id", ""),
             "content": _text(b.get("content")) or ("error" if b.get("is_error") else "")}
            for b in blocks if b.get("type") == "tool_result"
        ]  # fmt: skip
        return results + ([{"role": role, "content": text}] if text or not results else [])

    def answer(
        self, request: ChatRequest, completion: Completion, *, created: int
    ) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if completion.text:
            content.append({"type": "text", "text": completion.text})
        for call in completion.message.get("tool_calls") or []:
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                arguments = {}
            content.append({"type": "tool_use",
                            "id": call.get("id") or "toolu_" + secrets.token_hex(8),
                            "name": function.get("name", ""), "input": arguments})  # fmt: skip
        stop = _STOP_REASONS.get(completion.finish_reason, "end_turn")
        if any(block["type"] == "tool_use" for block in content):
            stop = "tool_use"
        prompt, output = _usage(completion)
        return {
            "id": "msg_ratchet_" + secrets.token_hex(8),
            "type": "message",
            "role": "assistant",
            "model": completion.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": output},
        }

    def events(self, answer: dict[str, Any]) -> list[bytes]:
        start = {**answer, "content": [], "stop_reason": None,
                 "usage": {"input_tokens": answer["usage"]["input_tokens"],
                           "output_tokens": 0}}  # fmt: skip
        events = [_sse({"type": "message_start", "message": start}, "message_start")]
        for index, block in enumerate(answer["content"]):
            if block["type"] == "text":
                opened = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                opened = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events += [
                _sse({"type": "content_block_start", "index": index, "content_block": opened},
                     "content_block_start"),
                _sse({"type": "content_block_delta", "index": index, "delta": delta},
                     "content_block_delta"),
                _sse({"type": "content_block_stop", "index": index}, "content_block_stop"),
            ]  # fmt: skip
        events += [
            _sse({"type": "message_delta",
                  "delta": {"stop_reason": answer["stop_reason"], "stop_sequence": None},
                  "usage": {"output_tokens": answer["usage"]["output_tokens"]}}, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop"),
        ]  # fmt: skip
        return events

    def error(self, message: str, kind: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": kind, "message": message}}


class ResponsesAPI:
    """`POST /v1/responses`: OpenAI's Responses API, the only one Codex CLI speaks.

    A request is the whole conversation as typed items (Codex keeps no state on the
    server: it sends `store: false` and the full history each turn), so it translates
    to chat messages as the other dialects do. Items that are not messages or function
    calls (reasoning, hosted tools' calls) are dropped: the chain never produced them.
    """

    def parse(self, body: dict[str, Any]) -> ChatRequest:
        messages: list[dict[str, Any]] = []
        instructions = _text(body.get("instructions"))
        if instructions:
            messages.append({"role": "system", "content": instructions})
        items = body.get("input") or []
        if isinstance(items, str):
            items = [{"type": "message", "role": "user", "content": items}]
        if not isinstance(items, list):
            raise ValueError("input must be a string or a list of items")
        for item in items:
            if isinstance(item, dict):
                self._item(item, messages)
        tools = [
            _function_tool(tool["name"], tool.get("description", ""),
                           tool.get("parameters") or {"type": "object", "properties": {}})
            for tool in body.get("tools") or []
            if isinstance(tool, dict) and tool.get("type") == "function" and "name" in tool
        ]  # fmt: skip
        params = _tool_params(tools, self._tool_choice(body.get("tool_choice")))
        params.update(_taken(body, {"temperature": "temperature", "top_p": "top_p"}))
        return _request(body, messages, params, "max_output_tokens")

    @staticmethod
    def _item(item: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        """Append one input item to `messages`. A function call joins the assistant
        message before it, for chat APIs want one assistant turn with all its calls;
        a `developer` message (Codex's sandbox and approval rules) is a system one,
        which every provider behind litellm accepts."""
        kind = item.get("type", "message")
        if kind == "message":
            role = {"developer": "system"}.get(item.get("role", ""), item.get("role", "user"))
            messages.append({"role": role, "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item.get("call_id", ""), "type": "function",
                    "function": {"name": item.get("name", ""),
                                 "arguments": item.get("arguments") or "{}"}}  # fmt: skip
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")  # a string, or content parts
            messages.append({"role": "tool", "tool_call_id": item.get("call_id", ""),
                             "content": _text(output)})  # fmt: skip

    @staticmethod
    def _tool_choice(choice: Any) -> Any:
        if choice in ("auto", "required", "none"):
            return choice
        if isinstance(choice, dict) and choice.get("type") == "function":
            return {"type": "function", "function": {"name": choice.get("name", "")}}
        return None

    def answer(
        self, request: ChatRequest, completion: Completion, *, created: int
    ) -> dict[str, Any]:
        """A completed Response: the text as a message item (also when there is no
        text and no call, so that the turn visibly ends), then one item per call."""
        calls = completion.message.get("tool_calls") or []
        output: list[dict[str, Any]] = []
        if completion.text or not calls:
            output.append({
                "type": "message", "id": "msg_" + secrets.token_hex(8), "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": completion.text, "annotations": []}],
            })  # fmt: skip
        for call in calls:
            function = call.get("function") or {}
            output.append({
                "type": "function_call", "id": "fc_" + secrets.token_hex(8), "status": "completed",
                "call_id": call.get("id") or "call_" + secrets.token_hex(8),
                "name": function.get("name", ""), "arguments": function.get("arguments") or "{}",
            })  # fmt: skip
        prompt, output_tokens = _usage(completion)
        return {
            "id": "resp_ratchet_" + secrets.token_hex(8),
            "object": "response",
            "created_at": created,
            "status": "completed",
            "model": completion.model,
            "output": output,
            "usage": {"input_tokens": prompt, "output_tokens": output_tokens,
                      "total_tokens": prompt + output_tokens},
        }  # fmt: skip

    def events(self, answer: dict[str, Any]) -> list[bytes]:
        """The stream of a Response, as OpenAI sends it: each item is added, its text or
        arguments arrive (in one delta) and it is done; then the whole Response again.
        Codex acts on `output_item.done` and on `completed`, which must end the stream."""
        numbers = itertools.count()

        def event(kind: str, **fields: Any) -> bytes:
            return _sse({"type": kind, "sequence_number": next(numbers), **fields}, kind)

        opening = {**answer, "status": "in_progress", "output": [], "usage": None}
        events = [event("response.created", response=opening)]
        for index, item in enumerate(answer["output"]):
            at = {"item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                part = item["content"][0]
                events += [
                    event("response.output_item.added", output_index=index,
                          item={**item, "status": "in_progress", "content": []}),
                    event("response.content_part.added", **at, content_index=0,
                          part={**part, "text": ""}),
                    event("response.output_text.delta", **at, content_index=0, delta=part["text"]),
                    event("response.output_text.done", **at, content_index=0, text=part["text"]),
                    event("response.content_part.done", **at, content_index=0, part=part),
                ]  # fmt: skip
            else:
                events += [
                    event("response.output_item.added", output_index=index,
                          item={**item, "status": "in_progress", "arguments": ""}),
                    event("response.function_call_arguments.delta", **at, delta=item["arguments"]),
                    event("response.function_call_arguments.done", **at,
                          arguments=item["arguments"]),
                ]  # fmt: skip
            events.append(event("response.output_item.done", output_index=index, item=item))
        events.append(event("response.completed", response=answer))
        return events

    def error(self, message: str, kind: str) -> dict[str, Any]:
        return openai_error(message, kind)


OPENAI = OpenAIChat()
ANTHROPIC = AnthropicMessages()
RESPONSES = ResponsesAPI()


def dialect_of(path: str) -> Dialect | None:
    """Which dialect a request path is in (with or without the `/v1` prefix, whatever
    its query: Claude Code adds `?beta=true`)."""
    route = path.split("?", 1)[0].rstrip("/")
    if route.endswith("/chat/completions"):
        return OPENAI
    if route.endswith("/messages"):
        return ANTHROPIC
    if route.endswith("/responses"):
        return RESPONSES
    return None
