"""The ratchet gate on real repositories with real pytest runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from repo_setup import BROKEN_ADD, CALC, CALC_TESTS, FIXED_CALC, Sandbox, make_sandbox, run_evolve

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them


def test_improving_branch_is_merged_and_baseline_grows(sandbox: Sandbox) -> None:
    main_before = sandbox.head()
    tip = sandbox.branch("evolve/fix-mul", {"scripts/calc.py": FIXED_CALC}, proposal=True)

    code, report = sandbox.validate_json("evolve/fix-mul")

    assert code == 0, report
    assert report["verdict"] == "accepted" and report["merged"]
    assert report["newly_passing"] == ["tests/test_calc.py::test_mul"]
    gate = sandbox.head()
    assert gate == report["main_after"]
    # main moved to the gate commit, whose only parent is the tested merge commit
    merge = sandbox.git("rev-parse", f"{gate}^")
    assert merge == report["merge_commit"]
    assert sandbox.git("rev-parse", f"{merge}^1", f"{merge}^2").split() == [main_before, tip]
    assert sandbox.git("rev-parse", f"{merge}^{{tree}}") == report["tested_tree"]
    trailers = sandbox.git("log", "-1", "--format=%(trailers:only,unfold)", gate)
    assert "Evolve-Verdict: accepted" in trailers
    assert f"Evolve-Tested-Tree: {report['tested_tree']}" in trailers
    assert "Evolve-Baseline: 2 -> 3" in trailers
    assert "Evolve-Flaky: none" in trailers
    assert "Evolve-Proposal: evolve-fix-mul" in trailers
    # the gate commit changes nothing but the baseline
    assert sandbox.git("diff", "--name-only", merge, gate) == "baseline/baseline.json"
    baseline = sandbox.baseline()
    assert baseline["tests"]["tests/test_calc.py::test_mul"] == "passed"
    assert baseline["commit"] == merge
    # the clean checkout of main followed, and the engine's branch was tidied away
    assert (sandbox.path / "scripts/calc.py").read_text() == FIXED_CALC
    assert sandbox.git("status", "--porcelain") == ""
    assert sandbox.git("branch", "--list", "evolve/fix-mul") == ""


def test_regressing_branch_is_rejected_and_archived(sandbox: Sandbox) -> None:
    main_before = sandbox.head()
    tip = sandbox.branch("evolve/break-add", {"scripts/calc.py": BROKEN_ADD}, proposal=True)

    done = sandbox.evolve("validate", "evolve/break-add", "--reruns", "1")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "REJECTED" in done.stdout
    assert "tests/test_calc.py::test_add (passed -> failed)" in done.stdout
    assert sandbox.head() == main_before
    assert sandbox.git("rev-parse", "refs/evolve/rejected/evolve-break-add") == tip
    note = sandbox.git("notes", "--ref=evolve", "show", tip)
    assert "Evolve-Verdict: rejected" in note
    assert "Evolve-Regressed: tests/test_calc.py::test_add" in note
    assert "assert -1 == 5" in note  # the first failure line
    assert "\x1b[" not in done.stdout  # plain output when piped


def test_human_branch_keeps_its_name_after_rejection(sandbox: Sandbox) -> None:
    tip = sandbox.branch("feature", {"scripts/calc.py": BROKEN_ADD})
    code, report = sandbox.validate_json("feature", "--reruns", "0")
    assert code == 1
    assert sandbox.head("feature") == tip
    assert report["archived_as"].startswith("refs/evolve/rejected/feature-")


def _rejected_for(sandbox: Sandbox, name: str, **change: object) -> dict:
    sandbox.branch(name, **change)  # type: ignore[arg-type]
    code, report = sandbox.validate_json(name, "--reruns", "0")
    assert code == 1, report
    return report


def test_deleted_test_is_a_regression(sandbox: Sandbox) -> None:
    trimmed = CALC_TESTS.replace("def test_add():\n    assert add(2, 3) == 5\n", "")
    report = _rejected_for(sandbox, "drop-test", files={"tests/test_calc.py": trimmed})
    [regression] = report["regressions"]
    assert regression["nodeid"] == "tests/test_calc.py::test_add"
    assert regression["now"] == "missing"


def test_skipped_and_xfailed_tests_are_regressions(sandbox: Sandbox) -> None:
    marked = CALC_TESTS.replace(
        "def test_add():", "import pytest\n\n\n@pytest.mark.skip\ndef test_add():"
    ).replace("def test_sub():", "@pytest.mark.xfail\ndef test_sub():")
    broken_sub = FIXED_CALC.replace("return a - b", "return b - a")
    report = _rejected_for(
        sandbox,
        "hide-tests",
        files={"tests/test_calc.py": marked, "scripts/calc.py": broken_sub},
    )
    outcomes = {r["nodeid"]: r["now"] for r in report["regressions"]}
    assert outcomes == {
        "tests/test_calc.py::test_add": "skipped",
        "tests/test_calc.py::test_sub": "xfailed",
    }


def test_module_that_no_longer_imports_is_a_regression(sandbox: Sandbox) -> None:
    report = _rejected_for(
        sandbox, "bad-import", files={"scripts/calc.py": "import no_such_module\n" + CALC}
    )
    assert {r["now"] for r in report["regressions"]} == {"missing"}
    assert all("no longer imports" in r["first_line"] for r in report["regressions"])
    assert "no_such_module" in report["regressions"][0]["first_line"]


def test_new_failing_test_is_allowed_and_reported(sandbox: Sandbox) -> None:
    sandbox.branch("new-test", {"tests/test_more.py": "def test_new():\n    assert False\n"})
    code, report = sandbox.validate_json("new-test", "--no-merge")
    assert code == 0, report
    assert [r["nodeid"] for r in report["new_failing"]] == ["tests/test_more.py::test_new"]


def test_require_improvement_rejects_a_neutral_change(sandbox: Sandbox) -> None:
    sandbox.branch("neutral", {"scripts/notes.txt": "nothing that matters\n"})
    code, report = sandbox.validate_json("neutral", "--require-improvement", "--no-merge")
    assert code == 1
    assert "requires an improvement" in report["reason"]
    code, report = sandbox.validate_json("neutral", "--no-merge")
    assert code == 0


def test_no_merge_changes_nothing(sandbox: Sandbox) -> None:
    refs_before = sandbox.git("for-each-ref")
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    refs_before = sandbox.git("for-each-ref")
    code, report = sandbox.validate_json("evolve/fix", "--no-merge")
    assert code == 0 and report["verdict"] == "accepted" and not report["merged"]
    assert sandbox.git("for-each-ref") == refs_before


def test_proposal_may_not_touch_protected_paths(sandbox: Sandbox) -> None:
    main_before = sandbox.head()
    sandbox.branch(
        "evolve/sneaky",
        {"scripts/calc.py": BROKEN_ADD, "tests/conftest.py": "collect_ignore = ['test_calc.py']\n"},
        proposal=True,
    )
    code, report = sandbox.validate_json("evolve/sneaky")
    assert code == 1
    assert report["protected_paths"] == ["tests/conftest.py"]
    assert "tests/conftest.py" in report["reason"]
    assert report["tests_run"] == 0  # judged without running anything
    assert sandbox.head() == main_before


def test_proposal_outside_evolvable_paths_is_rejected(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/elsewhere", {"tools/new.py": "X = 1\n"}, proposal=True)
    code, report = sandbox.validate_json("evolve/elsewhere", "--no-merge")
    assert code == 1 and report["protected_paths"] == ["tools/new.py"]


def test_people_may_change_tests(sandbox: Sandbox) -> None:
    extra = CALC_TESTS + "\n\ndef test_add_zero():\n    assert add(0, 0) == 0\n"
    sandbox.branch("more-tests", {"tests/test_calc.py": extra})
    code, report = sandbox.validate_json("more-tests")
    assert code == 0 and report["merged"], report
    assert "tests/test_calc.py::test_add_zero" in sandbox.baseline()["tests"]


def test_policy_comes_from_main_not_the_candidate(sandbox: Sandbox) -> None:
    sandbox.commit(
        "policy: demand improvement",
        {"deploy/agent.toml": "[evolution]\nrequire_improvement = true\n"},
    )
    sandbox.branch("relax", {"deploy/agent.toml": "[evolution]\nrequire_improvement = false\n"})
    code, report = sandbox.validate_json("relax", "--no-merge")
    assert code == 1
    assert "requires an improvement" in report["reason"]


def test_merge_conflict_is_rejected(sandbox: Sandbox) -> None:
    sandbox.branch("left", {"scripts/calc.py": FIXED_CALC})
    other_fix = FIXED_CALC.replace("return a * b", "return b * a")
    sandbox.commit("main fixes mul its own way", {"scripts/calc.py": other_fix})
    code, report = sandbox.validate_json("left")
    assert code == 1
    assert report["conflicts"] == ["scripts/calc.py"]


def test_branch_already_in_main_is_up_to_date(sandbox: Sandbox) -> None:
    code, report = sandbox.validate_json("main~1")
    assert code == 0 and report["verdict"] == "up-to-date"


def test_cached_verdict_is_reused(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    _, first = sandbox.validate_json("evolve/fix", "--no-merge")
    _, second = sandbox.validate_json("evolve/fix", "--no-merge")
    assert not first["cached"] and second["cached"]
    assert second["newly_passing"] == first["newly_passing"]
    assert second["tested_tree"] == first["tested_tree"]


def test_dirty_checkout_of_main_is_never_moved(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    main_before = sandbox.head()
    (sandbox.path / "scripts/calc.py").write_text(BROKEN_ADD)  # the user's unsaved work

    code, report = sandbox.validate_json("evolve/fix")

    assert code == 1
    assert report["verdict"] == "accepted" and not report["merged"]
    assert "uncommitted changes" in report["reason"]
    assert sandbox.head() == main_before
    assert (sandbox.path / "scripts/calc.py").read_text() == BROKEN_ADD

    sandbox.git("checkout", "--", "scripts/calc.py")
    code, report = sandbox.validate_json("evolve/fix")
    assert code == 0 and report["merged"] and report["cached"]


def test_user_index_and_stash_are_untouched(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/fix", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    sandbox.git("switch", "-q", "-c", "work")
    (sandbox.path / "scripts/calc.py").write_text(FIXED_CALC + "# wip\n")
    sandbox.git("stash")
    (sandbox.path / "scripts/wip.py").write_text("x = 1\n")
    sandbox.git("add", "scripts/wip.py")
    stash, index = sandbox.git("stash", "list"), sandbox.git("diff", "--cached", "--name-only")

    code, report = sandbox.validate_json("evolve/fix")

    assert code == 0 and report["merged"]
    assert sandbox.git("stash", "list") == stash
    assert sandbox.git("diff", "--cached", "--name-only") == index
    assert sandbox.git("rev-parse", "--abbrev-ref", "HEAD") == "work"


def test_user_errors_are_clear_and_exit_2(tmp_path: Path, sandbox: Sandbox) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    done = run_evolve("validate", "x", cwd=outside)
    assert done.returncode == 2 and "not a git repository" in done.stderr
    assert "Traceback" not in done.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    run_evolve("baseline", "show", cwd=empty)  # not yet a repo: also exit 2
    Sandbox(empty).git("init", "-q", "-b", "main")
    done = run_evolve("validate", "x", cwd=empty)
    assert done.returncode == 2 and "has no commit" in done.stderr

    done = sandbox.evolve("validate", "no-such-branch")
    assert done.returncode == 2 and "no-such-branch" in done.stderr

    done = sandbox.evolve("validate", "main")
    assert done.returncode == 2

    unrecorded = make_sandbox(tmp_path / "unrecorded", record=False)
    unrecorded.branch("b", {"scripts/x.py": "X = 1\n"})
    done = unrecorded.evolve("validate", "b", "--json")
    assert done.returncode == 2 and "evolve baseline record" in done.stderr
    assert '"exit_code": 2' in done.stdout
