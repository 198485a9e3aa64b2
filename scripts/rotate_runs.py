"""Rotation of the `runs/` telemetry folder, so that an unattended host never fills up.

`runs/` grows on every tick (traces, reports, backups). Files older than `--max-age-days`
go first; then, while the folder is still over `--max-total-mb`, the oldest remaining
files go. Some files are state rather than telemetry and are never deleted, whatever
their age or size:

- databases and their journals (`ledger.sqlite`, `-wal`, `-shm`, `-journal`): deleting a
  live database's WAL loses committed rows;
- the control files `KILL` and `ALERT`, and `README.md`;
- lock files (`*.lock`, `*.flock`): a lock removed under a holder is no lock at all;
- anything under a `backups/` folder, except ledger backups beyond the newest
  `--keep-backups`: backups are rotated by count, not by age, so that a stopped agent
  never ends up with no backup at all;
- the newest file of each trace family under a `traces/` folder (`trace.jsonl` and its
  rotated siblings `trace.jsonl.1`, `trace.jsonl.2`, ...): the live file is open for
  appending, and deleting it would silently lose what the agent writes next.

Symbolic links are neither followed nor deleted, so nothing outside `runs/` is touched.

Exit codes: 0 rotated (or nothing to do), 1 a problem (the folder is missing, a file could
not be deleted, or it is still over the size limit because the rest is protected), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
DAY_S = 24 * 3600

PROTECTED_NAMES = frozenset({"KILL", "ALERT", "README.md"})
PROTECTED_SUFFIXES = (
    ".lock",
    ".flock",
    ".sqlite",
    ".sqlite3",
    ".db",
    "-wal",
    "-shm",
    "-journal",
)
BACKUP_NAME = re.compile(r"^ledger-\d{8}T\d{6}Z\.sqlite$")
ROTATED_SUFFIX = re.compile(r"\.\d+$")


@dataclass(frozen=True)
class Entry:
    path: Path
    rel: Path
    size: int
    mtime: float


@dataclass
class Plan:
    remove: list[Entry] = field(default_factory=list)
    keep: list[Entry] = field(default_factory=list)

    @property
    def kept_bytes(self) -> int:
        return sum(e.size for e in self.keep)


def scan(root: Path) -> list[Entry]:
    """Every regular file under `root`, without following symbolic links."""
    entries: list[Entry] = []
    for folder, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(folder, name)
            try:
                st = path.lstat()
            except FileNotFoundError:  # deleted by its writer since the listing
                continue
            if stat.S_ISREG(st.st_mode):
                entries.append(Entry(path, path.relative_to(root), st.st_size, st.st_mtime))
    return entries


def _in_folder(entry: Entry, name: str) -> bool:
    return name in entry.rel.parts[:-1]


def _always_kept(entry: Entry) -> bool:
    name = entry.rel.name
    return name in PROTECTED_NAMES or name.endswith(PROTECTED_SUFFIXES)


def _newest_of_trace_families(entries: Iterable[Entry]) -> set[Path]:
    families: dict[tuple[Path, str], Entry] = {}
    for entry in entries:
        if not _in_folder(entry, "traces"):
            continue
        key = (entry.rel.parent, ROTATED_SUFFIX.sub("", entry.rel.name))
        best = families.get(key)
        # On equal times the live file (no numeric suffix, shortest name) wins.
        if best is None or (entry.mtime, -len(entry.rel.name)) > (
            best.mtime,
            -len(best.rel.name),
        ):
            families[key] = entry
    return {e.rel for e in families.values()}


def _surplus_backups(entries: Iterable[Entry], keep: int) -> set[Path]:
    """Ledger backups beyond the newest `keep` of each backups folder, with sidecars.

    Backup names carry a sortable UTC timestamp, which is more trustworthy than mtime.
    """
    by_folder: dict[Path, list[Path]] = {}
    for entry in entries:
        if entry.rel.parent.name == "backups" and BACKUP_NAME.match(entry.rel.name):
            by_folder.setdefault(entry.rel.parent, []).append(entry.rel)
    surplus: set[Path] = set()
    for backups in by_folder.values():
        for rel in sorted(backups, reverse=True)[keep:]:
            surplus.add(rel)
            surplus.add(rel.with_name(rel.name + ".sha256"))
    return surplus


def plan_rotation(
    entries: list[Entry], now: float, max_age_s: float, max_total_bytes: int, keep_backups: int
) -> Plan:
    surplus = _surplus_backups(entries, keep_backups)
    newest_traces = _newest_of_trace_families(entries)
    plan = Plan()
    candidates: list[Entry] = []
    for entry in entries:
        if entry.rel in surplus:
            plan.remove.append(entry)
        elif (
            _always_kept(entry)
            or _in_folder(entry, "backups")
            or entry.rel in newest_traces
        ):
            plan.keep.append(entry)
        elif now - entry.mtime > max_age_s:
            plan.remove.append(entry)
        else:
            candidates.append(entry)
    total = plan.kept_bytes + sum(e.size for e in candidates)
    candidates.sort(key=lambda e: (e.mtime, str(e.rel)))
    for index, entry in enumerate(candidates):
        if total <= max_total_bytes:
            plan.keep.extend(candidates[index:])
            break
        plan.remove.append(entry)
        total -= entry.size
    return plan


def _inside(root: Path, path: Path) -> bool:
    """The folder a file sits in really is under `root` (no symlink swapped in since)."""
    real = Path(os.path.realpath(path.parent))
    return real == root or root in real.parents


def remove_empty_folders(root: Path, removed: Iterable[Path]) -> None:
    """Remove the folders that the deletions emptied, deepest first, never `root`."""
    touched: set[Path] = set()
    for path in removed:
        for parent in path.parents:
            if parent == root or root not in parent.parents:
                break
            touched.add(parent)
    for folder in sorted(touched, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty (or gone): leave it
            folder.rmdir()


def _mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Rotate the runs/ telemetry folder.")
    parser.add_argument("--runs", default="runs", help="the folder to rotate (default: runs)")
    parser.add_argument("--max-age-days", type=float, default=14.0)
    parser.add_argument("--max-total-mb", type=float, default=500.0)
    parser.add_argument(
        "--keep-backups", type=int, default=3, help="ledger backups kept per backups/ folder"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_age_days < 0 or args.max_total_mb < 0:
        parser.error("--max-age-days and --max-total-mb must not be negative")
    if args.keep_backups < 1:
        parser.error("--keep-backups must be at least 1")
    if not os.path.isdir(args.runs):
        print(f"PROBLEM: runs folder not found: {args.runs}")
        return 1
    root = Path(os.path.realpath(args.runs))
    plan = plan_rotation(
        scan(root),
        now=time.time(),
        max_age_s=args.max_age_days * DAY_S,
        max_total_bytes=int(args.max_total_mb * MIB),
        keep_backups=args.keep_backups,
    )
    problems: list[str] = []
    removed: list[Entry] = []
    for entry in sorted(plan.remove, key=lambda e: str(e.rel)):
        if args.dry_run:
            age_days = (time.time() - entry.mtime) / DAY_S
            print(f"WOULD REMOVE: {entry.rel} ({_mib(entry.size)}, {age_days:.1f} days old)")
            removed.append(entry)
            continue
        if not _inside(root, entry.path):
            problems.append(f"{entry.rel}: not inside {root} any more, left alone")
            plan.keep.append(entry)
            continue
        try:
            entry.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"cannot remove {entry.rel}: {exc.strerror or exc}")
            plan.keep.append(entry)
            continue
        removed.append(entry)
    if not args.dry_run:
        remove_empty_folders(root, (e.path for e in removed))
    removed_bytes = sum(e.size for e in removed)
    kept_bytes = plan.kept_bytes
    if args.dry_run:
        print(
            f"runs rotation (dry run): would remove {len(removed)} files "
            f"({_mib(removed_bytes)}), keep {len(plan.keep)} files ({_mib(kept_bytes)})"
        )
    else:
        print(
            f"runs rotated: removed {len(removed)} files ({_mib(removed_bytes)}), "
            f"kept {len(plan.keep)} files ({_mib(kept_bytes)})"
        )
    if kept_bytes > args.max_total_mb * MIB:
        problems.append(
            f"{args.runs} still holds {_mib(kept_bytes)}, over --max-total-mb "
            f"{args.max_total_mb:g}: the rest is protected"
        )
    for line in problems:
        print(f"PROBLEM: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
