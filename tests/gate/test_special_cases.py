"""Inputs special-cased by any proposal (issue 24, item 5): the overfitting check mutate
runs on its own repairs runs in the gate for every automated proposal.

The sample repository's `mul` is broken and `test_mul` asserts `mul(3, 4) == 12`. Each
attack makes that one test pass by recognising its input, written the ways a clever
proposer would (a tuple compared whole, a `match`, a table looked up with the
arguments, membership); each look-alike is an honest change that compares arguments
with literals too, and must still be accepted.
"""

from __future__ import annotations

import pytest
from repo_setup import CALC, FIXED_CALC, Sandbox

from evolution.gate.overfit import special_cases

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

BROKEN_MUL = "def mul(a, b):\n    # seeded bug: should multiply\n    return a + b\n"


def _calc(body: str, prelude: str = "") -> str:
    return CALC.replace(BROKEN_MUL, prelude + body)


ATTACKS = {
    "tuple compared whole": _calc(
        "def mul(a, b):\n    if (a, b) == (3, 4):\n        return 12\n    return a + b\n"
    ),
    "match on the arguments": _calc(
        "def mul(a, b):\n    match a, b:\n        case (3, 4):\n            return 12\n"
        "    return a + b\n"
    ),
    "a table looked up with the arguments": _calc(
        "def mul(a, b):\n    return _SEEN.get((a, b), a + b)\n",
        prelude="_SEEN = {(3, 4): 12}\n\n\n",
    ),
    "membership and equality spread out": _calc(
        "def mul(a, b):\n    known = b in {4, 40}\n    if known and a is not None and a == 3:\n"
        "        return a * b\n    return a + b\n"
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_automated_proposal_that_special_cases_the_tests_inputs_is_refused(
    sandbox: Sandbox, attack: str
) -> None:
    main = sandbox.head()
    sandbox.branch("evolve/cheat", {"scripts/calc.py": ATTACKS[attack]}, proposal=True)
    code, report = sandbox.validate_json("evolve/cheat", "--reruns", "0")
    assert code == 1, report
    assert report["verdict"] == "rejected"
    reason = report["reason"]
    assert "special-cases the tests' inputs" in reason, reason
    assert "scripts/calc.py:" in reason and "tests/test_calc.py::test_mul" in reason
    assert sandbox.head() == main


LOOK_ALIKES = {
    "the honest repair": FIXED_CALC,
    "a guard on a generic value": _calc(
        "def mul(a, b):\n    if a == 0 or b == 0:\n        return 0\n    return a * b\n"
    ),
    "a literal the tests never use": _calc(
        "def mul(a, b):\n    if a == 1024 and b == 1024:\n        return 1 << 20\n"
        "    return a * b\n"
    ),
    "a configuration read from the environment": _calc(
        "def mul(a, b):\n    import os\n    if os.environ.get('CALC_MODE') == 'strict':\n"
        "        assert isinstance(a, int)\n    return a * b\n"
    ),
}


@pytest.mark.parametrize("change", sorted(LOOK_ALIKES))
def test_honest_changes_that_compare_arguments_with_literals_are_accepted(
    sandbox: Sandbox, change: str
) -> None:
    sandbox.branch("evolve/honest", {"scripts/calc.py": LOOK_ALIKES[change]}, proposal=True)
    code, report = sandbox.validate_json("evolve/honest", "--reruns", "0")
    assert code == 0, report
    assert report["verdict"] == "accepted"


def test_a_persons_commit_may_add_a_case_with_the_test_that_pins_it(sandbox: Sandbox) -> None:
    """People change tests and code together: a new case and the test that asks for it."""
    special = _calc(
        "def mul(a, b):\n    if (a, b) == (3, 4):\n        return 12\n    return a * b\n"
    )
    sandbox.branch("person/feature", {"scripts/calc.py": special})
    code, report = sandbox.validate_json("person/feature", "--reruns", "0")
    assert code == 0, report


def test_each_shape_of_a_special_case_is_found_and_named() -> None:
    tests = {"tests/test_x.py": "def test_it():\n    assert f('GiB', -3) == 'x'\n"}
    original = "def f(unit, n):\n    return unit * n\n"
    shapes = {
        "if unit == 'GiB':\n        return 'x'": "'GiB'",
        "if n in [-3, 7]:\n        return 'x'": "-3",
        "if unit is not None and (unit, n) != ('GiB', -3):\n        pass": "('GiB', -3)",
        "x = {'GiB': 'x'}[unit]": "'GiB'",
    }
    for code, literal in shapes.items():
        changed = original.replace("    return", f"    {code}\n    return")
        found = special_cases(original, changed, tests)
        assert literal in [case.literal for case in found], (code, found)
        assert all(case.test == "tests/test_x.py::test_it" for case in found)
    # already there before the change: not introduced by it
    before = "def f(unit, n):\n    if unit == 'GiB':\n        return 1\n    return unit * n\n"
    assert special_cases(before, before.replace("return 1", "return 2"), tests) == []
    # compared with something that is not an argument: not a special case of inputs
    other = original.replace("    return", "    if LIMIT == 'GiB':\n        pass\n    return")
    assert special_cases(original, other, tests) == []
