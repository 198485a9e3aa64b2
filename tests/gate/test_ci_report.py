"""How a check's verdict reads to a CI: the JUnit XML, GitHub's workflow commands and
step summary, from a report built by hand (the real run is in test_merge_queue.py)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

from evolution.gate.check import CheckReport
from evolution.gate.ci_report import annotations, junit, location, publish
from evolution.ratchet import Comparison, Regression

TEXT = "tests/test_calc.py:5: assert -1 == 5\n\ndef test_add():\n>   assert add(2, 3) == 5"


def _report() -> CheckReport:
    comparison = Comparison(
        regressions=[
            Regression("tests/test_calc.py::test_add", "passed", "failed", "assert -1 == 5", TEXT),
            Regression("tests/test_gone.py::T::test_x", "passed", "missing", "missing", "missing"),
        ],
        new_failing=[Regression("tests/test_new.py::test_n", "new", "failed", "boom", "boom")],
        flaky={"tests/test_calc.py::test_sub": {"outcomes": ["failed", "passed"]}},
    )
    return CheckReport(
        verdict="rejected", mode="full", commit="c" * 40, tree="t" * 40, base="b" * 40,
        base_ref="refs/remotes/origin/main", baseline={"commit": "b" * 40, "blob": "f" * 40},
        policy="p", reason="2 baseline-passing test(s) regressed", comparison=comparison,
        outcomes={"tests/test_calc.py::test_add": "failed", "tests/test_calc.py::test_sub":
                  "failed", "tests/test_new.py::test_n": "failed",
                  "tests/test_calc.py::test_mul": "failed", "tests/test_ok.py::test": "passed"},
        tests_run=5, passed=1,
    )  # fmt: skip


def test_junit_fails_regressions_only_and_says_why_the_rest_is_allowed() -> None:
    root = ET.fromstring(junit(_report()))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "2", "3")
    cases = {f"{c.get('classname')}::{c.get('name')}": c for c in suite.iter("testcase")}
    failure = cases["tests.test_calc::test_add"].find("failure")
    assert failure is not None and failure.text == TEXT
    assert cases["tests.test_gone.T::test_x"].find("failure") is not None  # missing
    why = {n: c.find("skipped").get("message") for n, c in cases.items()
           if c.find("skipped") is not None}  # fmt: skip
    assert "new test" in why["tests.test_new::test_n"]
    assert "as in the baseline" in why["tests.test_calc::test_mul"]
    assert "flaky" in why["tests.test_calc::test_sub"]
    assert cases["tests.test_ok::test"].find("skipped") is None


def test_one_annotation_per_regression_at_its_line() -> None:
    lines = annotations(_report())
    assert len(lines) == 2
    assert lines[0].startswith("::error file=tests/test_calc.py,line=5,title=")
    assert lines[1].startswith("::error file=tests/test_gone.py,line=1,")
    # Properties escape ':' and ','; the message escapes newlines.
    assert "tests/test_calc.py%3A%3Atest_add" in lines[0].split("::")[1]
    assert "\n" not in "".join(lines)
    assert location(_report().comparison.regressions[0]) == ("tests/test_calc.py", 5)


def test_publish_on_github_writes_the_summary_and_elsewhere_only_the_junit(tmp_path: Path) -> None:
    summary, out = tmp_path / "summary.md", io.StringIO()
    github = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    publish(_report(), tmp_path / "j.xml", github, out)
    assert out.getvalue().count("::error ") == 2
    assert "Ratchet: rejected" in summary.read_text()
    quiet = io.StringIO()
    publish(_report(), tmp_path / "k.xml", {}, quiet)
    assert quiet.getvalue() == "" and (tmp_path / "k.xml").exists()
    publish(None, tmp_path / "i.xml", github, out, invalid="part 3 of 3 missing")
    assert "invalid run" in summary.read_text()
    assert ET.parse(tmp_path / "i.xml").find(".//error") is not None
