"""Fault localisation: which lines of the target the failing tests execute, ranked.

The target's tests run once under coverage.py, the probe switching coverage's context
to each test's node id (setup and teardown included), so each executed line knows which
tests ran it (the data, written by the code under test, is turned into coverage's JSON
report inside the sandbox). Node ids, not coverage's own `test_function` contexts:
those name a method by the class that defines it, so the tests a class inherits
(cachetools' caches all run one mixin's tests) could not be told apart or found, and
a test file in a package had to be named as pytest imports it. A line is ranked by the Ochiai score
(failing tests that ran it, against all failing tests and all tests that ran it): the
measure spectrum-based localisation studies found best, and the one GenProg's
successors use to weight where to mutate. Lines no failing test runs are never
mutated.

A failing test that loops forever is stopped by pytest-timeout's signal, raised into
the test: it ends as a failure and coverage keeps what it ran until then, so the loop's
lines are suspect as any failing test's are. Such a test is named in `timed_out`: its
duration is the limit, not its own, and the candidates' limits leave it out.

Code that runs at import (module-level statements, and what they call: tables built
by a helper, decorators, registrations) runs before any test, in coverage's empty
context. Every test depends on it, so it counts as run by every test: its score is
the lowest a line every failing test ran can have, and it is searched after the lines
the failing tests ran themselves, not never. (Without this, a fault in a table built
at import, an inflection rule say, was invisible to the search.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from evolution.mutate.hangs import hung
from evolution.run.forkserver import CandidateRuns

IMPORT_CONTEXT = ""  # the context of what ran outside every test (collection, imports)


@dataclass(frozen=True)
class Localisation:
    scores: dict[int, float]  # line -> suspiciousness, only lines a failing test ran
    outcomes: dict[str, str]  # nodeid -> outcome in the localisation run
    covered: bool  # False when the test command could not run under coverage
    # Measurements, not findings (two localisations of one tree are equal without them):
    durations: dict[str, float] = field(default_factory=dict, compare=False)  # nodeid -> s
    seconds: float = field(default=0.0, compare=False)  # its wall clock (under coverage)
    timed_out: frozenset[str] = field(default=frozenset(), compare=False)  # cut off
    passed_lines: frozenset[int] = field(default=frozenset(), compare=False)  # a pass ran them

    def ranked_lines(self) -> list[int]:
        return sorted(self.scores, key=lambda line: (-self.scores[line], line))


def ochiai(failed_here: int, passed_here: int, failed_total: int) -> float:
    if failed_here == 0 or failed_total == 0:
        return 0.0
    return failed_here / math.sqrt(failed_total * (failed_here + passed_here))


def localise(
    runs: CandidateRuns, target: str, tests: list[str], failing: list[str]
) -> Localisation:
    """Rank the target's lines from one run of `tests` under coverage (through `runs`,
    the runner the candidates use next)."""
    run = runs.run
    worktree = run.tree
    rc = run.probe / "coverage.rc"  # read by the suite; the data goes where it may write
    data = run.out / "coverage.data"
    rc.write_text(
        "[run]\n"
        f"include = {worktree / target}\n"
        f"data_file = {data}\n"
        "branch = false\n",
        encoding="utf-8",
    )
    result = runs(tests, coverage_rc=rc)
    cut = frozenset(hung(result.outcomes, result.durations, runs.policy.test_timeout_s))
    contexts = _contexts(runs.coverage_report(rc))
    if contexts is None:
        # No coverage (a custom test command): every line is equally suspect.
        lines = range(1, len((worktree / target).read_text().splitlines()) + 1)
        return Localisation({line: 1.0 for line in lines}, result.outcomes, covered=False,
                            durations=result.durations, seconds=result.duration_s,
                            timed_out=cut)
    failed = {n for n in failing if result.outcomes.get(n) != "passed"}
    passed = {n for n, o in result.outcomes.items() if o == "passed"}
    everyone = failed | passed
    scores = {}
    passed_lines = set()
    for line, names in contexts.items():
        ran = everyone if IMPORT_CONTEXT in names else set(names)
        score = ochiai(len(ran & failed), len(ran & passed), len(failed))
        if score > 0:
            scores[line] = score
        if ran & passed:
            passed_lines.add(line)
    return Localisation(scores, result.outcomes, covered=True, durations=result.durations,
                        seconds=result.duration_s, timed_out=cut,
                        passed_lines=frozenset(passed_lines))


def _contexts(report: dict[str, Any] | None) -> dict[int, list[str]] | None:
    """{line: the contexts that ran it} of the one file measured, from coverage's JSON
    report; None without one. The data behind it was written by the code under test,
    so anything not shaped as coverage writes it counts as no coverage."""
    files = (report or {}).get("files")
    if not isinstance(files, dict):
        return None
    measured = next(iter(files.values()), {}) if files else {}
    contexts = measured.get("contexts", {}) if isinstance(measured, dict) else None
    if not isinstance(contexts, dict):
        return None
    try:
        return {int(line): [str(name) for name in names] for line, names in contexts.items()}
    except (TypeError, ValueError):
        return None
