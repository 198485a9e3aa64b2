"""The `evolve` command line, run as a real subprocess on real repositories."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from repo_setup import BROKEN_ADD, Sandbox, copy_sandbox, make_sandbox, run_evolve

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

ANSI = re.compile(r"\x1b\[")
ADD = "tests/test_calc.py::test_add"


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory, recorded_sandbox: Path) -> Sandbox:
    """One recorded sandbox for the tests that only read it."""
    return copy_sandbox(recorded_sandbox, tmp_path_factory.mktemp("shared") / "repo")


def _trailer(box: Sandbox, key: str, ref: str = "main") -> str:
    return box.git("log", "-1", f"--format=%(trailers:key={key},valueonly)", ref).strip()


def test_help_lists_the_commands(tmp_path: Path) -> None:
    done = run_evolve("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("validate", "baseline", "demo"):
        assert re.search(rf"^\s+{command}\b", done.stdout, re.MULTILINE), command
    assert "Traceback" not in done.stderr


def test_importing_the_cli_stays_light() -> None:
    code = (
        "import sys\n"
        "import evolution.cli\n"
        "heavy = [m for m in ('litellm', 'git', 'evolution.gate.validate') if m in sys.modules]\n"
        "print('AFTER-IMPORT', heavy)\n"
        "sys.argv = ['evolve', '--help']\n"
        "try:\n"
        "    evolution.cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('litellm', 'git', 'evolution.gate.validate') if m in sys.modules]\n"
        "print('AFTER-HELP', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "AFTER-IMPORT []" in lines
    assert "validate" in done.stdout  # the help really ran
    assert "AFTER-HELP []" in lines


def test_baseline_show_json(shared_sandbox: Sandbox) -> None:
    done = shared_sandbox.evolve("baseline", "show", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["counts"] == {"failed": 1, "passed": 2}
    assert info["passing"] == 2
    assert info["tests"] == 3
    assert info["flaky"] == {}
    assert re.fullmatch(r"\d+[smhd]", info["age"]), info["age"]
    assert info["main"] == shared_sandbox.head()
    assert info["commit"] == shared_sandbox.head("main~1")  # recorded from the agent commit


def test_baseline_show_text_is_plain_when_piped(shared_sandbox: Sandbox) -> None:
    done = shared_sandbox.evolve("baseline", "show", env={"NO_COLOR": "1", "TERM": "xterm"})
    assert done.returncode == 0, done.stderr
    assert not ANSI.search(done.stdout)
    assert not ANSI.search(done.stderr)
    assert "tests 3: failed 1, passed 2" in done.stdout
    assert "flaky (quarantined): 0" in done.stdout


def test_baseline_show_without_a_baseline_is_a_usage_error(tmp_path: Path) -> None:
    box = make_sandbox(tmp_path / "repo", record=False)
    done = box.evolve("baseline", "show")
    assert done.returncode == 2
    assert "evolve baseline record" in done.stderr
    assert "Traceback" not in done.stderr


def test_record_refuses_to_lower_the_ratchet_unless_reset(sandbox: Sandbox) -> None:
    first = sandbox.head()
    assert _trailer(sandbox, "Evolve-Verdict") == "baseline"
    assert _trailer(sandbox, "Evolve-Baseline") == "none -> 2"

    broken = sandbox.commit("break add on main", {"scripts/calc.py": BROKEN_ADD})
    assert broken != first
    done = sandbox.evolve("baseline", "record", "--reruns", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert ADD in done.stderr
    assert "--reset" in done.stderr
    assert "Traceback" not in done.stderr
    assert sandbox.head() == broken  # nothing recorded
    assert sandbox.baseline()["tests"][ADD] == "passed"

    done = sandbox.evolve("baseline", "record", "--reruns", "0", "--reset", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dropped"] == [ADD]
    assert (report["passing_before"], report["passing_after"]) == (2, 1)
    assert sandbox.head("main~1") == broken
    assert sandbox.baseline()["tests"][ADD] == "failed"
    assert sandbox.baseline()["counts"] == {"failed": 2, "passed": 1}
    assert _trailer(sandbox, "Evolve-Verdict") == "baseline"
    assert _trailer(sandbox, "Evolve-Baseline") == "2 -> 1"
    assert _trailer(sandbox, "Evolve-Tested-Tree") == sandbox.git("rev-parse", f"{broken}^{{tree}}")


def test_record_refuses_a_dirty_checkout_of_main_before_running_the_suite(
        sandbox: Sandbox) -> None:
    """A recording lands on main; with uncommitted changes in main's checkout it is
    refused as a usage error at once (it used to run the whole suite, then refuse to
    land with a hint that the verdict was cached, which a recording is not)."""
    head = sandbox.head()
    (sandbox.path / "scripts/calc.py").write_text(BROKEN_ADD)
    done = sandbox.evolve("baseline", "record", "--reruns", "0")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "uncommitted changes" in done.stderr and "evolve baseline record" in done.stderr
    assert "cached" not in done.stderr and "Traceback" not in done.stderr
    assert sandbox.head() == head


def test_record_of_a_suite_without_tests_is_an_invalid_run(tmp_path: Path) -> None:
    box = Sandbox(tmp_path / "empty")
    box.path.mkdir()
    box.git("init", "-q", "-b", "main")
    box.commit(
        "no tests yet",
        {"scripts/__init__.py": "", "scripts/calc.py": "X = 1\n", "tests/helpers.py": "Y = 2\n"},
    )
    head = box.head()
    done = box.evolve("baseline", "record", "--reruns", "0")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "collected no tests" in done.stderr
    assert box.head() == head


def test_validate_with_an_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    done = run_evolve("validate", "some-branch", "--no-such-option", cwd=tmp_path)
    assert done.returncode == 2
    assert "--no-such-option" in done.stderr


def test_validate_with_a_bad_flaky_value_is_a_usage_error(shared_sandbox: Sandbox) -> None:
    done = shared_sandbox.evolve("validate", "main", "--flaky", "sometimes", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["exit_code"] == 2


def test_demo_runs_offline(tmp_path: Path) -> None:
    done = run_evolve("demo", "--dir", str(tmp_path / "d"), "--json", cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    cycle = next(step for step in report["steps"] if step["step"] == "cycle")
    [iteration] = cycle["iterations"]
    assert iteration["proposal"]["proposer"] == "mutate"
    assert iteration["proposal"]["search"]["edits"] == ["line 26: > -> >="]
    assert (iteration["gate"]["passing_before"], iteration["gate"]["passing_after"]) == (8, 9)
    assert [e["verdict"] for e in report["trail"]] == ["rejected", "accepted", "baseline"]


def test_a_reset_with_a_reason_names_what_it_lets_go_and_why(sandbox: Sandbox) -> None:
    """Lowering the ratchet on purpose leaves the reason and every dropped test in git."""
    sandbox.commit("break add on main", {"scripts/calc.py": BROKEN_ADD})
    why = "the add test is retired with its feature"
    done = sandbox.evolve("baseline", "record", "--reruns", "0", "--reset", "--reason", why)
    assert done.returncode == 0, done.stderr
    body = sandbox.git("log", "-1", "--format=%B", "main")
    assert f"Reason: {why}" in body
    assert f"No longer counted as passing (1):\n  {ADD}" in body
    assert _trailer(sandbox, "Evolve-Verdict") == "baseline"  # the trailers still parse


def test_the_old_spellings_of_the_safety_net_still_work_with_a_note(sandbox: Sandbox) -> None:
    new = sandbox.evolve("safety-net", "--json")
    old = sandbox.evolve("validate", "--post-merge", "--json")
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    assert json.loads(new.stdout)["status"] == json.loads(old.stdout)["status"]
    assert "`evolve validate --post-merge` is now `evolve safety-net`" in old.stderr
    assert "is now" not in new.stderr
    listed = run_evolve("--help", cwd=sandbox.path).stdout
    assert "safety-net" in listed and "pre-merge-commit" in listed
    assert "--post-merge" not in run_evolve("validate", "--help", cwd=sandbox.path).stdout
