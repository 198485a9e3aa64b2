"""Confirming a regression: each round of re-runs is a fresh pytest session forked from a
warm server, apart from the rest of the suite and from the other rounds, on the staged
first stage's path and on the full run's. Real repositories, real sandboxed runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from repo_setup import Sandbox, copy_sandbox, double_failing_once, recorded_with_map

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

ALPHA = "def double(x):\n    return 2 * x\n"
FILES = {
    "scripts/alpha.py": ALPHA,
    "tests/test_alpha.py": "from scripts.alpha import double\n\n"
    + "".join(f"def test_double_{n}():\n    assert double({n}) == {2 * n}\n\n" for n in range(3)),
    "tests/test_other.py": "".join(f"def test_other_{n}():\n    pass\n\n" for n in range(12)),
}
STAGES = {"staged": (), "whole suite": ("--no-staged",)}

# Fails on the first call in a session that finds no marker in its tmp folder, and
# leaves one there: a round that saw an earlier round's tmp/ would pass.
FIRST_IN_ITS_TMP = double_failing_once("TMPDIR")

# double(0) is wrong and leaves the module broken for the calls after it in the same
# session: test_double_1 and _2 fail only beside test_double_0, another suspect.
BREAKS_WHAT_FOLLOWS = """\
BROKEN = []

def double(x):
    if x == 0:
        BROKEN.append(1)
        return 1
    return 2 * x + len(BROKEN)
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recorded repository with its map (one process), copied for each test."""
    return recorded_with_map(tmp_path_factory.mktemp("confirm") / "repo", FILES)


@pytest.fixture
def box(template: Path, tmp_path: Path) -> Sandbox:
    return copy_sandbox(template, tmp_path / "repo")


def regressions(report: dict) -> set[str]:
    return {r["nodeid"] for r in report["regressions"]}


@pytest.mark.parametrize("stage", STAGES)
def test_a_re_run_never_sees_what_an_earlier_run_left_in_its_tmp_folder(
    box: Sandbox, stage: str
) -> None:
    box.branch("feature", {"scripts/alpha.py": FIRST_IN_ITS_TMP})  # a person's branch

    code, report = box.validate_json("feature", "--reruns", "2", *STAGES[stage])

    # Whichever test ran first failed, and failed again in each fresh round: a
    # regression, not flaky (re-runs that shared tmp/ would have passed, and excused it).
    assert code == 1, report
    assert report["stage"] == ("first" if stage == "staged" else "full"), report
    assert len(regressions(report)) == 1 and not report["flaky"], report


@pytest.mark.parametrize("stage", STAGES)
def test_a_test_that_fails_only_beside_another_suspect_is_still_a_regression(
    box: Sandbox, stage: str
) -> None:
    box.branch("feature", {"scripts/alpha.py": BREAKS_WHAT_FOLLOWS})

    code, report = box.validate_json("feature", "--reruns", "2", *STAGES[stage])

    assert code == 1, report
    assert not report["flaky"], report
    if stage == "staged":
        # The first stage stops at its first regression, test_double_0 (confirmed alone,
        # in each round): the two that would fail after it never ran.
        assert regressions(report) == {"tests/test_alpha.py::test_double_0"}, report
        assert report["stage"] == "first" and report["tests_run"] == 1, report
    else:
        # The suspects are re-run together, apart from the rest of the suite: the two
        # that fail only after test_double_0 fail in every round beside it.
        assert regressions(report) == {f"tests/test_alpha.py::test_double_{n}" for n in range(3)}


# Each session that imports it leaves a line in the shared folder; the first call of
# `double` in a folder without the marker is wrong (a test that fails once, then passes).
COUNTED = (
    "import os\nimport pathlib\n\n"
    "with open(pathlib.Path(os.environ['FLAKY_DIR']) / 'sessions', 'a') as log:\n"
    "    log.write('x\\n')\n\n"
) + double_failing_once("FLAKY_DIR").split("\n\n\n", 1)[1]


@pytest.mark.parametrize("automated", [True, False])
def test_a_re_run_is_made_only_where_its_pass_can_change_the_verdict(
    box: Sandbox, shared_dir: Path, automated: bool
) -> None:
    box.policy(workers=1, shared=[str(shared_dir)])
    box.branch("evolve/once", {"scripts/alpha.py": COUNTED}, proposal=automated)

    code, report = box.validate_json("evolve/once", "--reruns", "2",
                                     env={"FLAKY_DIR": str(shared_dir)})  # fmt: skip

    sessions = len((shared_dir / "sessions").read_text().splitlines())
    if automated:
        # A pass on re-run would excuse nothing (an automated proposal's new flakiness
        # is its own): rejected by the first stage with no re-run made.
        assert code == 1 and report["stage"] == "first", report
        assert sessions == 1 and not report["flaky"], report
    else:
        # A person's: its re-run passed, so it is flaky and excused; the full run holds.
        assert code == 0 and report["stage"] == "full", report
        assert sessions == 3, report  # the first stage, its one re-run, the full run
