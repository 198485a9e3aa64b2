"""Does a repair special-case the tests? A check against the classic overfitting of
test-suite repair (Smith et al., "Is the cure worse than the disease?", FSE 2015).

A patch that passes because it compares an input against a value only the tests use
(`if n == 42: return 7`) is not a fix, and a person would not accept it. The check
looks at the literals a repair introduces that the target did not have: one that the
tests contain is reported; one tested by equality or membership (the shape of a
special case) rejects the repair. Small, generic literals (0, 1, -1, 2, the empty
string, booleans, None) are never evidence.

A repair that deletes a statement is flagged for the reviewer: the tests pass without
it, which proves only that they do not look (Qi et al., ISSTA 2015: most plausible
patches of GenProg-style tools remove functionality, and their Kali, which only
deletes, repaired as many bugs).
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field

GENERIC = {repr(v) for v in (0, 1, -1, 2, 0.0, 1.0, "", b"")}
SPECIAL_CASE = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


@dataclass
class Verdict:
    rejected: str = ""  # why the repair must not be proposed, or ""
    flags: list[str] = field(default_factory=list)  # what a reviewer should look at


def _literals(tree: ast.AST) -> Counter[str]:
    return Counter(repr(n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant)
                   and not isinstance(n.value, bool) and n.value is not None
                   and repr(n.value) not in GENERIC)


def _compared(tree: ast.AST) -> set[str]:
    """Literals that sit in an equality or membership test."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, SPECIAL_CASE) for op in node.ops):
            for side in (node.left, *node.comparators):
                found |= set(_literals(side))
    return found


def _statements(tree: ast.AST) -> int:
    return sum(1 for n in ast.walk(tree) if isinstance(n, ast.stmt) and not isinstance(
        n, ast.Pass))


def check(original: str, repaired: str, tests: list[str]) -> Verdict:
    before, after = ast.parse(original), ast.parse(repaired)
    introduced = _literals(after) - _literals(before)
    in_tests: Counter[str] = Counter()
    for text in tests:
        try:
            in_tests |= _literals(ast.parse(text))
        except SyntaxError:
            continue
    suspect = sorted(value for value in introduced if value in in_tests)
    verdict = Verdict()
    compared = _compared(after)
    for value in suspect:
        if value in compared:
            verdict.rejected = (f"it special-cases {value}, a value the tests use and the "
                                "code did not")
        else:
            verdict.flags.append(f"it introduces {value}, a value the tests also use")
    if _statements(after) < _statements(before):
        verdict.flags.append("it deletes a statement the tests do not miss: superfluous, or "
                             "untested behaviour removed?")
    return verdict
