"""Broken is not flaky (invariant 17), through the real gate.

A test quarantined as flaky on main is excused only when it passes in one of its
re-runs: an automated proposal that makes it fail every time is rejected, while a
proposal under which it is still merely flaky (it fails once, then passes) is accepted.
A quarantine entry carries its evidence and an expiry; an expired one excuses nothing.
A test new in the candidate is never excused as flaky: it is recorded as it ran.

The flaky test fails on a first run only: it leaves a marker in a folder the policy
lets the sandboxed suite write (`shared`), and passes while the marker is there. Each
scenario removes the marker first, so that the gate's own run fails and its re-runs see
the marker.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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

from evolution.baseline import Baseline, quarantined
from evolution.policy import Policy
from evolution.ratchet import worth_confirming

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

FLAKY = "tests/test_clock.py::test_ticks_sometimes"


class Flaky:
    def __init__(self, box: Sandbox, folder: Path) -> None:
        self.box, self.folder = box, folder
        self.env = {"FLAKY_DIR": str(folder)}

    def validate(self, branch: str, *args: str) -> tuple[int, dict]:
        """`evolve validate` with the flaky test set to fail on the gate's first run."""
        (self.folder / "seen").unlink(missing_ok=True)
        return self.box.validate_json(branch, "--reruns", "2", *args, env=self.env)


@pytest.fixture
def flaky(tmp_path: Path, shared_dir: Path) -> Flaky:
    """A repository whose baseline, recorded by the gate, quarantines FLAKY."""
    box = make_sandbox(tmp_path / "repo", record=False)
    box.policy(shared=[str(shared_dir)])
    box.commit("a clock and its flaky test",
               {"scripts/clock.py": CLOCK, "tests/test_clock.py": FLAKY_TEST})  # fmt: skip
    done = box.evolve("baseline", "record", "--reruns", "2", env={"FLAKY_DIR": str(shared_dir)})
    assert done.returncode == 0, done.stdout + done.stderr
    return Flaky(box, shared_dir)


def test_the_recorded_quarantine_entry_carries_its_evidence_and_an_expiry(flaky: Flaky) -> None:
    baseline = flaky.box.baseline()
    assert baseline["tests"][FLAKY] == "passed"
    entry = baseline["flaky"][FLAKY]
    assert entry["outcomes"] == ["failed", "passed"]
    assert (entry["passed"], entry["runs"]) == (1, 1)
    assert entry["commit"] == flaky.box.git("rev-parse", "main~1")  # the commit recorded
    assert "fails on a first run only" in entry["first_failure"]
    seen, expires = (datetime.fromisoformat(entry[k]) for k in ("seen", "expires"))
    assert expires - seen == timedelta(days=30)
    shown = flaky.box.evolve("baseline", "show")
    assert f"expires {entry['expires']}" in shown.stdout, shown.stdout


def test_a_proposal_that_breaks_a_quarantined_test_for_good_is_rejected(flaky: Flaky) -> None:
    box = flaky.box
    main = box.head()
    box.branch("evolve/clock-broken", {"scripts/clock.py": BROKEN_CLOCK}, proposal=True)
    code, report = flaky.validate("evolve/clock-broken")
    assert code == 1, report
    assert report["verdict"] == "rejected" and not report["merged"]
    assert [r["nodeid"] for r in report["regressions"]] == [FLAKY]
    assert report["broken_quarantined"] == [FLAKY]
    assert report["quarantined_failures"] == []
    first_line = report["regressions"][0]["first_line"]
    assert "broken, not flaky (last re-run: assert 4 == 3)" in first_line, first_line
    assert box.head() == main
    note = box.git("notes", "--ref=evolve", "show", "refs/evolve/rejected/evolve-clock-broken")
    assert "broken, not flaky" in note and "assert 4 == 3" in note, note


def test_a_proposal_under_which_a_quarantined_test_is_still_flaky_is_accepted(
    flaky: Flaky,
) -> None:
    box = flaky.box
    entry = box.baseline()["flaky"][FLAKY]
    box.branch("evolve/clock-doc", {"scripts/clock.py": NEUTRAL_CLOCK}, proposal=True)
    code, report = flaky.validate("evolve/clock-doc")
    assert code == 0 and report["merged"], report
    assert report["quarantined_failures"] == [FLAKY]
    assert report["regressions"] == [] and report["broken_quarantined"] == []
    assert box.baseline()["flaky"] == {FLAKY: entry}  # the same evidence, the same expiry


def _expire(box: Sandbox) -> None:
    """A person's commit on main that moves the quarantine entry's expiry into the past."""
    text = box.git("show", "main:baseline/baseline.json")
    data = json.loads(text)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
    old = json.dumps(data["flaky"][FLAKY], sort_keys=True)
    new = json.dumps({**data["flaky"][FLAKY], "expires": past}, sort_keys=True)
    box.commit("the quarantine of test_ticks_sometimes has run out",
               {"baseline/baseline.json": text.replace(old, new) + "\n"})  # fmt: skip


def test_an_expired_quarantine_excuses_nothing(flaky: Flaky) -> None:
    box = flaky.box
    _expire(box)
    box.branch("evolve/clock-doc", {"scripts/clock.py": NEUTRAL_CLOCK}, proposal=True)
    code, report = flaky.validate("evolve/clock-doc", "--no-merge")
    # Flaky still, but nothing excuses it: an automated proposal's flakiness never is.
    assert code == 1, report
    assert report["expired_quarantine"] == [FLAKY]
    assert [r["nodeid"] for r in report["regressions"]] == [FLAKY]
    # A person's commit is judged as before an entry existed: seen flaky again, it is
    # quarantined afresh, with new evidence and a new expiry.
    box.branch("clock-doc", {"scripts/clock.py": NEUTRAL_CLOCK})
    code, report = flaky.validate("clock-doc")
    assert code == 0 and report["merged"], report
    entry = box.baseline()["flaky"][FLAKY]
    assert datetime.fromisoformat(entry["expires"]) > datetime.now(UTC) + timedelta(days=29)
    # The evidence of the run that judged this tree: run anew, since the proposal's
    # cached verdict of the same tree made no re-run (none could excuse a proposal).
    assert entry["tree"] == report["tested_tree"] and entry["runs"] == 1
    assert not report["cached"], report


def test_a_test_new_in_the_candidate_is_never_excused_as_flaky(flaky: Flaky) -> None:
    box = flaky.box
    new = "tests/test_new.py::test_new_and_flaky"
    (flaky.folder / "new-seen").unlink(missing_ok=True)
    box.branch("new-test", {"tests/test_new.py": NEW_FLAKY_TEST})
    code, report = flaky.validate("new-test")
    assert code == 0 and report["merged"], report  # a new test may fail: it never passed
    assert [r["nodeid"] for r in report["new_failing"]] == [new]
    assert new not in report["flaky"] and new not in report["quarantined_failures"]
    baseline = box.baseline()
    assert baseline["tests"][new] == "failed"  # never re-run into a pass
    assert new not in baseline["flaky"]


@pytest.mark.parametrize(
    ("automated", "flaky_policy", "picked", "confirmed"),
    [
        (True, "quarantine", ["t::plain"], []),  # new flakiness excuses nothing: not paid for
        (True, "quarantine", ["t::plain", "t::quarantined"], ["t::quarantined"]),  # flaky?
        (True, "quarantine", ["t::expired"], []),  # an expired entry excuses nothing
        (True, "strict", ["t::quarantined"], []),  # strict excuses nothing
        (False, "strict", ["t::plain"], ["t::plain"]),  # counts, but the report says flaky
        (False, "quarantine", ["t::plain", "t::expired"], ["t::plain", "t::expired"]),
    ],
)
def test_a_suspect_is_re_run_only_where_a_pass_can_change_the_verdict(
    automated: bool, flaky_policy: str, picked: list[str], confirmed: list[str]
) -> None:
    """The gate's runs and the safety net's search for a cause alike: a quarantined test
    that fails once must get its re-runs (without them it would count as broken, and a
    bisection would blame the flake on a commit); an automated proposal's other newly
    failing tests are regressions whatever a re-run shows, so none is made."""
    now = datetime.now(UTC)
    entry = {"seen": now.isoformat(timespec="seconds"), "passed": 1, "runs": 1}
    baseline = Baseline(
        commit="c", tree="t", recorded_at=entry["seen"],
        tests=dict.fromkeys(["t::plain", "t::quarantined", "t::expired"], "passed"),
        flaky={"t::quarantined": quarantined(entry, entry["seen"]),
               "t::expired": {**entry, "expires": (now - timedelta(days=1)).isoformat()}},
    )  # fmt: skip
    policy = Policy(flaky=flaky_policy)
    when = now.isoformat(timespec="seconds")
    assert worth_confirming(baseline, picked, policy, automated=automated, now=when) == confirmed
