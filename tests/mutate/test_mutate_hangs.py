"""Hanging bugs: a failing test that loops forever, localised by what it ran before its
time limit, and repaired by a search whose candidates are limited by the tests that
finished; a slow test that finishes is no hang. Real git repositories, real pytest
runs through the fork server."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from repo_setup import SAMPLE_PYTEST_INI, Sandbox

from evolution.gitrepo import GitRepo
from evolution.mutate.evaluator import CandidateEvaluator
from evolution.mutate.hangs import Families, hung
from evolution.mutate.localise import Localisation, localise
from evolution.mutate.priors import priors
from evolution.mutate.progress import progress_first
from evolution.mutate.rank import ranked
from evolution.mutate.search import (
    CANDIDATE_TEST_TIMEOUT_S,
    MIN_TEST_TIMEOUT_S,
    SearchLimits,
    SearchResult,
    candidate_policy,
    evaluator_policy,
    search,
)
from evolution.mutate.source import Edit
from evolution.policy import Policy
from evolution.run.folder import RunFolder
from evolution.run.forkserver import CandidateRuns
from evolution.sandbox.isolation import choose

TARGET = "scripts/comments.py"
# The loop's counter is never advanced: the statement `i += 1` the other loop has is
# missing at the end of its body, so any list that holds a line loops forever.
COMMENTS = textwrap.dedent('''\
    """Comments in a configuration file."""


    def first_content(lines, start):
        """The index of the first line at or after `start` that is not blank."""
        i = start
        while i < len(lines) and not lines[i].strip():
            i += 1
        return i


    def count_comments(lines):
        """How many of `lines` are comments."""
        count, i = 0, 0
        while i < len(lines):
            if lines[i].lstrip().startswith("#"):
                count += 1
        return count
    ''')
LOOP = [15, 16, 17]  # the `while` and its body
TESTS = textwrap.dedent('''\
    from scripts.comments import count_comments, first_content


    def test_first_content():
        assert first_content(["", " ", "x"], 0) == 2


    def test_no_lines():
        assert count_comments([]) == 0


    def test_comments():
        assert count_comments(["# a", "b = 1", "  # c"]) == 2
    ''')
SLOW = textwrap.dedent('''\


    def test_many_blank_lines():
        import time

        time.sleep(0.3)  # a slow test that finishes: no hang
        assert first_content([""] * 1000 + ["x"], 0) == 1000
    ''')
FAILING = ["tests/test_comments.py::test_comments"]
NEIGHBOURS = ["tests/test_comments.py::test_first_content", "tests/test_comments.py::test_no_lines"]
SLOW_TEST = "tests/test_comments.py::test_many_blank_lines"
LOCALISATION_LIMIT_S = 3.0  # the hang's cost in the localisation run (the cap is 10 s)

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them


@dataclass
class Searched:
    localisation: Localisation
    limits: Policy
    result: SearchResult


@contextmanager
def _runs(root: Path, tests: str) -> Iterator[CandidateRuns]:
    box = Sandbox(root)
    root.mkdir()
    box.git("init", "-q", "-b", "main")
    box.commit("a loop that never ends", {
        "pytest.ini": SAMPLE_PYTEST_INI, "scripts/__init__.py": "", TARGET: COMMENTS,
        "tests/test_comments.py": tests,
    })  # fmt: skip
    policy = replace(evaluator_policy(Policy()), test_timeout_s=LOCALISATION_LIMIT_S)
    isolation = choose(policy, automated=True, unsandboxed=True)
    with RunFolder(GitRepo(root), box.head()) as run, CandidateRuns(policy, run, isolation) as runs:
        yield runs


def _localise_and_search(root: Path, tests: str, neighbours: list[str]) -> Searched:
    with _runs(root, tests) as runs:
        located = localise(runs, TARGET, [*FAILING, *neighbours], FAILING)
        limits = candidate_policy(runs.policy, located)
        evaluator = CandidateEvaluator(runs, TARGET, FAILING, neighbours, limits=limits)
        return Searched(located, limits, search(evaluator, COMMENTS, located,
                                                SearchLimits(400, 60.0)))


def test_a_hanging_bug_is_localised_to_its_loop_and_repaired_under_short_limits(
    tmp_path: Path,
):
    """The failing test runs into its time limit: its lines up to then are suspect (the
    loop's the most), it is named as cut off, the candidates' limit comes from the
    tests that finished (the 1 s floor, not the localisation's limit or the 10 s cap),
    and the search restores `i += 1` at the end of the loop's body."""
    found = _localise_and_search(tmp_path / "repo", TESTS, NEIGHBOURS)
    located = found.localisation
    assert located.timed_out == set(FAILING)
    assert located.outcomes[FAILING[0]] == "failed"
    top = max(located.scores.values())
    assert {line for line, score in located.scores.items() if score == top} == {16, 17}
    assert set(LOOP) <= set(located.scores)
    assert located.ranked_lines()[:4] in ([16, 17, 14, 15], [16, 17, 15, 14])
    assert found.limits.test_timeout_s == MIN_TEST_TIMEOUT_S < CANDIDATE_TEST_TIMEOUT_S
    result = found.result
    assert result.stopped == "repaired", result
    assert [e.description for e in result.edits] == [
        "line 16: insert `i += 1` (copy of line 8) after it"]
    assert "            count += 1\n        i += 1\n    return count\n" in result.source
    assert result.hung >= 1  # candidates did hang, each cut off at 1 s


def test_a_slow_test_that_finishes_is_no_hang_and_sets_the_limit(tmp_path: Path):
    """The look-alike: a passing test that takes 0.3 s, far longer than the others, is
    measured, not cut off; the candidates may take ten times as long, so it still
    passes in stage 2 and the same repair is found."""
    neighbours = sorted([*NEIGHBOURS, SLOW_TEST])
    found = _localise_and_search(tmp_path / "repo", TESTS + SLOW, neighbours)
    assert found.localisation.timed_out == set(FAILING)
    assert found.localisation.outcomes[SLOW_TEST] == "passed"
    assert found.limits.test_timeout_s >= 10 * 0.3
    assert found.result.stopped == "repaired", found.result
    assert [e.description for e in found.result.edits] == [
        "line 16: insert `i += 1` (copy of line 8) after it"]


def test_a_hang_is_a_failure_at_the_limit_never_a_pass():
    durations = {"t::loop": 1.0, "t::slow_pass": 2.0, "t::slow_fail": 0.5, "t::quick": 0.01}
    outcomes = {"t::loop": "failed", "t::slow_pass": "passed", "t::slow_fail": "failed",
                "t::quick": "failed"}  # fmt: skip
    assert hung(outcomes, durations, 1.0) == {"t::loop"}


def test_a_hung_failing_test_does_not_set_the_candidates_limits():
    base = evaluator_policy(Policy())
    located = Localisation({}, {"t::loop": "failed", "t::a": "passed"}, True,
                           durations={"t::loop": 10.0, "t::a": 0.2}, seconds=10.6,
                           timed_out=frozenset({"t::loop"}))  # fmt: skip
    limits = candidate_policy(base, located)
    assert limits.test_timeout_s == pytest.approx(2.0)  # ten times t::a, not the 10 s cap
    assert limits.run_timeout_s == pytest.approx(10.0)  # 5 x 0.6 s + 2 s, at least 10 s
    slow_failure = replace(located, timed_out=frozenset())  # it finished: it counts
    assert candidate_policy(base, slow_failure).test_timeout_s == base.test_timeout_s


def _edit(operator: str, line: int, start: int) -> Edit:
    return Edit(start, start + 1, "x", operator, line, f"line {line}: {operator}")


def test_a_family_that_only_hangs_goes_last_and_one_that_finished_keeps_its_place():
    edits = [_edit("name", 3, 10), _edit("name", 3, 12), _edit("name", 3, 14),
             _edit("compare", 4, 20), _edit("name", 3, 16), _edit("delete", 5, 30)]
    families = Families()
    order = []
    for edit in families.later(edits):
        order.append(edit)
        families.record(edit, hanging=edit.operator == "name")  # every renaming hangs
    # Two renamings hung: the next two wait until the others were tried.
    assert [(e.operator, e.start) for e in order] == [
        ("name", 10), ("name", 12), ("compare", 20), ("delete", 30), ("name", 14), ("name", 16)]
    assert families.total == 4
    finished = Families()
    finished.record(edits[0], hanging=True)
    finished.record(edits[1], hanging=False)  # a sibling finished: not a hanging family
    finished.record(edits[2], hanging=True)
    assert list(finished.later(edits)) == edits


def test_edits_that_advance_a_never_ending_loop_come_first():
    """Inserted at the end of the loop's body, `i += 1` moves ahead of the ranking; at
    the same offset but outdented (after the loop), before the `while`, or as a reset
    (`i = 0`) it keeps its place, as does an edit of a statement that assigns another
    name; renaming that statement's target to the condition's name moves ahead."""
    end_of_body = COMMENTS.index("    return count")
    before_loop = COMMENTS.index("while i < len")
    target = COMMENTS.index("count += 1")
    one = COMMENTS.index("1", target)

    def insert(at: int, text: str) -> Edit:
        return Edit(at, at, text, "restore", 0, f"insert {text.strip()!r} at {at}")

    stays = [insert(end_of_body, "    i += 1\n"), insert(before_loop, "i += 1\n    "),
             insert(end_of_body, "        i = 0\n"),
             Edit(one, one + 1, "2", "constant", 17, "1 -> 2")]
    moves = [insert(end_of_body, "        i += 1\n"),
             Edit(target, target + 5, "i", "name", 17, "count -> i")]
    assert list(progress_first(COMMENTS, [*stays, *moves])) == [*moves, *stays]
    still = "def drain(queue):\n    i = 0\n    while i < len(queue):\n        i += 0\n"
    step = still.index("i += 0")
    deleted = Edit(step, step + 6, "pass", "delete", 4, "delete the statement")
    zero = Edit(step + 5, step + 6, "1", "constant", 4, "0 -> 1")
    assert list(progress_first(still, [deleted, zero])) == [zero, deleted]
    order = ranked(COMMENTS, {14: 0.5, 15: 0.7, 16: 1.0, 17: 1.0}, priors())
    fix = "line 16: insert `i += 1` (copy of line 8) after it"
    assert [e.description for e in order].index(fix) > 50  # behind many that hang
    assert [e.description for e in progress_first(COMMENTS, order)].index(fix) < 10
