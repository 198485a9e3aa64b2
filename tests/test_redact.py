"""Secret values never leave: the Redactor and the scrubbed child environment."""

from __future__ import annotations

import pytest

from agent.redact import Redactor, is_secret_name, scrubbed_environment


def test_each_secret_is_replaced_with_its_name() -> None:
    redact = Redactor({"OPENAI_API_KEY": "sk-abcdefgh12345", "GH_TOKEN": "ghp_0123456789"})
    text = "key sk-abcdefgh12345 then ghp_0123456789, and sk-abcdefgh12345 again"
    assert redact(text) == (
        "key «redacted:OPENAI_API_KEY» then «redacted:GH_TOKEN», "
        "and «redacted:OPENAI_API_KEY» again"
    )
    assert redact.names == {"OPENAI_API_KEY", "GH_TOKEN"}


def test_text_without_secrets_is_unchanged() -> None:
    redact = Redactor({"OPENAI_API_KEY": "sk-abcdefgh12345"})
    assert (
        redact("nothing to hide here: sk-abcdefgh1234") == "nothing to hide here: sk-abcdefgh1234"
    )


@pytest.mark.parametrize("order", ["short-first", "long-first"])
def test_the_longest_secret_is_replaced_first(order: str) -> None:
    pairs = [("SHORT_TOKEN", "abcdefgh"), ("LONG_TOKEN", "abcdefgh-and-more")]
    if order == "long-first":
        pairs.reverse()
    redact = Redactor(dict(pairs))
    assert redact("x abcdefgh-and-more y abcdefgh z") == (
        "x «redacted:LONG_TOKEN» y «redacted:SHORT_TOKEN» z"
    )


def test_values_shorter_than_eight_characters_are_ignored() -> None:
    redact = Redactor({"DEBUG_TOKEN": "1234567", "EMPTY_SECRET": "", "REAL_TOKEN": "12345678"})
    assert redact.names == {"REAL_TOKEN"}
    assert redact("1234567 and 12345678") == "1234567 and «redacted:REAL_TOKEN»"
    assert Redactor({"X_TOKEN": "true"})("true") == "true"


def test_from_environment_picks_secret_names_and_named_ones() -> None:
    env = {
        "OPENAI_API_KEY": "sk-openai-000001",
        "anthropic_apikey": "sk-ant-00000002",
        "GithubToken": "ghp_000000000003",
        "aws_secret_access": "aws-secret-00004",
        "DB_Password": "hunter2-but-long",
        "PROVIDER_CRED": "named-explicitly-6",
        "PATH": "/usr/local/bin:/usr/bin",
        "HOME": "/home/someone",
        "SHORT_TOKEN": "tiny",
    }
    redact = Redactor.from_environment(["PROVIDER_CRED"], env=env)
    assert redact.names == {
        "OPENAI_API_KEY",
        "anthropic_apikey",
        "GithubToken",
        "aws_secret_access",
        "DB_Password",
        "PROVIDER_CRED",
    }
    text = " ".join(env.values())
    assert redact(text) == (
        "«redacted:OPENAI_API_KEY» «redacted:anthropic_apikey» «redacted:GithubToken» "
        "«redacted:aws_secret_access» «redacted:DB_Password» «redacted:PROVIDER_CRED» "
        "/usr/local/bin:/usr/bin /home/someone tiny"
    )


def test_from_environment_without_names_skips_unnamed_keys() -> None:
    env = {"PROVIDER_CRED": "named-explicitly-6", "MY_API_KEY": "sk-abcdefgh12345"}
    assert Redactor.from_environment(env=env).names == {"MY_API_KEY"}


def test_from_environment_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_TEST_TOKEN", "tok-from-os-environ")
    assert "RATCHET_TEST_TOKEN" in Redactor.from_environment().names


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OPENAI_API_KEY", True),
        ("openai_apikey", True),
        ("GH_TOKEN", True),
        ("client_secret", True),
        ("PGPASSWORD", True),
        ("PATH", False),
        ("HOME", False),
        ("KEYBOARD_LAYOUT", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_scrubbed_environment_drops_secrets_and_keeps_the_rest() -> None:
    env = {
        "PATH": "/usr/bin",
        "HOME": "/home/someone",
        "LANG": "C.UTF-8",
        "OPENAI_API_KEY": "sk-openai-000001",
        "GH_TOKEN": "ghp_000000000003",
        "db_password": "x",  # dropped even though too short to redact
        "PROVIDER_CRED": "named-explicitly-6",
    }
    assert scrubbed_environment(env, ["PROVIDER_CRED"]) == {
        "PATH": "/usr/bin",
        "HOME": "/home/someone",
        "LANG": "C.UTF-8",
    }
    assert "PROVIDER_CRED" in scrubbed_environment(env)
    assert env["OPENAI_API_KEY"] == "sk-openai-000001"  # the input is not modified
