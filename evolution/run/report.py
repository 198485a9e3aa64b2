"""Turn a pytest-json-report file into per-test outcomes the ratchet can trust.

The plugin's quirks, handled here rather than trusted:
- it writes the report only at session finish, so a killed run leaves no file or a
  partial one: both are invalid runs, never verdicts;
- its top-level outcome for a test that failed in teardown is "error" even though the
  call passed, and for pytest-rerunfailures it keeps "rerun": we compute each verdict
  from the stages ourselves;
- a module that fails to import appears only under `collectors`, with no test entries:
  its baseline tests show up as missing, and the collector's error explains why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import InvalidRun

# pytest exit codes that still mean "the suite ran and here are the results".
# 5 is "no tests collected": a complete, valid run whose result is the empty set.
VALID_EXIT_CODES = {0: "all passed", 1: "some tests failed", 5: "no tests collected"}
EXIT_REASONS = {
    2: "the run was interrupted (errors during collection, or a signal)",
    3: "pytest hit an internal error",
    4: "pytest usage error (a bad option, or a conftest.py that fails to import)",
}
FAILURE_TEXT_LIMIT = 4000


@dataclass
class RunResult:
    """The outcome of one complete, valid test run."""

    outcomes: dict[str, str]
    failures: dict[str, str] = field(default_factory=dict)  # nodeid -> failure text
    collector_errors: dict[str, str] = field(default_factory=dict)  # collector -> text
    exitcode: int = 0
    duration_s: float = 0.0
    sandbox: str = ""  # what isolation the run had, for the verdict's record
    # Not part of the verdict (and not cached): the seconds each test took, to balance
    # the next run's processes; and, for one process of a split run, every test file it
    # saw with the process that owns it, to check that the processes agree.
    durations: dict[str, float] = field(default_factory=dict)
    owners: dict[str, int] | None = None
    # With a map asked for: each tree file, with the tests that ran one of its lines.
    covers: dict[str, set[str]] | None = None
    # With a recording asked for (`run_tests(record=...)`): each call the suite made into
    # the recorded functions, as the probe sent it (evolution.gate.behaviour).
    calls: list[dict[str, Any]] = field(default_factory=list)
    # With `stop_on` (`run_tests`): the test whose failure ended the run, the tests after
    # it not run and not in `outcomes`; such a run can reject, never accept.
    stopped: str = ""

    def passed(self) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome == "passed")

    def first_line(self, nodeid: str) -> str:
        return first_line(self.failures.get(nodeid, ""))

    def import_error_for(self, nodeid: str) -> str | None:
        """The collection error of the module that should have held `nodeid`, if any."""
        for collector, text in self.collector_errors.items():
            if collector and (
                nodeid == collector
                or nodeid.startswith(collector + "::")
                or nodeid.startswith(collector.rstrip("/") + "/")  # a folder's conftest.py
            ):
                return text
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcomes": self.outcomes,
            "failures": self.failures,
            "collector_errors": self.collector_errors,
            "exitcode": self.exitcode,
            "duration_s": self.duration_s,
            "sandbox": self.sandbox,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        return cls(
            outcomes=dict(data["outcomes"]),
            failures=dict(data.get("failures", {})),
            collector_errors=dict(data.get("collector_errors", {})),
            exitcode=int(data.get("exitcode", 0)),
            duration_s=float(data.get("duration_s", 0.0)),
            sandbox=str(data.get("sandbox", "")),
        )


SUBTEST_PREFIX = "subtest "  # how the gate starts a failure text that names a subtest


def first_line(text: str) -> str:
    """The line a person needs first: the subtest that failed (its message, parameters
    and error, when the gate named one), else the `E   ` line of a traceback, else the
    first line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith(SUBTEST_PREFIX):
        return lines[0].strip()
    for line in lines:
        if line.startswith("E "):
            return line[1:].strip()
    return lines[0].strip() if lines else ""


def stage_outcome(test: dict[str, Any]) -> str:
    """One test's verdict, computed from its setup, call and teardown stages."""
    top = test.get("outcome", "")
    stages = {name: test.get(name) for name in ("setup", "call", "teardown")}
    for name, stage in stages.items():
        if isinstance(stage, dict) and stage.get("outcome") == "failed":
            return "failed" if name == "call" else "error"
    if top in ("xfailed", "xpassed", "rerun"):
        return top
    for name in ("setup", "call"):
        stage = stages[name]
        if isinstance(stage, dict) and stage.get("outcome") == "skipped":
            return "skipped"
    call = stages["call"]
    if isinstance(call, dict) and call.get("outcome") == "passed":
        return "passed"
    # No call stage and nothing failed or skipped: the run never finished this test.
    return "error"


def failure_text(crash: dict[str, Any], details: str, root: str) -> str:
    """`path:line: message` (the path relative to `root`), then the details, clipped:
    one shape for every failure the gate reports, from the JSON report or the probe."""
    message = str(crash.get("message", "")).strip()
    details = details.strip()
    where = ""
    if crash.get("path"):
        path = str(crash["path"])
        if root and path.startswith(root.rstrip("/") + "/"):
            path = path[len(root.rstrip("/")) + 1 :]
        where = f"{path}:{crash.get('lineno', '?')}: "
    head = f"{where}{message}" if message else ""
    return _clip((head + ("\n\n" + details if details and details != message else "")).strip())


def _failure_text(test: dict[str, Any], root: str) -> str:
    for name in ("setup", "call", "teardown"):
        stage = test.get(name)
        if isinstance(stage, dict) and stage.get("outcome") in ("failed", "skipped"):
            text = failure_text(stage.get("crash") or {}, str(stage.get("longrepr", "")), root)
            if text:
                return text
    return ""


def _clip(text: str) -> str:
    return text if len(text) <= FAILURE_TEXT_LIMIT else text[:FAILURE_TEXT_LIMIT] + "\n[…]"


def parse_report(path: Path, returncode: int | None) -> RunResult:
    """Parse the report, or raise InvalidRun naming what makes it untrustworthy."""
    if not path.exists():
        if returncode in EXIT_REASONS:
            raise InvalidRun(f"{EXIT_REASONS[returncode]}; pytest wrote no JSON report")
        raise InvalidRun(
            f"pytest wrote no JSON report (exit code {returncode}): it was killed or "
            "crashed before the session ended"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRun("the JSON report is partial or corrupt") from None
    if not isinstance(data, dict) or not {"exitcode", "tests", "summary"} <= data.keys():
        raise InvalidRun("the JSON report is missing its exitcode, tests or summary")
    exitcode = data["exitcode"]
    if returncode is not None and returncode != exitcode:
        raise InvalidRun(f"pytest exited {returncode} but its report says {exitcode}")
    if exitcode not in VALID_EXIT_CODES:
        reason = EXIT_REASONS.get(exitcode, f"pytest exited with code {exitcode}")
        raise InvalidRun(reason)
    root = str(data.get("root", ""))
    collector_errors: dict[str, str] = {}
    for collector in data.get("collectors", []):
        if collector.get("outcome") == "failed":
            nodeid = str(collector.get("nodeid", ""))
            text = _clip(str(collector.get("longrepr", "")).strip())
            if nodeid in ("", "."):
                raise InvalidRun(f"test collection failed: {first_line(text)}")
            collector_errors[nodeid] = text
    outcomes: dict[str, str] = {}
    failures: dict[str, str] = {}
    for test in data["tests"]:
        nodeid = str(test.get("nodeid", ""))
        outcome = stage_outcome(test)
        outcomes[nodeid] = outcome
        if outcome not in ("passed", "xpassed"):
            text = _failure_text(test, root)
            if text:
                failures[nodeid] = text
    total = data["summary"].get("total", len(data["tests"]))
    if total != len(data["tests"]):
        raise InvalidRun(f"the report lists {len(data['tests'])} tests but counts {total}")
    return RunResult(
        outcomes=outcomes,
        failures=failures,
        collector_errors=collector_errors,
        exitcode=exitcode,
        duration_s=float(data.get("duration", 0.0)),
    )
