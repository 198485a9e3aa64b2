"""SEARCH/REPLACE edit blocks: parsing, applying, and the exact failure messages."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from evolution.propose.edits import EditBlock, MalformedReply, apply_blocks, parse_blocks


def block(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def apply_reply(files: dict[str, str | None], reply: str) -> dict[str, str]:
    return apply_blocks(files, parse_blocks(reply))


CALC = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a + b  # bug\n"


def test_parse_reads_path_search_and_replace() -> None:
    reply = "Here is the fix.\n\n" + block("scripts/calc.py", "old line\n", "new line\n")
    assert parse_blocks(reply) == [EditBlock("scripts/calc.py", "old line\n", "new line\n")]


def test_exact_match_replaces_only_the_matched_lines() -> None:
    files = {"calc.py": CALC}
    reply = block("calc.py", "    return a + b  # bug\n", "    return a * b\n")
    assert apply_reply(files, reply) == {
        "calc.py": CALC.replace("    return a + b  # bug\n", "    return a * b\n")
    }


def test_trailing_spaces_in_the_file_are_tolerated() -> None:
    files = {"f.py": "x = 1   \ny = 2\t\nz = 3\n"}
    reply = block("f.py", "x = 1\ny = 2\n", "x = 10\ny = 20\n")
    assert apply_reply(files, reply) == {"f.py": "x = 10\ny = 20\nz = 3\n"}


def test_trailing_spaces_in_the_search_are_tolerated() -> None:
    files = {"f.py": "x = 1\ny = 2\nz = 3\n"}
    reply = block("f.py", "x = 1  \ny = 2 \n", "x = 10\ny = 20\n")
    assert apply_reply(files, reply) == {"f.py": "x = 10\ny = 20\nz = 3\n"}


NESTED = "class A:\n    def f(self, x):\n        if x:\n            return 1\n        return 2\n"


def test_search_indented_less_than_the_file_reindents_the_replace() -> None:
    files = {"a.py": NESTED}
    reply = block("a.py", "if x:\n    return 1\n", "if x > 0:\n    return 1\nelse:\n    pass\n")
    assert apply_reply(files, reply) == {
        "a.py": (
            "class A:\n"
            "    def f(self, x):\n"
            "        if x > 0:\n"
            "            return 1\n"
            "        else:\n"
            "            pass\n"
            "        return 2\n"
        )
    }


def test_search_indented_more_than_the_file_dedents_the_replace() -> None:
    files = {"a.py": "def f(x):\n    if x:\n        return 1\n    return 2\n"}
    reply = block(
        "a.py",
        "        def f(x):\n            if x:\n",
        "        def f(x, y=0):\n            if x or y:\n",
    )
    assert apply_reply(files, reply) == {
        "a.py": "def f(x, y=0):\n    if x or y:\n        return 1\n    return 2\n"
    }


def test_search_matching_two_places_is_refused() -> None:
    files = {"f.py": "a = 1\nb = 2\na = 1\n"}
    with pytest.raises(MalformedReply, match="matches 2 places"):
        apply_reply(files, block("f.py", "a = 1\n", "a = 3\n"))


def test_search_matching_two_places_only_when_tolerant_is_refused() -> None:
    files = {"f.py": "    a = 1\nb = 2\n  a = 1\n"}
    with pytest.raises(MalformedReply, match="matches 2 places"):
        apply_reply(files, block("f.py", "a = 1\n", "a = 3\n"))


def test_search_matching_nothing_names_the_block_and_path() -> None:
    files = {"a.py": "x = 1\n", "b.py": "y = 2\n"}
    reply = block("a.py", "x = 1\n", "x = 5\n") + block("b.py", "nothing like this\n", "z\n")
    with pytest.raises(MalformedReply) as caught:
        apply_reply(files, reply)
    message = str(caught.value)
    assert "block 2 (b.py)" in message
    assert "matches nothing" in message
    assert "nothing like this" in message
    assert "block 1" not in message


def test_empty_search_on_a_missing_file_creates_it() -> None:
    files: dict[str, str | None] = {"new/mod.py": None}
    reply = block("new/mod.py", "", "VALUE = 1\n\n\ndef f():\n    return VALUE\n")
    assert apply_reply(files, reply) == {
        "new/mod.py": "VALUE = 1\n\n\ndef f():\n    return VALUE\n"
    }


def test_non_empty_search_on_a_missing_file_is_refused() -> None:
    with pytest.raises(MalformedReply, match="does not exist"):
        apply_reply({"new.py": None}, block("new.py", "x = 1\n", "x = 2\n"))


def test_empty_search_on_an_existing_file_is_refused() -> None:
    with pytest.raises(MalformedReply, match="SEARCH is empty but the file exists"):
        apply_reply({"f.py": "x = 1\n"}, block("f.py", "", "everything new\n"))


def test_path_outside_the_files_is_refused() -> None:
    with pytest.raises(MalformedReply, match="not one of the files") as caught:
        apply_reply({"f.py": "x = 1\n"}, block("tests/test_f.py", "x = 1\n", "x = 2\n"))
    assert "block 1 (tests/test_f.py)" in str(caught.value)


def test_blocks_that_change_nothing_are_refused() -> None:
    with pytest.raises(MalformedReply, match="change nothing"):
        apply_reply({"f.py": "x = 1\ny = 2\n"}, block("f.py", "x = 1\n", "x = 1\n"))


def test_a_reply_without_blocks_is_refused() -> None:
    reply = "You should multiply instead of adding."
    assert parse_blocks(reply) == []
    with pytest.raises(MalformedReply, match="no SEARCH/REPLACE block"):
        apply_reply({"f.py": "x = 1\n"}, reply)


@pytest.mark.parametrize(
    "reply",
    [
        "f.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n",
        "f.py\n<<<<<<< SEARCH\nx = 1\n",
        "f.py\n<<<<<<< SEARCH\nx = 1\n>>>>>>> REPLACE\n",
    ],
    ids=["no-replace-marker", "no-divider", "divider-missing-before-replace"],
)
def test_an_unclosed_block_is_malformed(reply: str) -> None:
    with pytest.raises(MalformedReply, match="not closed"):
        parse_blocks(reply)


def test_an_unclosed_block_followed_by_another_block_is_malformed() -> None:
    reply = "a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n" + block("b.py", "y = 1\n", "y = 2\n")
    with pytest.raises(MalformedReply):
        apply_reply({"a.py": "x = 1\n", "b.py": "y = 1\n"}, reply)


def test_a_block_with_no_path_line_is_malformed() -> None:
    with pytest.raises(MalformedReply, match="no file path"):
        parse_blocks("<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n")


def test_a_block_after_prose_with_no_path_line_is_malformed() -> None:
    reply = "Change it like so:\n\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n"
    with pytest.raises(MalformedReply, match="at line 3 has no file path"):
        parse_blocks(reply)


def test_a_second_block_with_no_path_line_is_malformed() -> None:
    reply = block("f.py", "x = 1\n", "pass\n") + "<<<<<<< SEARCH\ny = 1\n=======\ny = 2\n"
    reply += ">>>>>>> REPLACE\n"
    with pytest.raises(MalformedReply, match="no file path"):
        parse_blocks(reply)


def test_all_or_nothing_when_the_second_block_fails() -> None:
    files: dict[str, str | None] = {"a.py": "x = 1\n", "b.py": "y = 1\n"}
    before = dict(files)
    reply = block("a.py", "x = 1\n", "x = 2\n") + block("b.py", "missing\n", "y = 2\n")
    with pytest.raises(MalformedReply, match=re.escape("block 2 (b.py)")):
        apply_reply(files, reply)
    assert files == before


def test_every_failing_block_is_listed() -> None:
    reply = block("a.py", "nope\n", "x\n") + block("c.py", "x = 1\n", "x = 2\n")
    with pytest.raises(MalformedReply) as caught:
        apply_reply({"a.py": "x = 1\n"}, reply)
    assert "block 1 (a.py)" in str(caught.value) and "block 2 (c.py)" in str(caught.value)


def test_backticked_paths_and_fences_around_blocks_still_parse() -> None:
    reply = (
        "Edit the first file:\n\n"
        "`a.py`\n"
        "```python\n"
        "<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n"
        "```\n\n"
        "And the second:\n\n"
        "```\n"
        "**b.py**\n"
        "<<<<<<< SEARCH\ny = 1\n=======\ny = 2\n>>>>>>> REPLACE\n"
        "```\n"
        "\n"
        "c.py\n"
        "```python\n"
        "<<<<<<< SEARCH\nz = 1\n=======\nz = 2\n>>>>>>> REPLACE\n"
        "```\n"
    )
    assert parse_blocks(reply) == [
        EditBlock("a.py", "x = 1\n", "x = 2\n"),
        EditBlock("b.py", "y = 1\n", "y = 2\n"),
        EditBlock("c.py", "z = 1\n", "z = 2\n"),
    ]
    files = {"a.py": "x = 1\n", "b.py": "y = 1\n", "c.py": "z = 1\n"}
    assert apply_reply(files, reply) == {"a.py": "x = 2\n", "b.py": "y = 2\n", "c.py": "z = 2\n"}


def test_two_blocks_on_one_file_apply_in_order() -> None:
    files = {"f.py": "a = 1\nb = 2\n"}
    # the second block's SEARCH only exists once the first block has been applied
    reply = block("f.py", "a = 1\n", "a = 10\n") + block("f.py", "a = 10\nb = 2\n", "c = 3\n")
    assert apply_reply(files, reply) == {"f.py": "c = 3\n"}


def test_unchanged_files_are_not_returned() -> None:
    files = {"a.py": "x = 1\n", "b.py": "y = 1\n"}
    assert apply_reply(files, block("a.py", "x = 1\n", "x = 2\n")) == {"a.py": "x = 2\n"}


def test_a_unique_line_that_ends_another_line_is_not_ambiguous() -> None:
    files = {"f.py": "def f(a, x):\n    if a:\n        return x\n    return x\n"}
    reply = block("f.py", "    return x\n", "    return -x\n")
    assert apply_reply(files, reply) == {
        "f.py": "def f(a, x):\n    if a:\n        return x\n    return -x\n"
    }


def test_a_dedented_one_line_search_reindents_a_multi_line_replace() -> None:
    files = {"f.py": "def f(x):\n    return x\n"}
    reply = block("f.py", "return x\n", "y = x * 2\nreturn y\n")
    assert apply_reply(files, reply) == {"f.py": "def f(x):\n    y = x * 2\n    return y\n"}


LINE = st.text(
    alphabet=st.characters(
        codec="ascii", categories=("L", "N", "P", "S", "Zs"), exclude_characters="<=>`"
    ),
    max_size=30,
)


@given(
    lines=st.lists(LINE, min_size=1, max_size=25),
    pick=st.integers(min_value=0),
    new=LINE.filter(lambda s: s.strip() != ""),
)
def test_replacing_one_unique_line_changes_just_that_line(
    lines: list[str], pick: int, new: str
) -> None:
    index = pick % len(lines)
    old = lines[index]
    assume(old.strip() and new != old)
    # unique as a line, even ignoring surrounding whitespace
    assume(sum(line.strip() == old.strip() for line in lines) == 1)
    # and not the tail of another line: see test_a_unique_line_that_ends_another_line_...
    assume(not any(line.endswith(old) for i, line in enumerate(lines) if i != index))
    content = "".join(line + "\n" for line in lines)
    reply = block("f.txt", old + "\n", new + "\n")
    expected = [*lines[:index], new, *lines[index + 1 :]]
    assert apply_reply({"f.txt": content}, reply) == {
        "f.txt": "".join(line + "\n" for line in expected)
    }
