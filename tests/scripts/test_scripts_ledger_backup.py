"""scripts/ledger_backup.py on a real WAL-mode SQLite ledger, written to concurrently,
with real corruption of real backup files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.ledger_backup import Snapshot, compare, main

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^ledger-\d{8}T\d{6}Z\.sqlite$")
PAYLOAD = "p" * 100


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def make_ledger(path: Path, rows: int = 200) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE ticks (id INTEGER PRIMARY KEY, ts REAL, note TEXT)")
    db.execute("CREATE TABLE llm_calls (id INTEGER PRIMARY KEY, model TEXT, cost REAL)")
    db.execute("CREATE TABLE empty_one (id INTEGER PRIMARY KEY)")
    db.execute("PRAGMA user_version=2")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO ticks (ts, note) VALUES (?, ?)", [(i, PAYLOAD) for i in range(rows)]
    )
    db.executemany(
        "INSERT INTO llm_calls (model, cost) VALUES (?, ?)", [("m", 0.01)] * (rows // 2)
    )
    db.execute("COMMIT")
    db.close()
    return path


def counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("ticks", "llm_calls", "empty_one")
        }
    finally:
        db.close()


def backups_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if NAME.match(p.name))


def out_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return make_ledger(tmp_path / "runs" / "ledger.sqlite")


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "backups"


def backup(ledger: Path, dest: Path, *extra: str) -> int:
    return main(["--ledger", str(ledger), "--dest", str(dest), *extra])


def test_backup_is_written_verified_and_reported(
    ledger: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backup(ledger, dest) == 0
    out = out_lines(capsys)
    [made] = backups_in(dest)
    assert out == [
        f"ledger backup ok: {made} (0.0 MiB, 3 tables, 300 rows, integrity ok)"
    ]
    assert counts(made) == {"ticks": 200, "llm_calls": 100, "empty_one": 0}
    ro = sqlite3.connect(f"file:{made}?mode=ro", uri=True)
    assert ro.execute("PRAGMA user_version").fetchone()[0] == 2
    assert ro.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    ro.close()

    sidecar = made.with_name(made.name + ".sha256")
    digest = hashlib.sha256(made.read_bytes()).hexdigest()
    assert sidecar.read_text() == f"{digest}  {made.name}\n"

    report = json.loads((dest / "LATEST.json").read_text())
    assert report["ok"] is True
    assert report["backup"] == str(made)
    assert report["ledger"] == str(ledger)
    assert report["size_bytes"] == made.stat().st_size
    assert report["sha256"] == digest
    assert report["integrity_check"] == "ok"
    assert report["user_version"] == 2
    assert report["tables"] == {
        "empty_one": {"source_rows": 0, "backup_rows": 0},
        "llm_calls": {"source_rows": 100, "backup_rows": 100},
        "ticks": {"source_rows": 200, "backup_rows": 200},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["timestamp"])
    assert report["kept"] == [made.name]
    # Nothing else is left next to it: no temp file, no -wal/-shm of the backup.
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [made.name, sidecar.name, "LATEST.json"]
    )


def test_backup_during_concurrent_writes_holds_the_copied_snapshot(
    tmp_path: Path, dest: Path
) -> None:
    ledger = make_ledger(tmp_path / "runs" / "ledger.sqlite", rows=20_000)
    stop = threading.Event()
    written = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        db = connect(ledger)
        try:
            while not stop.is_set():
                db.execute("INSERT INTO ticks (ts, note) VALUES (?, ?)", (time.time(), PAYLOAD))
                db.execute("INSERT INTO llm_calls (model, cost) VALUES ('w', 0.0)")
                written[0] += 1
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while written[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.005)
        checked = []
        for _ in range(3):
            before = written[0]
            assert backup(ledger, dest) == 0
            report = json.loads((dest / "LATEST.json").read_text())
            # Read now: a backup made within the same second replaces this one.
            checked.append((before, report, counts(Path(report["backup"]))))
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert errors == []
    assert written[0] > 20, "the writer really ran alongside the backups"
    for before, report, in_backup in checked:
        ticks = report["tables"]["ticks"]
        # Counts read in the copied snapshot: exactly what the backup holds, and at
        # least what had been committed before the backup started.
        assert ticks["backup_rows"] == ticks["source_rows"] >= 20_000 + before
        assert in_backup["ticks"] == ticks["backup_rows"]
        assert in_backup["llm_calls"] == report["tables"]["llm_calls"]["source_rows"]
    assert counts(ledger)["ticks"] == 20_000 + written[0]


def test_only_the_newest_backups_are_kept(
    ledger: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backup(ledger, dest) == 0
    [first] = backups_in(dest)
    old_names = [f"ledger-2020010{d}T000000Z.sqlite" for d in range(1, 5)]
    for name in old_names:
        shutil.copyfile(first, dest / name)
        (dest / f"{name}.sha256").write_text("0" * 64 + f"  {name}\n")
    capsys.readouterr()
    assert backup(ledger, dest, "--keep", "2") == 0
    kept = backups_in(dest)
    assert [p.name for p in kept] == [old_names[-1], first.name]
    assert not any((dest / f"{n}.sha256").exists() for n in old_names[:-1])
    report = json.loads((dest / "LATEST.json").read_text())
    assert report["kept"] == [p.name for p in kept]
    assert sorted(report["removed"]) == old_names[:-1]


def test_stale_temp_files_of_a_killed_run_are_cleaned(ledger: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    stale = dest / ".ledger-abc123.tmp"
    stale_journal = dest / ".ledger-abc123.tmp-journal"
    fresh = dest / ".ledger-running.tmp"
    for path in (stale, stale_journal, fresh):
        path.write_bytes(b"half a backup")
    old = time.time() - 2 * 3600
    for path in (stale, stale_journal):
        os.utime(path, (old, old))
    assert backup(ledger, dest) == 0
    assert not stale.exists()
    assert not stale_journal.exists()
    assert fresh.exists(), "a young temp file may belong to a run in progress"


def test_verify_only_passes_on_an_intact_backup(
    ledger: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backup(ledger, dest) == 0
    [made] = backups_in(dest)
    # The live ledger moves on after the backup; the backup still verifies.
    db = connect(ledger)
    db.execute("INSERT INTO ticks (ts, note) VALUES (1, 'later')")
    db.close()
    capsys.readouterr()
    assert main(["--ledger", str(ledger), "--verify-only", str(made)]) == 0
    assert out_lines(capsys) == [
        f"ledger backup verified: {made} (3 tables, 300 rows, integrity ok, sha256 ok)"
    ]


def test_bytes_overwritten_in_the_middle_are_detected(
    ledger: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backup(ledger, dest) == 0
    [made] = backups_in(dest)
    data = bytearray(made.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x5A for b in data[middle : middle + 16])
    made.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["--ledger", str(ledger), "--verify-only", str(made)]) == 1
    out = out_lines(capsys)
    assert len(out) == 1
    assert out[0].startswith(f"PROBLEM: backup {made} failed verification: sha256 differs")


def test_a_smashed_page_is_caught_by_integrity_check_without_a_sidecar(
    ledger: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backup(ledger, dest) == 0
    [made] = backups_in(dest)
    made.with_name(made.name + ".sha256").unlink()
    page_size = int.from_bytes(made.read_bytes()[16:18], "big")
    pages = made.stat().st_size // page_size
    assert pages >= 4
    with made.open("r+b") as handle:
        handle.seek((pages // 2) * page_size)
        handle.write(b"\xa5" * page_size)
    capsys.readouterr()
    assert main(["--ledger", str(ledger), "--verify-only", str(made)]) == 1
    out = out_lines(capsys)
    assert len(out) == 1
    assert out[0].startswith(f"PROBLEM: backup {made} failed verification: ")
    assert "integrity_check failed" in out[0] or "unreadable" in out[0]


def test_verify_only_rejects_a_different_schema_version(
    ledger: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backup(ledger, dest) == 0
    [made] = backups_in(dest)
    db = connect(ledger)
    db.execute("PRAGMA user_version=3")
    db.close()
    capsys.readouterr()
    assert main(["--ledger", str(ledger), "--verify-only", str(made)]) == 1
    assert "user_version 2 differs from the ledger's 3" in capsys.readouterr().out


def test_verify_only_of_a_missing_backup(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such.sqlite"
    assert main(["--ledger", str(ledger), "--verify-only", str(missing)]) == 1
    assert capsys.readouterr().out == f"PROBLEM: backup not found: {missing}\n"


def test_compare_reports_lost_rows_missing_tables_and_bad_integrity() -> None:
    expected = Snapshot(user_version=2, counts={"ticks": 5, "calls": 1})
    found = Snapshot(user_version=2, counts={"ticks": 4})
    assert compare(expected, "ok", found, check_counts=True) == [
        "table ticks has 4 rows, expected >= 5",
        "table calls is missing",
    ]
    assert compare(expected, "ok", found, check_counts=False) == ["table calls is missing"]
    assert compare(expected, "*** in database main ***", found, check_counts=True) == [
        "integrity_check failed: *** in database main ***"
    ]
    more = Snapshot(user_version=2, counts={"ticks": 9, "calls": 1})
    assert compare(expected, "ok", more, check_counts=True) == []


def test_missing_ledger_is_one_clear_line_and_is_not_created(
    tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "runs" / "ledger.sqlite"
    assert backup(missing, dest) == 1
    captured = capsys.readouterr()
    assert captured.out == f"PROBLEM: ledger not found: {missing}\n"
    assert captured.err == ""
    assert not missing.exists()
    assert not dest.exists()


def test_a_ledger_that_is_not_a_database_is_a_problem(
    tmp_path: Path, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "ledger.sqlite"
    bogus.write_bytes(b"this is not a database, just text " * 200)
    assert backup(bogus, dest) == 1
    out = out_lines(capsys)
    assert len(out) == 1
    assert out[0].startswith(f"PROBLEM: cannot read ledger {bogus}: ")
    assert not dest.exists() or backups_in(dest) == []


def test_keep_below_one_is_a_usage_error(ledger: Path, dest: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        backup(ledger, dest, "--keep", "0")
    assert exc.value.code == 2


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Path]:
    make_ledger(tmp_path / "runs" / "ledger.sqlite")
    yield tmp_path


def test_real_subprocess_backup_then_verify(deployment: Path) -> None:
    ledger = deployment / "runs" / "ledger.sqlite"
    dest = deployment / "runs" / "backups"
    done = subprocess.run(
        [sys.executable, "scripts/ledger_backup.py", "--ledger", str(ledger), "--dest", str(dest)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ledger backup ok: ")
    assert len(done.stdout.splitlines()) == 1
    report = json.loads((dest / "LATEST.json").read_text())
    verified = subprocess.run(
        [
            sys.executable,
            "scripts/ledger_backup.py",
            "--ledger",
            str(ledger),
            "--verify-only",
            report["backup"],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ledger backup verified: ")

    missing = subprocess.run(
        [sys.executable, "scripts/ledger_backup.py", "--ledger", str(deployment / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stdout.startswith("PROBLEM: ledger not found")
    assert "Traceback" not in missing.stderr
