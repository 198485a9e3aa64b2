"""The live run's pieces (benchmarks/live.py), each on something small.

The run itself is an hour of ticks on a fresh clone of this repository: a benchmark,
never a test. What it is made of is tried here cheaply: the operator's SPEC.md edit
(which the factory must accept), seeding a fault that a test sees and deleting a test
on a small repository, reading reverts and incidents out of `evolve log` entries,
counting lost ledger rows, finding what is left running, and the summary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import live_summary  # noqa: E402
import live_world as w  # noqa: E402

from agent.ledger import Ledger  # noqa: E402
from evolution.factory.spec import SpecError, parse_spec_text  # noqa: E402
from evolution.trail import format as t  # noqa: E402

SCRIPT = """\
def clamp(value, low, high):
    if value < low:
        return low
    if value > high:
        return high
    return value


def total(items):
    result = 0
    for item in items:
        result += item
    return result


def main(argv=None):
    return 0
"""
TESTS = """\
from scripts.calc import clamp, total


def test_clamp_below():
    assert clamp(-1, 0, 10) == 0


def test_clamp_above():
    assert clamp(11, 0, 10) == 10


def test_clamp_inside():
    assert clamp(5, 0, 10) == 5


def test_total():
    assert total([1, 2, 3]) == 6
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "scripts" / "calc.py").write_text(SCRIPT)
    (tmp_path / "tests" / "test_scripts_calc.py").write_text(TESTS)
    return tmp_path


def test_the_operators_spec_is_one_the_factory_accepts() -> None:
    spec = (REPO / "SPEC.md").read_text(encoding="utf-8")
    assert w.spec_cadence(spec, 60) == 1800  # the safety net's 1500 s timeout fits under it
    assert w.spec_cadence(spec, 1850) == 3600  # the next cadence cron can fire
    text, every = w.live_spec(spec, 60, 60)
    parsed = parse_spec_text(text)
    assert every == parsed.schedule.every_s == 1800
    [cycle] = [task for task in parsed.tasks if task.name == "evolve-cycle"]
    assert "--proposer mutate" in cycle.command and cycle.command.endswith("--json")
    assert cycle.every_s == 60
    assert w.live_spec(text, 60, 60) == (text, 1800)
    slow, every = w.live_spec(spec, 60, 60, long_timeout_s=1500, search_s=240)
    parsed = parse_spec_text(slow)  # the factory's own rules: timeouts under the cadence,
    assert every == parsed.schedule.every_s == 1800  # a silence window above it
    assert parsed.watchdog.max_silence_s == 3 * 1800
    [cycle] = [task for task in parsed.tasks if task.name == "evolve-cycle"]
    assert cycle.command.endswith("--proposer mutate --max-seconds 240 --json")
    assert {t.name: t.timeout_s for t in parsed.tasks if t.timeout_s == 1500} == {
        "safety-net": 1500,
        "evolve-cycle": 1500,
    }
    with pytest.raises(SpecError):
        parse_spec_text(text.replace("every_s = 1800", "every_s = 300"))
    with pytest.raises(ValueError):
        w.live_spec(spec.replace('"evolve-cycle"', '"cycle"'), 60, 60)


def test_the_install_command_is_the_readmes() -> None:
    assert w.INSTALL in (REPO / "README.md").read_text(encoding="utf-8")


def test_a_seeded_fault_makes_a_test_of_its_script_fail(small: Path) -> None:
    import random

    fault = w.seed_fault(small, sys.executable, random.Random(3), ["scripts/calc.py"], tries=20)
    assert fault is not None
    text = (small / "scripts" / "calc.py").read_text()
    assert text != SCRIPT and fault.original == SCRIPT
    assert text.splitlines()[fault.line - 1].strip() == fault.after != fault.before
    assert "def main(argv=None):\n    return 0" in text  # main() is never faulted
    assert w.repair_operator(text, fault.line, SCRIPT) == fault.operator != ""
    code, failing = w.pytest_failures(small, sys.executable, "tests/test_scripts_calc.py")
    assert code == 1 and failing == fault.failing
    assert all(nodeid.startswith("tests/test_scripts_calc.py::test_") for nodeid in failing)


def test_a_persons_break_takes_passing_tests_and_is_left_uncommitted(small: Path) -> None:
    import random

    passing = {
        f"tests/test_scripts_calc.py::test_{name}"
        for name in ("clamp_below", "clamp_above", "clamp_inside", "total")
    }
    change = w.person_change(
        small, sys.executable, random.Random(5), "break", ["scripts/calc.py"], passing
    )
    assert change is not None
    message, what, tests = change
    assert message == "calc: simplify" and what.startswith("scripts/calc.py:")
    assert tests and set(tests) <= passing
    assert (small / "scripts" / "calc.py").read_text() != SCRIPT
    assert w.person_change(small, sys.executable, random.Random(5), "break", [], passing) is None


def test_a_fault_outside_mutates_edits_is_not_repairable() -> None:
    faulty = SCRIPT.replace("result += item", "result %= item")
    assert w.repair_operator(faulty, 12, SCRIPT) == ""  # mutate swaps % only for //
    faulty = SCRIPT.replace("if value < low:", "if value > low:")
    assert w.repair_operator(faulty, 2, SCRIPT) != ""


def test_a_deleted_test_was_passing_and_the_file_still_collects(small: Path) -> None:
    import random

    passing = {"tests/test_scripts_calc.py::test_total"}
    found = w.delete_test(
        small, sys.executable, random.Random(1), ["tests/test_scripts_calc.py"], passing
    )
    assert found == ("tests/test_scripts_calc.py", "tests/test_scripts_calc.py::test_total")
    text = (small / "tests" / "test_scripts_calc.py").read_text()
    assert "def test_total" not in text and "def test_clamp_inside" in text
    assert w.pytest_failures(small, sys.executable, found[0])[0] == 0
    assert w.delete_test(small, sys.executable, random.Random(1), [found[0]], passing) is None


def test_reverts_and_incidents_read_from_the_audit_trail() -> None:
    a, b = "a" * 40, "b" * 40
    assert w.reverted_commits({"trailers": {t.REVERTS: [f"{a} {b}"]}}) == [a, b]
    note = f"- person-commit: {a[:10]} broke it; to revert it: git revert --no-edit -m 1 {a}"
    entry = {"verdict": "incident", "note": note, "trailers": {}}
    assert w.incident_culprits(entry) == [("incident", a)]
    assert w.named_command(entry, a) == f"git revert --no-edit -m 1 {a}"
    assert w.named_command(entry, b) == f"git revert --no-edit {b}"
    if hasattr(t, "INCIDENT_KEY"):  # the format module's own reader, once it has one
        value = t.incident_value("person-commit", b, ["tests/x.py::test_y"])
        entry["trailers"] = {t.INCIDENT_KEY: [value]}
        assert w.incident_culprits(entry) == [("person-commit", b)]
    tail = '..."regressions": [], "status": "passing", "validated": "abc"\n}'
    assert w.safety_status(tail) == "passing" and w.safety_status("") == "?"


def test_rows_lost_counts_missing_extra_and_different_rows() -> None:
    rows = [{"id": 1, "status": "ok"}, {"id": 2, "status": "failed"}]
    assert w.rows_lost(2, {1: "ok", 2: "failed"}, rows) == 0
    assert w.rows_lost(3, {1: "ok", 2: "failed"}, rows) == 1  # a tick that left no row
    assert w.rows_lost(2, {1: "ok", 2: "ok"}, rows) == 1  # a row with another outcome
    assert w.rows_lost(1, {1: "ok"}, rows) == 1  # a row no tick started


def test_what_is_left_running_in_the_folder_is_found_and_ended(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        assert child.pid in w.leftovers(tmp_path)
        w.end_processes([child.pid])
        assert child.wait(timeout=5) != 0
    finally:
        child.kill()
    assert w.leftovers(tmp_path) == []


def test_the_summary_reads_the_ledger_and_git_figures(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        for status, tail in (
            ("ok", '{"status": "nothing-to-do"}'),
            ("failed", '{"status": "incident"}'),
        ):
            tick = ledger.start_tick("cli")
            ledger.record_task(
                tick,
                "safety-net",
                required=True,
                started=datetime(2026, 1, 1, tzinfo=UTC),
                duration_s=1.5,
                status=status,
                exit_code=0,
                detail="",
                stdout_tail=tail,
                stderr_tail="",
            )
            ledger.finish_tick(tick, status)
    fault = w.Fault(
        "scripts/calc.py",
        2,
        "Change Binary Operator",
        "if value < low:",
        "if value > low:",
        ["tests/test_scripts_calc.py::test_clamp_below"],
        "compare",
        SCRIPT,
    )
    seeded = live_summary.Seeded(
        fault, "c" * 40, 100.0, "d" * 40, 150.0, fault.failing, "e" * 40, 400.0, True
    )
    person = live_summary.PersonCommit(
        "break",
        "f" * 40,
        200.0,
        "scripts/calc.py:9",
        [],
        "incident",
        320.0,
        True,
        "git revert --no-edit x",
        0,
        True,
    )
    live = SimpleNamespace(
        clone=tmp_path,
        start=100.0,
        ended=700.0,
        error="",
        prep={"spec_cadence_s": 600},
        args=argparse.Namespace(minutes=10, repo=REPO, json=False, out=None, keep=False),
        ticks=[
            {"tick": 1, "status": "ok", "tasks": [{"task": "safety-net", "status": "ok"}]},
            {"tick": 2, "status": "failed", "tasks": [{"task": "safety-net", "status": "failed"}]},
        ],
        faults=[seeded],
        people=[person],
        reverts={},
        unexpected=[],
        actions=[],
        incidents={("9" * 40, "person-commit", "f" * 40): "2026-01-01T00:05:00+00:00"},
    )
    report = {"proposals": {"made": 1, "accepted": 1, "rejected": 0, "reverted": 0}}
    summary = live_summary.summarise(live, report, 0, tmp_path / "report.html")  # type: ignore[arg-type]
    assert summary["passed"] is True
    assert summary["ticks"] == {
        "started": 2,
        "ledger_rows": 2,
        "rows_lost": 0,
        "by_outcome": {"ok": 1, "failed": 1},
    }
    assert set(summary["safety_net"]) == {"nothing-to-do", "incident", "timeouts"}
    assert summary["faults"][0]["fault_to_repair_s"] == 300.0
    json.dumps(summary)
    text = live_summary.readable(summary)
    assert "rows lost 0" in text and "repaired by eeeeeeeeee 300.0 s after seeding" in text
    assert "found after 320.0 s (incident, alone)" in text and text.endswith("PASS")


def test_the_plan_seeds_faults_from_the_start_and_the_persons_commits_once(
    tmp_path: Path,
) -> None:
    import live

    args = argparse.Namespace(
        minutes=60, fault_every=1200.0, break_at=15.0, delete_at=30.0, seed=23
    )
    assert live.Live(args, tmp_path).plan() == [
        (0.0, "fault"),
        (900.0, "break"),
        (1200.0, "fault"),
        (1800.0, "delete"),
        (2400.0, "fault"),
    ]
    args.fault_every, args.break_at = 0.0, None
    assert live.Live(args, tmp_path).plan() == [(1800.0, "delete")]
