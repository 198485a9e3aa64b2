"""The LLM client: an explicit fallback chain, a hard spend cap, and the kill switch.

Before every attempt: the kill flag is checked, the worst-case cost (prompt tokens plus
max_tokens at the model's prices) is reserved against the daily cap in the ledger, and
only then is the request sent. A cloud model with no known price fails closed; local
models cost nothing. Transient errors (429, 5xx, timeouts, dropped connections) are
retried a bounded number of times on the same model, then the chain moves on; a
context-window, auth, permission, not-found or provider-budget error moves on at once; a
bad request stops the chain (it would be just as bad elsewhere).

litellm is imported here only, on first use, with LITELLM_LOCAL_MODEL_COST_MAP=True set
first so that the import never fetches a price table from the network. Its own hidden
retries (and the OpenAI SDK's) are switched off: the retry policy is this module's.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

from agent.config import ModelConfig, RuntimeConfig
from agent.ledger import CapReached, Ledger
from agent.redact import Redactor

# A chat message: its content a string, or (from a coding agent, through the model
# proxy) a list of parts, with tool calls beside it.
Messages = list[dict[str, Any]]
# What a caller may ask of the request besides the messages (a coding agent's tools,
# its stop words): passed to litellm as they are. Anything else is the client's to set.
PASSED_PARAMS = ("tools", "tool_choice", "temperature", "top_p", "stop", "response_format")


def _litellm() -> Any:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


@dataclass
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    attempts: list[dict[str, str]] = field(default_factory=list)
    # The assistant's message as the model sent it (its tool calls included), and why
    # it stopped: what the model proxy hands back to a coding agent.
    message: dict[str, Any] = field(default_factory=dict)
    finish_reason: str = "stop"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class LLMRefused(Exception):
    """A guard refused before any request was sent: `status` is 'killed' or 'capped'."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class LLMUnavailable(Exception):
    """Every model in the chain failed; `attempts` says how."""

    def __init__(self, message: str, attempts: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class Prices:
    input_per_token: float
    output_per_token: float


def prices_for(model: ModelConfig) -> Prices | None:
    """Configured prices first, then litellm's bundled map; None when unknown."""
    if model.local:
        return Prices(0.0, 0.0)
    if model.input_usd_per_mtok is not None and model.output_usd_per_mtok is not None:
        return Prices(model.input_usd_per_mtok / 1e6, model.output_usd_per_mtok / 1e6)
    try:
        info = _litellm().get_model_info(model.model)
    except Exception:  # litellm raises several types for "not mapped"
        return None
    entry_in, entry_out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if entry_in is None or entry_out is None:
        return None
    return Prices(float(entry_in), float(entry_out))


def count_prompt_tokens(model: ModelConfig, messages: Messages, tools: Any = None) -> int:
    try:
        return int(_litellm().token_counter(model=model.model, messages=messages, tools=tools))
    except Exception:
        # No tokenizer for this model: one token per two bytes overestimates any BPE.
        return len(json.dumps([messages, tools]).encode()) // 2 + 16


def redact_message(message: dict[str, Any], redact: Redactor) -> dict[str, Any]:
    """`message` with its text redacted: its content, a string or parts, and the
    arguments of its tool calls (a coding agent's shell commands and file edits)."""
    content = message.get("content")
    redacted = dict(message)
    if isinstance(content, str):
        redacted["content"] = redact(content)
    elif isinstance(content, list):
        redacted["content"] = [
            {**part, "text": redact(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        redacted["tool_calls"] = [_redact_call(call, redact) for call in calls]
    return redacted


def _redact_call(call: Any, redact: Redactor) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": redact(function["arguments"])}}


_TRANSIENT = (
    "RateLimitError",
    "ServiceUnavailableError",
    "InternalServerError",
    "BadGatewayError",
    "APIConnectionError",
    "Timeout",
)
_NEXT_MODEL = (
    "ContextWindowExceededError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "BudgetExceededError",
    "PaymentRequiredError",
)


def classify(error: BaseException) -> str:
    """'transient', 'next-model' or 'fatal', by litellm's exception class (and its bases)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & set(_NEXT_MODEL):
        return "next-model"
    if names & set(_TRANSIENT):
        return "transient"
    if "BadRequestError" in names:
        return "fatal"
    return "next-model"


class LLMClient:
    def __init__(
        self,
        config: RuntimeConfig,
        ledger: Ledger,
        redactor: Redactor,
        *,
        models: tuple[ModelConfig, ...] | None = None,
        retries: int = 2,
        backoff_s: float = 0.5,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.redact = redactor
        self.models = models if models is not None else config.models
        self.retries = retries
        self.backoff_s = backoff_s

    def _check_kill(self, model: str, purpose: str) -> None:
        flag = self.config.kill_flag_path
        if flag.exists():
            self.ledger.note(model, purpose, "refused-kill", f"kill flag present ({flag})")
            raise LLMRefused("killed", f"kill flag present ({flag}): no model call is made")

    def complete(
        self,
        messages: Messages,
        purpose: str,
        *,
        params: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """The first answer of the chain. `params` (PASSED_PARAMS only) go with the
        request; `max_tokens` may lower, never raise, a model's configured limit, which
        is also what the reservation prices."""
        if not self.models:
            raise LLMUnavailable("no model is configured ([[llm.models]] or --model)", [])
        messages = [redact_message(m, self.redact) for m in messages]
        extra = {k: v for k, v in (params or {}).items() if k in PASSED_PARAMS and v is not None}
        attempts: list[dict[str, str]] = []
        capped = 0
        for model in self.models:
            if max_tokens is not None and max_tokens < model.max_tokens:
                model = replace(model, max_tokens=max(1, max_tokens))
            outcome = self._try_model(model, messages, purpose, attempts, extra)
            if isinstance(outcome, Completion):
                outcome.attempts = attempts
                return outcome
            capped += outcome == "capped"
        if capped == len(self.models):
            raise LLMRefused("capped", attempts[-1]["error"] if attempts else "spend cap reached")
        summary = "; ".join(f"{a['model']}: {a['error']}" for a in attempts[-3:])
        raise LLMUnavailable(f"no model answered ({summary})", attempts)

    def _try_model(
        self,
        model: ModelConfig,
        messages: Messages,
        purpose: str,
        attempts: list[dict[str, str]],
        extra: dict[str, Any],
    ) -> Completion | str:
        """A Completion, or why this model is done: 'capped', 'skipped' or 'failed'."""
        api_key = None
        if model.api_key_env:
            api_key = os.environ.get(model.api_key_env)
            if not api_key:
                error = f"environment variable {model.api_key_env} is not set"
                attempts.append({"model": model.model, "error": error})
                self.ledger.note(model.model, purpose, "skipped", error)
                return "skipped"
        prices = prices_for(model)
        if prices is None:
            error = "no known price for this cloud model: refusing (configure its prices)"
            attempts.append({"model": model.model, "error": error})
            self.ledger.note(model.model, purpose, "refused-price", error)
            return "skipped"
        for attempt in range(self.retries + 1):
            self._check_kill(model.model, purpose)
            prompt_tokens = count_prompt_tokens(model, messages, extra.get("tools"))
            # What else goes with the request is input too (a coding agent's schema in
            # response_format, its stop words): priced at the tokenizer-free bound.
            rest = {key: value for key, value in extra.items() if key != "tools"}
            prompt_tokens += len(json.dumps(rest).encode()) // 2 if rest else 0
            estimate = prompt_tokens * prices.input_per_token + (
                model.max_tokens * prices.output_per_token
            )
            try:
                reservation = self.ledger.reserve(
                    model.model, purpose, estimate, self.config.cap_usd
                )
            except CapReached as cap:
                attempts.append({"model": model.model, "error": str(cap)})
                return "capped"
            try:
                response = self._send(model, messages, api_key, extra)
            except Exception as error:  # litellm's whole exception family
                kind = classify(error)
                text = self.redact(f"{type(error).__name__}: {error}")[:500]
                self.ledger.settle(reservation, outcome=f"error-{kind}", error=text)
                attempts.append({"model": model.model, "error": text})
                if kind == "fatal":
                    raise LLMUnavailable(
                        f"{model.model} refused the request: {text}", attempts
                    ) from None
                if kind == "transient" and attempt < self.retries:
                    time.sleep(self.backoff_s * (2**attempt))
                    continue
                return "failed"
            return self._settle(model, response, reservation, prices, estimate)
        return "failed"

    def _send(
        self, model: ModelConfig, messages: Messages, api_key: str | None, params: dict[str, Any]
    ) -> Any:
        litellm = _litellm()
        extra: dict[str, Any] = dict(params)
        if model.api_base:
            extra["api_base"] = model.api_base
        if api_key:
            extra["api_key"] = api_key
        return litellm.completion(
            model=model.model,
            messages=messages,
            timeout=model.timeout_s,
            max_tokens=model.max_tokens,
            num_retries=0,
            max_retries=0,
            **extra,
        )

    def _settle(
        self, model: ModelConfig, response: Any, reservation: Any, prices: Prices, estimate: float
    ) -> Completion:
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        if usage is None:
            cost = estimate  # no usage reported: charge the worst case, never zero
        else:
            cost = prompt_tokens * prices.input_per_token + (
                completion_tokens * prices.output_per_token
            )
        try:
            choice = response.choices[0]
            message = choice.message.model_dump(exclude_none=True)
            finish = str(choice.finish_reason or "stop")
        except (AttributeError, IndexError):
            message, finish = {"role": "assistant", "content": ""}, "stop"
        text = message.get("content") or ""
        self.ledger.settle(
            reservation,
            outcome="ok",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
        )
        return Completion(
            text, model.model, prompt_tokens, completion_tokens, cost,
            message=message, finish_reason=finish,
        )  # fmt: skip
