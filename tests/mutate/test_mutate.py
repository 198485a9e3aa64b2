"""The `mutate` proposer: operators on real source text, localisation and search on real
pytest runs in real git repositories."""

from __future__ import annotations

import ast
import difflib
import json

import pytest
from repo_setup import FIXED_CALC, Sandbox

from evolution.mutate.localise import ochiai
from evolution.mutate.operators import Edit, apply_edits, mutations

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

SOURCE = '''\
"""Thresholds."""

LIMIT = 10  # the limit


def over(value, limit=LIMIT):
    # A comment that must survive.
    if value   >   limit:   # odd spacing survives too
        return True
    total = value + 1
    total += 2
    ok = value and limit
    if not ok:
        return (value *
                2)
    return False
'''


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def by_operator(line: int) -> dict[str, list[Edit]]:
    found: dict[str, list[Edit]] = {}
    for edit in mutations(SOURCE, {line}):
        found.setdefault(edit.operator, []).append(edit)
    return found


def test_a_comparison_swap_changes_only_the_operator_token():
    edits = by_operator(8)["compare"]
    assert [e.text for e in edits] == [">=", "<"]
    mutant = apply_edits(SOURCE, [edits[0]])
    assert changed_lines(SOURCE, mutant) == [
        "-    if value   >   limit:   # odd spacing survives too",
        "+    if value   >=   limit:   # odd spacing survives too",
    ]


@pytest.mark.parametrize(
    ("line", "operator", "before", "after"),
    [
        (10, "arithmetic", "    total = value + 1", "    total = value - 1"),
        (11, "arithmetic", "    total += 2", "    total -= 2"),
        (12, "boolean", "    ok = value and limit", "    ok = value or limit"),
        (13, "boolean", "    if not ok:", "    if ok:"),
        (3, "constant", "LIMIT = 10  # the limit", "LIMIT = 11  # the limit"),
        (13, "if-swap", "    if not ok:", "    if not (not ok):"),
        (10, "delete", "    total = value + 1", "    pass"),
        (16, "return", "    return False", "    return None"),
    ],
)
def test_each_operator_edits_one_span_and_keeps_the_rest(line, operator, before, after):
    mutant = apply_edits(SOURCE, [by_operator(line)[operator][0]])
    assert changed_lines(SOURCE, mutant) == [f"-{before}", f"+{after}"]
    ast.parse(mutant)
    assert "# A comment that must survive." in mutant


def test_a_multi_line_expression_is_mutated_in_place():
    edits = by_operator(14)["arithmetic"]
    mutant = apply_edits(SOURCE, [edits[0]])
    assert changed_lines(SOURCE, mutant) == [
        "-        return (value *", "+        return (value +",
    ]


def test_a_copied_statement_is_inserted_with_the_target_indentation():
    copy = next(e for e in by_operator(11)["restore"] if "total = value + 1" in e.description)
    mutant = apply_edits(SOURCE, [copy])
    assert changed_lines(SOURCE, mutant) == ["+    total = value + 1"]
    ast.parse(mutant)


def test_edits_apply_together_and_overlaps_are_refused():
    compare = by_operator(8)["compare"][0]
    constant = by_operator(3)["constant"][0]
    both = apply_edits(SOURCE, [constant, compare])
    assert len(changed_lines(SOURCE, both)) == 4
    with pytest.raises(ValueError, match="overlapping"):
        apply_edits(SOURCE, [compare, by_operator(8)["compare"][1]])


def test_unicode_before_the_span_keeps_offsets_right():
    source = 'NAME = "café ☕"; x = 1 < 2\n'
    [edit, *_] = [e for e in mutations(source) if e.operator == "compare"]
    assert apply_edits(source, [edit]) == 'NAME = "café ☕"; x = 1 <= 2\n'


def test_minimisation_drops_every_edit_the_repair_does_not_need():
    from evolution.mutate.search import minimise

    class Judge:  # the repair criterion as a predicate; the real one runs pytest
        failing = ("test",)

        def fixed(self, source: str) -> int:
            return int("value + 1" not in source and ">=" in source)

        def neighbours_hold(self, source: str) -> bool:
            return True

    needed_a = by_operator(8)["compare"][0]  # > -> >=
    needed_b = by_operator(10)["arithmetic"][0]  # + -> -
    neutral = by_operator(3)["constant"][0]  # 10 -> 11
    kept = minimise(Judge(), SOURCE, (needed_a, neutral, needed_b))  # type: ignore[arg-type]
    assert kept == (needed_a, needed_b)


def test_ochiai():
    assert ochiai(1, 0, 1) == 1.0
    assert ochiai(0, 5, 1) == 0.0
    assert ochiai(1, 3, 1) == pytest.approx(0.5)


def propose_mutate(box: Sandbox, *args: str) -> tuple[int, dict]:
    done = box.evolve(
        "propose", "--json", "--proposer", "mutate", "--target", "scripts/calc.py",
        "--goal", "repair mul", *args, timeout=180,
    )
    return done.returncode, json.loads(done.stdout)


def test_mutate_repairs_the_seeded_bug_and_the_gate_accepts_it(sandbox: Sandbox):
    code, result = propose_mutate(sandbox)
    assert code == 0, result
    assert result["proposer"] == "mutate" and result["status"] == "created"
    search = result["search"]
    assert search["failing_tests"] == ["tests/test_calc.py::test_mul"]
    assert search["suspicious_lines"][0] == 14  # `return a + b` in mul, ranked first
    assert search["edits"] == ["line 14: + -> *"]
    message = sandbox.git("log", "-1", "--format=%B", result["branch"])
    assert "Evolve-Proposer: mutate" in message and "Evolve-Model: none" in message
    assert "- line 14: + -> *" in message
    diff = sandbox.git("diff", "main", result["branch"])
    edited = [line for line in diff.splitlines()
              if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert edited == ["-    return a + b", "+    return a * b"]
    repaired = sandbox.git("show", f"{result['branch']}:scripts/calc.py")
    assert "# seeded bug: should multiply" in repaired
    done = sandbox.evolve("validate", result["branch"], "--json", timeout=180)
    assert json.loads(done.stdout)["verdict"] == "accepted"


def test_mutate_needs_a_failing_test(sandbox: Sandbox):
    sandbox.commit("fix", {"scripts/calc.py": FIXED_CALC})
    sandbox.evolve("baseline", "record", timeout=180)
    code, result = propose_mutate(sandbox)
    assert code == 1 and result["status"] == "no-change"
    assert "needs a test that fails in the baseline" in result["message"]


def test_the_search_stops_at_its_candidate_bound(sandbox: Sandbox):
    # An impossible repair: the test expects a value no small edit produces.
    tests = (sandbox.path / "tests/test_calc.py").read_text()
    sandbox.commit("an impossible test", {"tests/test_calc.py": tests.replace("== 12", "== 1234")})
    sandbox.evolve("baseline", "record", timeout=180)
    code, result = propose_mutate(sandbox, "--max-candidates", "5")
    assert code == 1 and result["status"] == "no-change"
    assert result["search"]["evaluated"] == 5 and result["search"]["stopped"] == "candidates"
    assert "no repair of scripts/calc.py in 5 candidates" in result["message"]
