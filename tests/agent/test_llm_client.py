"""agent.llm.LLMClient in-process: the real litellm client against a loopback server.

Nothing of litellm is mocked: every case sends real HTTP to ScriptedLLM on 127.0.0.1
(through `api_base`) and checks what the server received and what the real SQLite ledger
recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import ScriptedLLM, Step

from agent.config import ModelConfig, RuntimeConfig
from agent.ledger import Ledger
from agent.llm import Completion, LLMClient, LLMRefused, LLMUnavailable, _litellm, classify
from agent.redact import Redactor

KEY_ENV = "RATCHET_TEST_LLM_KEY"
KEY = "sk-test-key-0123456789"
UNSET_KEY_ENV = "RATCHET_TEST_LLM_UNSET_KEY"
MESSAGES = [{"role": "user", "content": "say hello"}]
# usage (100, 50) at $1 / $2 per million tokens
COST = 100 * 1.0e-6 + 50 * 2.0e-6


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv(UNSET_KEY_ENV, raising=False)
    monkeypatch.delenv("SPEND_CAP_USD", raising=False)
    monkeypatch.delenv("AGENT_KILL_FLAG", raising=False)


@pytest.fixture(scope="module")
def _server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def llm(_server: ScriptedLLM) -> ScriptedLLM:
    _server.script.clear()
    _server.received.clear()
    return _server


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(RuntimeConfig(root=tmp_path).ledger) as opened:
        yield opened


def cloud(server: ScriptedLLM, name: str, **changes: Any) -> ModelConfig:
    settings: dict[str, Any] = {
        "model": f"openai/{name}",
        "api_base": server.url,
        "api_key_env": KEY_ENV,
        "input_usd_per_mtok": 1.0,
        "output_usd_per_mtok": 2.0,
        "timeout_s": 5,
        "max_tokens": 100,
        **changes,
    }
    return ModelConfig(**settings)


def make_client(
    tmp_path: Path,
    ledger: Ledger,
    *models: ModelConfig,
    daily_usd: float | None = None,
    redactor: Redactor | None = None,
) -> LLMClient:
    config = RuntimeConfig(root=tmp_path, models=models, daily_usd=daily_usd)
    return LLMClient(config, ledger, redactor or Redactor({}), backoff_s=0.01)


def outcomes(ledger: Ledger) -> list[tuple[str, str]]:
    return [(row["model"], row["outcome"]) for row in ledger.calls()]


def test_success_returns_the_completion_and_settles_its_cost(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("primary", Step("hello there", usage=(100, 50)))
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), cloud(llm, "fallback"))

    result = client.complete(MESSAGES, purpose="unit")

    assert isinstance(result, Completion)
    assert (result.text, result.model) == ("hello there", "openai/primary")
    assert (result.prompt_tokens, result.completion_tokens, result.tokens) == (100, 50, 150)
    assert result.cost_usd == pytest.approx(COST)
    assert result.attempts == []
    [request] = llm.received
    assert request.model == "primary"
    assert request.messages == MESSAGES
    assert request.max_tokens == 100
    assert request.bearer_token == KEY
    [row] = ledger.calls()
    assert (row["model"], row["purpose"], row["outcome"]) == ("openai/primary", "unit", "ok")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (100, 50)
    assert row["cost_usd"] == pytest.approx(COST)
    # the reservation was the worst case: the prompt plus all of max_tokens
    assert row["estimate_usd"] >= 100 * 2.0e-6
    assert ledger.spent_today() == pytest.approx(COST)


def test_a_429_is_retried_on_the_same_model(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("primary", Step(status=429), Step("after the wait"))
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), cloud(llm, "fallback"))

    result = client.complete(MESSAGES, purpose="unit")

    assert (result.text, result.model) == ("after the wait", "openai/primary")
    assert len(llm.requests_for("primary")) == 2
    assert llm.requests_for("fallback") == []
    assert [a["model"] for a in result.attempts] == ["openai/primary"]
    assert "RateLimitError" in result.attempts[0]["error"]
    assert outcomes(ledger) == [("openai/primary", "error-transient"), ("openai/primary", "ok")]
    assert ledger.spent_today() == pytest.approx(COST)  # the failed attempt costs nothing


def test_three_503s_move_on_to_the_fallback(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("primary", Step(status=503), Step(status=503), Step(status=503))
    llm.add("fallback", Step("from the fallback"))
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), cloud(llm, "fallback"))

    result = client.complete(MESSAGES, purpose="unit")

    assert (result.text, result.model) == ("from the fallback", "openai/fallback")
    assert len(llm.requests_for("primary")) == 3  # the first try and 2 retries
    assert len(llm.requests_for("fallback")) == 1
    assert outcomes(ledger) == [("openai/primary", "error-transient")] * 3 + [
        ("openai/fallback", "ok")
    ]
    assert len(result.attempts) == 3


def test_every_model_failing_is_unavailable(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("primary", *[Step(status=500)] * 3)
    llm.add("fallback", *[Step(status=502)] * 3)
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), cloud(llm, "fallback"))

    with pytest.raises(LLMUnavailable, match="no model answered") as caught:
        client.complete(MESSAGES, purpose="unit")

    assert len(caught.value.attempts) == 6
    assert len(llm.received) == 6
    assert ledger.spent_today() == 0


# litellm (1.106) maps both 400 and 422 from an OpenAI-compatible server to BadRequestError.
@pytest.mark.parametrize("status", [400, 422])
def test_a_bad_request_stops_the_chain(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM, status: int
) -> None:
    llm.add("primary", Step(status=status))
    llm.add("fallback", Step("never asked"))
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), cloud(llm, "fallback"))

    with pytest.raises(LLMUnavailable, match="openai/primary refused the request") as caught:
        client.complete(MESSAGES, purpose="unit")

    assert "BadRequestError" in str(caught.value)
    assert len(llm.requests_for("primary")) == 1
    assert llm.requests_for("fallback") == []
    assert outcomes(ledger) == [("openai/primary", "error-fatal")]


# 401 -> AuthenticationError, 404 -> NotFoundError; litellm maps a bare 403 to its generic
# APIError, which classify() also sends to the next model.
@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_not_found_errors_move_on_without_retry(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM, status: int
) -> None:
    llm.add("primary", Step(status=status), Step("a retry would get this"))
    llm.add("fallback", Step("from the fallback"))
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), cloud(llm, "fallback"))

    result = client.complete(MESSAGES, purpose="unit")

    assert result.model == "openai/fallback"
    assert len(llm.requests_for("primary")) == 1
    assert len(llm.requests_for("fallback")) == 1
    assert outcomes(ledger) == [("openai/primary", "error-next-model"), ("openai/fallback", "ok")]


# litellm's ollama_chat provider cannot be pointed at ScriptedLLM: it POSTs to
# {api_base}/api/chat and expects Ollama's own response shape (a top-level "message"),
# so an OpenAI-style reply fails inside litellm ("Message() argument after ** must be a
# mapping, not NoneType", raised as APIConnectionError). The same "local models are free"
# rule is exercised instead with lm_studio/, another local provider (ModelConfig.local),
# which speaks the OpenAI protocol.
def test_a_local_model_is_free_even_under_a_tiny_cap(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("local-model", Step("from the local model", usage=(100, 50)))
    local = ModelConfig(
        model="lm_studio/local-model", api_base=llm.url, timeout_s=5, max_tokens=100
    )
    client = make_client(tmp_path, ledger, local, daily_usd=1e-9)

    result = client.complete(MESSAGES, purpose="unit")

    assert (result.text, result.model) == ("from the local model", "lm_studio/local-model")
    assert result.tokens == 150 and result.cost_usd == 0
    [row] = ledger.calls()
    assert row["outcome"] == "ok" and row["cost_usd"] == 0 and row["estimate_usd"] == 0
    assert ledger.spent_today() == 0


def test_the_cap_refuses_before_any_request(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("primary", Step("never sent"))
    llm.add("fallback", Step("never sent"))
    # worst case: at least max_tokens (100) x $2 per million = $0.0002 per attempt
    client = make_client(
        tmp_path, ledger, cloud(llm, "primary"), cloud(llm, "fallback"), daily_usd=0.0001
    )

    with pytest.raises(LLMRefused, match="spend cap reached") as caught:
        client.complete(MESSAGES, purpose="unit")

    assert caught.value.status == "capped"
    assert llm.received == []
    assert outcomes(ledger) == [
        ("openai/primary", "refused-cap"),
        ("openai/fallback", "refused-cap"),
    ]
    assert ledger.spent_today() == 0


def test_the_spend_cap_env_refuses_too(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEND_CAP_USD", "0.0001")
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), daily_usd=100.0)
    with pytest.raises(LLMRefused) as caught:
        client.complete(MESSAGES, purpose="unit")
    assert caught.value.status == "capped"
    assert llm.received == []


def test_the_cap_counts_what_was_already_spent(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("primary", Step("first", usage=(100, 50)), Step("second"))
    # room for one worst case (< $0.0003), not for the spend plus a second worst case
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), daily_usd=0.0003)
    assert client.complete(MESSAGES, purpose="unit").text == "first"
    with pytest.raises(LLMRefused) as caught:
        client.complete(MESSAGES, purpose="unit")
    assert caught.value.status == "capped"
    assert len(llm.received) == 1


def test_the_kill_flag_refuses_before_any_request(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("primary", Step("never sent"))
    flag = tmp_path / "runs" / "KILL"
    flag.write_text("stop")  # runs/ exists: the ledger lives there
    client = make_client(tmp_path, ledger, cloud(llm, "primary"), cloud(llm, "fallback"))

    with pytest.raises(LLMRefused, match="kill flag present") as caught:
        client.complete(MESSAGES, purpose="unit")

    assert caught.value.status == "killed"
    assert llm.received == []
    assert ledger.spent_today() == 0  # no reservation left open


def test_the_kill_flag_env_is_honoured(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "STOP").write_text("stop")
    monkeypatch.setenv("AGENT_KILL_FLAG", "STOP")
    client = make_client(tmp_path, ledger, cloud(llm, "primary"))
    with pytest.raises(LLMRefused) as caught:
        client.complete(MESSAGES, purpose="unit")
    assert caught.value.status == "killed"
    assert llm.received == []


def test_a_model_without_its_key_is_skipped(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("primary", Step("never sent"))
    llm.add("fallback", Step("from the fallback"))
    client = make_client(
        tmp_path,
        ledger,
        cloud(llm, "primary", api_key_env=UNSET_KEY_ENV),
        cloud(llm, "fallback"),
    )

    result = client.complete(MESSAGES, purpose="unit")

    assert result.model == "openai/fallback"
    assert llm.requests_for("primary") == []
    assert result.attempts == [
        {"model": "openai/primary", "error": f"environment variable {UNSET_KEY_ENV} is not set"}
    ]
    rows = ledger.calls()
    assert [(r["model"], r["outcome"]) for r in rows] == [
        ("openai/primary", "skipped"),
        ("openai/fallback", "ok"),
    ]
    assert UNSET_KEY_ENV in rows[0]["error"]


def test_a_cloud_model_without_a_price_fails_closed(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    llm.add("unpriced-model", Step("never sent"))
    model = cloud(llm, "unpriced-model", input_usd_per_mtok=None, output_usd_per_mtok=None)
    client = make_client(tmp_path, ledger, model)
    with pytest.raises(LLMUnavailable, match="no known price"):
        client.complete(MESSAGES, purpose="unit")
    assert llm.received == []
    assert outcomes(ledger) == [("openai/unpriced-model", "refused-price")]


def test_no_model_configured_is_unavailable(tmp_path: Path, ledger: Ledger) -> None:
    with pytest.raises(LLMUnavailable, match="no model is configured"):
        make_client(tmp_path, ledger).complete(MESSAGES, purpose="unit")


def test_secrets_are_redacted_from_the_messages_sent(
    tmp_path: Path, ledger: Ledger, llm: ScriptedLLM
) -> None:
    secret = "sk-abcdefgh12345"
    llm.add("primary", Step("ok"))
    client = make_client(
        tmp_path, ledger, cloud(llm, "primary"), redactor=Redactor({"MY_API_KEY": secret})
    )
    messages = [
        {"role": "system", "content": f"the key is {secret}"},
        {"role": "user", "content": f"echo {secret} twice: {secret}"},
    ]

    client.complete(messages, purpose="unit")

    [request] = llm.received
    assert secret not in request.text
    assert request.messages == [
        {"role": "system", "content": "the key is «redacted:MY_API_KEY»"},
        {"role": "user", "content": "echo «redacted:MY_API_KEY» twice: «redacted:MY_API_KEY»"},
    ]
    assert messages[0]["content"] == f"the key is {secret}"  # the caller's list is untouched


def _response(status: int) -> Any:
    import httpx

    return httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1/v1"))


# Built lazily: litellm must only be imported through agent.llm._litellm(), which sets
# LITELLM_LOCAL_MODEL_COST_MAP first so that the import fetches nothing from the network.
ERRORS: dict[str, tuple[Callable[[Any], BaseException], str]] = {
    "RateLimitError": (lambda m: m.RateLimitError("slow down", "openai", "m"), "transient"),
    "ServiceUnavailableError": (
        lambda m: m.ServiceUnavailableError("down", "openai", "m"),
        "transient",
    ),
    "InternalServerError": (lambda m: m.InternalServerError("oops", "openai", "m"), "transient"),
    "BadGatewayError": (lambda m: m.BadGatewayError("bad gateway", "openai", "m"), "transient"),
    "APIConnectionError": (
        lambda m: m.APIConnectionError("connection reset", "openai", "m"),
        "transient",
    ),
    "Timeout": (lambda m: m.Timeout("timed out", "m", "openai"), "transient"),
    "ContextWindowExceededError": (
        lambda m: m.ContextWindowExceededError("too long", "m", "openai"),
        "next-model",
    ),
    "AuthenticationError": (
        lambda m: m.AuthenticationError("bad key", "openai", "m"),
        "next-model",
    ),
    "PermissionDeniedError": (
        lambda m: m.PermissionDeniedError("forbidden", "openai", "m", _response(403)),
        "next-model",
    ),
    "NotFoundError": (lambda m: m.NotFoundError("no such model", "m", "openai"), "next-model"),
    "BudgetExceededError": (
        lambda m: m.BudgetExceededError(current_cost=2.0, max_budget=1.0),
        "next-model",
    ),
    "BadRequestError": (lambda m: m.BadRequestError("bad request", "m", "openai"), "fatal"),
    "ContentPolicyViolationError": (
        lambda m: m.ContentPolicyViolationError("refused", "m", "openai"),
        "fatal",
    ),
    # not one of litellm's mapped classes: the chain moves on rather than stopping
    "ValueError": (lambda m: ValueError("something else"), "next-model"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_classify(name: str) -> None:
    build, expected = ERRORS[name]
    error = build(_litellm())
    assert type(error).__name__ == name
    assert classify(error) == expected


def test_a_secret_in_a_tool_call_or_a_part_is_redacted_before_any_model_sees_it() -> None:
    from agent.llm import redact_message

    redact = Redactor({"TOKEN": "tok-0123456789abcdef"})
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "use tok-0123456789abcdef"}, {"type": "image"}],
        "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "bash", "arguments": '{"command": "curl -H tok-0123456789abcdef"}'}}],
    }  # fmt: skip
    said = json.dumps(redact_message(message, redact), ensure_ascii=False)
    assert "tok-0123456789abcdef" not in said and said.count("«redacted:TOKEN»") == 2
    assert message["content"][0]["text"].endswith("abcdef")  # the caller's copy untouched
