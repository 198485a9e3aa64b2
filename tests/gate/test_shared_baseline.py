"""The shared baseline with real gate runs: `evolve baseline migrate` both ways, and the
gate and `evolve baseline record` reading and advancing refs/notes/ratchet (a candidate
that tries to move the store itself: tests/redteam/test_redteam_shared_baseline.py)."""

from __future__ import annotations

import json

import pytest
from repo_setup import BROKEN_ADD, FIXED_CALC, Sandbox

from evolution.baseline import STORE_REF, read_shared, store_entries
from evolution.gitrepo import GitRepo

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

MUL = "tests/test_calc.py::test_mul"
ADD = "tests/test_calc.py::test_add"


def _migrate(box: Sandbox, to: str) -> dict:
    done = box.evolve("baseline", "migrate", "--to", to, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _stored(box: Sandbox, commit: str = "main") -> dict:
    return json.loads(box.git("notes", "--ref=ratchet", "show", commit))


def test_migrate_moves_the_baseline_to_the_store_and_back_unchanged(sandbox: Sandbox) -> None:
    tree, baseline = sandbox.git("rev-parse", "main^{tree}"), sandbox.baseline()

    to_ref = _migrate(sandbox, "ref")

    assert to_ref["moved"] and to_ref["policy_file"] == "deploy/agent.toml"
    assert sandbox.head() == to_ref["main_after"] != to_ref["main_before"]
    assert _stored(sandbox) == baseline  # the same baseline, under the new main
    assert sandbox.git("show", "main:deploy/agent.toml") == '[evolution]\nbaseline = "ref"'
    assert sandbox.git("ls-tree", "--name-only", "main", "baseline/") == ""
    assert not (sandbox.path / "baseline/baseline.json").exists()  # the checkout followed
    assert sandbox.git("status", "--porcelain") == ""
    trailers = sandbox.git("log", "-1", "--format=%(trailers:only,unfold)", "main")
    assert "Evolve-Verdict: baseline" in trailers and "Evolve-Baseline: 2 -> 2" in trailers
    shown = json.loads(sandbox.evolve("baseline", "show", "--json").stdout)
    assert shown["stored_in"] == STORE_REF and shown["passing"] == 2

    again = _migrate(sandbox, "ref")  # idempotent
    assert not again["moved"] and again["main_after"] == to_ref["main_after"] == sandbox.head()

    to_file = _migrate(sandbox, "file")

    assert to_file["moved"] and sandbox.baseline() == baseline
    assert sandbox.git("rev-parse", "main^{tree}") == tree  # the policy file went too
    assert not _migrate(sandbox, "file")["moved"]
    assert sandbox.git("rev-parse", "main^{tree}") == tree


def test_migrate_refuses_a_dirty_checkout_and_a_wrong_mode(sandbox: Sandbox) -> None:
    main = sandbox.head()
    (sandbox.path / "scripts/calc.py").write_text(FIXED_CALC)

    dirty = sandbox.evolve("baseline", "migrate", "--to", "ref")
    wrong = sandbox.evolve("baseline", "migrate", "--to", "notes")

    assert dirty.returncode == 2 and "uncommitted changes" in dirty.stderr + dirty.stdout
    assert wrong.returncode == 2 and "file or ref" in wrong.stderr + wrong.stdout
    assert sandbox.head() == main and sandbox.git("rev-parse", "-q", "--verify", STORE_REF,
                                                  check=False) == ""  # fmt: skip


def test_in_ref_mode_the_gate_judges_against_the_store_and_advances_it(sandbox: Sandbox) -> None:
    migrated = _migrate(sandbox, "ref")["main_after"]
    sandbox.branch("evolve/fix-mul", {"scripts/calc.py": FIXED_CALC}, proposal=True)

    code, report = sandbox.validate_json("evolve/fix-mul")

    assert code == 0 and report["merged"], report
    gate = sandbox.head()
    # The gate commit keeps the tested tree as it is: no baseline file in main's tree.
    assert sandbox.git("rev-parse", f"{gate}^{{tree}}") == report["tested_tree"]
    assert "Evolve-Baseline: 2 -> 3" in sandbox.git("log", "-1", "--format=%B", gate)
    assert _stored(sandbox, gate)["tests"][MUL] == "passed"
    assert _stored(sandbox, migrated)["tests"][MUL] == "failed"  # the older entry is kept
    repo = GitRepo(sandbox.path)
    assert set(store_entries(repo, repo.resolve_commit(STORE_REF))) == {migrated, gate}

    # The next candidate is held to the advanced baseline, read from the store.
    sandbox.branch("evolve/break-add", {"scripts/calc.py": BROKEN_ADD.replace(
        "    # seeded bug: should multiply\n    return a + b\n", "    return a * b\n")},
        proposal=True)  # fmt: skip
    code, report = sandbox.validate_json("evolve/break-add", "--reruns", "0")
    assert code == 1 and [r["nodeid"] for r in report["regressions"]] == [ADD], report
    assert report["passing_before"] == 3 and sandbox.head() == gate

    # Recording in ref mode: a commit with the verdict, main's tree unchanged, the
    # baseline stored under it.
    done = sandbox.evolve("baseline", "record", "--reruns", "0", "--json")
    assert done.returncode == 0, done.stderr
    recorded = json.loads(done.stdout)["commit"]
    assert sandbox.head() == recorded
    assert sandbox.git("rev-parse", f"{recorded}^{{tree}}") == sandbox.git(
        "rev-parse", f"{gate}^{{tree}}")  # fmt: skip
    assert _stored(sandbox, recorded)["tests"][MUL] == "passed"
    assert read_shared(repo, recorded)[0].commit == gate  # the commit it ran on, as in a file


def test_a_check_then_the_merge_then_the_advance_is_the_queue_flow(sandbox: Sandbox) -> None:
    """CI checks the merge group's commit, the queue fast-forwards main to exactly it,
    and a post-merge job stores what the check advanced: the check's JSON is the seam."""
    _migrate(sandbox, "ref")
    sandbox.branch("group", {"scripts/calc.py": FIXED_CALC})
    group = sandbox.git("rev-parse", "group")
    done = sandbox.evolve("check", "--commit", group, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = sandbox.path.parent / "verdict.json"
    verdict.write_text(done.stdout)
    assert json.loads(done.stdout)["advanced"]["tests"][MUL] == "passed"

    early = sandbox.evolve("baseline", "advance", "--from", str(verdict), "--json")
    assert early.returncode == 1, early.stdout  # not merged yet: nothing is stored
    assert sandbox.git("notes", "--ref=ratchet", "list", group, check=False) == ""

    sandbox.git("merge", "-q", "--ff-only", "group")
    stored = sandbox.evolve("baseline", "advance", "--from", str(verdict), "--json")
    assert stored.returncode == 0, stored.stdout + stored.stderr
    assert _stored(sandbox, group)["tests"][MUL] == "passed"
    again = sandbox.evolve("baseline", "advance", "--from", str(verdict), "--json")
    assert again.returncode == 0  # idempotent: a retried post-merge job changes nothing
