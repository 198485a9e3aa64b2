"""The staged verdict: the tests tied to a change run first and may only reject; the full
suite decides everything else. Real repositories, real sandboxed runs under coverage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_setup import Sandbox, copy_sandbox, double_failing_once, recorded_with_map

from evolution.gate.testmap import (
    MAP_FILE,
    MAX_COMMITS,
    REFRESH_COMMITS,
    CoverageMap,
    MapState,
    load,
    save,
)
from evolution.gitrepo import GitRepo

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

ALPHA = "def double(x):\n    return 2 * x\n"
BETA = "def square(x):\n    return x * x\n"
FILES = {
    "scripts/alpha.py": ALPHA,
    "scripts/beta.py": BETA,
    "tests/test_alpha.py": "from scripts.alpha import double\n\n"
    + "".join(f"def test_double_{n}():\n    assert double({n}) == {2 * n}\n\n" for n in range(3)),
    "tests/test_beta.py": "from scripts.beta import square\n\n"
    + "".join(f"def test_square_{n}():\n    assert square({n}) == {n * n}\n\n" for n in range(3)),
    "tests/test_other.py": "".join(f"def test_other_{n}():\n    pass\n\n" for n in range(12)),
}
ALPHA_TESTS = {f"tests/test_alpha.py::test_double_{n}" for n in range(3)}


@pytest.fixture(scope="module")
def staged_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three source modules' worth of tests, recorded with its map; one process. Recorded
    once (per xdist worker), copied for each test."""
    return recorded_with_map(tmp_path_factory.mktemp("staged") / "repo", FILES)


@pytest.fixture
def staged(staged_template: Path, tmp_path: Path) -> Sandbox:
    return copy_sandbox(staged_template, tmp_path / "repo")


def test_baseline_record_keeps_a_map_from_files_to_the_tests_that_ran_them(
    staged: Sandbox,
) -> None:
    test_map = load(GitRepo(staged.path))
    assert test_map is not None
    assert test_map.commit == staged.git("rev-parse", "main^")  # the recorded commit
    assert test_map.covers["scripts/alpha.py"] == ALPHA_TESTS
    assert "tests/test_other.py::test_other_0" not in test_map.covers.get("scripts/beta.py", ())


def test_a_regression_in_one_module_is_rejected_by_the_first_stage(staged: Sandbox) -> None:
    main = staged.head()
    staged.branch("evolve/break", {"scripts/alpha.py": ALPHA.replace("2 * x", "2 + x")},
                  proposal=True)  # fmt: skip

    done = staged.evolve("validate", "evolve/break", "--reruns", "1", "--json")

    report = json.loads(done.stdout)
    assert done.returncode == 1, report
    assert report["stage"] == "first" and report["first_tests"] == 3
    # The first stage stopped at its first regression: the rest of its tests never ran,
    # nor did the other 18.
    assert report["tests_run"] == 1
    (regression,) = report["regressions"]
    assert regression["nodeid"] in ALPHA_TESTS - {
        "tests/test_alpha.py::test_double_2"  # 2 + 2 == 2 * 2
    }
    assert "commit" in report["test_map"] and "old" in report["test_map"]
    assert staged.head() == main
    note = staged.git("notes", "--ref=evolve", "show", "refs/evolve/rejected/evolve-break")
    assert "Evolve-Verdict: rejected" in note


def test_only_the_full_suite_accepts(staged: Sandbox) -> None:
    staged.branch("evolve/beta", {"scripts/beta.py": BETA + "\n\nCUBE = 3\n"}, proposal=True)

    code, report = staged.validate_json("evolve/beta", "--reruns", "0")

    assert code == 0, report
    assert report["stage"] == "full" and report["first_tests"] == 3
    assert report["tests_run"] == 21 and report["merged"]


# The first run of a test fails; its re-runs pass. The marker is in a folder the policy
# shares with the suite: each re-run is a fresh session with its tmp/ emptied.
FLAKY_ALPHA = double_failing_once("FLAKY_DIR")


def test_a_regression_its_re_runs_do_not_confirm_goes_on_to_the_full_suite(
    staged: Sandbox, shared_dir: Path
) -> None:
    staged.policy(workers=1, shared=[str(shared_dir)])
    staged.branch("feature", {"scripts/alpha.py": FLAKY_ALPHA})  # a person's branch

    code, report = staged.validate_json("feature", "--reruns", "1",
                                        env={"FLAKY_DIR": str(shared_dir)})  # fmt: skip

    # Its re-run passed, so the first stage did not decide; the full run (whose first
    # run of the test is no longer the folder's first) accepts.
    assert report["stage"] == "full" and report["first_tests"] == 3, report
    assert code == 0, report


def test_without_a_usable_map_there_is_no_first_stage_and_the_full_run_makes_one(
    staged: Sandbox,
) -> None:
    repo = GitRepo(staged.path)
    (repo.state_dir / MAP_FILE).unlink()
    staged.branch("evolve/break", {"scripts/alpha.py": ALPHA.replace("2 * x", "3 * x")},
                  proposal=True)  # fmt: skip

    code, report = staged.validate_json("evolve/break", "--reruns", "0")

    assert code == 1 and report["stage"] == "full" and report["tests_run"] == 21
    assert report["test_map"] == "no map" and load(repo) is None  # a rejected run keeps none

    staged.branch("evolve/ok", {"scripts/beta.py": BETA + "\n# tidy\n"}, proposal=True)
    code, report = staged.validate_json("evolve/ok", "--reruns", "0")
    assert code == 0 and report["test_map"] == "no map; refreshed by this run"
    refreshed = load(repo)
    assert refreshed is not None and refreshed.covers["scripts/alpha.py"] == ALPHA_TESTS


def test_a_refresh_maps_again_only_the_tests_a_change_since_can_have_moved(
    staged: Sandbox,
) -> None:
    """testmon's incremental update, by file: the stored map says alpha's tests also ran
    `scripts/zeta.py` and beta's ran `scripts/stale.py` (neither is true). The candidate
    changes beta.py (which now calls a new module) and adds a test; on the refreshing
    run only beta's tests and the new one are mapped again: beta's entries are the run's,
    alpha's are carried over as the map held them, fiction included."""
    repo = GitRepo(staged.path)
    old = load(repo)
    assert old is not None
    covers = dict(old.covers)
    covers["scripts/zeta.py"] = frozenset({"tests/test_alpha.py::test_double_0"})
    covers["scripts/stale.py"] = frozenset({"tests/test_beta.py::test_square_0"})
    save(repo, CoverageMap(old.commit, old.recorded_at, old.tests, covers))
    head, tree = staged.head(), staged.git("rev-parse", "main^{tree}")
    for n in range(REFRESH_COMMITS):  # old enough to refresh
        head = staged.git("commit-tree", tree, "-p", head, "-m", f"commit {n}")
    staged.git("update-ref", "refs/heads/main", head)
    staged.branch("feature", {
        "scripts/gamma.py": "def times(x, y):\n    return x * y\n",
        "scripts/beta.py": "from scripts.gamma import times\n\n\ndef square(x):\n"
                           "    return times(x, x)\n",
        "tests/test_new.py": "def test_new():\n    pass\n",
    })  # fmt: skip

    code, report = staged.validate_json("feature", "--reruns", "0")

    assert code == 0 and report["test_map"].endswith("refreshed by this run"), report
    new = load(repo)
    assert new is not None and new.commit != old.commit
    beta = {f"tests/test_beta.py::test_square_{n}" for n in range(3)}
    assert new.covers["scripts/gamma.py"] == beta and new.covers["scripts/beta.py"] == beta
    assert "scripts/stale.py" not in new.covers  # beta's tests were mapped again
    assert new.covers["scripts/zeta.py"] == {"tests/test_alpha.py::test_double_0"}  # kept
    assert new.covers["scripts/alpha.py"] == ALPHA_TESTS
    assert "tests/test_new.py::test_new" in new.tests


def test_a_map_from_another_history_is_not_used(staged: Sandbox) -> None:
    repo = GitRepo(staged.path)
    path = repo.state_dir / MAP_FILE
    data = json.loads(path.read_text())
    staged.git("switch", "-q", "--orphan", "elsewhere")
    data["commit"] = staged.commit("unrelated", {"x.txt": "x\n"})
    staged.git("switch", "-q", "main")
    path.write_text(json.dumps(data))
    staged.branch("evolve/break", {"scripts/alpha.py": ALPHA.replace("2 * x", "3 * x")},
                  proposal=True)  # fmt: skip

    code, report = staged.validate_json("evolve/break", "--reruns", "0")

    assert code == 1 and report["stage"] == "full"
    assert report["test_map"] == "a map not from main's history"


def test_the_policy_can_turn_the_first_stage_off(staged: Sandbox) -> None:
    staged.policy(workers=1, staged=False)
    staged.branch("evolve/break", {"scripts/alpha.py": ALPHA.replace("2 * x", "3 * x")},
                  proposal=True)  # fmt: skip
    code, report = staged.validate_json("evolve/break", "--reruns", "0")
    assert code == 1 and report["stage"] == "full" and report["first_tests"] == 0


def test_the_command_line_can_turn_the_first_stage_off_and_set_the_workers(
    staged: Sandbox,
) -> None:
    staged.branch("evolve/break", {"scripts/alpha.py": ALPHA.replace("2 * x", "3 * x")},
                  proposal=True)  # fmt: skip
    code, report = staged.validate_json("evolve/break", "--reruns", "0", "--no-staged",
                                        "--workers", "2")  # fmt: skip
    assert code == 1 and report["stage"] == "full", report
    assert report["tests_run"] == 21  # the whole suite, not the first stage's 3
    staged.branch("evolve/again", {"scripts/alpha.py": ALPHA.replace("2 * x", "4 * x")},
                  proposal=True)  # fmt: skip
    bad = staged.evolve("validate", "evolve/again", "--workers", "none", "--json")
    assert bad.returncode == 2
    assert "--workers" in json.loads(bad.stdout)["error"]


def test_the_first_stage_takes_covering_tests_changed_test_files_and_unmapped_tests() -> None:
    test_map = CoverageMap(
        commit="c",
        recorded_at="t",
        tests=frozenset({"t/test_a.py::x", "t/test_a.py::y", "t/test_b.py::z"}),
        covers={"src/a.py": frozenset({"t/test_a.py::x"})},
    )
    protected = {"t/test_a.py::x", "t/test_a.py::y", "t/test_b.py::z", "t/test_new.py::n"}
    assert test_map.first_tests(["src/a.py"], protected) == ["t/test_a.py::x", "t/test_new.py::n"]
    assert test_map.first_tests(["t/test_b.py"], protected) == [
        "t/test_b.py::z", "t/test_new.py::n"
    ]  # fmt: skip
    assert test_map.first_tests(["README.md"], protected - {"t/test_new.py::n"}) == []


def test_the_map_state_says_how_old_it_is() -> None:
    found = CoverageMap("c", "t", frozenset())
    assert MapState(None, None, True).describe() == "no map"
    assert MapState(found, 1, False).describe() == "map 1 commit old"
    assert MapState(found, 5, False).usable is found
    too_old = MapState(found, MAX_COMMITS + 1, True)
    assert too_old.usable is None and too_old.describe().endswith("too old to use")


def test_a_selection_naming_tests_the_tree_lacks_reads_them_as_missing(sandbox: Sandbox) -> None:
    """The selection path the first stage and the safety net's bisection share: a test
    gone from the tree (its function, or its whole file) is missing, a regression, and
    never an invalid run (pytest alone ends the whole run for a node id it cannot find)."""
    from evolution.baseline import Baseline
    from evolution.gate.staged import judge_selection
    from evolution.policy import Policy
    from evolution.run.folder import RunFolder
    from evolution.sandbox.isolation import choose

    repo, policy, head = GitRepo(sandbox.path), Policy(), sandbox.head()
    kept, gone, gone_file = (
        "tests/test_calc.py::test_add",
        "tests/test_calc.py::test_gone",
        "tests/test_gone.py::test_gone",
    )
    baseline = Baseline(head, "", "", {kept: "passed", gone: "passed", gone_file: "passed"})
    isolation = choose(policy, automated=False, unsandboxed=False)
    with RunFolder(repo, head) as run:
        judged = judge_selection(policy, run, isolation, baseline, repo.tree_of(head), "",
                                 automated=False)  # fmt: skip
    assert judged.result.outcomes == {kept: "passed"}
    assert [(r.nodeid, r.now) for r in judged.comparison.regressions] == [
        (gone, "missing"),
        (gone_file, "missing"),
    ]


def test_the_safety_net_never_pays_for_a_map_on_its_critical_path(staged: Sandbox) -> None:
    """On a fresh clone the safety net ran the whole suite under coverage because the map
    was due, and was killed at its timeout every tick (issue 23): it judges without one."""
    repo = GitRepo(staged.path)
    (repo.state_dir / MAP_FILE).unlink()
    staged.commit("a person's tidy-up", {"scripts/beta.py": BETA + "\n# tidy\n"})
    done = staged.evolve("safety-net", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "passing"
    assert load(repo) is None  # the gate's next full run that passes makes it
