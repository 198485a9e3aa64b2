"""The words the gate leaves in git: gate commit messages with trailers, rejection notes.

Git is the audit trail. Every field a later `evolve log` or a person with plain git needs
is in a trailer (`git log --format='%(trailers:key=Evolve-Verdict)'`) or a note under
refs/notes/evolve (`git log --notes=evolve`); runs/ is telemetry, not the record.
"""

from __future__ import annotations

from evolution.ratchet import Comparison, Regression

NOTES_REF = "refs/notes/evolve"
REJECTED_PREFIX = "refs/evolve/rejected/"
SHOWN = 20  # regressions listed in a message body; the trailers name every one
TEXT_LINES = 12  # lines of failure text kept per regression in a note


def _trailers(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in pairs if value != "")


def _listing(title: str, items: list[str]) -> str:
    if not items:
        return ""
    shown = [f"  {item}" for item in items[:SHOWN]]
    if len(items) > SHOWN:
        shown.append(f"  … and {len(items) - SHOWN} more")
    return f"{title}:\n" + "\n".join(shown)


def regression_line(regression: Regression) -> str:
    detail = f": {regression.first_line}" if regression.first_line else ""
    return f"{regression.nodeid} ({regression.was} -> {regression.now}){detail}"


def failure_texts(regressions: list[Regression]) -> str:
    """Each regression's failure text, clipped, indented so it never parses as a trailer."""
    blocks = []
    for regression in regressions[:SHOWN]:
        lines = regression.text.splitlines()[:TEXT_LINES] or [regression.now]
        blocks.append(f"--- {regression.nodeid}\n" + "\n".join(f"    {line}" for line in lines))
    return "Failure text:\n" + "\n".join(blocks) if blocks else ""


def tests_value(tests_run: int, passed: int) -> str:
    return f"{tests_run} run, {passed} passed"


def flaky_value(flaky: dict[str, object]) -> str:
    return ", ".join(sorted(flaky)) if flaky else "none"


def gate_commit_message(
    *,
    branch: str,
    proposal: str,
    comparison: Comparison,
    tree: str,
    passing_before: int,
    passing_after: int,
    tests_run: int,
    passed: int,
    sandbox: str,
) -> str:
    gained = passing_after - passing_before
    subject = f"evolve: accept {branch} ({passing_before} -> {passing_after} passing)"
    body = [
        f"The merge of {branch} passed the ratchet gate: no baseline-passing test regressed, "
        f"{gained} newly passing.",
        _listing("Newly passing", comparison.newly_passing),
        _listing("Flaky, quarantined", sorted(comparison.flaky)),
        _listing("New tests not passing yet", [r.nodeid for r in comparison.new_failing]),
    ]
    trailers = _trailers(
        [
            ("Evolve-Proposal", proposal),
            ("Evolve-Verdict", "accepted"),
            ("Evolve-Tested-Tree", tree),
            ("Evolve-Baseline", f"{passing_before} -> {passing_after}"),
            ("Evolve-Tests", tests_value(tests_run, passed)),
            ("Evolve-Flaky", flaky_value(comparison.flaky)),
            ("Evolve-Sandbox", sandbox),
        ]
    )
    return "\n\n".join([subject, *[part for part in body if part], trailers]) + "\n"


def rejection_note(
    *,
    branch: str,
    proposal: str,
    reason: str,
    comparison: Comparison | None,
    tree: str,
    baseline_commit: str,
    passing_before: int,
    tests_run: int,
    passed: int,
    judged_at: str,
    sandbox: str,
) -> str:
    parts = [f"evolve gate: rejected {branch}: {reason}"]
    regressed: list[str] = []
    if comparison is not None:
        regressed = [r.nodeid for r in comparison.regressions]
        parts.append(_listing("Regressions", [regression_line(r) for r in comparison.regressions]))
        parts.append(_listing("Newly passing", comparison.newly_passing))
        parts.append(_listing("Flaky", sorted(comparison.flaky)))
        parts.append(failure_texts(comparison.regressions))
    trailers = _trailers(
        [
            ("Evolve-Proposal", proposal),
            ("Evolve-Verdict", "rejected"),
            ("Evolve-Tested-Tree", tree),
            ("Evolve-Baseline", f"{baseline_commit[:12]} ({passing_before} passing)"),
            ("Evolve-Tests", tests_value(tests_run, passed) if comparison else ""),
            ("Evolve-Regressed", " ".join(regressed)),
            ("Evolve-Flaky", flaky_value(comparison.flaky) if comparison else ""),
            ("Evolve-Sandbox", sandbox),
            ("Evolve-Judged-At", judged_at),
        ]
    )
    return "\n\n".join([part for part in parts if part] + [trailers]) + "\n"


def baseline_record_message(
    *,
    tree: str,
    passing_before: int | None,
    passing_after: int,
    flaky: dict[str, object],
    sandbox: str,
) -> str:
    before = "none" if passing_before is None else str(passing_before)
    subject = f"evolve: record baseline ({passing_after} passing)"
    trailers = _trailers(
        [
            ("Evolve-Verdict", "baseline"),
            ("Evolve-Tested-Tree", tree),
            ("Evolve-Baseline", f"{before} -> {passing_after}"),
            ("Evolve-Flaky", flaky_value(flaky)),
            ("Evolve-Sandbox", sandbox),
        ]
    )
    return f"{subject}\n\n{trailers}\n"
