"""The safety net never starves the loop (issue 23, item 4): a suite that does not fit
in the run's budget is judged in installments kept across runs, so each later run makes
progress instead of being killed at the same point; what a run is expected to take is
derived from the last full run, and a kept part is trusted only if the gate wrote it.

Real repositories, real sandboxed pytest runs through `evolve validate --post-merge`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_setup import Sandbox
from test_safety_net import note

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

# Three files of tests that take a while each: with one process, a run that has eight
# seconds cannot be sure to hold them all (the expectation adds a margin and start-up).
SLOW = {
    f"tests/test_slow_{name}.py": (
        "import time\n\n\n"
        f"def test_{name}_takes_a_while():\n"
        "    time.sleep(0.5)\n"
        "    assert True\n"
    )
    for name in ("a", "b", "c")
}


def post_merge(box: Sandbox, *args: str) -> tuple[int, dict]:
    done = box.evolve("safety-net", "--json", *args, timeout=300)
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(done.stdout + done.stderr) from None


def slow_suite(box: Sandbox) -> None:
    """The slow tests, one process, recorded: the record measures the suite's wall time."""
    box.policy(workers=1)
    box.commit("slow tests", SLOW)
    recorded = box.evolve("baseline", "record", "--reset", "--reruns", "0")
    assert recorded.returncode == 0, recorded.stderr


def installments(box: Sandbox, budget: str, between=lambda: None) -> list[dict]:
    """Run the safety net until it is finished, as later ticks would; its reports."""
    reports: list[dict] = []
    for _ in range(12):
        code, report = post_merge(box, "--budget-s", budget)
        reports.append(report)
        if report["status"] != "unfinished":
            return reports
        assert code == 1, report  # main is not verified yet: what depends on it waits
        between()
    raise AssertionError(f"no end after {len(reports)} runs: {reports}")


def test_a_suite_longer_than_the_budget_is_judged_over_several_runs(sandbox: Sandbox):
    slow_suite(sandbox)
    person = sandbox.commit("a note", {"scripts/note.py": "NOTE = 1\n"})

    reports = installments(sandbox, "8")

    unfinished = [r for r in reports if r["status"] == "unfinished"]
    assert unfinished, reports  # the budget could not hold the suite with its margin
    done = [r["parts"][0] for r in unfinished]
    total = unfinished[0]["parts"][1]
    assert all(r["parts"][1] == total for r in unfinished)  # one layout, kept
    assert done == sorted(set(done)) and done[0] >= 1, done  # every run made progress
    final = reports[-1]
    # Every part ran: a part missing would leave its tests missing, a regression.
    assert final["status"] == "passing", final
    assert (final["regressions"], final["incidents"]) == ([], [])
    assert "Evolve-Verdict: validated" in note(sandbox, person)


def test_without_a_budget_the_suite_runs_whole(sandbox: Sandbox):
    # Outside an agent task, and without --budget-s, there is no deadline to plan for.
    slow_suite(sandbox)
    sandbox.commit("a note", {"scripts/note.py": "NOTE = 1\n"})
    code, report = post_merge(sandbox)
    assert (code, report["status"], report["parts"]) == (0, "passing", [])


def test_a_person_s_breaking_commit_is_found_through_installments(sandbox: Sandbox):
    slow_suite(sandbox)
    broken = sandbox.commit(
        "speed up test b", {"tests/test_slow_b.py": SLOW["tests/test_slow_b.py"].replace(
            "assert True", "assert False")}
    )  # fmt: skip

    final = installments(sandbox, "8")[-1]

    assert final["status"] == "incident", final
    [incident] = final["incidents"]
    assert incident["kind"] == "person-commit" and incident["culprit"] == broken
    assert incident["tests"] == ["tests/test_slow_b.py::test_b_takes_a_while"]


def test_a_forged_part_is_not_trusted(sandbox: Sandbox):
    # Whatever can write the gate's state folder between two runs (it is not the suite:
    # the sandbox hides it) rewrites the kept parts to say a test failed. Parts are
    # signed like verdicts: the forged ones are dropped and run again.
    slow_suite(sandbox)
    sandbox.commit("a note", {"scripts/note.py": "NOTE = 1\n"})
    verdicts = Path(sandbox.path) / ".git" / "evolve" / "verdicts"
    forged: list[Path] = []

    def forge() -> None:
        for kept in [] if forged else verdicts.glob("*-part-*.json"):
            forged.append(kept)
            mac, _, payload = kept.read_bytes().partition(b"\n")
            data = json.loads(payload)
            outcomes = data["result"]["outcomes"]
            for nodeid in outcomes:
                outcomes[nodeid] = "failed"
            kept.write_bytes(mac + b"\n" + json.dumps(data, sort_keys=True).encode())

    reports = installments(sandbox, "8", between=forge)

    assert forged, reports
    assert reports[-1]["status"] == "passing", reports[-1]
