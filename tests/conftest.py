"""Shared fixtures; the helpers they build on are in repo_setup.py, importable by any
test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import ScriptedLLM
from repo_setup import IDENTITY, Sandbox, copy_sandbox, git_identity, make_sandbox


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def recorded_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample repository with its baseline recorded, once per session (per xdist
    worker): recording runs its suite through the sandboxed gate, which each test using
    `sandbox` paid for before. Never used directly: tests get a copy."""
    with git_identity():
        return make_sandbox(tmp_path_factory.mktemp("recorded") / "repo").path


@pytest.fixture
def sandbox(recorded_sandbox: Path, tmp_path: Path) -> Sandbox:
    return copy_sandbox(recorded_sandbox, tmp_path / "repo")


@pytest.fixture
def shared_dir(tmp_path: Path) -> Path:
    """A folder both this test and a suite the gate runs in its sandbox can write. The
    sandbox lets a suite write only its own folders, so a test that uses this names it
    in the policy on purpose: `box.policy(shared=[str(shared_dir)])`."""
    path = tmp_path / "shared"
    path.mkdir()
    return path


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    """An OpenAI-compatible server on 127.0.0.1 that answers what a test scripts."""
    server = ScriptedLLM()
    server.start()
    yield server
    server.stop()
