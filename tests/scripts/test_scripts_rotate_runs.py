"""scripts/rotate_runs.py on real folders whose files are aged with os.utime."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.rotate_runs import main

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
DAY = 24 * 3600.0


def put(path: Path, *, size: int = 10, age_days: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - age_days * DAY
    os.utime(path, (when, when))
    return path


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def out_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


def test_old_files_go_young_files_stay(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put(runs / "factory" / "build-old.json", size=MIB, age_days=20)
    put(runs / "factory" / "build-new.json", size=MIB, age_days=1)
    put(runs / "reports" / "only-old.json", size=10, age_days=15)
    assert main(["--runs", str(runs)]) == 0
    assert files_under(runs) == {"factory/build-new.json"}
    assert not (runs / "reports").exists(), "the folder the rotation emptied is removed"
    assert runs.is_dir()
    assert out_lines(capsys) == [
        "runs rotated: removed 2 files (1.0 MiB), kept 1 files (1.0 MiB)"
    ]


def test_nothing_to_do_is_healthy(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs", str(runs)]) == 0
    assert out_lines(capsys) == ["runs rotated: removed 0 files (0.0 MiB), kept 0 files (0.0 MiB)"]
    assert runs.is_dir(), "runs/ itself is never removed, even when empty"


def test_folders_that_were_already_empty_are_left_alone(runs: Path) -> None:
    (runs / "traces").mkdir()
    put(runs / "old" / "deep" / "x.json", age_days=30)
    assert main(["--runs", str(runs)]) == 0
    assert (runs / "traces").is_dir()
    assert not (runs / "old").exists()


def test_protected_files_survive_any_age_and_any_size_limit(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    protected = [
        "ledger.sqlite",
        "ledger.sqlite-wal",
        "ledger.sqlite-shm",
        "KILL",
        "ALERT",
        "README.md",
        "agent.lock",
        "tick.flock",
        "sub/other.lock",
        "backups/LATEST.json",
        "backups/ledger-20240101T000000Z.sqlite",
        "backups/ledger-20240101T000000Z.sqlite.sha256",
        "traces/trace.jsonl",
        "traces/.lock",  # the flock file agent/trace.py rotates under
    ]
    for rel in protected:
        put(runs / rel, size=1000, age_days=400)
    put(runs / "traces" / "trace.jsonl.1", size=1000, age_days=401)
    put(runs / "young.json", size=1000, age_days=0)
    assert main(["--runs", str(runs), "--max-total-mb", "0"]) == 1
    assert files_under(runs) == set(protected)
    out = out_lines(capsys)
    assert out[0].startswith("runs rotated: removed 2 files")
    assert out[1].startswith("PROBLEM: ")
    assert "over --max-total-mb 0: the rest is protected" in out[1]
    assert len(out) == 2


def test_backups_rotate_by_count_not_by_age(runs: Path) -> None:
    names = [f"ledger-2024010{day}T120000Z.sqlite" for day in range(1, 6)]
    for index, name in enumerate(names):
        # Ages run opposite to the names: the name's timestamp decides, not mtime.
        put(runs / "backups" / name, age_days=100 + index)
        put(runs / "backups" / f"{name}.sha256", age_days=100 + index)
    put(runs / "backups" / "LATEST.json", age_days=100)
    assert main(["--runs", str(runs), "--keep-backups", "3"]) == 0
    kept = {f"backups/{n}" for n in names[2:]} | {f"backups/{n}.sha256" for n in names[2:]}
    assert files_under(runs) == kept | {"backups/LATEST.json"}


def test_trace_family_keeps_its_newest_file(runs: Path) -> None:
    traces = runs / "traces"
    put(traces / "trace.jsonl", age_days=30)
    put(traces / "trace.jsonl.1", age_days=31)
    put(traces / "trace.jsonl.2", age_days=32)
    # A second family in which a rotated sibling happens to be the newest.
    put(traces / "llm.jsonl", age_days=50)
    put(traces / "llm.jsonl.1", age_days=40)
    put(traces / "llm.jsonl.2", age_days=1)
    assert main(["--runs", str(runs)]) == 0
    assert files_under(runs) == {"traces/trace.jsonl", "traces/llm.jsonl.2"}


def test_size_limit_removes_oldest_first_until_under(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for hours in range(1, 6):
        put(runs / f"r{hours}.json", size=MIB, age_days=hours / 24)
    put(runs / "ledger.sqlite", size=MIB // 2, age_days=10)
    assert main(["--runs", str(runs), "--max-total-mb", "2.5"]) == 0
    assert files_under(runs) == {"r1.json", "r2.json", "ledger.sqlite"}
    assert out_lines(capsys) == [
        "runs rotated: removed 3 files (3.0 MiB), kept 3 files (2.5 MiB)"
    ]


def test_dry_run_lists_but_removes_nothing(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(runs / "a" / "old.json", size=MIB, age_days=20)
    put(runs / "new.json", size=10, age_days=0)
    before = files_under(runs)
    assert main(["--runs", str(runs), "--dry-run"]) == 0
    assert files_under(runs) == before
    out = out_lines(capsys)
    assert len(out) == 2
    assert out[0].startswith("WOULD REMOVE: a/old.json (1.0 MiB, 20.0 days old)")
    assert out[1] == (
        "runs rotation (dry run): would remove 1 files (1.0 MiB), keep 1 files (0.0 MiB)"
    )


def test_symlinks_are_neither_followed_nor_deleted(tmp_path: Path, runs: Path) -> None:
    outside = tmp_path / "outside"
    put(outside / "precious.json", age_days=100)
    put(outside / "deep" / "also.json", age_days=100)
    (runs / "linked-dir").symlink_to(outside, target_is_directory=True)
    (runs / "linked-file").symlink_to(outside / "precious.json")
    put(runs / "old.json", age_days=100)
    assert main(["--runs", str(runs), "--max-age-days", "0", "--max-total-mb", "0"]) == 0
    assert files_under(outside) == {"precious.json", "deep/also.json"}
    assert (runs / "linked-dir").is_symlink()
    assert (runs / "linked-file").is_symlink()
    assert not (runs / "old.json").exists()


def test_runs_given_as_a_symlink_is_rotated_in_place(tmp_path: Path) -> None:
    real = tmp_path / "data" / "runs"
    put(real / "old.json", age_days=30)
    put(real / "new.json", age_days=0)
    link = tmp_path / "runs-link"
    link.symlink_to(real, target_is_directory=True)
    assert main(["--runs", str(link)]) == 0
    assert files_under(real) == {"new.json"}
    assert link.is_symlink()


def test_missing_runs_folder_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--runs", str(tmp_path / "nope")]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"PROBLEM: runs folder not found: {tmp_path / 'nope'}\n"
    assert captured.err == ""


@pytest.mark.parametrize(
    "argv", [["--keep-backups", "0"], ["--max-age-days", "-1"], ["--max-total-mb", "x"]]
)
def test_bad_options_are_usage_errors(runs: Path, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--runs", str(runs), *argv])
    assert exc.value.code == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_a_file_that_cannot_be_removed_is_a_problem(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(runs / "locked" / "old.json", age_days=30)
    (runs / "locked").chmod(0o500)
    try:
        assert main(["--runs", str(runs)]) == 1
    finally:
        (runs / "locked").chmod(0o700)
    out = out_lines(capsys)
    assert out[-1].startswith("PROBLEM: cannot remove locked/old.json")


def test_real_subprocess(runs: Path) -> None:
    put(runs / "ledger.sqlite", age_days=30)
    put(runs / "traces" / "trace.jsonl", age_days=20)
    put(runs / "traces" / "trace.jsonl.1", age_days=21)
    done = subprocess.run(
        [sys.executable, "scripts/rotate_runs.py", "--runs", str(runs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "runs rotated: removed 1 files (0.0 MiB), kept 2 files (0.0 MiB)"
    ]
    assert files_under(runs) == {"ledger.sqlite", "traces/trace.jsonl"}
