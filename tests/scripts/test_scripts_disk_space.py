"""scripts/disk_space.py on the real filesystem holding tmp_path: thresholds force each
outcome, since the actual free space of the test host is whatever it is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.disk_space import main, measure

ROOT = Path(__file__).resolve().parents[2]
RELAXED = ["--min-free-pct", "0", "--min-free-mb", "0", "--min-free-inodes-pct", "0"]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_healthy_path_prints_exactly_one_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--path", str(tmp_path), *RELAXED]) == 0
    out = lines(capsys.readouterr().out)
    assert len(out) == 1
    assert out[0].startswith(f"disk ok: {tmp_path} ")
    assert "% free (" in out[0]
    assert "GiB)" in out[0]
    assert "inodes" in out[0]


def test_measure_agrees_with_shutil_disk_usage(tmp_path: Path) -> None:
    usage = measure(str(tmp_path))
    reference = shutil.disk_usage(tmp_path)
    assert usage.total_bytes == reference.total
    # Free space moves while other processes write: allow some drift.
    assert abs(usage.free_bytes - reference.free) < 64 * 1024 * 1024
    assert 0 <= usage.free_pct <= 100


def test_free_percentage_below_threshold_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--path", str(tmp_path), *RELAXED, "--min-free-pct", "100"]) == 1
    out = lines(capsys.readouterr().out)
    assert len(out) == 1
    assert out[0].startswith(f"PROBLEM: {tmp_path}: only ")
    assert "--min-free-pct 100" in out[0]


def test_free_megabytes_below_threshold_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = str(10**12)  # an exbibyte: no test host has that much free
    assert main(["--path", str(tmp_path), *RELAXED, "--min-free-mb", huge]) == 1
    out = lines(capsys.readouterr().out)
    assert out == [line for line in out if line.startswith("PROBLEM: ")]
    assert any("--min-free-mb" in line for line in out)


def test_free_inodes_below_threshold_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.statvfs(tmp_path).f_files == 0:
        pytest.skip("this filesystem reports no inode counts")
    assert main(["--path", str(tmp_path), *RELAXED, "--min-free-inodes-pct", "100"]) == 1
    out = lines(capsys.readouterr().out)
    assert len(out) == 1
    assert "of inodes free, below --min-free-inodes-pct 100" in out[0]


def test_every_failed_threshold_gets_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--path", str(tmp_path), "--min-free-pct", "100", "--min-free-mb", str(10**12)]
    assert main(argv) == 1
    out = lines(capsys.readouterr().out)
    assert len(out) == 2
    assert all(line.startswith("PROBLEM: ") for line in out)


def test_missing_path_is_one_clear_problem_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["--path", str(missing), "--path", str(tmp_path), *RELAXED]) == 1
    captured = capsys.readouterr()
    assert lines(captured.out) == [f"PROBLEM: {missing}: path does not exist"]
    assert captured.err == ""


def test_several_paths_share_one_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b.txt").write_text("a file works too: statvfs takes any path\n")
    argv = ["--path", str(tmp_path / "a"), "--path", str(tmp_path / "b.txt"), *RELAXED]
    assert main(argv) == 0
    out = lines(capsys.readouterr().out)
    assert len(out) == 1
    assert f"{tmp_path / 'a'} " in out[0]
    assert f"; {tmp_path / 'b.txt'} " in out[0]


def test_default_path_is_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(RELAXED) == 0
    assert capsys.readouterr().out.startswith(f"disk ok: {tmp_path} ")


@pytest.mark.parametrize(
    "argv",
    [["--min-free-pct", "150"], ["--min-free-inodes-pct", "-1"], ["--min-free-mb", "-5"]],
)
def test_out_of_range_thresholds_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_real_subprocess_both_outcomes(tmp_path: Path) -> None:
    script = "scripts/disk_space.py"
    ok = subprocess.run(
        [sys.executable, script, "--path", str(tmp_path), *RELAXED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(lines(ok.stdout)) == 1
    assert ok.stdout.startswith("disk ok: ")

    bad = subprocess.run(
        [sys.executable, script, "--path", str(tmp_path / "gone")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stdout.startswith("PROBLEM: ")
    assert "Traceback" not in bad.stderr
