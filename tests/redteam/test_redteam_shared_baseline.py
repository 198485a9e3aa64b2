"""Red team: a candidate's suite tries to move the shared baseline (refs/notes/ratchet).

Whoever can write the store can excuse any regression, so it is the trust boundary of
the "ref" mode. The gate runs a candidate's tests in the sandbox, which cannot write the
repository's git directory nor run git there; the store moves only by the gate's own
compare-and-swap after a verdict. Here the suite knows the worst: where the repository
is and what to write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_setup import Sandbox

from evolution.baseline import STORE_REF, store_entries
from evolution.gitrepo import GitRepo

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

FORGE = """\
import json
import os
import subprocess

REPO = {repo!r}
TARGET = {target!r}
EVIDENCE = {evidence!r}


def test_forge_the_shared_baseline():
    tried = {{}}
    for args in (["update-ref", "refs/notes/ratchet", TARGET],
                 ["update-ref", "refs/notes/forged", TARGET],
                 ["notes", "--ref=ratchet", "add", "-f", "-m", "forged", TARGET]):
        try:
            done = subprocess.run(["git", "-C", REPO, *args], capture_output=True, timeout=10)
            tried[args[0] + " " + args[-2]] = done.returncode
        except Exception as exc:
            tried[args[0] + " " + args[-2]] = type(exc).__name__
    for name in ("refs/notes/ratchet", "refs/notes/forged"):
        try:
            path = os.path.join(REPO, ".git", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                handle.write(TARGET + "\\n")
            tried["write " + name] = "written"
        except Exception as exc:
            tried["write " + name] = type(exc).__name__
    with open(EVIDENCE, "w") as handle:
        json.dump(tried, handle)
"""


def test_a_candidate_s_suite_cannot_move_the_shared_baseline(
    sandbox: Sandbox, shared_dir: Path
) -> None:
    sandbox.policy(shared=[str(shared_dir)])  # where the suite leaves its evidence
    done = sandbox.evolve("baseline", "migrate", "--to", "ref", "--json")
    assert done.returncode == 0, done.stderr
    migrated = json.loads(done.stdout)["main_after"]
    before = sandbox.git("rev-parse", STORE_REF)
    evidence = shared_dir / "tried.json"
    forge = FORGE.format(repo=str(sandbox.path), target=sandbox.git("rev-parse", "main~1"),
                         evidence=str(evidence))  # fmt: skip
    sandbox.branch("forger", {"tests/test_forge.py": forge})

    done = sandbox.evolve("validate", "forger", "--json")

    # The attack ran, inside the sandbox, and every attempt failed.
    tried = json.loads(evidence.read_text())
    assert len(tried) == 5 and "written" not in tried.values(), tried
    assert 0 not in tried.values(), tried
    # It added a passing test: accepted, and the gate advanced the store, once.
    assert done.returncode == 0, done.stdout + done.stderr
    after = sandbox.git("rev-parse", STORE_REF)
    assert sandbox.git("rev-parse", f"{after}^") == before
    repo = GitRepo(sandbox.path)
    assert set(store_entries(repo, after)) == {migrated, sandbox.head()}
    assert sandbox.git("rev-parse", "-q", "--verify", "refs/notes/forged", check=False) == ""
    for commit in store_entries(repo, after):
        assert "forged" not in sandbox.git("notes", "--ref=ratchet", "show", commit)
