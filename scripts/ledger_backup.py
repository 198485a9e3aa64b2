"""Online backup of the SQLite ledger, verified before it is trusted.

The ledger (every LLM call, every tick, the spend cap's reservations) is the one piece of
`runs/` that cannot be rebuilt, and the agent writes to it concurrently (WAL mode), so a
plain file copy could capture a torn state. SQLite's online backup API copies a
consistent snapshot instead. A backup nobody has verified is a hope, not a backup, so
each one is checked before it gets its final name: it opens read-only, `PRAGMA
integrity_check` says ok, its `user_version` (schema version) matches the source's, and
every table holds at least the rows the source held in the very snapshot that was copied
(the counts are read in the same read transaction as the backup).

Each backup gets a `sha256sum`-style sidecar (`<name>.sha256`), because integrity_check
only sees structural damage: a flipped byte inside a stored value passes it, a digest does
not. `--verify-only PATH` checks an existing backup against its sidecar and the live
ledger. The newest `--keep` backups are kept; `LATEST.json` describes the last verified
backup and is the evidence the runtime looks for.

Exit codes: 0 backup written and verified (or `--verify-only` passed), 1 a problem (the
ledger is missing or unreadable, the backup failed verification), 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BACKUP_NAME = re.compile(r"^ledger-\d{8}T\d{6}Z\.sqlite$")
TEMP_PREFIX = ".ledger-"
TEMP_SUFFIX = ".tmp"
STALE_TEMP_S = 3600.0
MIB = 1024 * 1024


class Problem(Exception):
    """An expected failure, reported as one line rather than a traceback."""


@dataclass
class Snapshot:
    user_version: int
    counts: dict[str, int] = field(default_factory=dict)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_snapshot(db: sqlite3.Connection) -> Snapshot:
    tables = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    snapshot = Snapshot(user_version=db.execute("PRAGMA user_version").fetchone()[0])
    for table in tables:
        snapshot.counts[table] = db.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]
    return snapshot


def open_ledger(path: Path) -> sqlite3.Connection:
    """Open the live ledger without ever creating it (`mode=rw` fails on a missing file)."""
    if not path.is_file():
        raise Problem(f"ledger not found: {path}")
    try:
        uri = f"{path.resolve().as_uri()}?mode=rw"
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise Problem(f"cannot read ledger {path}: {exc}") from exc
    return db


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inspect_backup(path: Path) -> tuple[str, Snapshot]:
    """Integrity verdict and contents of a backup, opened strictly read-only."""
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            rows = db.execute("PRAGMA integrity_check").fetchall()
            verdict = "; ".join(str(r[0]) for r in rows[:5])
            return verdict, read_snapshot(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"unreadable: {exc}", Snapshot(user_version=-1)


def compare(expected: Snapshot, verdict: str, found: Snapshot, check_counts: bool) -> list[str]:
    """Why a backup does not hold what it should; empty when it does.

    The ledger only grows, so a backup must hold at least the rows of the snapshot it
    copied; more is fine, fewer means rows were lost on the way.
    """
    if verdict != "ok":
        return [f"integrity_check failed: {verdict}"]
    problems: list[str] = []
    if found.user_version != expected.user_version:
        problems.append(
            f"user_version {found.user_version} differs from the ledger's "
            f"{expected.user_version}"
        )
    for table, count in expected.counts.items():
        if table not in found.counts:
            problems.append(f"table {table} is missing")
        elif check_counts and found.counts[table] < count:
            problems.append(f"table {table} has {found.counts[table]} rows, expected >= {count}")
    return problems


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def remove_stale_temps(dest: Path, now: float) -> None:
    """Temp files (and their journals) left by a run killed mid-way (timeout, reboot).

    Only hidden `*.tmp*` files older than an hour: a younger one may belong to a run
    still in progress.
    """
    for path in dest.glob(f".*{TEMP_SUFFIX}*"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_TEMP_S:
                path.unlink()


def prune(dest: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups (names sort by their UTC timestamp)."""
    backups = sorted(p for p in dest.iterdir() if BACKUP_NAME.match(p.name))
    removed: list[Path] = []
    for path in backups[: max(0, len(backups) - keep)]:
        for victim in (path, path.with_name(path.name + ".sha256")):
            with contextlib.suppress(FileNotFoundError):
                victim.unlink()
        removed.append(path)
    return removed


def copy_snapshot(source: sqlite3.Connection, target_path: Path) -> Snapshot:
    """Copy the ledger and return the counts of exactly the snapshot that was copied.

    Both happen in one read transaction, so rows the agent commits meanwhile (WAL mode
    lets it) are in neither: the counts describe the copy, not a moment before or after.
    """
    source.execute("BEGIN")
    try:
        expected = read_snapshot(source)
        target = sqlite3.connect(target_path, isolation_level=None)
        try:
            source.backup(target)
            # A self-contained file: no -wal/-shm companions next to the backup.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        if source.in_transaction:
            source.execute("ROLLBACK")
    return expected


def backup(ledger: Path, dest: Path, keep: int) -> dict[str, Any]:
    """Copy, verify, then publish; a backup that fails verification never gets a name."""
    started = time.monotonic()
    now = datetime.now(UTC)
    final = dest / f"ledger-{now:%Y%m%dT%H%M%SZ}.sqlite"
    source = open_ledger(ledger)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(dest, time.time())
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=dest)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                expected = copy_snapshot(source, tmp)
            except sqlite3.Error as exc:
                raise Problem(f"backup of {ledger} failed: {exc}") from exc
            verdict, found = inspect_backup(tmp)
            problems = compare(expected, verdict, found, check_counts=True)
            if problems:
                raise Problem(f"backup of {ledger} failed verification: " + "; ".join(problems))
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
            digest = sha256_of(tmp)
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    finally:
        source.close()
    atomic_write_text(final.with_name(final.name + ".sha256"), f"{digest}  {final.name}\n")
    _fsync_folder(dest)
    removed = prune(dest, keep)
    report: dict[str, Any] = {
        "ok": True,
        "timestamp": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "ledger": str(ledger),
        "backup": str(final),
        "size_bytes": final.stat().st_size,
        "sha256": digest,
        "integrity_check": verdict,
        "user_version": found.user_version,
        "tables": {
            table: {"source_rows": count, "backup_rows": found.counts[table]}
            for table, count in expected.counts.items()
        },
        "duration_s": round(time.monotonic() - started, 3),
        "kept": [p.name for p in sorted(dest.iterdir()) if BACKUP_NAME.match(p.name)],
        "removed": [p.name for p in removed],
    }
    atomic_write_text(dest / "LATEST.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def recorded_digest(path: Path) -> str | None:
    sidecar = path.with_name(path.name + ".sha256")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise Problem(f"cannot read {sidecar}: {exc}") from exc
    fields = text.split()
    return fields[0].lower() if fields else ""


def verify_only(path: Path, ledger: Path) -> str:
    """Check an existing backup; returns the summary line, raises Problem otherwise.

    The live ledger has moved on since the backup, so the row counts cannot be compared;
    the sidecar digest proves the file is the one that was verified when it was made.
    """
    if not path.is_file():
        raise Problem(f"backup not found: {path}")
    source = open_ledger(ledger)
    try:
        source.execute("BEGIN")
        live = read_snapshot(source)
        source.execute("COMMIT")
    except sqlite3.Error as exc:
        raise Problem(f"cannot read ledger {ledger}: {exc}") from exc
    finally:
        source.close()
    problems: list[str] = []
    digest = recorded_digest(path)
    if digest is not None and digest != sha256_of(path):
        problems.append("sha256 differs from the one recorded when it was made (file changed)")
    verdict, found = inspect_backup(path)
    problems.extend(compare(live, verdict, found, check_counts=False))
    if problems:
        raise Problem(f"backup {path} failed verification: " + "; ".join(problems))
    rows = sum(found.counts.values())
    checked = "sha256 ok" if digest is not None else "no sha256 sidecar"
    return (
        f"ledger backup verified: {path} ({len(found.counts)} tables, {rows} rows, "
        f"integrity ok, {checked})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Back up the SQLite ledger and verify it.")
    parser.add_argument("--ledger", default="runs/ledger.sqlite")
    parser.add_argument("--dest", default="runs/backups")
    parser.add_argument("--keep", type=int, default=3, help="backups kept (default: 3)")
    parser.add_argument(
        "--verify-only",
        metavar="PATH",
        help="verify an existing backup against the live ledger instead of making one",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.keep < 1:
        parser.error("--keep must be at least 1")
    ledger = Path(args.ledger)
    try:
        if args.verify_only:
            print(verify_only(Path(args.verify_only), ledger))
            return 0
        report = backup(ledger, Path(args.dest), args.keep)
    except Problem as exc:
        print(f"PROBLEM: {exc}")
        return 1
    except OSError as exc:
        print(f"PROBLEM: ledger backup failed: {exc}")
        return 1
    rows = sum(t["backup_rows"] for t in report["tables"].values())
    print(
        f"ledger backup ok: {report['backup']} ({report['size_bytes'] / MIB:.1f} MiB, "
        f"{len(report['tables'])} tables, {rows} rows, integrity ok)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
