"""Shared fixtures; the helpers they build on are in repo_setup.py, importable by any
test module."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from repo_setup import IDENTITY, Sandbox, make_sandbox


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path / "repo")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder both this test and a suite the gate runs in its sandbox can write: the
    sandbox lets a suite write only its own tmp and /dev/shm."""
    path = Path(tempfile.mkdtemp(prefix="ratchet-test-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


