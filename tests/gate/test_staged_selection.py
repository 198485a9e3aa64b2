"""Unit tests of the staged verdict's selection (`evolution.gate.staged.plan` over
`evolution.gate.testmap.CoverageMap.first_tests`): which tests run first for a change.

The first stage may only reject, so what matters is that it never leaves out a test
that can see the change (a test that ran a changed file, a test in a changed test file,
a test the map has never seen) and that it stands aside (None: the full suite alone)
whenever it cannot help: no usable map, nothing the map ties to the change, or more
than half the suite. Running the selection (`run_first`) needs a sandboxed pytest run:
that is tests/test_staged.py's end-to-end work.

A real repository for the paths a candidate changes; the map and the baseline are
built as the gate builds them (`testmap.from_run`, `Baseline`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from repo_setup import Sandbox

from evolution.baseline import Baseline
from evolution.gate.staged import MAX_SHARE, plan
from evolution.gate.testmap import MAX_COMMITS, CoverageMap, MapState, from_run
from evolution.gitrepo import GitRepo

ALPHA = {f"tests/test_alpha.py::test_double_{n}" for n in range(3)}
BETA = {f"tests/test_beta.py::test_square_{n}" for n in range(3)}
OTHER = {f"tests/test_other.py::test_other_{n}" for n in range(6)}
ALL = ALPHA | BETA | OTHER  # 12 tests: a first stage may hold at most 6


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    """Two modules, each with its own test file, and tests that use neither."""
    box = Sandbox(tmp_path / "repo")
    box.path.mkdir()
    box.git("init", "-q", "-b", "main")
    box.commit("start", {
        "scripts/alpha.py": "def double(x):\n    return 2 * x\n",
        "scripts/beta.py": "def square(x):\n    return x * x\n",
        "tests/test_alpha.py": "# alpha's tests\n",
        "tests/test_beta.py": "# beta's tests\n",
        "tests/test_other.py": "# the rest\n",
        "README.md": "hello\n",
    })  # fmt: skip
    return box


def baseline(tests: set[str] = ALL, failing: frozenset[str] | set[str] = frozenset()) -> Baseline:
    """Main's baseline: every test passing but `failing`."""
    outcomes = {t: "failed" if t in failing else "passed" for t in tests}
    return Baseline("c", "t", "2025-01-01T00:00:00+00:00", outcomes)


def recorded(commit: str, tests: set[str] = ALL) -> MapState:
    """The map a full run at `commit` leaves: alpha's tests ran alpha.py, beta's ran
    beta.py, the others ran nothing of the tree. Fresh, so usable."""
    covers = {"scripts/alpha.py": ALPHA, "scripts/beta.py": BETA}
    test_map = from_run(covers, commit, tests, "2025-01-01T00:00:00+00:00")
    return MapState(test_map, 0, refresh=False)


def change(box: Sandbox, files: dict[str, str], delete: tuple[str, ...] = ()) -> str:
    """A candidate: one proposal commit on main; the paths it changes are what `plan` reads."""
    return box.branch("evolve/x", files, proposal=True, delete=delete)


def test_a_change_runs_first_the_tests_that_ran_the_changed_file(box: Sandbox) -> None:
    state = recorded(box.head())
    commit = change(box, {"scripts/alpha.py": "def double(x):\n    return x + x\n"})
    stage = plan(GitRepo(box.path), commit, baseline(), state, automated=True)
    assert stage is not None
    assert stage.tests == sorted(ALPHA)
    assert set(stage.baseline.tests) == ALPHA  # the stage is judged against these alone
    assert stage.automated


def test_the_stage_carries_whether_the_candidate_is_automated(box: Sandbox) -> None:
    """An automated proposal's new flakiness is never excused: the first stage must
    judge it as the full run would."""
    state = recorded(box.head())
    commit = change(box, {"scripts/beta.py": "def square(x):\n    return x ** 2\n"})
    stage = plan(GitRepo(box.path), commit, baseline(), state, automated=False)
    assert stage is not None and not stage.automated and stage.tests == sorted(BETA)


def test_tests_in_a_changed_test_file_run_first_even_if_the_map_ties_them_to_nothing(
    box: Sandbox,
) -> None:
    state = recorded(box.head())
    commit = change(box, {"tests/test_other.py": "# edited\n"})
    stage = plan(GitRepo(box.path), commit, baseline(), state, automated=False)
    assert stage is not None and stage.tests == sorted(OTHER)


def test_a_deleted_test_file_selects_its_tests_so_they_read_as_missing(box: Sandbox) -> None:
    state = recorded(box.head())
    commit = change(box, {}, delete=("tests/test_beta.py",))
    stage = plan(GitRepo(box.path), commit, baseline(), state, automated=True)
    assert stage is not None and stage.tests == sorted(BETA)


def test_tests_the_map_never_saw_always_run_first(box: Sandbox) -> None:
    """A test added after the map was taken could see anything: it is in every first
    stage, whatever the change."""
    new = "tests/test_new.py::test_it"
    state = recorded(box.head())
    commit = change(box, {"scripts/alpha.py": "def double(x):\n    return x + x\n"})
    stage = plan(GitRepo(box.path), commit, baseline(ALL | {new}), state, automated=True)
    assert stage is not None and stage.tests == sorted(ALPHA | {new})


def test_a_change_the_map_ties_to_no_test_leaves_the_verdict_to_the_full_suite(
    box: Sandbox,
) -> None:
    """A file no test ran (README.md), or one the map has never seen (a new module):
    no first stage at all, not an empty one that would pass by saying nothing."""
    state = recorded(box.head())
    readme = change(box, {"README.md": "changed\n"})
    assert plan(GitRepo(box.path), readme, baseline(), state, automated=True) is None
    box.git("branch", "-q", "-D", "evolve/x")
    module = change(box, {"scripts/gamma.py": "def cube(x):\n    return x ** 3\n"})
    assert plan(GitRepo(box.path), module, baseline(), state, automated=True) is None


def test_only_baseline_passing_tests_run_first(box: Sandbox) -> None:
    """A test already failing on main cannot regress: the first stage cannot reject on
    it, so it does not run there."""
    state = recorded(box.head())
    commit = change(box, {"scripts/alpha.py": "def double(x):\n    return x + x\n"})
    broken = {"tests/test_alpha.py::test_double_0"}
    stage = plan(GitRepo(box.path), commit, baseline(failing=broken), state, automated=True)
    assert stage is not None and stage.tests == sorted(ALPHA - broken)


def test_changes_main_made_since_the_map_count_as_changed(box: Sandbox) -> None:
    """The map's run saw the tree at its own commit: a change that landed on main since
    then is as unseen as the candidate's, and its tests run first too."""
    state = recorded(box.head())
    box.commit("main changes beta", {"scripts/beta.py": "def square(x):\n    return x ** 2\n"})
    commit = change(box, {"scripts/alpha.py": "def double(x):\n    return x + x\n"})
    stage = plan(GitRepo(box.path), commit, baseline(), state, automated=True)
    assert stage is not None and stage.tests == sorted(ALPHA | BETA)


def test_a_first_stage_of_more_than_half_the_suite_is_not_worth_running(box: Sandbox) -> None:
    assert MAX_SHARE == 0.5
    state = recorded(box.head())
    both = change(box, {"scripts/alpha.py": "# a\n", "scripts/beta.py": "# b\n"})
    half = plan(GitRepo(box.path), both, baseline(), state, automated=True)  # 6 of 12
    assert half is not None and len(half.tests) == 6
    box.git("branch", "-q", "-D", "evolve/x")
    more = change(box, {"scripts/alpha.py": "# a\n", "scripts/beta.py": "# b\n",
                        "tests/test_other.py": "# c\n"})  # fmt: skip
    assert plan(GitRepo(box.path), more, baseline(), state, automated=True) is None


def test_without_a_usable_map_there_is_no_first_stage(box: Sandbox) -> None:
    commit = change(box, {"scripts/alpha.py": "def double(x):\n    return x + x\n"})
    found = recorded(box.head()).found
    repo = GitRepo(box.path)
    for state in (
        MapState(None, None, refresh=True),  # no map
        MapState(found, None, refresh=True),  # a map from another history
        MapState(found, MAX_COMMITS + 1, refresh=True),  # too old
    ):
        assert plan(repo, commit, baseline(), state, automated=True) is None, state.describe()
    at_the_limit = MapState(found, MAX_COMMITS, refresh=True)
    assert plan(repo, commit, baseline(), at_the_limit, automated=True) is not None


def test_first_tests_never_picks_a_test_outside_the_protected_set() -> None:
    """The map may name tests the baseline no longer has (renamed, removed): they are
    not selected, since there is nothing to hold them to."""
    test_map = CoverageMap(
        "c", "t", frozenset({"t/test_a.py::gone", "t/test_a.py::kept"}),
        {"src/a.py": frozenset({"t/test_a.py::gone", "t/test_a.py::kept"})},
    )  # fmt: skip
    assert test_map.first_tests(["src/a.py"], {"t/test_a.py::kept"}) == ["t/test_a.py::kept"]
    assert test_map.first_tests(["t/test_a.py"], set()) == []
