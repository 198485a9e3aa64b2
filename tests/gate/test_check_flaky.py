"""The flaky policy of `evolve check` across runners, through real sandboxed runs.

Two outcomes for one test on one tree mean flaky, as merge queues define it: from the
gate's own re-runs inside one part, or from a part and its retry on another runner
(`--combine ... --retry`). The honest look-alikes and the cheats side by side:
- a baseline-passing test that fails, then passes on a retry, is flaky: accepted and
  quarantined under the `quarantine` policy, a regression under `strict`;
- a test new in the candidate that flips is never excused: not passing, not flaky;
- a quarantined test that fails in its part, its re-runs and its retry is broken, a
  regression; one that still passes somewhere is excused.

The flaky tests fail on a first run only (`repo_setup.FLAKY_TEST`, `NEW_FLAKY_TEST`: a
marker in a folder the policy lets the sandboxed suite write), so each scenario sets
the markers before each run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_setup import (
    BROKEN_CLOCK,
    CLOCK,
    FLAKY_TEST,
    NEUTRAL_CLOCK,
    NEW_FLAKY_TEST,
    Sandbox,
    make_sandbox,
)

pytestmark = pytest.mark.e2e

FLAKY = "tests/test_clock.py::test_ticks_sometimes"
NEW = "tests/test_new.py::test_new_and_flaky"
class Runs:
    """A repository whose suite holds FLAKY, and `evolve check` on it with one flaky
    test's marker (`flipping`) set (`seen`: it passes) or cleared (it fails once) before
    each run; the other's is set."""

    def __init__(self, box: Sandbox, folder: Path) -> None:
        self.box, self.folder = box, folder
        self.env = {"FLAKY_DIR": str(folder)}
        self.flipping = "seen"  # FLAKY's marker; "new-seen" is NEW's

    def marker(self, seen: bool) -> None:
        for name in ("seen", "new-seen"):
            marker = self.folder / name
            if seen or name != self.flipping:
                marker.write_text("seen")
            else:
                marker.unlink(missing_ok=True)

    def check(self, commit: str, *args: str, seen: bool = False) -> tuple[int, dict]:
        self.marker(seen)
        done = self.box.evolve("check", "--commit", commit, "--json", *args, env=self.env)
        assert done.returncode in (0, 1, 3), done.stderr
        return done.returncode, json.loads(done.stdout)

    def parts(self, commit: str, tag: str, holding: str, *, seen: bool) -> tuple[list[str], int]:
        """`commit` in two parts with no re-runs; the part files and the index (from 1)
        of the one that ran `holding`, which ran with the marker as `seen` says."""
        files = []
        for index in (1, 2):
            out = str(self.folder.parent / f"{tag}-{index}.json")
            self.check(commit, "--shard", f"{index}/2", "--out", out, "--reruns", "0", seen=seen)
            files.append(out)
        ran = [json.loads(Path(f).read_text())["body"]["result"]["outcomes"] for f in files]
        holder = next(i for i, outcomes in enumerate(ran, 1) if holding in outcomes)
        return files, holder

    def retry(self, commit: str, tag: str, index: int, *, seen: bool) -> str:
        out = str(self.folder.parent / f"{tag}-retry-{index}.json")
        self.check(commit, "--shard", f"{index}/2", "--out", out, "--reruns", "0", seen=seen)
        return out

    def combine(self, commit: str, files: list[str], *retries: str) -> tuple[int, dict]:
        args = [a for path in retries for a in ("--retry", path)]
        # The parts' policy options, as every job of a check must share them.
        return self.check(commit, "--combine", *files, *args, "--reruns", "0", seen=True)


def _repo(tmp_path: Path, shared_dir: Path, *, quarantine: bool) -> Runs:
    box = make_sandbox(tmp_path / "repo", record=False)
    box.policy(shared=[str(shared_dir)])
    box.commit("a clock and its flaky test",
               {"scripts/clock.py": CLOCK, "tests/test_clock.py": FLAKY_TEST})  # fmt: skip
    runs = Runs(box, shared_dir)
    runs.marker(seen=not quarantine)  # cleared: the recording sees it flaky, quarantines it
    done = box.evolve("baseline", "record", "--reruns", "2", env=runs.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (FLAKY in box.baseline()["flaky"]) == quarantine
    return runs


@pytest.fixture
def plain(tmp_path: Path, shared_dir: Path) -> Runs:
    """FLAKY passes in the baseline and is not quarantined."""
    return _repo(tmp_path, shared_dir, quarantine=False)


@pytest.fixture
def quarantined(tmp_path: Path, shared_dir: Path) -> Runs:
    """FLAKY is quarantined in the baseline, with its evidence."""
    return _repo(tmp_path, shared_dir, quarantine=True)


def test_a_test_that_fails_then_passes_on_a_retry_is_flaky(plain: Runs) -> None:
    tip = plain.box.branch("docs", {"scripts/clock.py": NEUTRAL_CLOCK})
    # Inside one run: the gate's own re-runs (the whole suite at once: a first stage
    # would run the flaky test before the full run does).
    code, verdict = plain.check(tip, "--reruns", "2", "--no-staged")
    assert code == 0, verdict
    assert list(verdict["flaky"]) == [FLAKY] and verdict["regressions"] == []
    assert verdict["flaky"][FLAKY]["outcomes"] == ["failed", "passed"]
    code, verdict = plain.check(tip, "--reruns", "2", "--no-staged", "--flaky", "strict")
    assert code == 1 and [r["nodeid"] for r in verdict["regressions"]] == [FLAKY]
    # Across runners: the part failed it (no re-runs), its retry on another runner passed.
    files, holder = plain.parts(tip, "docs", FLAKY, seen=False)
    code, verdict = plain.combine(tip, files)
    assert code == 1 and [r["nodeid"] for r in verdict["regressions"]] == [FLAKY]
    retry = plain.retry(tip, "docs", holder, seen=True)
    code, verdict = plain.combine(tip, files, retry)
    assert code == 0, verdict
    assert list(verdict["flaky"]) == [FLAKY]
    assert verdict["flaky"][FLAKY]["outcomes"] == ["failed", "passed"]


def test_a_new_test_that_flips_is_never_excused(plain: Runs) -> None:
    tip = plain.box.branch("new-test", {"tests/test_new.py": NEW_FLAKY_TEST})
    plain.flipping = "new-seen"  # FLAKY passes throughout; NEW flips
    files, holder = plain.parts(tip, "new", NEW, seen=False)
    retry = plain.retry(tip, "new", holder, seen=True)
    code, verdict = plain.combine(tip, files, retry)
    assert code == 0, verdict  # a new test may fail: it never passed
    assert NEW not in verdict["newly_passing"] and NEW not in verdict["flaky"]
    assert [r["nodeid"] for r in verdict["new_failing"]] == [NEW]
    assert verdict["outcomes"][NEW] == "failed"
    # Passing first and failing on the retry does not make it pass either.
    files, holder = plain.parts(tip, "new-then", NEW, seen=True)
    retry = plain.retry(tip, "new-then", holder, seen=False)
    code, verdict = plain.combine(tip, files, retry)
    assert code == 0, verdict
    assert NEW not in verdict["newly_passing"] and verdict["outcomes"][NEW] == "failed"
    assert [r["nodeid"] for r in verdict["new_failing"]] == [NEW]


def test_a_quarantined_test_failing_in_every_part_and_retry_is_a_regression(
    quarantined: Runs,
) -> None:
    runs = quarantined
    broken = runs.box.branch("broken", {"scripts/clock.py": BROKEN_CLOCK})
    files, holder = runs.parts(broken, "broken", FLAKY, seen=True)
    retry = runs.retry(broken, "broken", holder, seen=False)
    code, verdict = runs.combine(broken, files, retry)
    assert code == 1, verdict
    assert verdict["broken_quarantined"] == [FLAKY]
    assert "broken, not flaky" in verdict["regressions"][0]["first_line"]
    # The look-alike: a neutral change, under which it fails once and then passes.
    neutral = runs.box.branch("neutral", {"scripts/clock.py": NEUTRAL_CLOCK})
    files, holder = runs.parts(neutral, "neutral", FLAKY, seen=False)
    retry = runs.retry(neutral, "neutral", holder, seen=True)
    code, verdict = runs.combine(neutral, files, retry)
    assert code == 0, verdict
    assert verdict["quarantined_failures"] == [FLAKY] and verdict["regressions"] == []
