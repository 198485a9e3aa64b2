import pytest
from scripts.env_file import merged, parse_env


def test_simple_pairs():
    assert parse_env("region=eu-west-1\nretries=3\n") == {"REGION": "eu-west-1", "RETRIES": "3"}


def test_comments_blank_lines_and_export():
    assert parse_env("# comment\n\nexport mode = fast\n") == {"MODE": "fast"}


def test_quotes_are_stripped():
    assert parse_env("greeting='hello world'\n") == {"GREETING": "hello world"}


def test_malformed_line_is_refused():
    with pytest.raises(ValueError, match="line 2"):
        parse_env("a=1\njust-a-word\n")


def test_values_keep_their_case():
    assert parse_env("TOKEN=AbC123\nBUCKET='Logs-Prod'\n") == {
        "TOKEN": "AbC123",
        "BUCKET": "Logs-Prod",
    }


def test_merged_overrides_base():
    assert merged({"MODE": "slow", "HOME": "/root"}, "mode=fast") == {
        "MODE": "fast",
        "HOME": "/root",
    }
