"""Fault localisation: which lines of the target the failing tests execute, ranked.

The target's tests run once under coverage.py with one dynamic context per test, so
each executed line knows which tests ran it. A line is ranked by the Ochiai score
(failing tests that ran it, against all failing tests and all tests that ran it): the
measure spectrum-based localisation studies found best, and the one GenProg's
successors use to weight where to mutate. Lines no failing test runs are never
mutated.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import PurePosixPath

from evolution.policy import Policy
from evolution.runfolder import RunFolder
from evolution.sandbox.isolation import Isolation
from evolution.testrun import run_tests


@dataclass(frozen=True)
class Localisation:
    scores: dict[int, float]  # line -> suspiciousness, only lines a failing test ran
    outcomes: dict[str, str]  # nodeid -> outcome in the localisation run
    covered: bool  # False when the test command could not run under coverage

    def ranked_lines(self) -> list[int]:
        return sorted(self.scores, key=lambda line: (-self.scores[line], line))


def context_of(nodeid: str) -> str:
    """coverage's `test_function` context for a pytest node id: `module.Class.function`."""
    path, _, rest = nodeid.partition("::")
    name = rest.split("[", 1)[0].replace("::", ".")
    return f"{PurePosixPath(path).stem}.{name}"


def ochiai(failed_here: int, passed_here: int, failed_total: int) -> float:
    if failed_here == 0 or failed_total == 0:
        return 0.0
    return failed_here / math.sqrt(failed_total * (failed_here + passed_here))


def localise(
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    target: str,
    tests: list[str],
    failing: list[str],
) -> Localisation:
    worktree = run.tree
    rc = run.probe / "coverage.rc"  # read by the suite; the data goes where it may write
    data = run.out / "coverage.data"
    rc.write_text(
        "[run]\n"
        f"include = {worktree / target}\n"
        "dynamic_context = test_function\n"
        f"data_file = {data}\n"
        "branch = false\n",
        encoding="utf-8",
    )
    result = run_tests(policy, run, isolation, select=tests, coverage_rc=rc)
    report = run.path / "coverage.json"
    done = subprocess.run(
        [sys.executable, "-m", "coverage", "json", f"--rcfile={rc}", "--show-contexts",
         "-q", "-o", str(report)],
        cwd=worktree,
        capture_output=True,
        text=True,
        check=False,
    )
    failed = {context_of(n) for n in failing if result.outcomes.get(n) != "passed"}
    passed = {context_of(n) for n, o in result.outcomes.items() if o == "passed"}
    if done.returncode != 0 or not report.exists():
        # No coverage (a custom test command): every line is equally suspect.
        lines = range(1, len((worktree / target).read_text().splitlines()) + 1)
        return Localisation({line: 1.0 for line in lines}, result.outcomes, covered=False)
    files = json.loads(report.read_text())["files"]
    contexts = next(iter(files.values()), {}).get("contexts", {}) if files else {}
    scores = {}
    for line, names in contexts.items():
        ran = set(names)
        score = ochiai(len(ran & failed), len(ran & passed), len(failed))
        if score > 0:
            scores[int(line)] = score
    return Localisation(scores, result.outcomes, covered=True)
