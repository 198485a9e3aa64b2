"""Red team, round 3: the test that runs is the test on disk (issue 24, item 3).

Round 2's held-out attack started a thread that replaced a test function's code with a
no-op after collection: the probe then faithfully reported a test that passed. Here
each attack breaks `add` for real and hides it by changing what `test_add` runs, in a
way the static guard does not see by name; so that the runtime layer is what is tested,
each is a person's commit (the guard reads only proposals), and each must end as an
invalid run (exit 3), not an acceptance. The look-alikes are suites that legitimately
build, wrap and patch functions, and must still pass.
"""

from __future__ import annotations

import json

import pytest
from repo_setup import BROKEN_ADD, Sandbox

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

# `sub`, when a test first calls it, does ACTION to `test_add` of tests/test_calc.py: a
# test of tests/test_aa.py calls it, after collection and before test_calc's tests run.
SWAP = """

_done = []


def sub(a, b):
    if not _done:
        _done.append(1)
        import sys
        module = sys.modules.get("tests.test_calc") or sys.modules["test_calc"]
        fn = module.test_add
        @ACTION@
    return a - b
"""
FIRST = "from scripts.calc import sub\n\n\ndef test_sub_first():\n    assert sub(3, 1) == 2\n"
# Run during the collection of a later module (tests/test_zz.py), after test_calc's.
LATER = """
import sys

module = sys.modules.get("tests.test_calc") or sys.modules["test_calc"]
fn = module.test_add
@ACTION@


def test_later():
    pass
"""

ATTACKS = {
    "the code of a collected test swapped": ("first", "fn.__code__ = (lambda: None).__code__"),
    "the same through the descriptor, under a built name": (
        "first",
        "vars(type(fn))['_'.join(['', '', 'code', '', ''])].__set__(fn, (lambda: 0).__code__)",
    ),
    "the defaults of a collected test swapped": ("first", "fn.__defaults__ = (1,)"),
    "the item pytest calls pointed at a no-op": (
        "first",
        "import gc; [setattr(o, '_obj', lambda: None) for o in gc.get_objects() "
        "if type(o).__name__ == 'Function' and getattr(o, 'name', '') == 'test_add']",
    ),
    "a forged function compiled under the test file's name bound during collection": (
        "later",
        "ns = {}; exec(compile('def test_add():\\n    pass\\n', fn.__code__.co_filename, "
        "'exec'), ns); module.test_add = ns['test_add']",
    ),
}


def _attack(where: str, action: str) -> dict[str, str]:
    calc = BROKEN_ADD.replace("def sub(a, b):\n    return a - b\n", "")
    if where == "first":
        return {"scripts/calc.py": calc + SWAP.replace("@ACTION@", action),
                "tests/test_aa.py": FIRST}  # fmt: skip
    return {"scripts/calc.py": BROKEN_ADD, "tests/test_zz.py": LATER.replace("@ACTION@", action)}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_test_replaced_at_run_time_makes_the_run_invalid(sandbox: Sandbox, name: str) -> None:
    main = sandbox.head()
    sandbox.branch("person/sneaky", _attack(*ATTACKS[name]))
    done = sandbox.evolve("validate", "person/sneaky", "--json", "--reruns", "0")
    report = json.loads(done.stdout)
    assert done.returncode == 3, (name, report)
    assert "interfered with the test machinery" in report["error"], report
    assert sandbox.head() == main


LOOK_ALIKES = {
    "a test that builds and swaps code of its own": '''
        def test_swapping_code_is_what_this_library_does():
            f = lambda: 1
            f.__code__ = (lambda: 2).__code__
            assert f() == 2
    ''',
    "decorated and wrapped tests, and a patched module attribute": '''
        import functools
        from unittest import mock

        import scripts.calc


        def logged(test):
            @functools.wraps(test)
            def wrapper(*args, **kwargs):
                return test(*args, **kwargs)
            return wrapper


        @logged
        def test_wrapped():
            assert scripts.calc.add(1, 1) == 2


        def test_patched():
            with mock.patch.object(scripts.calc, "add", lambda a, b: 0):
                assert scripts.calc.add(1, 1) == 0


        def test_defaults(n=3):
            assert n == 3
    ''',
}


@pytest.mark.parametrize("name", sorted(LOOK_ALIKES))
def test_suites_that_wrap_patch_and_build_functions_are_judged_as_usual(
    sandbox: Sandbox, name: str
) -> None:
    sandbox.branch("person/tests", {"tests/test_more.py": LOOK_ALIKES[name]})
    done = sandbox.evolve("validate", "person/tests", "--json", "--reruns", "0")
    report = json.loads(done.stdout)
    assert done.returncode == 0, report
    assert report["verdict"] == "accepted"


# cachetools' suite keeps its cases in a mixin in tests/__init__.py, which each test
# class of tests/test_*.py inherits next to unittest.TestCase: a look-alike. Swapping the
# mixin's case for a no-op while a later module is collected is still an attack.
CASES = """
from scripts.calc import add


class AddCases:
    def test_add_inherited(self):
        assert add(2, 2) == 4
"""
INHERITS = """
import unittest

from calc_cases import AddCases


class TestAdd(unittest.TestCase, AddCases):
    pass
"""
SWAPS_THE_CASE = "import calc_cases\n\ncalc_cases.AddCases.test_add_inherited = lambda self: None\n"


def test_a_test_a_class_inherits_from_another_file_is_judged_and_still_guarded(
    sandbox: Sandbox,
) -> None:
    files = {"tests/calc_cases.py": CASES, "tests/test_inherited.py": INHERITS}
    sandbox.branch("person/mixin", files)
    done = sandbox.evolve("validate", "person/mixin", "--json", "--reruns", "0")
    report = json.loads(done.stdout)
    assert done.returncode == 0, report
    assert "tests/test_inherited.py::TestAdd::test_add_inherited" in report["newly_passing"]

    failing = CASES.replace("add(2, 2) == 4", "add(2, 2) == 5")
    swapped = {**files, "tests/calc_cases.py": failing, "tests/test_zz.py": SWAPS_THE_CASE}
    sandbox.branch("person/swapped", swapped)
    # One process: split over workers, test_zz.py may land in another part than the
    # class it swaps, where the case simply fails (a rejection); the probe's detection is
    # what this test is about, and it needs both files in the same run.
    done = sandbox.evolve(
        "validate", "person/swapped", "--json", "--reruns", "0", "--no-staged", "--workers", "1"
    )
    report = json.loads(done.stdout)
    assert done.returncode == 3, report
    assert "interfered with the test machinery" in report["error"], report
