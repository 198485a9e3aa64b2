"""Git as the audit trail: evolve log/show, the post-merge safety net, and hooks/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from repo_setup import BROKEN_ADD, CALC, FIXED_CALC, Sandbox, make_sandbox

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

REPO_ROOT = Path(__file__).resolve().parents[2]
HOOKS = ("pre-merge-commit", "post-merge", "pre-push")


def _with_evolve_on_path() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _git_with_hooks(box: Sandbox, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        ["git", *args],
        cwd=box.path,
        env=env or _with_evolve_on_path(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def hooked(sandbox: Sandbox) -> Sandbox:
    done = sandbox.evolve("hooks", "install", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["installed"] == list(HOOKS)
    return sandbox


def test_hand_merge_of_a_regressing_branch_is_blocked(hooked: Sandbox) -> None:
    main_before = hooked.head()
    hooked.branch("bad", {"scripts/calc.py": BROKEN_ADD})

    done = _git_with_hooks(hooked, "merge", "--no-ff", "-m", "merge bad", "bad")

    assert done.returncode != 0
    assert "REJECTED" in done.stdout + done.stderr
    assert hooked.head() == main_before
    _git_with_hooks(hooked, "merge", "--abort")
    assert (hooked.path / "scripts/calc.py").read_text() == CALC


def test_hand_merge_that_holds_is_recorded_and_counts_as_verified(hooked: Sandbox) -> None:
    hooked.branch("good", {"scripts/calc.py": FIXED_CALC})
    done = _git_with_hooks(hooked, "merge", "--no-ff", "-m", "merge good", "good")
    assert done.returncode == 0, done.stdout + done.stderr
    note = hooked.git("notes", "--ref=evolve", "show", "main")
    assert "Evolve-Verdict: validated" in note
    assert hooked.evolve("verify", "main").returncode == 0


def test_fast_forward_of_a_regressing_proposal_is_reverted(hooked: Sandbox) -> None:
    bad = hooked.branch("ff", {"scripts/calc.py": BROKEN_ADD}, proposal=True)

    done = _git_with_hooks(hooked, "merge", "--ff-only", "ff")

    assert done.returncode == 0  # git's own merge succeeded; the hook then reverted it
    assert "REVERTED" in done.stdout + done.stderr
    head = hooked.head()
    trailers = hooked.git("log", "-1", "--format=%(trailers:only,unfold)", head)
    assert f"Evolve-Reverts: {bad}" in trailers
    assert "Evolve-Regressed: tests/test_calc.py::test_add" in trailers
    assert hooked.git("rev-parse", f"{head}^") == bad  # history kept, not rewritten
    assert (hooked.path / "scripts/calc.py").read_text() == CALC
    assert "still failing" not in done.stdout + done.stderr  # the tests pass again
    again = hooked.evolve("safety-net", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "nothing-to-do"


def test_fast_forward_of_a_persons_regressing_commit_raises_an_incident(hooked: Sandbox) -> None:
    mine = hooked.branch("mine", {"scripts/calc.py": BROKEN_ADD})

    done = _git_with_hooks(hooked, "merge", "--ff-only", "mine")

    assert done.returncode == 0  # git's merge stands; the hook reports, it does not revert
    output = (done.stdout + done.stderr).replace("\n", "")
    assert "INCIDENT" in output and f"git revert --no-edit {mine}" in output
    assert hooked.head() == mine
    assert "Evolve-Verdict: incident" in hooked.git("notes", "--ref=evolve", "show", mine)


def test_push_of_an_unvalidated_main_is_refused(hooked: Sandbox, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    hooked.git("remote", "add", "origin", str(remote))
    assert _git_with_hooks(hooked, "push", "-q", "origin", "main").returncode == 0

    hooked.commit("a person commits straight to main", {"NOTES.md": "hello\n"})
    done = _git_with_hooks(hooked, "push", "origin", "main")

    assert done.returncode != 0
    assert "no accepted verdict" in done.stderr and "--no-verify" in done.stderr
    assert hooked.git("rev-parse", "origin/main") != hooked.head()

    # once the safety net has checked it, the same main may go
    assert hooked.evolve("safety-net").returncode == 0
    assert _git_with_hooks(hooked, "push", "-q", "origin", "main").returncode == 0


def test_hooks_fail_closed_without_evolve(hooked: Sandbox) -> None:
    hooked.branch("any", {"scripts/calc.py": FIXED_CALC})
    git_dir = Path(shutil.which("git") or "/usr/bin/git").parent
    env = {**os.environ, "PATH": f"{git_dir}{os.pathsep}/bin"}
    done = _git_with_hooks(hooked, "merge", "--no-ff", "-m", "m", "any", env=env)
    assert done.returncode != 0
    assert "'evolve' is not on PATH" in done.stderr and "--no-verify" in done.stderr


def test_with_revert_people_a_plain_commit_and_a_merge_commit_are_each_reverted(
    sandbox: Sandbox,
) -> None:
    # People's commits are reverted only when the policy asks (by default: an incident).
    sandbox.policy(revert_people=True)
    assert sandbox.evolve("safety-net").returncode == 0
    verified = sandbox.head()
    sandbox.commit("a plain commit that breaks add", {"scripts/calc.py": BROKEN_ADD})
    plain = sandbox.head()
    done = sandbox.evolve("safety-net", "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["reverted"] == [plain]
    assert sandbox.git("rev-parse", "main^{tree}") == sandbox.git(
        "rev-parse", f"{verified}^{{tree}}"
    )

    revert_of_plain = sandbox.head()
    sandbox.branch("side", {"scripts/calc.py": BROKEN_ADD})
    sandbox.git("merge", "--no-ff", "--no-verify", "-q", "-m", "a hand merge", "side")
    merge = sandbox.head()
    done = sandbox.evolve("safety-net", "--json")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["reverted"] == [merge]
    assert sandbox.git("rev-parse", "main^{tree}") == sandbox.git(
        "rev-parse", f"{revert_of_plain}^{{tree}}"
    )
    assert (sandbox.path / "scripts/calc.py").read_text() == CALC


def test_post_merge_refuses_a_dirty_tree(sandbox: Sandbox) -> None:
    sandbox.commit("breaks add", {"scripts/calc.py": BROKEN_ADD})
    head = sandbox.head()
    (sandbox.path / "scripts/calc.py").write_text("# my unsaved work\n")
    done = sandbox.evolve("safety-net")
    assert done.returncode == 2 and "uncommitted changes" in done.stderr
    assert sandbox.head() == head
    assert (sandbox.path / "scripts/calc.py").read_text() == "# my unsaved work\n"


def _scripted_history(box: Sandbox) -> dict[str, str]:
    """baseline, accepted, rejected, reverted: one second apart so the order is exact."""
    shas = {"baseline": box.head()}
    time.sleep(1.1)
    box.branch("evolve/fix-mul", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    assert box.evolve("validate", "evolve/fix-mul").returncode == 0
    shas["accepted"] = box.head()
    time.sleep(1.1)
    broken = FIXED_CALC.replace("return a + b", "return a - b", 1)
    shas["rejected"] = box.branch("evolve/break-add", {"scripts/calc.py": broken}, proposal=True)
    assert box.evolve("validate", "evolve/break-add", "--reruns", "0").returncode == 1
    time.sleep(1.1)
    # an automated proposal committed straight to main: the safety net reverts it
    box.commit("evolve: break add\n\nEvolve-Proposal: slipped-past\nEvolve-Proposer: test",
               {"scripts/calc.py": broken})  # fmt: skip
    assert box.evolve("safety-net").returncode == 1
    shas["reverted"] = box.head()
    return shas


def test_log_lists_the_trail_from_git_alone(sandbox: Sandbox) -> None:
    shas = _scripted_history(sandbox)
    (sandbox.path / "runs").mkdir()
    (sandbox.path / "runs" / "ledger.sqlite").write_text("telemetry")

    done = sandbox.evolve("log", "--json")
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)["entries"]

    assert [e["verdict"] for e in entries] == ["reverted", "rejected", "accepted", "baseline"]
    reverted, rejected, accepted, baseline = entries
    assert reverted["commit"] == shas["reverted"] and reverted["regressed"] == 1
    assert rejected["commit"] == shas["rejected"]
    assert rejected["proposal"] == "evolve-break-add" and rejected["proposer"] == "test"
    assert rejected["regressed"] == 1 and rejected["passed"] == 2
    assert accepted["commit"] == shas["accepted"]
    assert accepted["proposal"] == "evolve-fix-mul" and accepted["proposer"] == "test"
    assert accepted["passed"] == 3 and accepted["regressed"] == 0 and accepted["flaky"] == 0
    assert baseline["commit"] == shas["baseline"]

    shutil.rmtree(sandbox.path / "runs")
    assert json.loads(sandbox.evolve("log", "--json").stdout)["entries"] == entries

    only = json.loads(sandbox.evolve("log", "--json", "--verdict", "rejected").stdout)
    assert [e["commit"] for e in only["entries"]] == [shas["rejected"]]
    assert len(json.loads(sandbox.evolve("log", "--json", "--limit", "2").stdout)["entries"]) == 2
    future = json.loads(sandbox.evolve("log", "--json", "--since", "2999-01-01").stdout)
    assert future["entries"] == []
    assert sandbox.evolve("log", "--since", "yesterday").returncode == 2

    text = sandbox.evolve("log").stdout
    assert "evolve-break-add" in text and "1 regressed" in text

    shown = sandbox.evolve("show", "evolve-break-add")
    assert shown.returncode == 0, shown.stderr
    assert "assert -1 == 5" in shown.stdout  # the regression's failure text
    assert "-    return a + b" in shown.stdout  # the diff
    record = json.loads(sandbox.evolve("show", "evolve-fix-mul", "--json").stdout)
    assert record["verdict"] == "accepted" and "return a * b" in record["diff"]
    assert sandbox.evolve("show", "no-such-proposal").returncode == 2


def test_install_never_overwrites_a_users_hook_and_uninstall_undoes(sandbox: Sandbox) -> None:
    own = sandbox.path / ".git" / "hooks" / "pre-push"
    own.write_text("#!/bin/sh\necho mine\n")
    result = json.loads(sandbox.evolve("hooks", "install", "--json").stdout)
    assert result["kept"] == ["pre-push"]
    assert own.read_text() == "#!/bin/sh\necho mine\n"
    assert (sandbox.path / ".git" / "hooks" / "post-merge").exists()

    result = json.loads(sandbox.evolve("hooks", "uninstall", "--json").stdout)
    assert sorted(result["removed"]) == ["post-merge", "pre-merge-commit"]
    assert own.read_text() == "#!/bin/sh\necho mine\n"


def test_a_repository_with_its_own_hooks_folder_uses_core_hooks_path(tmp_path: Path) -> None:
    box = make_sandbox(tmp_path / "repo", record=False)
    shutil.copytree(REPO_ROOT / "hooks", box.path / "hooks", symlinks=False)
    box.commit("ship the hooks")
    assert box.evolve("hooks", "install").returncode == 0
    assert box.git("config", "core.hooksPath") == "hooks"
    assert box.evolve("hooks", "uninstall").returncode == 0
    assert box.git("config", "core.hooksPath", check=False) == ""


def test_this_repository_ships_its_own_hooks() -> None:
    for name in HOOKS:
        shipped = REPO_ROOT / "hooks" / name
        packaged = REPO_ROOT / "evolution" / "gate" / "hookshims" / name
        assert shipped.read_bytes() == packaged.read_bytes()
        assert os.access(shipped, os.X_OK)
        assert b"evolve" in shipped.read_bytes()
