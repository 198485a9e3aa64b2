"""A full run split over several sandboxed processes: the same verdicts as one process,
and no way for the code under test to make the parts add up to something else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_setup import (
    CALC,
    CALC_TESTS,
    FIXED_CALC,
    Sandbox,
    copy_sandbox,
    git_identity,
    make_sandbox,
)

from agent.errors import InvalidRun, UsageError
from evolution.gitrepo import GitRepo
from evolution.policy import Policy, parse_policy
from evolution.run.folder import RunFolder
from evolution.run.report import RunResult
from evolution.run.shards import TIMINGS_FILE, balance, load_timings, merge, run_suite
from evolution.sandbox.isolation import Isolation

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

# A suite with every outcome the gate distinguishes, spread over several files and a
# sub-folder, so that each process of a split run gets a mix.
MIXED = {
    "tests/test_a.py": """\
        import pytest
        from scripts.calc import add

        def test_passes():
            assert add(1, 1) == 2

        def test_fails():
            assert add(1, 1) == 3

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfails():
            assert 0

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_param(n):
            assert n != 2
        """,
    "tests/test_b.py": """\
        import unittest

        class TestSubs(unittest.TestCase):
            def test_one_subtest_fails(self):
                for n in range(3):
                    with self.subTest(n=n):
                        self.assertNotEqual(n, 1)

            def test_all_subtests_pass(self):
                for n in range(3):
                    with self.subTest(n=n):
                        self.assertGreaterEqual(n, 0)
        """,
    "tests/test_c.py": """\
        def test_subtests_fixture(subtests):
            for n in range(3):
                with subtests.test(msg="n", n=n):
                    assert n < 2
        """,
    "tests/test_d.py": """\
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("setup broke")

        def test_setup_error(broken):
            pass

        @pytest.fixture
        def leaky():
            yield
            raise RuntimeError("teardown broke")

        def test_teardown_error(leaky):
            pass
        """,
    "tests/test_e.py": "import no_such_module_anywhere\n\ndef test_never():\n    pass\n",
    "tests/sub/test_f.py": "def test_deep():\n    assert True\n",
}


def _suite(path: Path) -> tuple[Sandbox, str]:
    box = make_sandbox(path, record=False)
    return box, box.commit("a mixed suite", MIXED)


def _run(box: Sandbox, commit: str, workers: int, command: str = "python -m pytest") -> RunResult:
    repo = GitRepo(box.path)
    (repo.state_dir / TIMINGS_FILE).unlink(missing_ok=True)  # nothing known: always split
    with RunFolder(repo, commit) as run:
        policy = Policy(workers=workers, test_command=command)
        return run_suite(repo, policy, run, Isolation(sandboxed=True))


def test_a_split_run_gives_the_serial_run_s_outcomes(tmp_path: Path) -> None:
    box, commit = _suite(tmp_path / "repo")
    serial = _run(box, commit, 1)
    assert serial.owners is None
    assert serial.outcomes["tests/test_b.py::TestSubs::test_one_subtest_fails"] == "failed"
    assert serial.outcomes["tests/test_c.py::test_subtests_fixture"] == "failed"
    assert "tests/test_e.py" in serial.collector_errors
    for workers in (2, 3):
        split = _run(box, commit, workers)
        assert split.owners is not None and set(split.owners.values()) <= set(range(workers))
        assert split.outcomes == serial.outcomes
        assert split.failures.keys() == serial.failures.keys()
        assert split.collector_errors.keys() == serial.collector_errors.keys()
        assert split.exitcode == serial.exitcode == 1
    timings = load_timings(GitRepo(box.path))
    assert timings.wall_s is not None and "tests/sub/test_f.py" in timings.files


def test_a_test_command_that_names_its_files_splits_too(tmp_path: Path) -> None:
    """Each process drops the files another owns; a file named on the command line must
    still be found there (it was pytest's "not found" usage error in all but one)."""
    box, commit = _suite(tmp_path / "repo")
    named = "python -m pytest tests/test_a.py tests/test_b.py tests/sub/test_f.py"
    serial = _run(box, commit, 1, named)
    assert {n.split("::")[0] for n in serial.outcomes} == {
        "tests/test_a.py", "tests/test_b.py", "tests/sub/test_f.py"}
    split = _run(box, commit, 3, named)
    assert split.owners is not None and len(set(split.owners.values())) > 1
    assert split.outcomes == serial.outcomes


def test_the_gate_rejects_a_one_module_regression_with_workers(sandbox: Sandbox) -> None:
    sandbox.policy(workers=2)
    sandbox.commit("more tests", {
        "tests/test_more.py": "from scripts.calc import sub\n\ndef test_sub_more():\n"
                              "    assert sub(5, 2) == 3\n",
        "tests/test_other.py": "def test_other():\n    assert True\n",
    })  # fmt: skip
    assert sandbox.evolve("baseline", "record", "--reruns", "0").returncode == 0
    broken = CALC.replace("return a - b", "return a + b")
    sandbox.branch("evolve/break-sub", {"scripts/calc.py": broken}, proposal=True)

    code, report = sandbox.validate_json("evolve/break-sub", "--reruns", "0")

    assert code == 1, report
    assert {r["nodeid"] for r in report["regressions"]} == {
        "tests/test_calc.py::test_sub", "tests/test_more.py::test_sub_more"
    }  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_a_suite_configured_for_xdist_is_still_run_by_the_gate_s_own_processes(
    sandbox: Sandbox, workers: int
) -> None:
    """A repository whose pytest configuration distributes its tests with pytest-xdist
    (as this one's does) is judged like any other: the gate turns the distribution off
    in every process it starts, since its probe can only vouch for the process it is
    loaded in, not for xdist's workers."""
    sandbox.policy(workers=workers)
    sandbox.commit("the suite on every core", {"pytest.ini": "[pytest]\naddopts = -n 2\n"})
    sandbox.branch("evolve/fix-mul", {"scripts/calc.py": FIXED_CALC}, proposal=True)

    code, report = sandbox.validate_json("evolve/fix-mul", "--reruns", "0")

    assert code == 0, report
    assert report["newly_passing"] == ["tests/test_calc.py::test_mul"]


# -- the code under test against the split -------------------------------------------------

# Each runs while its worker imports the test module that uses it, and edits what that
# worker's probe will report about the split. They are people's branches (no static
# guard), so only the runtime checks stand in the way.
_FIND_PROBE = """
import gc as _gc

def _probe():
    for obj in _gc.get_objects():
        if type(obj).__name__ == "_Probe" and getattr(obj, "shard", None):
            return obj
    return None
"""

CLAIMS_ANOTHER_OWNER = CALC + _FIND_PROBE + """
_p = _probe()
if _p is not None:
    _p.files["tests/test_calc.py"] = (_p.shard[0] + 1) % _p.shard[1]
"""

TAKES_OVER_A_FILE = CALC + _FIND_PROBE + """
_p = _probe()
if _p is not None:
    _index, _count, _plan = _p.shard
    _p.shard = (_index, _count, {**_plan, "tests/zz/test_zz.py": _index})
"""

EXITS_IN_ONE_WORKER = CALC + """
import os as _os
_os._exit(0)
"""


@pytest.fixture(scope="module")
def split_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test file that imports the candidate, others that do not, one in a folder that
    pytest walks after importing it; split in two, those two on different workers.
    (Files in the same folder are all given their owner before any is imported.)
    Recorded once (per xdist worker), copied for each test."""
    with git_identity():
        box = make_sandbox(tmp_path_factory.mktemp("split") / "repo", record=False)
        box.policy(workers=2)
        box.commit("tests", {
            "tests/zz/test_zz.py": "def test_zz():\n    assert True\n",
            "tests/test_calc.py": CALC_TESTS,
            **{f"tests/test_n{i}.py": f"def test_n{i}():\n    assert True\n" for i in range(4)},
        })  # fmt: skip
        assert box.evolve("baseline", "record", "--reruns", "0").returncode == 0
    return box.path


@pytest.fixture
def split_box(split_template: Path, tmp_path: Path) -> Sandbox:
    box = copy_sandbox(split_template, tmp_path / "repo")
    timings = GitRepo(box.path).state_dir / TIMINGS_FILE
    files = {"tests/test_calc.py": 1.0, "tests/zz/test_zz.py": 1.0, "tests/test_n0.py": 0.1}
    timings.write_text(json.dumps({"files": files}))
    return box


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        (CLAIMS_ANOTHER_OWNER, "from a file it does not own"),
        (TAKES_OVER_A_FILE, "the workers saw different test files"),
        (EXITS_IN_ONE_WORKER, "never reached its end-of-session record"),
    ],
    ids=["claims-another-owner", "takes-over-a-file", "exits-in-one-worker"],
)
def test_code_under_test_cannot_make_the_parts_add_up_wrong(
    split_box: Sandbox, attack: str, expected: str
) -> None:
    main = split_box.head()
    split_box.branch("feature", {"scripts/calc.py": attack})

    code, report = split_box.validate_json("feature", "--reruns", "0")

    assert code == 3, report
    assert expected in report["error"]
    assert split_box.head() == main


# -- the pieces ----------------------------------------------------------------------------


def _part(owners: dict[str, int], outcomes: dict[str, str], exitcode: int = 0) -> RunResult:
    return RunResult(outcomes=outcomes, exitcode=exitcode, owners=owners)


def test_merge_joins_parts_that_agree() -> None:
    owners = {"tests/test_a.py": 0, "tests/test_b.py": 1}
    merged = merge(
        [_part(owners, {"tests/test_a.py::t": "passed"}, 0),
         _part(owners, {"tests/test_b.py::t": "failed"}, 1)],
        2.5,
    )  # fmt: skip
    assert merged.outcomes == {"tests/test_a.py::t": "passed", "tests/test_b.py::t": "failed"}
    assert merged.exitcode == 1 and merged.duration_s == 2.5 and merged.owners == owners


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([_part({"a": 0}, {}), _part({"a": 1}, {})], "saw different test files"),
        ([_part({"a": 0}, {}), _part({"a": 0, "b": 1}, {})], "saw different test files"),
        ([_part({"a": 0}, {}), RunResult(outcomes={})], "saw different test files"),
        ([_part({"a": 0}, {"a::t": "passed"}), _part({"a": 0}, {"a::t": "passed"})],
         "a::t ran in two workers"),
    ],
)  # fmt: skip
def test_merge_refuses_parts_that_do_not_add_up(parts: list[RunResult], expected: str) -> None:
    with pytest.raises(InvalidRun, match=expected):
        merge(parts, 1.0)


def test_merge_keeps_no_tests_collected_only_when_no_part_ran_one() -> None:
    assert merge([_part({}, {}, 5), _part({}, {}, 5)], 1.0).exitcode == 5
    assert merge([_part({}, {}, 5), _part({}, {}, 0)], 1.0).exitcode == 0


def test_balance_puts_the_longest_files_first_on_the_least_loaded_worker() -> None:
    plan = balance({"a": 5.0, "b": 3.0, "c": 3.0, "d": 1.0, "e": 1.0}, 2)
    loads = [sum(s for f, s in {"a": 5, "b": 3, "c": 3, "d": 1, "e": 1}.items()
                 if plan[f] == w) for w in (0, 1)]  # fmt: skip
    assert sorted(loads) == [6, 7]


def test_an_unreadable_timings_file_means_nothing_is_known(sandbox: Sandbox) -> None:
    repo = GitRepo(sandbox.path)
    (repo.state_dir_ready() / TIMINGS_FILE).write_text("{not json")
    assert load_timings(repo).files == {} and load_timings(repo).wall_s is None


@pytest.mark.parametrize("value", ['"auto"', "1", "4"])
def test_workers_takes_auto_or_a_count(value: str) -> None:
    policy = parse_policy(f"[evolution]\nworkers = {value}\n", "agent.toml")
    assert policy.worker_count() >= 1
    assert policy.digest() == Policy().digest()  # the count never changes a verdict


@pytest.mark.parametrize("value", ["0", '"two"', "true", "-1"])
def test_a_bad_workers_value_names_its_line(value: str) -> None:
    with pytest.raises(UsageError, match=r"agent.toml:2: evolution.workers (must|has)"):
        parse_policy(f"[evolution]\nworkers = {value}\n", "agent.toml")
    with pytest.raises(UsageError, match="--workers"):
        Policy().with_overrides(workers="none")
