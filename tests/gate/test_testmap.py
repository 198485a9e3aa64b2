"""Unit tests of `evolution.gate.testmap`: the stored map is advice about speed, never
about the verdict, so whatever is wrong with it (missing, unreadable, of another
version, from another history, too old) must read as "no usable map" and never raise;
and a map is refreshed once it is `REFRESH_COMMITS` commits old. A real repository and
its real state folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_setup import Sandbox

from evolution.gate.testmap import (
    MAP_FILE,
    MAX_COMMITS,
    REFRESH_COMMITS,
    CoverageMap,
    from_run,
    load,
    refresh,
    save,
    state,
)
from evolution.gitrepo import GitRepo
from evolution.run.launch import MapRequest

WHEN = "2025-01-01T00:00:00+00:00"


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    """One commit on main: the history a map is measured against."""
    box = Sandbox(tmp_path / "repo")
    box.path.mkdir()
    box.git("init", "-q", "-b", "main")
    box.commit("start", {"scripts/a.py": "A = 1\n"})
    return box


def empty_commits(box: Sandbox, count: int) -> str:
    """`count` commits on main (by plumbing: the tests need history, not content)."""
    head, tree = box.head(), box.git("rev-parse", "main^{tree}")
    for n in range(count):
        head = box.git("commit-tree", tree, "-p", head, "-m", f"commit {n}")
    box.git("update-ref", "refs/heads/main", head)
    return head


def a_map(commit: str) -> CoverageMap:
    """A small map taken at `commit`, as a full run leaves one."""
    return from_run({"scripts/a.py": {"t.py::x"}}, commit, {"t.py::x", "t.py::y"}, WHEN)


def test_a_saved_map_loads_as_it_was(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    saved = a_map(box.head())
    save(repo, saved)
    assert load(repo) == saved


def test_from_run_keeps_only_the_runs_tests_and_files_some_test_ran() -> None:
    """Coverage can name contexts that are not tests of this run (set-up, a test the
    run did not report): they are dropped, and a file left with none is not mapped."""
    test_map = from_run(
        {"a.py": {"t.py::x", "setup"}, "b.py": {"setup"}, "c.py": set()},
        "c0", {"t.py::x", "t.py::y"}, WHEN,
    )  # fmt: skip
    assert test_map.covers == {"a.py": frozenset({"t.py::x"})}
    assert test_map.tests == frozenset({"t.py::x", "t.py::y"})


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", json.dumps({"version": 99, "commit": "c", "recorded_at": WHEN,
                                       "tests": [], "covers": {}}),
     json.dumps({"version": 1, "commit": "c"}),
     json.dumps({"version": 1, "commit": "c", "recorded_at": WHEN, "tests": [],
                 "covers": ["a.py"]})],
)  # fmt: skip
def test_an_unreadable_map_is_no_map(box: Sandbox, text: str) -> None:
    repo = GitRepo(box.path)
    (repo.state_dir_ready() / MAP_FILE).write_text(text)
    assert load(repo) is None
    assert state(repo, box.head()).found is None


def test_without_a_map_the_next_full_run_makes_one(box: Sandbox) -> None:
    found = state(GitRepo(box.path), box.head())
    assert found.found is None and found.usable is None and found.refresh
    assert found.describe() == "no map"


def test_a_map_of_a_commit_the_repository_lacks_is_no_map(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    save(repo, a_map("0123456789" * 4))
    found = state(repo, box.head())
    assert found.found is None and found.refresh


def test_a_map_from_another_history_is_not_used(box: Sandbox) -> None:
    """A map taken on a branch main never merged saw files main may not have."""
    repo = GitRepo(box.path)
    side = box.branch("side", {"scripts/b.py": "B = 1\n"})
    save(repo, a_map(side))
    found = state(repo, box.head())
    assert found.found is not None and found.age_commits is None
    assert found.usable is None and found.refresh
    assert found.describe() == "a map not from main's history"


def test_the_maps_age_is_counted_in_commits_and_a_due_map_is_refreshed(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    save(repo, a_map(box.head()))
    fresh = state(repo, box.head())
    assert fresh.age_commits == 0 and fresh.usable is not None and not fresh.refresh
    young = state(repo, empty_commits(box, REFRESH_COMMITS - 1))
    assert young.age_commits == REFRESH_COMMITS - 1 and not young.refresh
    due = state(repo, empty_commits(box, 1))
    assert due.age_commits == REFRESH_COMMITS and due.refresh and due.usable is not None
    assert due.describe() == f"map {REFRESH_COMMITS} commits old"


def test_a_map_too_old_is_not_used(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    save(repo, a_map(box.head()))
    at_limit = state(repo, empty_commits(box, MAX_COMMITS))
    assert at_limit.usable is not None
    too_old = state(repo, empty_commits(box, 1))
    assert too_old.age_commits == MAX_COMMITS + 1 and too_old.usable is None
    assert too_old.describe().endswith("too old to use")


def test_a_refresh_maps_again_the_tests_a_change_can_have_moved_and_only_those(
    box: Sandbox,
) -> None:
    """Moved: the tests that ran a changed file, those in a changed test file, those
    under a changed conftest.py (a new autouse fixture runs in tests that never ran
    that file), and tests the map never saw. The others keep their entries."""
    repo = GitRepo(box.path)
    tests = {"tests/sub/test_a.py::x", "tests/test_b.py::y", "tests/test_c.py::z",
             "tests/test_d.py::w"}  # fmt: skip
    covers = {"scripts/a.py": {"tests/test_c.py::z"}, "scripts/e.py": {"tests/test_d.py::w"}}
    save(repo, from_run(covers, box.head(), tests, WHEN))
    commit = box.commit("change", {"tests/sub/conftest.py": "X = 1\n", "scripts/a.py": "A = 2\n"})

    plan = refresh(repo, state(repo, commit), commit)

    assert plan.request.known == {"tests/test_b.py::y", "tests/test_d.py::w"}
    updated = plan.updated({"scripts/a.py": {"tests/test_c.py::z", "tests/test_e.py::v"}},
                           commit, tests | {"tests/test_e.py::v"}, WHEN)  # fmt: skip
    assert updated is not None and updated.commit == commit
    assert updated.covers == {
        "scripts/a.py": {"tests/test_c.py::z", "tests/test_e.py::v"},
        "scripts/e.py": {"tests/test_d.py::w"},  # carried over
    }


def test_without_a_map_from_its_history_a_refresh_maps_every_test(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    plan = refresh(repo, state(repo, box.head()), box.head())
    assert plan.request == MapRequest() and plan.old is None
    assert plan.updated(None, box.head(), {"t.py::x"}, WHEN) is None  # the probe sent none
