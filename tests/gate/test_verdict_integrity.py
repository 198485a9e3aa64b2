"""The verdict's integrity on real repositories: the sandbox rule, subtests, the static
guard, and the authenticated verdict cache. (The attacks themselves are in
test_redteam.py.)"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from repo_setup import BROKEN_ADD, FIXED_CALC, Sandbox, make_sandbox

from evolution.sandbox.enter import landlock_abi

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

NO_SANDBOX = {"RATCHET_SANDBOX": "none"}
needs_landlock = pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")


def _refs(box: Sandbox) -> str:
    return box.git("for-each-ref")


def test_without_a_sandbox_a_proposal_is_refused_unless_the_risk_is_accepted(
    sandbox: Sandbox,
) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    refs = _refs(sandbox)

    refused = sandbox.evolve("validate", "evolve/fix", env=NO_SANDBOX)

    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "without an OS sandbox" in refused.stderr and "--unsandboxed" in refused.stderr
    assert _refs(sandbox) == refs

    code, report = sandbox.validate_json("evolve/fix", "--unsandboxed", env=NO_SANDBOX)
    assert code == 0 and report["merged"], report
    trailer = sandbox.git("log", "-1", "--format=%(trailers:key=Evolve-Sandbox,valueonly)")
    assert trailer.startswith("none (") and "accepted with --unsandboxed" in trailer


def test_a_persons_branch_runs_with_a_warning_unless_the_policy_requires_a_sandbox(
    sandbox: Sandbox,
) -> None:
    sandbox.branch("person-fix", {"scripts/calc.py": FIXED_CALC})
    done = sandbox.evolve("validate", "person-fix", "--no-merge", env=NO_SANDBOX)
    assert done.returncode == 0, done.stderr
    assert "warning: the suite ran without an OS sandbox" in done.stderr

    sandbox.policy(sandbox="required")
    required = sandbox.evolve("validate", "person-fix", "--no-merge", env=NO_SANDBOX)
    assert required.returncode == 3
    assert 'sandbox = "required"' in required.stderr


@needs_landlock
def test_a_sandboxed_verdict_records_its_isolation(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    code, report = sandbox.validate_json("evolve/fix")
    assert code == 0, report
    assert report["sandbox"].startswith("landlock abi ")
    trailer = sandbox.git("log", "-1", "--format=%(trailers:key=Evolve-Sandbox,valueonly)")
    assert trailer == report["sandbox"]


UNITTEST_SUITE = """
    import unittest

    from scripts.calc import add


    class TestAdd(unittest.TestCase):
        def test_table(self):
            for a, b, total in [(1, 2, 3), (2, 2, 4), (0, 5, 5)]:
                with self.subTest("sum", a=a, b=b):
                    self.assertEqual(add(a, b), total)
"""
SUBTESTS_SUITE = """
    from scripts.calc import add


    def test_table(subtests):
        for a, b, total in [(1, 2, 3), (2, 2, 4), (0, 5, 5)]:
            with subtests.test(msg="sum", a=a, b=b):
                assert add(a, b) == total
"""
# add() wrong only for (2, 2): one subtest of three regresses, the others still pass.
ADD_WRONG_AT_2_2 = FIXED_CALC.replace(
    "def add(a, b):\n    return a + b",
    "def add(a, b):\n    if (a, b) == (2, 2):\n        return 5\n    return a + b",
)


@pytest.mark.parametrize(
    ("suite", "nodeid"),
    [
        (UNITTEST_SUITE, "tests/test_table.py::TestAdd::test_table"),
        (SUBTESTS_SUITE, "tests/test_table.py::test_table"),
    ],
    ids=["unittest-subTest", "pytest-subtests"],
)
def test_a_subtest_regression_is_rejected_and_named(
    tmp_path: Path, suite: str, nodeid: str
) -> None:
    box = make_sandbox(tmp_path / "repo", record=False)
    box.commit("a table-driven suite", {"tests/test_table.py": suite})
    assert box.evolve("baseline", "record", "--reruns", "0").returncode == 0
    assert box.baseline()["tests"][nodeid] == "passed"

    box.branch("evolve/harmless", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    code, report = box.validate_json("evolve/harmless", "--no-merge")
    assert code == 0, report  # every subtest passes: accepted

    box.branch("evolve/subtle", {"scripts/calc.py": ADD_WRONG_AT_2_2}, proposal=True)
    code, report = box.validate_json("evolve/subtle", "--reruns", "0")
    assert code == 1, report
    [regression] = report["regressions"]
    assert regression["nodeid"] == nodeid
    assert regression["now"] == "failed"
    assert "subtest [sum] (a=2, b=2) failed" in regression["text"]
    assert "5 != 4" in regression["text"] or "5 == 4" in regression["text"]


def test_the_static_guard_rejects_before_any_test_runs_and_names_the_line(
    sandbox: Sandbox,
) -> None:
    cheat = FIXED_CALC + (
        "\n\nimport sys\n\n\ndef peek():\n    return sys._getframe(1).f_locals\n"
    )
    sandbox.branch("evolve/peek", {"scripts/calc.py": cheat}, proposal=True)
    code, report = sandbox.validate_json("evolve/peek")
    assert code == 1, report
    assert report["tests_run"] == 0
    assert "static guard" in report["reason"]
    line = cheat.splitlines().index("    return sys._getframe(1).f_locals") + 1
    assert any(f"scripts/calc.py:{line}: sys._getframe" in f for f in report["guard"])
    note = sandbox.git("notes", "--ref=evolve", "show", "refs/evolve/rejected/evolve-peek")
    assert "static guard" in note


def test_the_guard_follows_what_import_runs_into_a_module_the_proposal_did_not_change(
    sandbox: Sandbox,
) -> None:
    """A person's helper starts a thread when called; harmless until a proposal calls it
    at import time from the module under test (issue 24, item 4)."""
    helper = "import threading\n\n\ndef warm(job):\n    threading.Thread(target=job).start()\n"
    sandbox.commit("a person's helper", {"scripts/jobs.py": helper})
    cheat = FIXED_CALC + "\n\nfrom scripts.jobs import warm\n\nwarm(print)\n"
    sandbox.branch("evolve/warm", {"scripts/calc.py": cheat}, proposal=True)
    code, report = sandbox.validate_json("evolve/warm")
    assert code == 1 and report["tests_run"] == 0, report
    line = cheat.splitlines().index("warm(print)") + 1
    [finding] = [f for f in report["guard"] if "(runs-later:" in f]
    assert f"scripts/calc.py:{line}: threading.Thread.start at scripts/jobs.py:5" in finding


def test_a_rule_lifted_on_purpose_lets_the_construct_through(sandbox: Sandbox) -> None:
    sandbox.policy(allow=["atexit"])
    with_exit_hook = FIXED_CALC + "\n\nimport atexit\n\natexit.register(print, 'bye')\n"
    sandbox.branch("evolve/atexit", {"scripts/calc.py": with_exit_hook}, proposal=True)
    code, report = sandbox.validate_json("evolve/atexit")
    assert code == 0 and report["merged"], report


def test_what_a_file_already_held_is_not_blamed_on_the_proposal(sandbox: Sandbox) -> None:
    with_exit_hook = "import atexit\n\natexit.register(print, 'bye')\n"
    sandbox.commit("a person's script that uses atexit", {"scripts/hooks.py": with_exit_hook})
    changed = with_exit_hook + "\n\ndef helper():\n    return 1\n"
    sandbox.branch("evolve/helper", {"scripts/hooks.py": changed}, proposal=True)
    code, report = sandbox.validate_json("evolve/helper", "--no-merge")
    assert code == 0, report
    assert report["guard"] == []


def test_a_forged_cache_entry_is_ignored_reported_and_removed(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/break", {"scripts/calc.py": BROKEN_ADD}, proposal=True)
    code, _ = sandbox.validate_json("evolve/break", "--no-merge", "--reruns", "0")
    assert code == 1
    verdicts = sandbox.path / ".git" / "evolve" / "verdicts"
    [entry] = list(verdicts.glob("*.json"))
    key = sandbox.path / ".git" / "evolve" / "cache.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    mac, _, payload = entry.read_bytes().partition(b"\n")
    data = json.loads(payload)
    for nodeid in data["result"]["outcomes"]:
        data["result"]["outcomes"][nodeid] = "passed"
    entry.write_bytes(mac + b"\n" + json.dumps(data, sort_keys=True).encode())

    code, again = sandbox.validate_json("evolve/break", "--no-merge", "--reruns", "0")
    assert code == 1 and not again["cached"], again
    assert again["cache_ignored"] == [entry.name]
    assert [r["nodeid"] for r in again["regressions"]] == ["tests/test_calc.py::test_add"]
    code, third = sandbox.validate_json("evolve/break", "--no-merge", "--reruns", "0")
    assert code == 1 and third["cached"] and third["cache_ignored"] == []


def test_the_environment_is_part_of_the_cache_key(sandbox: Sandbox) -> None:
    sandbox.branch("feature", {"scripts/calc.py": FIXED_CALC})
    assert sandbox.validate_json("feature", "--no-merge")[1]["cached"] is False
    assert sandbox.validate_json("feature", "--no-merge")[1]["cached"] is True
    # A run without the sandbox is a different environment: its verdict is not reused.
    code, report = sandbox.validate_json("feature", "--no-merge", env=NO_SANDBOX)
    assert code == 0 and report["cached"] is False
    assert os.listdir(sandbox.path / ".git" / "evolve" / "verdicts")
