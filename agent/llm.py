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

import os
import time
from dataclasses import dataclass, field
from typing import Any

from agent.config import ModelConfig, RuntimeConfig
from agent.ledger import CapReached, Ledger
from agent.redact import Redactor

Messages = list[dict[str, str]]


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


def count_prompt_tokens(model: ModelConfig, messages: Messages) -> int:
    try:
        return int(_litellm().token_counter(model=model.model, messages=messages))
    except Exception:
        # No tokenizer for this model: one token per two bytes overestimates any BPE.
        return sum(len(m["content"].encode()) for m in messages) // 2 + 16


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

    def complete(self, messages: Messages, purpose: str) -> Completion:
        if not self.models:
            raise LLMUnavailable("no model is configured ([[llm.models]] or --model)", [])
        messages = [{**m, "content": self.redact(m["content"])} for m in messages]
        attempts: list[dict[str, str]] = []
        capped = 0
        for model in self.models:
            outcome = self._try_model(model, messages, purpose, attempts)
            if isinstance(outcome, Completion):
                outcome.attempts = attempts
                return outcome
            capped += outcome == "capped"
        if capped == len(self.models):
            raise LLMRefused("capped", attempts[-1]["error"] if attempts else "spend cap reached")
        summary = "; ".join(f"{a['model']}: {a['error']}" for a in attempts[-3:])
        raise LLMUnavailable(f"no model answered ({summary})", attempts)

    def _try_model(
        self, model: ModelConfig, messages: Messages, purpose: str, attempts: list[dict[str, str]]
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
            prompt_tokens = count_prompt_tokens(model, messages)
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
                response = self._send(model, messages, api_key)
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

    def _send(self, model: ModelConfig, messages: Messages, api_key: str | None) -> Any:
        litellm = _litellm()
        extra: dict[str, Any] = {}
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
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError):
            text = ""
        self.ledger.settle(
            reservation,
            outcome="ok",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
        )
        return Completion(text, model.model, prompt_tokens, completion_tokens, cost)
