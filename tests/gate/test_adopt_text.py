"""What `evolve init` writes, as text: the table appended to a pyproject.toml without a
byte of it changed, refused where TOML would not read it as intended, and the evolvable
paths guessed from main's files. No repository, no test run."""

from __future__ import annotations

import tomllib

import pytest

from agent.errors import Refused, UsageError
from evolution.gate.adopt import append_table, evolvable, policy_table
from evolution.policy import PYPROJECT, RATCHET_TOML, Policy, parse_policy

TABLE = policy_table(["src/"])


@pytest.mark.parametrize(
    "original",
    [
        '[project]\nname = "x"\n',
        '[project]\nname = "x"',  # no newline at the end
        '[project]\r\nname = "x"\r\n',  # Windows line endings
        '# only a comment\n',
        "",
        "tool.black.line-length = 88  # a dotted key defines [tool]\n",
        '[tool.black]\nline-length = 88\n\n[[tool.mypy.overrides]]\nmodule = "a"\n',
    ],
    ids=["plain", "no-final-newline", "crlf", "comment", "empty", "dotted", "array"],
)
def test_the_table_is_appended_after_the_last_byte_and_the_rest_reads_as_before(
    original: str,
) -> None:
    result = append_table(original.encode(), TABLE).decode()
    assert result.startswith(original)
    before, after = tomllib.loads(original), tomllib.loads(result)
    assert after["tool"].pop("ratchet") == {"test_command": "python -m pytest",
                                            "evolvable": ["src/"]}  # fmt: skip
    if "tool" not in before:
        assert after.pop("tool") == {}
    assert after == before
    if "\r\n" in original:
        assert "\n" not in result.replace("\r\n", "")
    assert parse_policy(result, "pyproject.toml", PYPROJECT) == Policy(evolvable=("src/",))


def test_an_inline_tool_table_cannot_take_one_and_is_refused_with_the_table_to_write() -> None:
    with pytest.raises(Refused) as caught:
        append_table(b"tool = { black = { line-length = 88 } }\n", TABLE)
    assert caught.value.hint and TABLE in caught.value.hint


def test_a_pyproject_that_does_not_read_as_toml_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="does not read as TOML"):
        append_table(b"[project\n", TABLE)


def test_the_table_without_its_header_is_ratchet_toml() -> None:
    body = TABLE.split("\n", 1)[1]
    assert parse_policy(body, "ratchet.toml", RATCHET_TOML) == Policy(evolvable=("src/",))
    assert "evolvable" not in policy_table(None)


@pytest.mark.parametrize(
    ("paths", "guess"),
    [
        (["src/pkg/__init__.py", "tests/test_a.py", "pkg2/__init__.py"], ["src/"]),
        (["inflection/__init__.py", "test_inflection.py", "setup.py", "docs/conf.py"],
         ["inflection/"]),
        (["calc.py", "test_calc.py", "conftest.py", "noxfile.py"], ["calc.py"]),
        (["a/__init__.py", "b/__init__.py", "tests/__init__.py", "testing/__init__.py",
          "docs/__init__.py", ".hidden/__init__.py", "a/deep/__init__.py"], ["a/", "b/"]),
        (["tests/test_a.py", "README.md"], None),
    ],
    ids=["src-layout", "package", "module", "packages", "nothing"],
)  # fmt: skip
def test_the_evolvable_paths_are_the_projects_code(paths: list[str], guess: list[str] | None):
    assert evolvable(paths) == guess
