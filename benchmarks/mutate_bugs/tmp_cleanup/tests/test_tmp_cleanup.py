import os

from scripts.tmp_cleanup import cleanup, freed_bytes, stale_files

NOW = 1_700_000_000


def make(folder, name, age_s, size=10):
    path = folder / name
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_s, NOW - age_s))
    return path


def test_stale_files_are_found(tmp_path):
    make(tmp_path, "old.tmp", 7200)
    make(tmp_path, "new.tmp", 60)
    assert [p.name for p in stale_files(tmp_path, 3600, NOW)] == ["old.tmp"]


def test_folders_are_never_stale(tmp_path):
    (tmp_path / "sub").mkdir()
    os.utime(tmp_path / "sub", (NOW - 9999, NOW - 9999))
    assert stale_files(tmp_path, 3600, NOW) == []


def test_freed_bytes(tmp_path):
    make(tmp_path, "a.tmp", 7200, size=100)
    make(tmp_path, "b.tmp", 7200, size=50)
    assert freed_bytes(tmp_path, 3600, NOW) == 150


def test_cleanup_reports_names(tmp_path):
    make(tmp_path, "old.tmp", 7200)
    assert cleanup(tmp_path, 3600, dry_run=True, now=NOW) == ["old.tmp"]


def test_cleanup_removes_stale_files(tmp_path):
    make(tmp_path, "old.tmp", 7200)
    keep = make(tmp_path, "new.tmp", 60)
    cleanup(tmp_path, 3600, now=NOW)
    assert sorted(p.name for p in tmp_path.iterdir()) == [keep.name]


def test_dry_run_keeps_files(tmp_path):
    old = make(tmp_path, "old.tmp", 7200)
    cleanup(tmp_path, 3600, dry_run=True, now=NOW)
    assert old.exists()
