"""The search's filters before any test runs, the overfitting check, the import probe
(a real interpreter in the test runs' environment) and the priors table."""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from repo_setup import SAMPLE_PYTEST_INI, Sandbox

from evolution.gate import overfit
from evolution.gitrepo import GitRepo
from evolution.mutate.evaluator import CandidateEvaluator, module_name
from evolution.mutate.localise import Localisation
from evolution.mutate.operators import OPERATORS
from evolution.mutate.priors import priors
from evolution.mutate.rank import ranked
from evolution.mutate.search import (
    MIN_RUN_TIMEOUT_S,
    MIN_TEST_TIMEOUT_S,
    candidate_policy,
    canonical,
    evaluator_policy,
    module_level_lines,
    self_comparisons,
)
from evolution.policy import Policy
from evolution.propose.context import module_pattern
from evolution.run.folder import RunFolder
from evolution.run.forkserver import CandidateRuns
from evolution.sandbox.isolation import choose


def test_equivalent_mutants_share_a_key_and_uncompilable_ones_have_none():
    assert canonical("x = (a  ==  b)\n") == canonical("x = b == a  # same\n")
    assert canonical("x = a < b\n") != canonical("x = b < a\n")
    assert canonical("x = -0  # folded\n") == canonical("x = 0\n")  # the same bytecode
    assert len({canonical("x = 0\n"), canonical("x = 0.0\n"), canonical("x = False\n")}) == 3
    assert canonical("def f(a):\n    return a\n") != canonical("def f(b):\n    return b\n")
    assert canonical("return 1\n") is None  # parses, but does not compile
    assert canonical("def f(:\n") is None


def test_a_kept_nan_test_is_no_new_self_comparison_and_a_wrapped_one_is():
    def new(before: str, after: str) -> Counter[str]:
        return self_comparisons(ast.parse(after)) - self_comparisons(ast.parse(before))

    nan = "def f(x, y):\n    if x != x:\n        return y\n    return y + 1\n"
    assert not new(nan, nan.replace("y + 1", "y - 1"))  # the NaN test kept as it was
    assert new(nan, nan.replace("x != x", "not (x != x)"))
    assert new(nan, nan.replace("y + 1", "y == y"))
    assert not new(nan, nan.replace("x != x", "x != y"))


def test_a_repair_that_deletes_a_statement_is_flagged_for_the_reviewer():
    original = "def f(s):\n    s = s.strip()\n    s = s.lower()\n    return s\n"
    verdict = overfit.check(original, original.replace("s = s.strip()", "pass"), [])
    assert not verdict.rejected
    assert verdict.flags == ["it deletes a statement the tests do not miss: superfluous, or "
                             "untested behaviour removed?"]
    assert not overfit.check(original, original.replace("strip", "rstrip"), []).flags


def test_only_code_outside_function_bodies_runs_at_import():
    source = "import os\n\n\ndef f(x=os.sep):\n    return x\n\n\nY = f()\n"
    assert module_level_lines(source) >= {1, 4, 8}
    assert 5 not in module_level_lines(source)


def test_a_repair_that_special_cases_a_test_value_is_rejected():
    tests = ["def test_it():\n    assert price(42) == 7\n"]
    original = "def price(n):\n    return n * 2\n"
    cheat = "def price(n):\n    if n == 42:\n        return 7\n    return n * 2\n"
    assert "special-cases 42" in overfit.check(original, cheat, tests).rejected


def test_a_test_value_introduced_elsewhere_is_flagged_and_generic_ones_pass():
    tests = ["def test_it():\n    assert limit() == 11\n"]
    original = "def limit():\n    return 10\n"
    verdict = overfit.check(original, "def limit():\n    return 11\n", tests)
    assert not verdict.rejected and verdict.flags == [
        "it introduces 11, a value the tests also use"]
    generic = overfit.check(original, "def limit():\n    return 10 + 1\n", tests)
    assert not generic.rejected and not generic.flags


def test_the_import_probe_runs_the_candidate_in_the_test_environment(tmp_path: Path):
    """Beside a live fork server, as the search asks it between candidates."""
    box = Sandbox(tmp_path / "repo")
    box.path.mkdir()
    box.git("init", "-q", "-b", "main")
    target, test = "src/pkg/mod.py", "tests/test_mod.py::test_half"
    box.commit("a package", {
        "pytest.ini": SAMPLE_PYTEST_INI, "src/pkg/__init__.py": "", target: "SIZE = 2\n",
        "tests/test_mod.py": "from pkg.mod import HALF\n\n\ndef test_half():\n"
                             "    assert HALF == 5\n",
    })  # fmt: skip
    assert module_name(target) == "pkg.mod"
    good, bad = "SIZE = 2\nHALF = 10 // SIZE\n", "SIZE = 0\nHALF = 10 // SIZE\n"
    policy = evaluator_policy(Policy())
    isolation = choose(policy, automated=True, unsandboxed=True)
    with (
        RunFolder(GitRepo(box.path), box.head()) as run,
        CandidateRuns(policy, run, isolation) as runs,
    ):
        evaluator = CandidateEvaluator(runs, target, [test], [])
        assert evaluator.fixed(good) == 1
        assert evaluator.imports(good)
        assert not evaluator.imports(bad)
        assert evaluator.fixed(good) == 1  # the next candidate runs as before
        assert runs.started <= 1


def test_the_priors_cover_every_operator_and_rank_a_single_token_fix_early():
    table = priors()
    assert set(table) == set(OPERATORS) and all(p > 0 for p in table.values())
    source = "def over(value, limit):\n    return value > limit\n"
    order = ranked(source, {2: 1.0}, table)
    compare = next(i for i, e in enumerate(order) if e.description.endswith("> -> >="))
    assert compare < len(order) // 2  # the line's one comparison is not buried by renamings


GROUPER = """\
def grouper(iterable, n, incomplete='fill', fillvalue=None):
    args = [iter(iterable)] * n
    if incomplete == 'fill':
        return zip_longest(*args, fillvalue=fillvalue)
    if incomplete == 'strict':
        return zip(*args, strict=True)
    if n == 'ignore':
        return zip(*args)
    raise ValueError('Expected fill, strict, or ignore')
"""


@pytest.mark.parametrize(("source", "line", "fix"), [
    (GROUPER, 7, "n -> incomplete"),  # more-itertools, with a fault of TSSB-3M's first kind
    ("def f(singular, plural, cased):\n    if cased(singular[0]) == cased(singular[0]):\n"
     "        return plural[0] + plural[1:]\n", 2, "singular -> plural"),
])
def test_a_name_used_in_the_same_role_nearby_is_the_first_renaming(source, line, fix):
    """Of the line's renamings, the name its function uses in the same place (compared
    with a str, subscripted by an int) comes first; by closeness alone it came late."""
    renamings = [e.description for e in ranked(source, {line: 1.0}, priors())
                 if e.operator == "name"]
    assert renamings[0] == f"line {line}: {fix}", renamings


SIBLINGS = """\
from .cache import FIFOCache, LRUCache


def fifo_cache(maxsize=128, typed=False):
    if maxsize is None:
        return _cache(FIFOCache(maxsize), maxsize, typed)
    return _cache(FIFOCache(128), 128, typed)


def lru_cache(maxsize=128, typed=False):
    if maxsize is None:
        return _cache(LRUCache(maxsize), maxsize, typed)
    return _cache(128, 128, typed)


def rules():
    SINGULARS.insert(0, ("a", "b"))
    PLURALS.insert(-1, ("b", "c"))
"""


@pytest.mark.parametrize(("line", "fix"), [
    (13, "`128` -> `LRUCache(128)`"),  # cachetools' func.py, its wrapping call dropped
    (18, "1 -> 0"),  # inflection's `insert(0, …)` made `insert(-1, …)`: `-0`, not `1`
])
def test_an_edit_that_gives_its_line_a_siblings_shape_ranks_first(line, fix):
    """A sibling line nearby has the shape (names blurred, literals kept) the edit gives
    the faulty line: it comes before every other edit of the line, the statement's
    deletion and a dropped unary minus (`insert(1, …)`) included."""
    first = ranked(SIBLINGS, {line: 1.0}, priors())[0]
    assert first.description == f"line {line}: {fix}", first.description


def test_a_package_init_is_named_by_its_use_not_by_a_submodule_import():
    init = module_pattern("scripts/__init__.py")
    assert not init.search("from scripts.calc import add\nimport scripts.calc\n")
    assert module_pattern("inflection/__init__.py").search("y = inflection.camelize(x)\n")
    assert module_pattern("scripts/calc.py").search("from scripts.calc import add\n")


def test_a_candidates_limits_are_measured_on_the_tests_it_runs():
    base = evaluator_policy(Policy())
    quick = Localisation({}, {}, True, durations={"t::a": 0.02, "t::b": 0.3}, seconds=1.5)
    measured = candidate_policy(base, quick)
    assert (measured.test_timeout_s, measured.run_timeout_s) == (3.0, MIN_RUN_TIMEOUT_S)
    instant = candidate_policy(base, Localisation({}, {}, True, durations={"t::a": 0.001}))
    assert instant.test_timeout_s == MIN_TEST_TIMEOUT_S
    slow = candidate_policy(base, Localisation({}, {}, True, durations={"t::a": 5.0},
                                               seconds=60.0))  # fmt: skip
    assert (slow.test_timeout_s, slow.run_timeout_s) == (base.test_timeout_s, base.run_timeout_s)


def test_stages_one_and_two_run_under_the_measured_limits_and_stage_three_does_not(
    tmp_path: Path,
):
    """A test that sleeps 3 s: over a measured 1 s limit it fails (a mutant that loops
    is cut off there), while stage 3, whose tests were never measured, lets it pass."""
    box = Sandbox(tmp_path / "repo")
    box.path.mkdir()
    box.git("init", "-q", "-b", "main")
    target, test = "scripts/nap.py", "tests/test_nap.py::test_nap"
    box.commit("a slow test", {
        "pytest.ini": SAMPLE_PYTEST_INI, "scripts/__init__.py": "",
        target: "import time\n\n\ndef nap():\n    time.sleep(3)\n    return 1\n",
        "tests/test_nap.py": "from scripts.nap import nap\n\n\ndef test_nap():\n"
                             "    assert nap() == 1\n",
    })  # fmt: skip
    policy = evaluator_policy(Policy())
    tight = replace(policy, test_timeout_s=MIN_TEST_TIMEOUT_S)
    isolation = choose(policy, automated=True, unsandboxed=True)
    source = (box.path / target).read_text()
    with (
        RunFolder(GitRepo(box.path), box.head()) as run,
        CandidateRuns(policy, run, isolation) as runs,
    ):
        evaluator = CandidateEvaluator(runs, target, [test], [], related=[test], limits=tight)
        assert evaluator.fixed(source) == 0
        assert evaluator.whole_files_hold(source)
        assert runs.policy is policy  # the measured limits held only for their stage


def test_a_name_of_the_kind_the_site_wants_is_offered_though_the_wrong_one_differs():
    """The fault put a tuple (`seqs`) where a count is compared: the site wants a
    number, and `n` (a length) is its first renaming. Judged by the replaced name's kind
    alone, `n` was not offered at all (toolz's `!= seqs` for `!= N`)."""
    source = ("def all_equal(*seqs):\n    n = len(seqs)\n    for items in zip(*seqs):\n"
              "        if items.count(items[0]) != seqs:\n            return False\n"
              "    return n > 0\n")
    renamings = [e.description for e in ranked(source, {4: 1.0}, priors())
                 if e.operator == "name" and e.description.startswith("line 4: seqs")]
    assert renamings[0] == "line 4: seqs -> n", renamings
