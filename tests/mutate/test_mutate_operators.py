"""Each operator repairs a real bug of its kind: real pytest runs judge every candidate.

A fixture is a tiny module with one bug and its tests. The operator must offer the fix
as one edit whose diff touches only the faulty line (comments and formatting elsewhere
kept), and the search, with real localisation and real test runs (through the fork
server, as mutate evaluates candidates), must find that repair.
"""

from __future__ import annotations

import ast
import difflib
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from repo_setup import SAMPLE_PYTEST_INI, Sandbox

from evolution.gitrepo import GitRepo
from evolution.mutate.evaluator import CandidateEvaluator
from evolution.mutate.localise import Localisation, localise
from evolution.mutate.operators import OPERATORS, apply_edits, mutations
from evolution.mutate.search import (
    SearchLimits,
    SearchResult,
    evaluator_policy,
    search,
    self_comparisons,
)
from evolution.policy import Policy
from evolution.run.folder import RunFolder
from evolution.run.forkserver import CandidateRuns
from evolution.sandbox.isolation import choose

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

# operator -> (buggy module, the fixed line (after its context line), its tests)
BUGS: dict[str, tuple[str, str, str]] = {
    "name": (
        '''
        def clamp(value, low, high):
            # keep value within [low, high]
            return max(low, min(value, low))  # the upper bound
        ''',
        "    return max(low, min(value, high))  # the upper bound",
        '''
        from scripts.m import clamp

        def test_inside():
            assert clamp(5, 0, 10) == 5

        def test_above():
            assert clamp(15, 0, 10) == 10
        ''',
    ),
    "attribute": (
        '''
        class Edge:
            def __init__(self, src, dst):
                self.src = src
                self.dst = dst


        def targets(edges):
            return [e.src for e in edges]  # where each edge leads
        ''',
        "    return [e.dst for e in edges]  # where each edge leads",
        '''
        from scripts.m import Edge, targets

        def test_targets():
            assert targets([Edge(1, 2), Edge(2, 3)]) == [2, 3]
        ''',
    ),
    "builtin": (
        '''
        def all_positive(xs):
            """True when every value is above zero."""
            return any(x > 0 for x in xs)
        ''',
        "    return all(x > 0 for x in xs)",
        '''
        from scripts.m import all_positive

        def test_mixed():
            assert not all_positive([1, -2, 3])

        def test_positive():
            assert all_positive([1, 2])
        ''',
    ),
    "swap-operands": (
        '''
        def remaining(total, used):
            return used - total  # what is left
        ''',
        "    return total - used  # what is left",
        '''
        from scripts.m import remaining

        def test_remaining():
            assert remaining(10, 3) == 7
        ''',
    ),
    "swap-elements": (
        '''
        def transposed_at(grid, i, j):
            return grid[i][j]
        ''',
        "    return grid[j][i]",
        '''
        from scripts.m import transposed_at

        def test_transposed():
            assert transposed_at([[1, 2], [3, 4]], 0, 1) == 3
        ''',
    ),
    "off-by-one": (
        '''
        def triangle(r):
            """1 + 2 + ... + r."""
            return sum(range(0, r))
        ''',
        "    return sum(range(0, r + 1))",
        '''
        from scripts.m import triangle

        def test_triangle():
            assert triangle(3) == 6

        def test_zero():
            assert triangle(0) == 0
        ''',
    ),
    "drop-term": (
        '''
        def letters(words):
            return len(words) + sum(len(w) for w in words)
        ''',
        "    return sum(len(w) for w in words)",
        '''
        from scripts.m import letters

        def test_letters():
            assert letters(["ab", "c"]) == 3
        ''',
    ),
    "value": (
        '''
        def as_list(item):
            if isinstance(item, list):
                return item
            return []  # wrap a single item
        ''',
        "    return [item]  # wrap a single item",
        '''
        from scripts.m import as_list

        def test_single():
            assert as_list(3) == [3]

        def test_list():
            assert as_list([1]) == [1]
        ''',
    ),
    "guard": (
        '''
        def longest(words):
            best = None
            for word in words:
                if len(word) > len(best):  # longer than the best so far
                    best = word
            return best
        ''',
        "        if best is None or len(word) > len(best):  # longer than the best so far",
        '''
        from scripts.m import longest

        def test_longest():
            assert longest(["a", "abc", "ab"]) == "abc"

        def test_empty():
            assert longest([]) is None
        ''',
    ),
    "restore": (
        '''
        def split(xs):
            even, odd = [], []
            for x in xs:
                if x % 2 == 0:
                    even.append(x)
                    continue
            return even, odd
        ''',
        "            continue\n        odd.append(x)",  # after the `if`, not before it
        '''
        from scripts.m import split

        def test_split():
            assert split([1, 2, 3, 4]) == ([2, 4], [1, 3])

        def test_empty():
            assert split([]) == ([], [])
        ''',
    ),
    "add-argument": (
        '''
        def by_length(words):
            return sorted(words, key=len)


        def longest_first(words):
            return sorted(words)  # longest first
        ''',
        "    return sorted(words, key=len)  # longest first",
        '''
        from scripts.m import by_length, longest_first

        def test_by_length():
            assert by_length(["ccc", "a", "bb"]) == ["a", "bb", "ccc"]

        def test_longest_first():
            assert longest_first(["ccc", "a", "bb"])[-1] == "ccc"
            assert longest_first(["b", "aa"]) == ["b", "aa"]
        ''',
    ),
    "wrap-call": (
        '''
        def ordered(items):
            return sorted(items)


        def smallest(items):
            return items[0]  # once ordered
        ''',
        "    return sorted(items)[0]  # once ordered",
        '''
        from scripts.m import ordered, smallest

        def test_ordered():
            assert ordered([3, 1, 2]) == [1, 2, 3]

        def test_smallest():
            assert smallest([3, 1, 2]) == 1
        ''',
    ),
    "add-access": (
        '''
        class Account:
            def __init__(self, owner):
                self.owner = owner

            def greeting(self):
                return "Dear " + self.owner.title()

            def label(self):
                return self.owner + " (owner)"  # the owner's name, capitalised
        ''',
        '        return self.owner.title() + " (owner)"  # the owner\'s name, capitalised',
        '''
        from scripts.m import Account

        def test_greeting():
            assert Account("ada").greeting() == "Dear Ada"

        def test_label():
            assert Account("ada").label() == "Ada (owner)"
        ''',
    ),
    "combine": (
        '''
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
                return kth(above, k)  # its rank among the larger ones
            return pivot
        ''',
        "        return kth(above, k - num_lessoreq)  # its rank among the larger ones",
        '''
        from scripts.m import kth

        def test_smallest():
            assert kth([3, 1, 2], 0) == 1

        def test_largest():
            assert kth([1, 5, 3], 2) == 5
        ''',
    ),
    "wrap-builtin": (
        '''
        def max_sublist_sum(arr):
            """The largest sum of a contiguous run (the empty run sums to 0)."""
            max_ending_here = 0
            max_so_far = 0
            for x in arr:
                max_ending_here = max_ending_here + x  # a run below 0 is dropped
                max_so_far = max(max_so_far, max_ending_here)
            return max_so_far
        ''',
        "        max_ending_here = max(0, max_ending_here + x)  # a run below 0 is dropped",
        '''
        from scripts.m import max_sublist_sum

        def test_positive():
            assert max_sublist_sum([1, 2]) == 3

        def test_restart():
            assert max_sublist_sum([2, -5, 4, 1]) == 5

        def test_negative_start():
            assert max_sublist_sum([-1, 3]) == 3
        ''',
    ),
    "slice": (
        '''
        def suffix_total(xs, start):
            """The sum of xs from index start on."""
            total = 0
            for x in xs:  # from start
                total += x
            return total
        ''',
        "    for x in xs[start:]:  # from start",
        '''
        from scripts.m import suffix_total

        def test_whole():
            assert suffix_total([1, 2], 0) == 3

        def test_suffix():
            assert suffix_total([1, 2, 3], 1) == 5
            assert suffix_total([5, 6], 1) == 6
        ''',
    ),
    "power": (
        '''
        def sum_of_squares(xs):
            total = 0
            for x in xs:
                total += x  # squared
            return total
        ''',
        "        total += x ** 2  # squared",
        '''
        from scripts.m import sum_of_squares

        def test_empty():
            assert sum_of_squares([]) == 0

        def test_squares():
            assert sum_of_squares([1, 2]) == 5
        ''',
    ),
    "nest": (
        '''
        def powerset(arr):
            if arr:
                first, *rest = arr
                subsets = powerset(rest)
                return subsets + [[first] + subset for subset in subsets]
            return []  # the empty set's subsets
        ''',
        "    return [[]]  # the empty set's subsets",
        '''
        from scripts.m import powerset

        def test_empty():
            assert powerset([]) == [[]]

        def test_one():
            assert powerset(["a"]) == [[], ["a"]]
        ''',
    ),
    "constant": (
        '''
        def ascending(xs):
            return sorted(xs, reverse=True)
        ''',
        "    return sorted(xs, reverse=False)",
        '''
        from scripts.m import ascending

        def test_ascending():
            assert ascending([3, 1, 2]) == [1, 2, 3]
        ''',
    ),
}


def _source(operator: str) -> str:
    return textwrap.dedent(BUGS[operator][0]).lstrip("\n")


def _diff(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                  lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def _expected(operator: str) -> str:
    source = _source(operator)
    fixed = BUGS[operator][1]
    for edit in mutations(source):
        mutant = apply_edits(source, [edit])
        if f"\n{fixed}\n" in mutant and edit.operator == operator:
            return mutant
    raise AssertionError(f"{operator} offers no edit producing {fixed!r}")


def test_every_operator_has_a_bug_here():
    assert set(OPERATORS) - {"compare", "arithmetic", "boolean", "if-swap", "return",
                             "delete"} == set(BUGS)  # those six: tests/mutate/test_mutate.py


@pytest.mark.parametrize("operator", sorted(BUGS))
def test_the_operator_offers_the_fix_and_keeps_the_rest(operator: str):
    source = _source(operator)
    mutant = _expected(operator)
    changed = _diff(source, mutant)
    assert changed[-1] == f"+{BUGS[operator][1].splitlines()[-1]}"
    assert len([line for line in changed if line.startswith("+")]) == 1
    ast.parse(mutant)
    for line in source.splitlines():  # every other line, comments included, is kept
        if f"-{line}" not in changed:
            assert line in mutant.splitlines()


def _module(operator: str) -> str:
    return "m_" + operator.replace("-", "_")


def _workspace(root: Path, operators: list[str]) -> dict[str, list[str]]:
    """A repository with each operator's buggy module and its tests: operator -> test ids."""
    box = Sandbox(root)
    root.mkdir(parents=True)
    box.git("init", "-q", "-b", "main")
    files = {"pytest.ini": SAMPLE_PYTEST_INI, "scripts/__init__.py": ""}
    ids = {}
    for operator in operators:
        module = _module(operator)
        files[f"scripts/{module}.py"] = _source(operator)
        tests = textwrap.dedent(BUGS[operator][2]).lstrip("\n")
        tests = tests.replace("from scripts.m import", f"from scripts.{module} import")
        files[f"tests/test_{module}.py"] = tests
        names = [n.name for n in ast.parse(tests).body if isinstance(n, ast.FunctionDef)]
        ids[operator] = [f"tests/test_{module}.py::{name}" for name in names]
    box.commit("the bugs", files)
    return ids


@contextmanager
def _runs(root: Path) -> Iterator[CandidateRuns]:
    """Candidate runs on a run folder of the repository at `root`, as mutate makes them."""
    policy = evaluator_policy(Policy())
    isolation = choose(policy, automated=True, unsandboxed=True)
    commit = Sandbox(root).head()
    with RunFolder(GitRepo(root), commit) as run, CandidateRuns(policy, run, isolation) as runs:
        yield runs


def _passing(runs: CandidateRuns, tests: list[str]) -> set[str]:
    return {n for n, outcome in runs(tests).outcomes.items() if outcome == "passed"}


def test_each_bug_fails_and_its_operators_edit_repairs_it_under_pytest(tmp_path):
    # Two real test runs judge every fixture: first the bugs, then every operator's fix.
    ids = _workspace(tmp_path / "repo", sorted(BUGS))
    every = [test for tests in ids.values() for test in tests]
    with _runs(tmp_path / "repo") as runs:
        passing = _passing(runs, every)
        for operator, tests in ids.items():
            assert set(tests) - passing, f"the {operator} fixture's bug fails no test"
        for operator in BUGS:
            (runs.run.tree / "scripts" / f"{_module(operator)}.py").write_text(
                _expected(operator))
        assert _passing(runs, every) == set(every)


@pytest.mark.parametrize("operator", ["drop-term", "swap-elements"])
def test_the_search_repairs_a_bug_with_real_localisation_and_test_runs(tmp_path, operator):
    tests = _workspace(tmp_path / "repo", [operator])[operator]
    target = f"scripts/{_module(operator)}.py"
    with _runs(tmp_path / "repo") as runs:
        failing = sorted(set(tests) - _passing(runs, tests))
        neighbours = [t for t in tests if t not in failing]
        evaluator = CandidateEvaluator(runs, target, failing, neighbours)
        located = localise(runs, target, tests, failing)
        result = search(evaluator, _source(operator), located, SearchLimits(10, 300))
    assert result.stopped == "repaired", result
    assert ast.dump(ast.parse(result.source)) == ast.dump(ast.parse(_expected(operator)))


IMPORT_TIME = {
    "scripts/plural.py": textwrap.dedent('''
        RULES = {}


        def _rule(singular, plural):
            RULES[singular] = singular  # the fault: `plural`


        _rule("mouse", "mice")
        _rule("goose", "geese")


        def pluralize(word):
            return RULES.get(word, word + "s")
        ''').lstrip("\n"),
    "tests/test_plural.py": "from scripts.plural import RULES, pluralize\n\n\n"
                            "def test_mouse():\n    assert pluralize('mouse') == 'mice'\n\n\n"
                            "def test_cat():\n    assert pluralize('cat') == 'cats'\n\n\n"
                            "def test_table():\n    assert isinstance(RULES, dict)\n",
}


def _localise_and_search(root: Path, files: dict[str, str], target: str, failing: list[str],
                         neighbours: list[str]) -> tuple[Localisation, SearchResult]:
    box = Sandbox(root)
    root.mkdir()
    box.git("init", "-q", "-b", "main")
    box.commit("a fault", {"pytest.ini": SAMPLE_PYTEST_INI, "scripts/__init__.py": "", **files})
    with _runs(root) as runs:
        located = localise(runs, target, [*failing, *neighbours], failing)
        evaluator = CandidateEvaluator(runs, target, failing, neighbours)
        return located, search(evaluator, files[target], located, SearchLimits(200, 300))


def test_a_fault_in_code_that_runs_at_import_is_suspect_and_repaired(tmp_path: Path):
    """A table built at import is filled before any test starts, in coverage's empty
    context: counted as run by every test, its lines rank below the lines the failing
    test ran itself, and above none (they used to score zero, out of every search)."""
    source = IMPORT_TIME["scripts/plural.py"]
    located, result = _localise_and_search(
        tmp_path / "repo", IMPORT_TIME, "scripts/plural.py", ["tests/test_plural.py::test_mouse"],
        ["tests/test_plural.py::test_cat", "tests/test_plural.py::test_table"])
    fault = source.splitlines().index("    RULES[singular] = singular  # the fault: `plural`")
    in_test = source.splitlines().index('    return RULES.get(word, word + "s")')
    assert located.scores[in_test + 1] == pytest.approx(2 ** -0.5)  # mouse and cat
    assert located.scores[fault + 1] == pytest.approx(3 ** -0.5)  # as if by all three
    assert result.stopped == "repaired", result
    assert "    RULES[singular] = plural  # the fault: `plural`" in result.source.splitlines()


INHERITED = {
    "scripts/solids.py": textwrap.dedent('''
        class Square:
            def area(self, side):
                return side * side


        class Cube:
            def area(self, side):
                return 6 * side + side  # the fault: `*`
        ''').lstrip("\n"),
    "tests/test_solids.py": textwrap.dedent('''
        from scripts.solids import Cube, Square


        class AreaMixin:
            def test_unit(self):
                assert self.shape().area(1) == self.unit

            def test_two(self):
                assert self.shape().area(2) == self.two


        class TestSquare(AreaMixin):
            shape, unit, two = Square, 1, 4


        class TestCube(AreaMixin):
            shape, unit, two = Cube, 6, 24
        ''').lstrip("\n"),
}


def test_tests_a_class_inherits_are_told_apart(tmp_path: Path):
    """coverage's own per-test contexts name an inherited method by the class that
    defines it (`AreaMixin.test_unit`, for Square and Cube alike): the failing tests'
    lines were not found at all. Node ids tell the two classes' tests apart."""
    located, result = _localise_and_search(
        tmp_path / "repo", INHERITED, "scripts/solids.py",
        ["tests/test_solids.py::TestCube::test_two", "tests/test_solids.py::TestCube::test_unit"],
        ["tests/test_solids.py::TestSquare::test_two",
         "tests/test_solids.py::TestSquare::test_unit"])
    assert located.scores[8] == 1.0  # run by the failing tests, and only by them
    assert 3 not in located.scores  # Square's area: run by passing tests only
    assert result.stopped == "repaired", result
    assert "        return 6 * side * side  # the fault: `*`" in result.source.splitlines()


SELF_COMPARED = {
    "scripts/initial.py": textwrap.dedent("""
        def describe(singular, plural, seen):
            if singular[0] == singular[0]:  # the fault: `plural[0]`
                seen.append(singular)
                return "regular " + plural
            return "irregular " + plural
        """).lstrip("\n"),
    "tests/test_initial.py": "from scripts.initial import describe\n\n\n"
                             "def test_person():\n"
                             "    assert describe('person', 'people', []).endswith('people')"
                             "\n\n\ndef test_ox():\n    seen = []\n"
                             "    assert describe('ox', 'Xen', seen).startswith('irregular')\n"
                             "    assert seen == []\n",
}


def test_a_repair_never_compares_an_expression_with_itself(tmp_path: Path):
    """Making the condition constant (`== -> !=`, or `not (...)` around it) passes these
    weak tests (no test reaches the regular branch with a different plural), and ranks
    first: the search tries neither. What it proposes instead is up to the tests: they
    accept `singular[1] == singular[0]` too, which the search meets before the renaming
    (nothing here says which is meant; the gate's suite would have to)."""
    source = SELF_COMPARED["scripts/initial.py"]
    _, result = _localise_and_search(
        tmp_path / "repo", SELF_COMPARED, "scripts/initial.py",
        ["tests/test_initial.py::test_ox"], ["tests/test_initial.py::test_person"])
    assert result.stopped == "repaired", result
    assert result.skipped["compares an expression with itself"] >= 2
    assert not self_comparisons(ast.parse(result.source)) - self_comparisons(ast.parse(source))
    assert [e.operator for e in result.edits] not in (["compare"], ["if-swap"])
