"""Unit tests of `evolution.gate.checks`: the pre-test checks that can refuse a
candidate before any test runs, each with the honest look-alike it must let through,
and the order `first_refusal` asks them in.

Every candidate is built as `validate` builds one: a real branch in a real repository
(the sample of tests/repo_setup.py: scripts/calc.py and tests/test_calc.py, no
baseline needed), `proposal_paths` over its commits and `GitRepo.merge_tree` for the
merge. Nothing is mocked; no test suite runs.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from repo_setup import CALC, FIXED_CALC, Sandbox, make_sandbox

from evolution.gate.checks import (
    PRE_TEST_CHECKS,
    Candidate,
    Refusal,
    clean_merge,
    first_refusal,
    proposal_paths,
    protected_paths,
    special_cased_inputs,
    static_guard,
)
from evolution.gitrepo import GitRepo
from evolution.policy import DEFAULT_PROTECTED, Policy

PEEK = FIXED_CALC + "\n\nimport sys\n\n\ndef peek():\n    return sys._getframe(1).f_locals\n"
# mul(3, 4) == 12 is what tests/test_calc.py checks: answering that input alone.
SPECIAL = CALC.replace(
    "    # seeded bug: should multiply\n    return a + b\n",
    "    if (a, b) == (3, 4):\n        return 12\n    return a + b\n",
)
_names = itertools.count()


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    """The sample repository: scripts/calc.py and the tests that pin its inputs."""
    return make_sandbox(tmp_path / "repo", record=False)


def branch(box: Sandbox, files: dict[str, str], *, proposal: bool = True,
           delete: tuple[str, ...] = ()) -> str:  # fmt: skip
    """A branch from main with one commit, an automated proposal's unless told."""
    return box.branch(f"evolve/c{next(_names)}", files, proposal=proposal, delete=delete)


def candidate(box: Sandbox, tip: str, policy: Policy | None = None) -> Candidate:
    """The candidate `validate` would build for merging `tip` into main."""
    repo = GitRepo(box.path)
    main = box.head("main")
    automated, paths = proposal_paths(repo, main, tip)
    tree, conflicts = repo.merge_tree(main, tip)
    return Candidate(repo, main, tree, policy or Policy(), automated, paths, conflicts)


# -- proposal_paths: only automated commits are held to the proposal rules ------------


def test_a_persons_commits_are_not_a_proposal(box: Sandbox) -> None:
    tip = branch(box, {"tests/test_calc.py": "def test_x():\n    pass\n"}, proposal=False)
    assert proposal_paths(GitRepo(box.path), box.head(), tip) == (False, set())


def test_only_the_proposals_commits_paths_are_held_to_its_rules(box: Sandbox) -> None:
    """A person's commit on the same branch (a new test) is theirs to make; the
    proposal's own commit is what the rules read."""
    box.git("switch", "-q", "-c", "mixed")
    box.commit("a person's new test", {"tests/test_more.py": "def test_more():\n    pass\n"})
    box.git("switch", "-q", "main")
    tip = box.branch("evolve/mixed", {"scripts/calc.py": FIXED_CALC}, proposal=True,
                     base="mixed")  # fmt: skip
    automated, paths = proposal_paths(GitRepo(box.path), box.head(), tip)
    assert automated and paths == {"scripts/calc.py"}
    assert first_refusal(candidate(box, tip)) is None


# -- protected_paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["tests/test_calc.py", "README.md", "scripts/test_helpers.py", "scripts/conftest.py",
     "pyproject.toml", "deploy/agent.toml", "baseline/baseline.json"],
)  # fmt: skip
def test_a_proposal_touching_a_protected_or_non_evolvable_path_is_refused(
    box: Sandbox, path: str
) -> None:
    refusal = protected_paths(candidate(box, branch(box, {path: "x = 1\n"})))
    assert refusal is not None
    assert refusal.protected_paths == [path]
    assert path in refusal.reason and "protected or non-evolvable" in refusal.reason


@pytest.mark.parametrize(
    "path",
    ["scripts/contest.py", "scripts/testing.py", "scripts/baseline/store.py",
     "scripts/deploy_notes.py", "scripts/tests_data.json"],
)  # fmt: skip
def test_an_evolvable_path_that_only_looks_protected_is_accepted(box: Sandbox, path: str) -> None:
    """`baseline/` and `deploy/` protect folders from the root, `conftest.py` and
    `test_*.py` match whole file names: none of these is one."""
    assert protected_paths(candidate(box, branch(box, {path: "x = 1\n"}))) is None


def test_every_offending_path_is_named_sorted(box: Sandbox) -> None:
    tip = branch(box, {"tests/test_calc.py": "", "README.md": "", "scripts/calc.py": FIXED_CALC})
    refusal = protected_paths(candidate(box, tip))
    assert refusal is not None and refusal.protected_paths == ["README.md", "tests/test_calc.py"]


def test_a_protected_path_deleted_by_a_proposal_is_refused(box: Sandbox) -> None:
    tip = branch(box, {"scripts/calc.py": FIXED_CALC}, delete=("tests/test_calc.py",))
    refusal = protected_paths(candidate(box, tip))
    assert refusal is not None and refusal.protected_paths == ["tests/test_calc.py"]


def test_the_policy_on_main_says_what_is_protected(box: Sandbox) -> None:
    tip = branch(box, {"scripts/vault/keys.py": "KEY = 1\n"})
    assert protected_paths(candidate(box, tip)) is None
    stricter = Policy(protected=(*DEFAULT_PROTECTED, "scripts/vault/"))
    refusal = protected_paths(candidate(box, tip, stricter))
    assert refusal is not None and refusal.protected_paths == ["scripts/vault/keys.py"]


@pytest.mark.parametrize("path", ["pyproject.toml", "ratchet.toml", "deploy/agent.toml"])
def test_the_files_the_policy_is_read_from_are_protected_whatever_the_policy_lists(
    box: Sandbox, path: str
) -> None:
    """A policy whose `protected` list leaves them out, and whose evolvable paths take
    in the whole tree, still cannot let a proposal rewrite its own judge's rules."""
    lax = Policy(protected=("tests/",), evolvable=("*",))
    refusal = protected_paths(candidate(box, branch(box, {path: "x = 1\n"}), lax))
    assert refusal is not None and refusal.protected_paths == [path]
    assert protected_paths(candidate(box, branch(box, {"README.md": "x\n"}), lax)) is None


# -- clean_merge ----------------------------------------------------------------------


def test_a_branch_that_does_not_merge_cleanly_is_refused_with_its_conflicts(box: Sandbox) -> None:
    tip = branch(box, {"scripts/calc.py": FIXED_CALC})
    box.commit("main moves on", {"scripts/calc.py": CALC.replace("return a + b", "return b + a")})
    made = candidate(box, tip)
    assert made.tree is None
    refusal = clean_merge(made)
    assert refusal == Refusal(
        "the branch does not merge cleanly into main: scripts/calc.py",
        conflicts=["scripts/calc.py"],
    )


def test_a_branch_that_merges_beside_main_moving_on_is_accepted(box: Sandbox) -> None:
    """The look-alike: main moved on in the same file, in another place."""
    tip = branch(box, {"scripts/calc.py": FIXED_CALC})
    docstring = CALC.replace("A tiny module", "A small module")
    box.commit("main moves on", {"scripts/calc.py": docstring})
    made = candidate(box, tip)
    assert made.tree is not None
    assert clean_merge(made) is None


# -- static_guard ---------------------------------------------------------------------


def test_the_static_guard_refuses_what_a_proposal_adds_and_names_the_line(box: Sandbox) -> None:
    refusal = static_guard(candidate(box, branch(box, {"scripts/calc.py": PEEK})))
    assert refusal is not None
    line = PEEK.splitlines().index("    return sys._getframe(1).f_locals") + 1
    assert f"scripts/calc.py:{line}: sys._getframe" in refusal.reason
    assert any("(frames:" in finding for finding in refusal.guard)


def test_what_main_already_held_is_not_blamed_on_the_proposal(box: Sandbox) -> None:
    hooked = "import atexit\n\natexit.register(print, 'bye')\n"
    box.commit("a person's script", {"scripts/hooks.py": hooked})
    tip = branch(box, {"scripts/hooks.py": hooked + "\n\ndef helper():\n    return 1\n"})
    assert static_guard(candidate(box, tip)) is None


def test_the_same_construct_new_to_a_file_is_refused(box: Sandbox) -> None:
    """The other side of the rule above: atexit is refused where main did not have it."""
    hooked = "import atexit\n\natexit.register(print, 'bye')\n"
    refusal = static_guard(candidate(box, branch(box, {"scripts/calc.py": CALC + hooked})))
    assert refusal is not None and any("(atexit:" in finding for finding in refusal.guard)


def test_a_rule_the_policy_lifts_lets_the_construct_through(box: Sandbox) -> None:
    tip = branch(box, {"scripts/calc.py": CALC + "import atexit\n\natexit.register(print)\n"})
    assert static_guard(candidate(box, tip, Policy(allow=("atexit",)))) is None


def test_the_guard_follows_imports_into_the_merged_tree(box: Sandbox) -> None:
    """A person's helper starts a thread when called: harmless until a proposal calls
    it at import time. The guard reads the helper from the merged tree."""
    helper = "import threading\n\n\ndef warm(job):\n    threading.Thread(target=job).start()\n"
    box.commit("a person's helper", {"scripts/jobs.py": helper})
    cheat = CALC + "\nfrom scripts.jobs import warm\n\nwarm(print)\n"
    refusal = static_guard(candidate(box, branch(box, {"scripts/calc.py": cheat})))
    assert refusal is not None and any("(runs-later:" in f for f in refusal.guard)


def test_a_file_the_proposal_deletes_has_nothing_to_guard(box: Sandbox) -> None:
    box.commit("a person's script", {"scripts/old.py": "import atexit\n"})
    tip = branch(box, {"scripts/calc.py": FIXED_CALC}, delete=("scripts/old.py",))
    assert static_guard(candidate(box, tip)) is None


# -- special_cased_inputs -------------------------------------------------------------


def test_a_proposal_that_special_cases_the_tests_inputs_is_refused(box: Sandbox) -> None:
    refusal = special_cased_inputs(candidate(box, branch(box, {"scripts/calc.py": SPECIAL})))
    assert refusal is not None
    assert "special-cases the tests' inputs" in refusal.reason
    assert "scripts/calc.py:" in refusal.reason and "(3, 4)" in refusal.reason
    assert "tests/test_calc.py::test_mul" in refusal.reason
    assert len(refusal.guard) == 1


def test_an_honest_fix_and_a_generic_guard_clause_are_accepted(box: Sandbox) -> None:
    """Comparing an argument with a literal is not a special case by itself: 0 is
    generic, and 99 is not a value the tests use."""
    honest = FIXED_CALC.replace(
        "def mul(a, b):\n",
        "def mul(a, b):\n    if b == 0:\n        return 0\n"
        "    if a == 99:\n        return 99 * b\n",
    )
    assert honest != FIXED_CALC
    assert special_cased_inputs(candidate(box, branch(box, {"scripts/calc.py": honest}))) is None


def test_a_persons_commit_may_add_a_case(box: Sandbox) -> None:
    tip = branch(box, {"scripts/calc.py": SPECIAL}, proposal=False)
    assert special_cased_inputs(candidate(box, tip)) is None
    assert first_refusal(candidate(box, tip)) is None
    # The check's own promise, not only proposal_paths' (which names no paths for a
    # person): a candidate that is not automated is never refused for a case.
    made = candidate(box, tip)
    made.proposed_paths = {"scripts/calc.py"}
    assert special_cased_inputs(made) is None
    made.automated = True
    assert special_cased_inputs(made) is not None


def test_a_case_already_on_main_is_not_the_proposals(box: Sandbox) -> None:
    box.commit("a person pins a case", {"scripts/calc.py": SPECIAL})
    tip = branch(box, {"scripts/calc.py": SPECIAL.replace("return a + b", "return a * b")})
    assert special_cased_inputs(candidate(box, tip)) is None


def test_a_proposal_that_does_not_parse_is_left_to_the_suite(box: Sandbox) -> None:
    tip = branch(box, {"scripts/calc.py": SPECIAL + "\ndef broken(:\n"})
    assert special_cased_inputs(candidate(box, tip)) is None


# -- first_refusal: the order, and loading only what is reached -----------------------


def test_an_honest_proposal_passes_every_check(box: Sandbox) -> None:
    tip = branch(box, {"scripts/calc.py": FIXED_CALC, "scripts/extra.py": "X = 1\n"})
    assert first_refusal(candidate(box, tip)) is None


def test_protected_paths_come_before_a_conflict(box: Sandbox) -> None:
    tip = branch(box, {"scripts/calc.py": PEEK, "tests/test_calc.py": "def test_x():\n    pass\n"})
    box.commit("main moves on", {"scripts/calc.py": CALC.replace("return a + b", "return b + a")})
    refusal = first_refusal(candidate(box, tip))
    assert refusal is not None and refusal.protected_paths == ["tests/test_calc.py"]
    assert refusal.conflicts == []


def test_a_conflict_is_reported_before_the_guard_would_need_a_tree(box: Sandbox) -> None:
    """The guard and the special-case check read the merged tree; a merge that has none
    must stop at clean_merge."""
    tip = branch(box, {"scripts/calc.py": PEEK})
    box.commit("main moves on", {"scripts/calc.py": CALC.replace("return a + b", "return b + a")})
    refusal = first_refusal(candidate(box, tip))
    assert refusal is not None and refusal.conflicts == ["scripts/calc.py"]


def test_the_static_guard_comes_before_the_special_case_check(box: Sandbox) -> None:
    both = SPECIAL + "\n\nimport sys\n\n\ndef peek():\n    return sys._getframe(1).f_locals\n"
    refusal = first_refusal(candidate(box, branch(box, {"scripts/calc.py": both})))
    assert refusal is not None and refusal.reason.startswith("the static guard refused")


def test_the_factorys_check_is_last_and_refuses_a_spec_without_its_build(box: Sandbox) -> None:
    """A feature's own check, named in PRE_TEST_CHECKS and loaded by name: a person's
    SPEC.md with no deploy/ built from it is refused."""
    assert PRE_TEST_CHECKS[-1] == "evolution.factory.tree_check:deploy_matches_spec"
    tip = branch(box, {"SPEC.md": "hello\n"}, proposal=False)
    refusal = first_refusal(candidate(box, tip))
    assert refusal is not None and refusal.reason.startswith("deploy/ does not match SPEC.md")


def test_checks_are_loaded_by_name_only_when_a_candidate_gets_that_far(box: Sandbox) -> None:
    checks = ("evolution.gate.checks:protected_paths", "ratchet_no_such_module:check")
    refused = candidate(box, branch(box, {"tests/test_calc.py": ""}))
    assert first_refusal(refused, checks) is not None  # never imported the second
    honest = candidate(box, branch(box, {"scripts/calc.py": FIXED_CALC}))
    with pytest.raises(ModuleNotFoundError, match="ratchet_no_such_module"):
        first_refusal(honest, checks)
