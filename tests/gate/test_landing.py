"""Unit tests of `evolution.gate.landing`: main moves only by compare-and-swap from the
commit the gate judged against, a lost race comes back as a value (the gate validates
again) and is never forced, and a checkout of main is brought along only when that is
safe: a dirty one, or one with untracked files in the way, is left exactly as it was.

Real repositories in tmp_path; the "other writer" that moves main is plain git, as a
person or a second gate would be.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from repo_setup import Sandbox, make_sandbox

from evolution.gate.landing import Landing, land, main_checkout
from evolution.gitrepo import GitRepo

MAIN = "refs/heads/main"
_names = itertools.count()


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    """A repository with main checked out at its top level (no baseline: landing
    needs none)."""
    return make_sandbox(tmp_path / "repo", record=False)


def candidate(box: Sandbox, files: dict[str, str], base: str = "main") -> str:
    """A commit on `base` that changes `files`, on a side branch: what the gate lands."""
    return box.branch(f"side/{next(_names)}", files, base=base)


def ref(box: Sandbox) -> str:
    """Where main points now: what every test checks moved, or did not."""
    return box.head("main")


def test_main_checkout_finds_the_worktree_that_has_main_out(box: Sandbox, tmp_path: Path) -> None:
    repo = GitRepo(box.path)
    assert main_checkout(repo, MAIN) == box.path.resolve()
    box.git("switch", "-q", "-c", "elsewhere")
    assert main_checkout(repo, MAIN) is None  # nothing to bring along
    linked = tmp_path / "linked"
    box.git("worktree", "add", "-q", str(linked), "main")
    assert main_checkout(repo, MAIN) == linked.resolve()


def test_a_clean_checkout_of_main_follows_the_landing(box: Sandbox) -> None:
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n", "scripts/added.py": "X = 2\n"})
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept side")
    assert landing == Landing(moved=True, checkout=box.path.resolve())
    assert ref(box) == new
    assert (box.path / "scripts/calc.py").read_text() == "VALUE = 1\n"
    assert (box.path / "scripts/added.py").read_text() == "X = 2\n"
    assert box.git("status", "--porcelain") == ""  # files and index both at new
    assert box.git("reflog", "-1", "--format=%gs", "main") == "evolve: accept side"


def test_main_moves_without_a_checkout_to_bring_along(box: Sandbox) -> None:
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n"})
    box.git("switch", "-q", "-c", "elsewhere")
    before = (box.path / "scripts/calc.py").read_text()
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert landing == Landing(moved=True, checkout=None)
    assert ref(box) == new
    assert (box.path / "scripts/calc.py").read_text() == before  # another branch's files


def test_a_lost_race_is_reported_and_main_keeps_the_other_writers_commit(box: Sandbox) -> None:
    """Another writer moved main after the gate read it: the compare-and-swap fails,
    the landing says `raced` (the gate validates again) and nothing is forced."""
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n"})
    theirs = candidate(box, {"scripts/other.py": "Y = 3\n"})
    box.git("switch", "-q", "-c", "elsewhere")
    box.git("update-ref", MAIN, theirs, old)
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert landing.raced and not landing.moved and landing.refused == ""
    assert ref(box) == theirs


def test_a_race_the_checkout_could_follow_is_caught_by_the_compare_and_swap(
    box: Sandbox,
) -> None:
    """Someone committed on the checked-out main, to another file: the checkout could
    follow old..new, and only the compare-and-swap on the ref stops main being forced
    back over their commit."""
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n"})
    theirs = box.commit("a person's commit on main", {"scripts/notes.py": "N = 1\n"})
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert landing.raced and not landing.moved, landing
    assert ref(box) == theirs
    assert (box.path / "scripts/notes.py").read_text() == "N = 1\n"
    assert box.git("status", "--porcelain") == ""


def test_a_lost_race_under_a_checkout_of_main_is_reported_as_a_race(box: Sandbox) -> None:
    """The usual race: someone commits on the checked-out main, to the same file the
    candidate changes. It must come back as `raced` (so the gate validates again on
    the new main), not as a refusal about files in the way, and move nothing."""
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n"})
    theirs = box.commit("a person's commit on main", {"scripts/calc.py": "VALUE = 2\n"})
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert landing.raced and not landing.moved, landing
    assert ref(box) == theirs
    assert (box.path / "scripts/calc.py").read_text() == "VALUE = 2\n"
    assert box.git("status", "--porcelain") == ""


def test_a_dirty_checkout_of_main_is_not_clobbered(box: Sandbox) -> None:
    """Main never moves under uncommitted work: the files would then read as a staged
    revert of the landed change."""
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n"})
    (box.path / "scripts/calc.py").write_text("work in progress\n")
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert not landing.moved and not landing.raced
    assert "uncommitted changes" in landing.refused and "main is checked out" in landing.refused
    assert landing.checkout == box.path.resolve()
    assert ref(box) == old
    assert (box.path / "scripts/calc.py").read_text() == "work in progress\n"


def test_a_staged_change_counts_as_dirty(box: Sandbox) -> None:
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n"})
    (box.path / "scripts/notes.py").write_text("N = 1\n")
    box.git("add", "scripts/notes.py")
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert not landing.moved and "uncommitted changes" in landing.refused
    assert ref(box) == old


def test_an_untracked_file_out_of_the_way_does_not_stop_the_landing(box: Sandbox) -> None:
    """The honest look-alike of a dirty checkout: an untracked scratch file the merge
    does not touch is not a change to lose."""
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n"})
    (box.path / "scratch.txt").write_text("mine\n")
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert landing.moved and ref(box) == new
    assert (box.path / "scratch.txt").read_text() == "mine\n"


def test_an_untracked_file_in_the_way_is_kept_and_main_does_not_move(box: Sandbox) -> None:
    old = ref(box)
    new = candidate(box, {"scripts/added.py": "X = 2\n"})
    (box.path / "scripts/added.py").write_text("my own, untracked\n")
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert not landing.moved and not landing.raced
    assert "would be overwritten" in landing.refused
    assert ref(box) == old
    assert (box.path / "scripts/added.py").read_text() == "my own, untracked\n"


def test_a_linked_worktree_of_main_is_the_one_brought_along(box: Sandbox, tmp_path: Path) -> None:
    old = ref(box)
    new = candidate(box, {"scripts/calc.py": "VALUE = 1\n"})
    box.git("switch", "-q", "-c", "elsewhere")
    linked = tmp_path / "linked"
    box.git("worktree", "add", "-q", str(linked), "main")
    landing = land(GitRepo(box.path), MAIN, old, new, "evolve: accept")
    assert landing.moved and landing.checkout == linked.resolve()
    assert (linked / "scripts/calc.py").read_text() == "VALUE = 1\n"
