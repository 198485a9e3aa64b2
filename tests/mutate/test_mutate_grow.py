"""Expressions grown and statements restored from what is in scope (issue 29, items 1
and 2): each offers the edit that restores a realistic miss, never reads a name the
site does not see, and the real search (real localisation, real pytest runs) reaches
the restoring edit within its budget."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest
from test_mutate_operators import _localise_and_search

from evolution.mutate.grow import OPERATORS as GROW
from evolution.mutate.operators import apply_edits, mutations
from evolution.mutate.priors import priors
from evolution.mutate.rank import ranked

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _offers(source: str, line: int, fixed: str, operator: str) -> bool:
    return any(e.operator == operator and fixed in apply_edits(source, [e]).splitlines()
               for e in mutations(source, {line}))


SCOPED = textwrap.dedent('''
    def elsewhere(hidden):
        return hidden


    def grow(xs, k):
        total = k + 1
        late = len(xs)
        return total * late
    ''').lstrip("\n")


def test_grown_expressions_read_only_names_bound_at_the_site():
    """Line 6 sees `xs` and `k` (and the builtins); not `total`, bound by that very
    line, not `late`, bound after it, not another function's `hidden`."""
    allowed = {"xs", "k", "max", "min", "abs", "len"}
    grown = [e for e in mutations(SCOPED, {6}) if e.operator in GROW]
    assert {e.operator for e in grown} >= {"combine", "wrap-builtin", "power"}
    for edit in grown:
        assert set(IDENTIFIER.findall(edit.text)) <= allowed, edit.description
    # the same site, one line later: `total` is bound now, `late` still is not
    later = {n for e in mutations(SCOPED, {7}) if e.operator in GROW
             for n in IDENTIFIER.findall(e.text)}
    assert "total" in later and "late" not in later and "hidden" not in later


def test_an_annotation_is_a_type_not_a_value_to_grow_or_wrap():
    """`dict[str, int]` and `-> list[str]` were offered as `len(str, int)` and
    `max(0, str)`; the values beside them still are grown."""
    source = ("class Throttle:\n    def __init__(self, n: int) -> None:\n"
              "        self.seen: dict[str, int] = {}\n        self.n = n\n\n"
              "    def keys(self, key: str) -> list[str]:\n        return [key] * self.n\n")
    edits = [e for e in mutations(source) if e.operator in (*GROW, "wrap-call", "add-access")]
    assert edits
    assert not [e.description for e in edits if "str" in e.text or "int" in e.text]
    assert any(e.text == "max(0, self.n)" for e in edits)


def test_a_shadowed_builtin_is_never_offered_as_a_wrapper():
    source = "def f(x, max):\n    return x + 1\n"
    texts = [e.text for e in mutations(source, {2}) if e.operator == "wrap-builtin"]
    assert texts and not any(t.startswith("max(") for t in texts)


@pytest.mark.parametrize(("source", "line", "fixed", "operator"), [
    # the argument another call passes, in the middle: `window(xs, 0, n)` beside it
    ("def window(xs, lo, hi):\n    return xs[lo:hi]\n\n\ndef head(xs, n):\n"
     "    return window(xs, 0, n)\n\n\ndef prefix(xs, hi):\n    return window(xs, hi)\n",
     10, "    return window(xs, 0, hi)", "add-argument"),
    # a length one too long where it is stored, not only where it is compared
    ("def last_index(xs):\n    n = len(xs)\n    return n\n", 2, "    n = len(xs) - 1",
     "off-by-one"),
    ("def clamp(value: float, best: float):\n    return value\n", 2,
     "    return max(best, value)", "wrap-builtin"),
    ("def head(xs: list, k):\n    return xs\n", 2, "    return xs[:k]", "slice"),
    ("def norm(x, y):\n    return (x * x + y) ** 0.5\n", 2,
     "    return (x * x + y * y) ** 0.5", "power"),
    ("def subsets(xs):\n    if not xs:\n        return [[]]\n    return []\n", 3,
     "        return []", "nest"),
])
def test_each_grown_shape_is_offered(source, line, fixed, operator):
    assert _offers(source, line, fixed, operator)


def test_an_inserted_argument_whose_neighbours_agree_ranks_first_of_its_kind():
    source = ("def span(xs, lo, hi):\n    return xs[lo:hi]\n\n\ndef head(xs, hi):\n"
              "    return span(xs, 0, hi)\n\n\ndef prefix(xs, hi):\n    return span(xs, hi)\n")
    added = [e for e in ranked(source, {10: 1.0}, priors()) if e.operator == "add-argument"]
    assert apply_edits(source, [added[0]]).splitlines()[9] == "    return span(xs, 0, hi)"


TEMPLATES = textwrap.dedent('''
    def evens(xs):
        out = []
        for x in xs:
            if x % 2 == 0:
                out.append(x)
        return out


    def doubled(values):
        result = []
        for v in values:
            w = v * 2
        return result


    def count(xs):
        n = 0
        for x in xs:
            n += 1
        return n


    def total(values):
        acc = 0
        for v in values:
            acc += v
    ''').lstrip("\n")


@pytest.mark.parametrize(("line", "fixed"), [
    (12, "        result.append(w)"),  # end of a loop: another function's append, adapted
    (25, "    return acc"),  # after a loop, at the end of a function: `return n`, adapted
])
def test_a_statement_is_restored_from_a_template_with_names_adapted(line, fixed):
    assert _offers(TEMPLATES, line, fixed, "restore")


def test_a_bare_return_is_completed_from_a_template():
    source = textwrap.dedent('''
        def walk(graph, start):
            stack = [start]
            seen = []
            while stack:
                node = stack.pop()
                seen.append(node)
                stack.extend(graph[node])
            return seen


        def leaves(tree):
            found = []
            for node in tree:
                if not tree[node]:
                    found.append(node)
            return
        ''').lstrip("\n")
    assert _offers(source, 16, "    return found", "restore")
    first = next(e for e in ranked(source, {16: 1.0}, priors()) if e.operator == "restore"
                 and e.description.startswith("line 16: complete"))
    assert first.text == "return found", first.description  # the list, not the tree


def test_a_template_takes_only_locals_the_site_sees():
    """`out.append(x)` at the end of `doubled`'s loop: `out` and `x` become `result`,
    `v` or `w`, never `evens`' own names, `acc` (another function's) or `total`; and
    not `w` before the statement that binds it."""
    restored = [e.text.strip() for e in mutations(TEMPLATES, {12})
                if e.operator == "restore" and "adapted" in e.description]
    assert restored
    for text in restored:
        assert set(IDENTIFIER.findall(text)) <= {"result", "values", "v", "w", "append",
                                                 "return"}, text
    before = [e.description for e in mutations(TEMPLATES, {12})
              if e.operator == "restore" and e.description.endswith("before it")]
    assert before and not any("w)" in d for d in before), before  # `w` is bound by line 12


KTH = textwrap.dedent('''
    def kth(arr, k):
        """The k-th smallest (from 0) of distinct values."""
        pivot = arr[0]
        below = [x for x in arr if x < pivot]
        above = [x for x in arr if x > pivot]
        num_less = len(below)
        num_lessoreq = len(arr) - len(above)
        if k < num_less:
            return kth(below, k)
        elif k >= num_lessoreq:
            return kth(above, k)
        return pivot
    ''').lstrip("\n")
KTH_TESTS = textwrap.dedent('''
    from scripts.kth import kth


    def test_smallest():
        assert kth([3, 1, 2], 0) == 1


    def test_largest():
        assert kth([1, 5, 3], 2) == 5


    def test_middle():
        assert kth([4, 9, 7, 1], 2) == 7


    def test_single():
        assert kth([7], 0) == 7
    ''').lstrip("\n")
APPEND = textwrap.dedent('''
    def evens(xs):
        out = []
        for x in xs:
            if x % 2 == 0:
                out.append(x)
        return out


    def squares(values):
        result = []
        for v in values:
            w = v * v
        return result
    ''').lstrip("\n")
APPEND_TESTS = textwrap.dedent('''
    from scripts.lists import evens, squares


    def test_evens():
        assert evens([1, 2, 3, 4]) == [2, 4]


    def test_squares():
        assert squares([1, 2, 3]) == [1, 4, 9]


    def test_no_squares():
        assert squares([]) == []
    ''').lstrip("\n")


@pytest.mark.parametrize(("target", "source", "tests", "failing", "fixed"), [
    ("scripts/kth.py", KTH, KTH_TESTS, ["test_largest", "test_middle"],
     "        return kth(above, k - num_lessoreq)"),
    ("scripts/lists.py", APPEND, APPEND_TESTS, ["test_squares"],
     "        result.append(w)"),
])
def test_the_search_reaches_the_restoring_edit(tmp_path: Path, target, source, tests,
                                               failing, fixed):
    """A name that must become a difference, and an `append` missing at the end of a
    loop (the file's other function has one): real localisation, real pytest runs."""
    test_file = "tests/test_" + Path(target).name
    names = [n.name for n in ast.parse(tests).body if isinstance(n, ast.FunctionDef)]
    _, result = _localise_and_search(
        tmp_path / "repo", {target: source, test_file: tests}, target,
        [f"{test_file}::{n}" for n in failing],
        [f"{test_file}::{n}" for n in names if n not in failing])
    assert result.stopped == "repaired", result
    assert fixed in result.source.splitlines(), result.edits
