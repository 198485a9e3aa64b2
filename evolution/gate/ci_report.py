"""How a check's verdict reaches a CI: JUnit XML (every CI reads it), and on GitHub
Actions a step summary and one `::error` annotation per regression, at the line where
it failed. Everything here is a pure function of a `CheckReport` (or, for an invalid
run, of its message), except `publish`, which writes them where the CI looks.

In the JUnit file a regression is a failure; a test that does not pass but is no
regression (new in the candidate, failing in the baseline too, quarantined as flaky) is
skipped with the reason: the ratchet allows it, and it is not green; the outcomes a
re-run or retry saw are in system-out; a refusal by the pre-test checks is one failed
case of its own. Node ids become JUnit names the way pytest's own
`--junitxml` writes them (the module's dotted path as the class name).
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from agent.atomicio import atomic_write_text
from evolution.gate.check import CheckReport
from evolution.ratchet import Comparison, Regression

LOCATION = re.compile(r"^(?P<file>[^\s:]+\.py):(?P<line>\d+): ")
SHOWN = 50  # regressions listed in a step summary (all are in the JUnit file)


def _names(nodeid: str) -> tuple[str, str]:
    """pytest's junitxml classname and name for a node id."""
    path, _, rest = nodeid.partition("::")
    module = path.removesuffix(".py").replace("/", ".")
    *classes, name = rest.split("::") if rest else [path]
    return ".".join([module, *classes]), name


def _allowed(report: CheckReport, nodeid: str) -> str:
    """Why a test that did not pass is no regression, in a skipped case's words."""
    comparison = report.comparison or Comparison()
    outcome = report.outcomes.get(nodeid, "")
    if outcome in ("skipped", "xfailed"):
        return outcome
    if nodeid in comparison.quarantined_failures or nodeid in comparison.flaky:
        return f"{outcome}, but passed on a re-run: flaky, quarantined by the policy"
    if any(r.nodeid == nodeid for r in comparison.new_failing):
        return f"{outcome}: a new test, allowed until it first passes"
    return f"{outcome}, as in the baseline: allowed by the ratchet"


def junit(report: CheckReport) -> str:
    """The verdict as a JUnit XML document."""
    comparison = report.comparison or Comparison()
    failed = {r.nodeid: r for r in comparison.regressions}
    suite = ET.Element("testsuite", name=f"ratchet {report.commit[:12]}")
    if report.verdict == "refused":
        case = ET.SubElement(suite, "testcase", classname="ratchet", name="pre-test checks")
        ET.SubElement(case, "failure", message=report.reason, type="refused").text = "\n".join(
            report.guard or report.protected_paths or [report.reason]
        )
    for nodeid in sorted(set(report.outcomes) | set(failed)):
        classname, name = _names(nodeid)
        case = ET.SubElement(suite, "testcase", classname=classname, name=name,
                             time=f"{report.durations.get(nodeid, 0.0):.3f}")  # fmt: skip
        evidence = report.reruns.get(nodeid) or comparison.flaky.get(nodeid)
        if nodeid in failed:
            regression = failed[nodeid]
            message = f"{regression.was} -> {regression.now}: {regression.first_line}"
            failure = ET.SubElement(case, "failure", type="regression", message=message)
            failure.text = regression.text
        elif report.outcomes.get(nodeid) != "passed":
            ET.SubElement(case, "skipped", message=_allowed(report, nodeid))
        if evidence:
            outcomes = " ".join(str(o) for o in evidence.get("outcomes", []))
            ET.SubElement(case, "system-out").text = f"outcomes on this tree: {outcomes}"
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(len(suite.findall("testcase/failure"))))
    suite.set("errors", "0")
    suite.set("skipped", str(len(suite.findall("testcase/skipped"))))
    root = ET.Element("testsuites", name="ratchet check")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def junit_invalid(message: str) -> str:
    """An invalid run as JUnit: one errored case, no test outcome claimed."""
    root = ET.Element("testsuites", name="ratchet check")
    suite = ET.SubElement(root, "testsuite", name="ratchet", tests="1", failures="0",
                          errors="1", skipped="0")  # fmt: skip
    case = ET.SubElement(suite, "testcase", classname="ratchet", name="valid run")
    ET.SubElement(case, "error", type="invalid-run", message=message).text = message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def location(regression: Regression) -> tuple[str, int]:
    """Where a regression failed: the `path:line:` its failure text starts with, else
    the test's file at line 1 (a test that went missing has no line)."""
    found = LOCATION.match(regression.text.lstrip())
    if found:
        return found["file"], int(found["line"])
    return regression.nodeid.split("::", 1)[0], 1


def annotations(report: CheckReport) -> list[str]:
    """GitHub workflow commands: one `::error` per regression, one for a refusal."""
    lines = []
    if report.verdict == "refused":
        lines.append(f"::error title=Ratchet refused the commit::{_escape_data(report.reason)}")
    for regression in (report.comparison or Comparison()).regressions:
        path, line = location(regression)
        title = _escape_property(f"Ratchet: regression in {regression.nodeid}")
        message = _escape_data(f"{regression.nodeid} was {regression.was}, is now "
                               f"{regression.now}: {regression.first_line}")  # fmt: skip
        lines.append(f"::error file={_escape_property(path)},line={line},title={title}::{message}")
    return lines


def invalid_annotation(message: str) -> str:
    return f"::error title=Ratchet%3A invalid run (no verdict)::{_escape_data(message)}"


def summary(report: CheckReport) -> str:
    """The step summary, in GitHub's Markdown."""
    comparison = report.comparison or Comparison()
    icon = {"accepted": "✅", "rejected": "❌", "refused": "⛔"}[report.verdict]
    what = {"full": "", "part": " (one part)", "combined": " (parts combined)"}[report.mode]
    lines = [f"### {icon} Ratchet: {report.verdict}{what}", ""]
    if report.reason:
        lines += [f"**{report.reason}**", ""]
    lines += [
        "| | |", "|---|---|",
        f"| commit | `{report.commit[:12]}` (tree `{report.tree[:12]}`) |",
        f"| baseline | from `{report.base[:12]}` ({report.base_ref}) |",
        f"| tests | {report.tests_run} run, {report.passed} passed |",
    ]  # fmt: skip
    if report.split:
        lines.append(f"| part | {report.split['index']} of {report.split['count']} |")
    if report.parts:
        lines.append(f"| parts | {len(report.parts)}, sealed by {report.attestation} |")
    if report.sandbox:
        lines.append(f"| sandbox | {report.sandbox} |")
    sections = [
        ("Regressions", [f"`{r.nodeid}`: {r.first_line}" for r in comparison.regressions]),
        ("Flaky (two outcomes on this tree)", [f"`{n}`" for n in sorted(comparison.flaky)]),
        ("Quarantined, failed again", [f"`{n}`" for n in comparison.quarantined_failures]),
        ("Newly passing", [f"`{n}`" for n in comparison.newly_passing]),
        ("New tests not passing yet", [f"`{r.nodeid}`: {r.now}" for r in comparison.new_failing]),
    ]
    for title, items in sections:
        if items:
            lines += ["", f"**{title}** ({len(items)})", ""]
            lines += [f"- {item}" for item in items[:SHOWN]]
            if len(items) > SHOWN:
                lines.append(f"- … and {len(items) - SHOWN} more (see the JUnit report)")
    return "\n".join(lines) + "\n"


def publish(report: CheckReport | None, junit_file: Path | None, environ: Mapping[str, str],
            commands: TextIO = sys.stdout, invalid: str = "") -> None:  # fmt: skip
    """Write the JUnit file (when asked) and, on GitHub Actions, the annotations (to
    `commands`) and the step summary; for an invalid run (`invalid`, the reason), only
    what says so: an errored JUnit case, one annotation and the summary's line."""
    github = environ.get("GITHUB_ACTIONS") == "true"
    if junit_file is not None:
        atomic_write_text(junit_file, junit(report) if report else junit_invalid(invalid))
    if not github:
        return
    # A part's regressions are annotated once, by the combine that gives the verdict.
    lines = [invalid_annotation(invalid)] if report is None else annotations(report)
    if report is not None and report.mode == "part":
        lines = []
    for line in lines:
        commands.write(line + "\n")
    commands.flush()
    target = environ.get("GITHUB_STEP_SUMMARY")
    if target:
        text = summary(report) if report is not None else (
            f"### ⚠️ Ratchet: invalid run, no verdict\n\n{invalid}\n")  # fmt: skip
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text)
