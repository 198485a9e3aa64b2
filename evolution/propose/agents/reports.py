"""What a coding-agent CLI says about its own run: tokens, cost, model, verdict, last words.

Each CLI ends a headless run with a machine-readable report in its own format; these
functions read one from the tool's captured output. Formats recorded from:

- Codex CLI 0.171.0, `codex exec --json`: JSONL events; `turn.completed` carries `usage`,
  a failed turn ends with `turn.failed`.
- Claude Code 2.1.197, `claude -p --output-format json`: one `{"type": "result", ...}`
  object (the last line of `stream-json` is the same object).
- Gemini CLI 0.61.0, `gemini -p --output-format json`: one pretty-printed object with
  `response` and `stats`, or with `error`; the error object goes to stderr, so pass
  stdout and stderr together.

The recorded samples are in tests/propose/agent_samples/ (VERSIONS.txt says how each
was made). Output is read tolerantly: a tool or its wrapper may print warnings before or
after the report, and a run cut short leaves a partial one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class Usage:
    cost_usd: float | None  # as the tool reported it; None when it reports tokens only
    prompt_tokens: int
    completion_tokens: int
    model: str  # "" when not reported
    ok: bool  # the tool's own verdict on the run
    message: str  # the final message or the error, clipped to MESSAGE_LIMIT characters


def _objects(output: str) -> Iterator[dict[str, Any]]:
    """The JSON objects that start a line of `output`, in order.

    Reports are either one object per line (JSONL) or one object spread over many lines
    (pretty-printed), amid lines that are not JSON; decoding from each line that opens
    with `{` and going on past what was decoded finds both without taking an object's
    nested members for reports of their own.
    """
    decoder = json.JSONDecoder()
    decoded_up_to = 0
    for line in re.finditer(r"^[ \t]*(?=\{)", output, re.MULTILINE):
        if line.end() < decoded_up_to:
            continue
        try:
            value, decoded_up_to = decoder.raw_decode(output, line.end())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield value


def _count(value: Any) -> int:
    """A token count, or 0: a field the tool left out or null counts as nothing used;
    a negative one is no count (the report is the tool's word, not to be believed
    where it would lower the ledger)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _dollars(value: Any) -> float | None:
    """A reported cost, or None (unknown: charged as the whole reservation) when it is
    not a finite amount of 0 or more: a negative or NaN cost would lift the day's cap."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _clip(text: Any) -> str:
    return text[:MESSAGE_LIMIT] if isinstance(text, str) else ""


def _busiest(tokens_by_model: dict[str, int]) -> str:
    """The model that did most of the work: the tools also call small models on the side
    (titles, routing), which should not name the run."""
    return max(tokens_by_model, key=tokens_by_model.__getitem__, default="")


def codex_jsonl(output: str) -> Usage | None:
    """Read `codex exec --json`; the report is the turn's end, `turn.completed` or
    `turn.failed`.

    The usage of the last `turn.completed` is taken, not a sum: Codex reports the
    thread's running total there. A top-level `error` event is no verdict (Codex also
    emits one for each stream reconnect it then recovers from), and a fatal one is
    repeated in `turn.failed`. Codex names neither the model nor a cost in this stream.
    """
    completed: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    last_message = ""
    for event in _objects(output):
        kind = event.get("type")
        if kind == "turn.completed":
            completed = event
        elif kind == "turn.failed":
            failure = event
        elif kind == "item.completed":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message":
                last_message = item.get("text", "")
    if completed is None and failure is None:
        return None
    usage = completed.get("usage") if completed else None
    usage = usage if isinstance(usage, dict) else {}
    if failure is None:
        message = last_message
    else:
        error = failure.get("error")
        message = error.get("message") if isinstance(error, dict) else error
    return Usage(
        cost_usd=None,
        prompt_tokens=_count(usage.get("input_tokens")),
        completion_tokens=_count(usage.get("output_tokens")),
        model="",
        ok=failure is None,
        message=_clip(message),
    )


def claude_json(output: str) -> Usage | None:
    """Read `claude -p --output-format json` (or the last line of `stream-json`).

    Tokens come from `modelUsage`, which covers every model the run called, with the
    prompt counted whole (fresh, cache-read and cache-written input alike, as the other
    tools count it); the top-level `usage` is the fallback when it is absent.
    `total_cost_usd` is Claude Code's own estimate from its price table, also for a
    model it does not know. A run stopped by `--max-turns` or `--max-budget-usd` has no
    `result`, only `errors`.
    """
    reports = [o for o in _objects(output) if o.get("type") == "result"]
    if not reports:
        return None
    report = reports[-1]
    per_model = report.get("modelUsage")
    prompt = completion = 0
    tokens_by_model: dict[str, int] = {}
    if isinstance(per_model, dict) and per_model:
        for name, counts in per_model.items():
            if not isinstance(counts, dict):
                continue
            model_prompt = sum(
                _count(counts.get(key))
                for key in ("inputTokens", "cacheReadInputTokens", "cacheCreationInputTokens")
            )
            model_completion = _count(counts.get("outputTokens"))
            prompt += model_prompt
            completion += model_completion
            tokens_by_model[name] = model_prompt + model_completion
    else:
        usage = report.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt = sum(
            _count(usage.get(key))
            for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        )
        completion = _count(usage.get("output_tokens"))
    cost = report.get("total_cost_usd")
    errors = report.get("errors")
    message = report.get("result")
    if not isinstance(message, str) and isinstance(errors, list):
        message = "; ".join(str(error) for error in errors)
    return Usage(
        cost_usd=_dollars(cost),
        prompt_tokens=prompt,
        completion_tokens=completion,
        model=_busiest(tokens_by_model),
        ok=report.get("is_error") is False,
        message=_clip(message),
    )


def gemini_json(output: str) -> Usage | None:
    """Read `gemini -p --output-format json`.

    `stats.models` counts per model; the thoughts a model bills as output count with its
    candidates. An error report carries no stats, so a failed run reads as no tokens.
    """
    reports = [
        o for o in _objects(output) if "session_id" in o and ("response" in o or "error" in o)
    ]
    if not reports:
        return None
    report = reports[-1]
    stats = report.get("stats")
    models = stats.get("models") if isinstance(stats, dict) else None
    prompt = completion = 0
    tokens_by_model: dict[str, int] = {}
    for name, entry in (models if isinstance(models, dict) else {}).items():
        tokens = entry.get("tokens") if isinstance(entry, dict) else None
        if not isinstance(tokens, dict):
            continue
        model_prompt = _count(tokens.get("prompt"))
        model_completion = _count(tokens.get("candidates")) + _count(tokens.get("thoughts"))
        prompt += model_prompt
        completion += model_completion
        tokens_by_model[name] = model_prompt + model_completion
    error = report.get("error")
    if error is None:
        message = report.get("response")
    else:
        message = error.get("message") if isinstance(error, dict) else error
    return Usage(
        cost_usd=None,
        prompt_tokens=prompt,
        completion_tokens=completion,
        model=_busiest(tokens_by_model),
        ok=error is None,
        message=_clip(message),
    )
