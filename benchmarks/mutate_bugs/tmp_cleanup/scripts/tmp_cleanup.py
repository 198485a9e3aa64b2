"""Delete temporary files older than a cut-off, with a dry-run mode for the report."""

import time
from pathlib import Path


def stale_files(folder: Path, max_age_s: float, now: float | None = None) -> list[Path]:
    now = time.time() if now is None else now
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and now - path.stat().st_mtime > max_age_s:
            found.append(path)
    return found


def cleanup(
    folder: Path, max_age_s: float, dry_run: bool = False, now: float | None = None
) -> list[str]:
    """Remove the stale files (or only list them, with `dry_run`); returns their names."""
    removed = []
    for path in stale_files(folder, max_age_s, now):
        if dry_run:
            path.unlink()
        removed.append(path.name)
    return removed


def freed_bytes(folder: Path, max_age_s: float, now: float | None = None) -> int:
    return sum(path.stat().st_size for path in stale_files(folder, max_age_s, now))
