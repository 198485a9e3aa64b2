"""`.pre-commit-hooks.yaml`: Ratchet's hooks for pre-commit, at the pre-push stage.

The manifest is validated by pre-commit itself (`pre-commit validate-manifest`), and
the hook that uses the developer's environment is run the way pre-commit runs it on a
push (`pre-commit try-repo ... --hook-stage pre-push`), from a hook repository holding
this manifest, in a project with a recorded baseline: the pushed commit (`--to-ref`,
not whatever is checked out) is judged, a regression fails the push and is named.
(The `language: python` hook has pre-commit build an environment with Ratchet and its
dependencies from the network; its entry is the same command.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from repo_setup import BROKEN_ADD, make_sandbox

ROOT = Path(__file__).resolve().parent.parent.parent
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
BIN = Path(sys.executable).parent
ENTRY = 'sh -c \'exec evolve check --commit "${PRE_COMMIT_TO_REF:-HEAD}" "$@"\' --'


def _hooks() -> dict[str, dict]:
    return {hook["id"]: hook for hook in yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))}


def test_the_hooks_check_the_pushed_commit_at_the_pre_push_stage() -> None:
    hooks = _hooks()
    assert set(hooks) == {"ratchet", "ratchet-system"}
    assert hooks["ratchet"]["language"] == "python"
    assert hooks["ratchet-system"]["language"] == "system"
    for hook in hooks.values():
        assert {"id", "name", "entry", "language"} <= set(hook)  # what pre-commit requires
        assert hook["entry"] == ENTRY
        assert hook["stages"] == ["pre-push"]
        assert hook["pass_filenames"] is False and hook["always_run"] is True


def test_pre_commit_accepts_the_manifest() -> None:
    done = subprocess.run([str(BIN / "pre-commit"), "validate-manifest", str(MANIFEST)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.e2e
def test_a_push_runs_evolve_check_on_the_pushed_commit(tmp_path: Path) -> None:
    hook_repo = tmp_path / "hooks"
    hook_repo.mkdir()
    (hook_repo / MANIFEST.name).write_text(MANIFEST.read_text(encoding="utf-8"))
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "hooks"]):
        subprocess.run(["git", *argv], cwd=hook_repo, check=True)
    box = make_sandbox(tmp_path / "project")
    good = box.branch("good", {"scripts/greet.py": "def greet(name):\n    return name\n"})
    bad = box.branch("bad", {"scripts/calc.py": BROKEN_ADD})
    box.git("switch", "-q", "good")  # checked out: the good one; pushed: each in turn
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PRE_COMMIT_HOME": str(tmp_path / "cache"), "NO_COLOR": "1"}  # fmt: skip

    def push(commit: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "pre-commit"), "try-repo", str(hook_repo), "ratchet-system",
             "--hook-stage", "pre-push", "--from-ref", box.head("main"), "--to-ref", commit,
             "--verbose"],
            cwd=box.path, env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    accepted = push(good)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert f"ACCEPTED {good[:10]}" in accepted.stdout
    rejected = push(bad)
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert f"REJECTED {bad[:10]}" in rejected.stdout
    assert "tests/test_calc.py::test_add (passed -> failed)" in rejected.stdout
