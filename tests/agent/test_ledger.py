"""The SQLite spend ledger: schema, WAL, reservations against the cap, real concurrency."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.ledger import MIGRATIONS, CapReached, Ledger, Reservation

# A child process: open the ledger, say so, wait for "go" on stdin, then try `tries`
# reservations of `estimate` against `cap` and print how many succeeded.
RESERVER = r"""
import sys
from agent.ledger import CapReached, Ledger

path, tries, estimate, cap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ledger = Ledger(path)
print("ready", flush=True)
sys.stdin.readline()
ok = 0
for _ in range(tries):
    try:
        ledger.reserve("openai/m", "concurrency", estimate, cap)
        ok += 1
    except CapReached:
        pass
ledger.close()
print(ok, flush=True)
"""

# A child process that reserves, reports the reservation, then hangs until killed.
HANGER = r"""
import sys
from agent.ledger import Ledger

ledger = Ledger(sys.argv[1])
reservation = ledger.reserve("openai/m", "doomed", float(sys.argv[2]), float(sys.argv[3]))
print(reservation.call_id, flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as opened:
        yield opened


def run_reservers(path: Path, processes: int, tries: int, estimate: float, cap: float) -> int:
    """Start `processes` reservers together on `path`; the total number of reservations made."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RESERVER, str(path), str(tries), repr(estimate), repr(cap)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        for proc in procs:  # release them all at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        total = 0
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            total += int(out.strip())
        return total
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_fresh_ledger_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "ledger.sqlite"
    with Ledger(path) as ledger:
        assert ledger.version == len(MIGRATIONS)
        assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ledger.calls() == []
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    finally:
        db.close()


def test_reopening_keeps_data_and_does_not_rerun_migrations(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.note("openai/m", "first", "skipped", "no key")
    # Re-running the first migration would fail: CREATE TABLE on an existing table.
    with Ledger(path) as again:
        assert again.version == len(MIGRATIONS)
        rows = again.calls()
    assert [(r["model"], r["purpose"], r["outcome"], r["error"]) for r in rows] == [
        ("openai/m", "first", "skipped", "no key")
    ]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this code knows"):
        Ledger(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert tables == []  # nothing was created
    finally:
        db.close()


def test_a_pending_reservation_counts_at_its_estimate(ledger: Ledger) -> None:
    reservation = ledger.reserve("openai/m", "propose", 0.25, cap_usd=1.0)
    assert isinstance(reservation, Reservation) and reservation.estimate_usd == 0.25
    assert ledger.spent_today() == pytest.approx(0.25)
    [row] = ledger.calls()
    assert row["id"] == reservation.call_id
    assert row["outcome"] == "pending" and row["estimate_usd"] == 0.25 and row["cost_usd"] == 0


def test_settle_replaces_the_estimate_with_the_real_cost(ledger: Ledger) -> None:
    first = ledger.reserve("openai/m", "propose", 0.25, cap_usd=1.0)
    second = ledger.reserve("openai/m", "propose", 0.5, cap_usd=1.0)
    assert ledger.spent_today() == pytest.approx(0.75)
    ledger.settle(first, outcome="ok", prompt_tokens=100, completion_tokens=50, cost_usd=0.01)
    assert ledger.spent_today() == pytest.approx(0.51)
    ledger.settle(second, outcome="error-transient", error="503")
    assert ledger.spent_today() == pytest.approx(0.01)
    rows = {row["id"]: row for row in ledger.calls()}
    assert rows[first.call_id]["outcome"] == "ok"
    assert (rows[first.call_id]["prompt_tokens"], rows[first.call_id]["completion_tokens"]) == (
        100,
        50,
    )
    assert rows[first.call_id]["cost_usd"] == 0.01
    assert rows[second.call_id]["error"] == "503"


def test_over_the_cap_is_refused_and_recorded_but_not_spent(ledger: Ledger) -> None:
    ledger.reserve("openai/m", "propose", 0.75, cap_usd=1.0)
    with pytest.raises(CapReached) as caught:
        ledger.reserve("openai/m", "propose", 0.5, cap_usd=1.0)
    assert (caught.value.spent, caught.value.estimate, caught.value.cap) == (0.75, 0.5, 1.0)
    assert "spend cap reached" in str(caught.value)
    assert ledger.spent_today() == pytest.approx(0.75)
    refused = ledger.calls()[-1]
    assert refused["outcome"] == "refused-cap"
    assert refused["estimate_usd"] == 0.5 and refused["cost_usd"] == 0
    assert refused["error"] == "cap reached"
    # what is left under the cap can still be reserved
    ledger.reserve("openai/m", "propose", 0.25, cap_usd=1.0)
    assert ledger.spent_today() == pytest.approx(1.0)


def test_without_a_cap_nothing_is_refused(ledger: Ledger) -> None:
    for _ in range(3):
        ledger.reserve("openai/m", "propose", 1_000_000.0, cap_usd=None)
    assert ledger.spent_today() == pytest.approx(3_000_000.0)
    assert {row["outcome"] for row in ledger.calls()} == {"pending"}


def test_fifty_cents_fill_a_fifty_cent_cap_exactly(ledger: Ledger) -> None:
    made = 0
    for _ in range(60):
        try:
            ledger.reserve("openai/m", "propose", 0.01, cap_usd=0.50)
            made += 1
        except CapReached:
            pass
    assert made == 50


def test_concurrent_processes_never_reserve_past_the_cap(tmp_path: Path) -> None:
    # 1/128 and 50/128 are exact in binary, so only the locking is under test here.
    path = tmp_path / "ledger.sqlite"
    total = run_reservers(path, processes=4, tries=25, estimate=1 / 128, cap=50 / 128)
    assert total == 50
    with Ledger(path) as ledger:
        assert ledger.spent_today() <= 50 / 128 + 1e-9
        outcomes = [row["outcome"] for row in ledger.calls()]
    assert outcomes.count("pending") == 50 and outcomes.count("refused-cap") == 50


def test_concurrent_processes_fill_the_cap_with_cents_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    total = run_reservers(path, processes=4, tries=25, estimate=0.01, cap=0.50)
    with Ledger(path) as ledger:
        spent = ledger.spent_today()
    assert spent <= 0.50 + 1e-9  # never over, whatever happens
    assert total == 50


def test_concurrent_cents_never_overspend(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    total = run_reservers(path, processes=4, tries=25, estimate=0.01, cap=0.50)
    with Ledger(path) as ledger:
        spent = ledger.spent_today()
        pending = sum(row["outcome"] == "pending" for row in ledger.calls())
    assert total == pending
    assert 49 <= total <= 50
    assert spent <= 0.50 + 1e-9


def test_a_killed_process_reservation_keeps_counting(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGER, str(path), "0.25", "0.5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        call_id = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with Ledger(path) as ledger:
        [row] = ledger.calls()
        assert row["id"] == call_id and row["outcome"] == "pending"
        assert ledger.spent_today() == pytest.approx(0.25)
        with pytest.raises(CapReached):
            ledger.reserve("openai/m", "after", 0.5, cap_usd=0.5)
        ledger.reserve("openai/m", "after", 0.25, cap_usd=0.5)
        assert ledger.spent_today() == pytest.approx(0.5)
