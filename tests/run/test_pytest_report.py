"""parse_report on reports written by a real pytest run with pytest-json-report.

One crafted suite covers every outcome the ratchet distinguishes; it runs once per
module. Broken reports (missing, truncated, wrong exit code) are derived from the real
report, so the parser is checked against the plugin's actual format.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.errors import InvalidRun
from evolution.policy import Policy
from evolution.run.launch import pytest_flags
from evolution.run.report import RunResult, parse_report, stage_outcome

SUITE = """\
import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup exploded")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown exploded")


def test_pass():
    assert True


def test_fail():
    assert 1 == 2, "one is not two"


def test_skip():
    pytest.skip("not today")


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="known bug")
def test_xpass():
    assert True


def test_setup_error(broken_setup):
    assert True


def test_teardown_error(broken_teardown):
    assert True
"""

BROKEN = """\
import no_such_module_for_ratchet_tests  # noqa: F401


def test_x():
    pass
"""

# A folder whose conftest.py fails to import: pytest reports the *folder* collector.
SUB_CONFTEST = "import no_such_conftest_dependency_for_ratchet  # noqa: F401\n"
SUB_TEST = "def test_y():\n    pass\n"

S = "tests/test_suite.py::"
EXPECTED = {
    S + "test_pass": "passed",
    S + "test_fail": "failed",
    S + "test_skip": "skipped",
    S + "test_xfail": "xfailed",
    S + "test_xpass": "xpassed",
    S + "test_setup_error": "error",
    S + "test_teardown_error": "error",
}


@dataclass
class Run:
    root: Path
    report: Path
    returncode: int


def _run_pytest(root: Path) -> Run:
    report = root / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--json-report",
            f"--json-report-file={report}",
            "--json-report-omit=keywords,streams,log,warnings",
            "--continue-on-collection-errors",
            "-q",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(root=root, report=report, returncode=done.returncode)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("suite")
    _write(
        root,
        {
            "pytest.ini": "[pytest]\n",
            "tests/test_suite.py": SUITE,
            "tests/test_broken.py": BROKEN,
            "tests/sub/conftest.py": SUB_CONFTEST,
            "tests/sub/test_in_sub.py": SUB_TEST,
        },
    )
    run = _run_pytest(root)
    assert run.report.exists(), "pytest wrote no report"
    return run


@pytest.fixture(scope="module")
def parsed(real_run: Run) -> RunResult:
    return parse_report(real_run.report, real_run.returncode)


@pytest.fixture
def raw(real_run: Run) -> dict:
    return json.loads(real_run.report.read_text(encoding="utf-8"))


def test_the_real_run_failed_with_exit_code_1(real_run: Run, raw: dict) -> None:
    assert real_run.returncode == 1
    assert raw["exitcode"] == 1


def test_each_outcome_is_classified(parsed: RunResult) -> None:
    assert parsed.outcomes == EXPECTED
    assert parsed.exitcode == 1
    assert parsed.passed() == 1


def test_teardown_error_is_error_although_its_call_passed(parsed: RunResult, raw: dict) -> None:
    entry = next(t for t in raw["tests"] if t["nodeid"] == S + "test_teardown_error")
    assert entry["call"]["outcome"] == "passed"
    assert entry["teardown"]["outcome"] == "failed"
    assert parsed.outcomes[S + "test_teardown_error"] == "error"
    assert "teardown exploded" in parsed.failures[S + "test_teardown_error"]


def test_setup_error_text_is_kept(parsed: RunResult) -> None:
    assert "setup exploded" in parsed.failures[S + "test_setup_error"]
    assert "setup exploded" in parsed.first_line(S + "test_setup_error")


def test_failing_test_first_line_has_the_assertion_message(parsed: RunResult) -> None:
    line = parsed.first_line(S + "test_fail")
    assert "one is not two" in line
    assert "\n" not in line
    # The crash location is made relative to the run's root.
    assert parsed.failures[S + "test_fail"].startswith("tests/test_suite.py:")


def test_passing_tests_have_no_failure_text(parsed: RunResult) -> None:
    assert S + "test_pass" not in parsed.failures
    assert S + "test_xpass" not in parsed.failures
    assert parsed.first_line(S + "test_pass") == ""


def test_module_that_fails_to_import_is_a_collector_error(parsed: RunResult) -> None:
    assert "tests/test_broken.py" in parsed.collector_errors
    assert "tests/test_broken.py::test_x" not in parsed.outcomes
    text = parsed.import_error_for("tests/test_broken.py::test_x")
    assert text is not None
    assert "no_such_module_for_ratchet_tests" in text
    assert parsed.import_error_for(S + "test_pass") is None
    # A sibling module whose name merely starts the same way is not blamed.
    assert parsed.import_error_for("tests/test_broken.pyx::test_x") is None


def test_folder_whose_conftest_fails_explains_its_missing_tests(parsed: RunResult) -> None:
    assert "tests/sub" in parsed.collector_errors
    text = parsed.import_error_for("tests/sub/test_in_sub.py::test_y")
    assert text is not None
    assert "no_such_conftest_dependency_for_ratchet" in text


def test_run_result_json_round_trip(parsed: RunResult) -> None:
    again = RunResult.from_json(json.loads(json.dumps(parsed.to_json())))
    assert again == parsed


def test_missing_report_is_an_invalid_run(tmp_path: Path) -> None:
    with pytest.raises(InvalidRun, match="no JSON report"):
        parse_report(tmp_path / "absent.json", -9)
    with pytest.raises(InvalidRun, match="internal error"):
        parse_report(tmp_path / "absent.json", 3)


def test_truncated_report_is_partial(real_run: Run, tmp_path: Path) -> None:
    data = real_run.report.read_bytes()
    half = tmp_path / "half.json"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidRun, match="partial"):
        parse_report(half, real_run.returncode)


def test_report_with_usage_error_exit_code_is_invalid(raw: dict, tmp_path: Path) -> None:
    raw["exitcode"] = 4
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(InvalidRun, match="usage error"):
        parse_report(path, 4)
    with pytest.raises(InvalidRun):
        parse_report(path, None)


def test_returncode_disagreeing_with_report_is_invalid(real_run: Run) -> None:
    with pytest.raises(InvalidRun, match="exited 0 but its report says 1"):
        parse_report(real_run.report, 0)


def test_report_missing_its_summary_is_invalid(raw: dict, tmp_path: Path) -> None:
    del raw["summary"]
    path = tmp_path / "nosummary.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(InvalidRun, match="summary"):
        parse_report(path, 1)


def test_report_whose_count_disagrees_is_invalid(raw: dict, tmp_path: Path) -> None:
    raw["tests"] = raw["tests"][:-1]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(InvalidRun, match="counts"):
        parse_report(path, 1)


def test_no_tests_collected_is_a_valid_empty_result(tmp_path: Path) -> None:
    _write(tmp_path, {"pytest.ini": "[pytest]\n", "tests/helpers.py": "X = 1\n"})
    run = _run_pytest(tmp_path)
    assert run.returncode == 5
    result = parse_report(run.report, run.returncode)
    assert result.outcomes == {}
    assert result.exitcode == 5
    assert result.passed() == 0


def test_stage_outcome_keeps_rerun() -> None:
    # What the plugin writes under pytest-rerunfailures: a later passing call overwrites
    # the stage, but the top-level outcome stays "rerun".
    rerun = {
        "outcome": "rerun",
        "setup": {"outcome": "passed"},
        "call": {"outcome": "passed"},
        "teardown": {"outcome": "passed"},
    }
    assert stage_outcome(rerun) == "rerun"
    assert stage_outcome({"outcome": "rerun"}) == "rerun"


def test_stage_outcome_without_a_call_stage_is_an_error() -> None:
    unfinished = {"outcome": "passed", "setup": {"outcome": "passed"}}
    assert stage_outcome(unfinished) == "error"


def test_the_gates_report_holds_only_what_the_cross_check_reads(tmp_path: Path) -> None:
    """The gate's own flags, on a real run: each stage's outcome stays, and the parts the
    cross-check never reads (keywords, collectors, tracebacks, output) are left out, the
    plugin's cost per test being the JSON it builds. `--json-report-omit` takes separate
    words: one comma-joined word omitted nothing, unnoticed."""
    _write(tmp_path, {"pytest.ini": "[pytest]\n", "tests/test_suite.py": SUITE})
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_flags(Policy(), report), "-q", "tests"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    data = json.loads(report.read_text(encoding="utf-8"))
    assert "collectors" not in data, done.stdout
    assert data["tests"] and not any("keywords" in test for test in data["tests"])
    failed = next(t for t in data["tests"] if t["nodeid"].endswith("::test_fail"))
    assert failed["call"]["outcome"] == "failed" and "traceback" not in failed["call"]
    assert parse_report(report, done.returncode).outcomes == {
        test["nodeid"]: stage_outcome(test) for test in data["tests"]
    }
