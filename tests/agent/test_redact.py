"""Secret values never leave: the Redactor and the scrubbed child environment."""

from __future__ import annotations

import time

import pytest

from agent.redact import Redactor, is_secret_name, redact_shapes, scrubbed_environment


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


# --- credential shapes: secrets nobody named -----------------------------------------------

# Each value below is a credential's shape, made up; none is real.
SHAPED = {
    "private-key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx2\nq9Zr\n"
                   "-----END RSA PRIVATE KEY-----",
    "aws-access-key": "AKIAQ3EGRZXN4EXAMPLE",
    "github-token": "ghp_" + "Zq3" * 12,
    "gitlab-token": "glpat-" + "x7Y" * 7,
    "slack-token": "xoxb-2048-4096-" + "k9" * 8,
    "api-key": "sk-ant-api03-" + "Qm4" * 10,
    "google-api-key": "AIza" + "B7c" * 11 + "dd",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLXNpZw",
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SHAPED))
def test_a_credential_shape_is_redacted_wherever_it_appears(kind: str) -> None:
    value = SHAPED[kind]
    text = f"E   AssertionError: found {value!r} in the config\nand then {value}"
    redacted = redact_shapes(text)
    assert value not in redacted and value not in redacted.replace("\\n", "\n")
    assert f"«redacted:{kind}»" in redacted
    assert redacted.startswith("E   AssertionError: found ")


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("[github]\n\ttoken = 0123456789abcdef0123", "[github]\n\ttoken = ", "0123456789abcdef"),
        ("[global]\nindex-url = https://alice:pa55-w0rd@pypi.example/simple",
         "https://alice:«redacted:url-password»@pypi.example/simple", "pa55-w0rd"),
        ("password = hunter2hunter2", "password = «redacted:assignment»", "hunter2"),
        ("{'API_TOKEN': 'tok-Q9v7Wm2Lr5Xc8Zp1'}", "{'API_TOKEN': '«redacted:assignment»'}",
         "Q9v7Wm2"),
        ('"client_secret": "abcd1234efgh"', '"client_secret": "«redacted:assignment»"', "abcd1234"),
        ("//registry.npmjs.org/:_authToken=Zm9vYmFyYmF6cXV4", ":_authToken=«redacted:", "Zm9v"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key=«redacted:",
         "wJalr"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer «redacted:bearer»",
         "abcdefghijklmnop"),
        ("key = '-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA",  # clipped
         "key = '«redacted:private-key»", "b3BlbnNza"),
    ],
)  # fmt: skip
def test_configuration_files_and_reprs_lose_their_secret_values_not_their_keys(
    text: str, kept: str, gone: str
) -> None:
    redacted = redact_shapes(text)
    assert kept in redacted
    assert gone not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "E   assert 4 == 5\n +  where 4 = add(2, 2)",
        "    token = tokens[0]\n    password = get_password()\n    api_key: Optional[str] = None",
        "tokenizer = make_tokenizer(); token_count = 12345678; secretary = 'Ms Moneypenny'",
        "a risk-free rate, sk-short, the AKIA prefix alone, ghp_short",
        "https://pypi.org/simple and https://user@example.com/path",
        "password=''  # empty: nothing to hide",
    ],
)
def test_ordinary_failure_text_is_left_as_it_is(text: str) -> None:
    assert redact_shapes(text) == text


def test_shapes_apply_only_to_a_redactor_that_asks_for_them() -> None:
    token = SHAPED["github-token"]
    assert Redactor({})(token) == token  # prompts and commit messages: named values only
    both = Redactor({"VENDOR_CRED": "named-value-1234"}, shapes=True)
    assert both(f"{token} named-value-1234") == "«redacted:github-token» «redacted:VENDOR_CRED»"
    env = {"RATCHET_GRANTED_NAMES": "VAULT_ONE", "VAULT_ONE": "from-the-vault-99"}
    assert Redactor.from_environment(env=env, shapes=True)("x from-the-vault-99 y") == (
        "x «redacted:VAULT_ONE» y"
    )


@pytest.mark.parametrize(
    "unit", ["_a", "a.", "a:", "token=", "a://", "-----BEGIN PRIVATE KEY-----", "ghp_"]
)
def test_redaction_stays_linear_on_hostile_text(unit: str) -> None:
    """The text comes from the code under test: no pattern may backtrack quadratically."""
    text = unit * (40000 // len(unit))
    started = time.perf_counter()
    redact_shapes(text)
    assert time.perf_counter() - started < 1.0
