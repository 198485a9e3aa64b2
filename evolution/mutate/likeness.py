"""Edits that make a line look like another line of the file rank higher.

A file's lines repeat themselves: sibling functions build the same call with another
class, parallel branches insert into parallel tables. When a fault breaks one of them,
the fix usually restores the common shape (the plastic surgery hypothesis, at the
level of a line; CapGen and SimFix rank their candidates by such similarity). A line's
shape is its tokens with names and strings blurred and numbers kept (`-1` one token,
`-0` as `0`): sibling lines differ in the data they name, not in their numbers. An
edit whose line takes the shape of a line near it (within WINDOW lines), which it did
not have before, is singled out among its operator's proposals on the line and ranked
as if its operator were LIKENESS times likelier (see `rank`).
"""

from __future__ import annotations

import keyword
import re
from functools import lru_cache

LIKENESS = 4.0
WINDOW = 30  # lines either side: siblings sit close (cachetools' six decorators: 14 apart)
MIN_TOKENS = 6  # `return x` or `pass` look like half the file: no evidence
_TOKEN = re.compile(r"""[rbuRBUfF]{0,2}('[^'\\]*'|"[^"\\]*")|\d[\w.]*|[A-Za-z_]\w*|\S""")
_UNARY_AFTER = {None, "(", "[", "{", ",", "=", ":", "return", "+", "-", "*", "/", "%",
                "<", ">", "and", "or", "not", "in", "is", "if", "else", "lambda"}


def shape(line: str) -> tuple[str, ...]:
    """The line's tokens, names and strings blurred, numbers kept; a comment is not code."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(line):
        token = match.group(0)
        if token == "#":
            break
        if match.group(1) is not None:
            token = "STR"
        elif token[0].isalpha() or token[0] == "_":
            token = token if keyword.iskeyword(token) else "ID"
        if token[0].isdigit() and tokens and tokens[-1] == "-" and (
                (tokens[-2] if len(tokens) > 1 else None) in _UNARY_AFTER):
            tokens[-1] = "0" if token == "0" else f"-{token}"
            continue
        tokens.append(token)
    return tuple(tokens)


@lru_cache(maxsize=4)
def _shapes(source: str) -> tuple[tuple[str, ...], ...]:
    return tuple(shape(line) for line in source.splitlines())


@lru_cache(maxsize=256)
def _near(source: str, line: int) -> frozenset[tuple[str, ...]]:
    """The shapes of the lines within WINDOW of `line` (1-based), itself left out."""
    shapes = _shapes(source)
    index = line - 1
    return frozenset(shapes[max(0, index - WINDOW):index] + shapes[index + 1:index + 1 + WINDOW])


def likeness(source: str, line: int, before: str, after: str) -> float:
    """LIKENESS when `after` (line `line` of `source`, `before`, edited) has the shape
    of a line near it that `before` did not have; 1 otherwise."""
    shaped = shape(after)
    if len(shaped) < MIN_TOKENS or shaped == shape(before):
        return 1.0
    return LIKENESS if shaped in _near(source, line) else 1.0
