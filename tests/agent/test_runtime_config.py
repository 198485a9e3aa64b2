"""The runtime configuration: deploy/agent.toml, its defaults and its env overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import ConfigError, ModelConfig, RuntimeConfig, load_runtime, parse_runtime

FULL = """
[budget]
daily_usd = 2.5

[kill]
flag = "state/STOP"

[ledger]
path = "/var/lib/ratchet/ledger.sqlite"

[[llm.models]]
model = "openai/gpt-4o"
timeout_s = 30
max_tokens = 2000
api_base = "https://example.invalid/v1"
api_key_env = "OPENAI_API_KEY"
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10

[[llm.models]]
model = "ollama_chat/llama3"
timeout_s = 120.5
"""


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPEND_CAP_USD", raising=False)
    monkeypatch.delenv("AGENT_KILL_FLAG", raising=False)


def parse(text: str, root: Path = Path("/repo")) -> RuntimeConfig:
    return parse_runtime(text, "deploy/agent.toml", root)


def model_toml(**keys: str) -> str:
    body = "\n".join(f"{key} = {value}" for key, value in keys.items())
    return f"[[llm.models]]\n{body}\n"


def test_every_table_and_model_key_is_read(tmp_path: Path) -> None:
    config = parse(FULL, tmp_path)
    assert config.root == tmp_path
    assert config.daily_usd == 2.5 and config.cap_usd == 2.5
    assert config.kill_flag == Path("state/STOP")
    assert config.kill_flag_path == tmp_path / "state" / "STOP"
    assert config.ledger == Path("/var/lib/ratchet/ledger.sqlite")  # absolute stays put
    assert config.models == (
        ModelConfig(
            model="openai/gpt-4o",
            timeout_s=30,
            max_tokens=2000,
            api_base="https://example.invalid/v1",
            api_key_env="OPENAI_API_KEY",
            input_usd_per_mtok=2.5,
            output_usd_per_mtok=10,
        ),
        ModelConfig(model="ollama_chat/llama3", timeout_s=120.5),
    )
    second = config.models[1]
    assert (second.max_tokens, second.api_base, second.api_key_env) == (4096, None, None)


def test_unknown_model_key_is_named() -> None:
    text = model_toml(model='"openai/x"', temperature="0.2")
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value) == "deploy/agent.toml:3: llm.models[0].temperature: unknown key"


def test_missing_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="'model' is required"):
        parse(model_toml(timeout_s="10"))


def test_the_error_names_the_file_and_the_index() -> None:
    text = model_toml(model='"openai/a"') + model_toml(api_base='"http://x"')
    with pytest.raises(ConfigError) as caught:
        parse(text)
    # The second [[llm.models]] header is on line 3: the file, its line, the entry.
    assert str(caught.value).startswith("deploy/agent.toml:3: llm.models[1]")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("model", "5"),
        ("timeout_s", "true"),
        ("timeout_s", '"30"'),
        ("max_tokens", "100.5"),
        ("max_tokens", "false"),
        ("api_base", "1"),
        ("api_key_env", "[]"),
        ("input_usd_per_mtok", '"1.0"'),
        ("output_usd_per_mtok", "true"),
    ],
)
def test_wrong_types_are_refused(key: str, value: str) -> None:
    keys = {"model": '"openai/x"', key: value}
    with pytest.raises(ConfigError, match=re.escape(f"llm.models[0].{key}: has the wrong type")):
        parse(model_toml(**keys))


@pytest.mark.parametrize(
    "text",
    [
        "llm = 3",
        "[llm]\nmodels = 3",
        "llm.models = [3]",
        "budget = 1",
    ],
)
def test_wrong_shapes_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse(text)


@pytest.mark.parametrize("cap", ["-1", "-0.01", "true", '"5"', "inf"])
def test_daily_usd_must_be_a_number_of_dollars(cap: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f"[budget]\ndaily_usd = {cap}\n")
    assert str(caught.value) == (
        "deploy/agent.toml:2: budget.daily_usd: must be a number of dollars, 0 or more"
    )


@pytest.mark.parametrize("cap", ["0", "0.0"])
def test_a_zero_daily_usd_is_a_cap_that_spends_nothing(cap: str) -> None:
    assert parse(f"[budget]\ndaily_usd = {cap}\n").cap_usd == 0.0


def test_integer_daily_usd_becomes_a_float() -> None:
    config = parse("[budget]\ndaily_usd = 3\n")
    assert config.daily_usd == 3.0 and isinstance(config.daily_usd, float)


def test_nan_daily_usd_is_refused() -> None:
    with pytest.raises(ConfigError):
        parse("[budget]\ndaily_usd = nan\n")


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ConfigError):
        parse(model_toml(model='"openai/x"', input_usd_per_mtok="-1.0", output_usd_per_mtok="1"))


def test_invalid_toml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=re.escape("deploy/agent.toml: not valid TOML")):
        parse("[budget\ndaily_usd = 1\n")


def test_no_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_runtime(tmp_path)
    assert config.models == ()
    assert config.daily_usd is None and config.cap_usd is None
    assert config.kill_flag_path == tmp_path / "runs" / "KILL"
    assert config.ledger == tmp_path / "runs" / "ledger.sqlite"
    assert config.secret_env_names() == set()


def test_the_file_is_read_from_deploy(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "agent.toml").write_text(FULL, encoding="utf-8")
    config = load_runtime(tmp_path)
    assert config.cap_usd == 2.5 and len(config.models) == 2
    (tmp_path / "deploy" / "agent.toml").write_text("[budget\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "deploy" / "agent.toml"))):
        load_runtime(tmp_path)


def test_given_text_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "agent.toml").write_text(FULL, encoding="utf-8")
    assert load_runtime(tmp_path, "[budget]\ndaily_usd = 7\n").cap_usd == 7.0


def test_spend_cap_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_runtime(tmp_path, FULL)
    monkeypatch.setenv("SPEND_CAP_USD", "0.75")
    assert config.cap_usd == 0.75
    assert load_runtime(tmp_path).cap_usd == 0.75  # and sets one where there was none
    monkeypatch.setenv("SPEND_CAP_USD", "")
    assert config.cap_usd == 2.5  # empty means unset


def test_spend_cap_env_that_is_not_a_number_raises_when_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEND_CAP_USD", "ten dollars")
    config = load_runtime(tmp_path, FULL)  # loading does not read it
    with pytest.raises(ConfigError, match="SPEND_CAP_USD is not a number: 'ten dollars'"):
        _ = config.cap_usd


def test_spend_cap_env_nan_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEND_CAP_USD", "nan")
    with pytest.raises(ConfigError):
        _ = load_runtime(tmp_path, FULL).cap_usd


def test_kill_flag_env_overrides_and_resolves_against_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_runtime(tmp_path, FULL)
    monkeypatch.setenv("AGENT_KILL_FLAG", "elsewhere/STOP_NOW")
    assert config.kill_flag_path == tmp_path / "elsewhere" / "STOP_NOW"
    absolute = tmp_path / "abs" / "KILL"
    monkeypatch.setenv("AGENT_KILL_FLAG", str(absolute))
    assert config.kill_flag_path == absolute


@pytest.mark.parametrize(
    ("model", "local"),
    [
        ("ollama_chat/llama3", True),
        ("ollama/llama3", True),
        ("llamafile/x", True),
        ("lm_studio/x", True),
        ("openai/gpt-4o", False),
        ("anthropic/claude-3-5-sonnet", False),
        ("gpt-4o", False),
    ],
)
def test_local_models_are_recognised_by_provider(model: str, local: bool) -> None:
    assert ModelConfig(model=model).local is local


def test_secret_env_names_are_the_configured_api_key_variables(tmp_path: Path) -> None:
    text = (
        model_toml(model='"openai/a"', api_key_env='"KEY_A"')
        + model_toml(model='"openai/b"', api_key_env='"KEY_B"')
        + model_toml(model='"openai/c"', api_key_env='"KEY_A"')
        + model_toml(model='"ollama/d"')
    )
    assert load_runtime(tmp_path, text).secret_env_names() == {"KEY_A", "KEY_B"}
