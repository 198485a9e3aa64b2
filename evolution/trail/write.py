"""The words Ratchet leaves in git: every commit message and note it writes.

Git is the audit trail. Every field a later `evolve log` or a person with plain git needs
is in a trailer (`git log --format='%(trailers:key=Evolve-Verdict)'`) or a note under
refs/notes/evolve (`git log --notes=evolve`); runs/ is telemetry, not the record. The
keys and their format belong to `evolution.trail.format`; this module composes with them.

Notes are pushed with the repository, and their failure text was written by the code
under test: it is redacted (again: `evolution.run.launch` did it first) and capped, per
test and per note, with a marker where it was cut.
"""

from __future__ import annotations

from agent.redact import Redactor
from evolution.ratchet import Comparison, Regression
from evolution.trail import format as t

SHOWN = 20  # regressions listed in a message body; the trailers name every one
TEXT_LINES = 12  # lines of failure text kept per regression in a note
TEXT_CHARS = 2000  # characters of failure text kept per regression in a note
NOTE_TEXT_CHARS = 16000  # characters of failure text in one note, all regressions together
LINE_CHARS = 300  # characters of a regression's first line in a listing


def _cut(text: str, limit: int) -> str:
    """`text`, at most `limit` characters of it, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[… {len(text) - limit} more characters cut]"


def _listing(title: str, items: list[str]) -> str:
    if not items:
        return ""
    shown = [f"  {item}" for item in items[:SHOWN]]
    if len(items) > SHOWN:
        shown.append(f"  … and {len(items) - SHOWN} more")
    return f"{title}:\n" + "\n".join(shown)


def _message(subject: str, body: list[str], pairs: list[tuple[str, str]]) -> str:
    return "\n\n".join([subject, *[part for part in body if part], t.block(pairs)]) + "\n"


def regression_line(regression: Regression, redact: Redactor | None = None) -> str:
    first = (redact or Redactor.from_environment(shapes=True))(regression.first_line)
    if len(first) > LINE_CHARS:
        first = first[:LINE_CHARS] + " […]"
    detail = f": {first}" if first else ""
    return f"{regression.nodeid} ({regression.was} -> {regression.now}){detail}"


def failure_texts(regressions: list[Regression]) -> str:
    """Each regression's failure text, redacted and clipped (lines and characters, per
    test and for the note), indented so it never parses as a trailer."""
    redact = Redactor.from_environment(shapes=True)
    blocks: list[str] = []
    budget = NOTE_TEXT_CHARS
    for index, regression in enumerate(regressions[:SHOWN]):
        if budget <= 0:
            left = min(len(regressions), SHOWN) - index
            blocks.append(f"[… the failure text of {left} more test(s) cut]")
            break
        lines = redact(regression.text).splitlines()
        text = "\n".join(lines[:TEXT_LINES]) or regression.now
        if len(lines) > TEXT_LINES:
            text += f"\n[… {len(lines) - TEXT_LINES} more lines cut]"
        text = _cut(text, min(TEXT_CHARS, budget))
        budget -= len(text)
        blocks.append(f"--- {regression.nodeid}\n" + "\n".join(f"    {line}" for line in
                                                                text.splitlines()))  # fmt: skip
    return "Failure text:\n" + "\n".join(blocks) if blocks else ""


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
    return _message(
        f"evolve: accept {branch} ({passing_before} -> {passing_after} passing)",
        [
            f"The merge of {branch} passed the ratchet gate: no baseline-passing test "
            f"regressed, {gained} newly passing.",
            _listing("Newly passing", comparison.newly_passing),
            _listing("Flaky, quarantined", sorted(comparison.flaky)),
            _listing("New tests not passing yet", [r.nodeid for r in comparison.new_failing]),
        ],
        [
            (t.PROPOSAL, proposal),
            (t.VERDICT, t.ACCEPTED),
            (t.TESTED_TREE, tree),
            (t.BASELINE, t.baseline_value(passing_before, passing_after)),
            (t.TESTS, t.tests_value(tests_run, passed)),
            (t.FLAKY, t.flaky_value(comparison.flaky)),
            (t.SANDBOX, sandbox),
        ],
    )


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
    body: list[str] = []
    regressed: list[str] = []
    redact = Redactor.from_environment(shapes=True)
    reason = redact(reason)  # it may quote what the code under test returned
    if comparison is not None:
        regressed = [r.nodeid for r in comparison.regressions]
        body += [
            _listing("Regressions", [regression_line(r, redact) for r in comparison.regressions]),
            _listing("Newly passing", comparison.newly_passing),
            _listing("Flaky", sorted(comparison.flaky)),
            failure_texts(comparison.regressions),
        ]
    return _message(
        f"evolve gate: rejected {branch}: {reason}",
        body,
        [
            (t.PROPOSAL, proposal),
            (t.VERDICT, t.REJECTED),
            (t.TESTED_TREE, tree),
            (t.BASELINE, t.baseline_at(baseline_commit, passing_before)),
            (t.TESTS, t.tests_value(tests_run, passed) if comparison else ""),
            (t.REGRESSED, " ".join(regressed)),
            (t.FLAKY, t.flaky_value(comparison.flaky) if comparison else ""),
            (t.SANDBOX, sandbox),
            (t.JUDGED_AT, judged_at),
        ],
    )


def baseline_record_message(
    *,
    tree: str,
    passing_before: int | None,
    passing_after: int,
    flaky: dict[str, object],
    sandbox: str,
    reason: str | None = None,
    dropped: list[str] | None = None,
) -> str:
    """A re-recording that lets passing tests go (`--reset`) names them and says why, so
    the trail shows the ratchet was lowered on purpose and by how much."""
    why = f"Reason: {Redactor.from_environment(shapes=True)(reason.strip())}" if reason else ""
    shown = (dropped or [])[:SHOWN]
    lost = (
        f"No longer counted as passing ({len(dropped)}):\n"
        + "\n".join(f"  {nodeid}" for nodeid in shown)
        + (f"\n  [… {len(dropped) - len(shown)} more]" if len(dropped) > len(shown) else "")
        if dropped
        else ""
    )
    return _message(
        f"evolve: record baseline ({passing_after} passing)",
        [why, lost],
        [
            (t.VERDICT, t.BASELINE_RECORD),
            (t.TESTED_TREE, tree),
            (t.BASELINE, t.baseline_value(passing_before, passing_after)),
            (t.FLAKY, t.flaky_value(flaky)),
            (t.SANDBOX, sandbox),
        ],
    )


def baseline_moved_message(
    *, tree: str, passing: int, flaky: dict[str, object], where: str
) -> str:
    """`evolve baseline migrate`: the same baseline, kept somewhere else from this commit on
    (nothing was run: the tested tree is the one the baseline was recorded from)."""
    return _message(
        f"evolve: keep the baseline in {where} ({passing} passing)",
        [],
        [
            (t.VERDICT, t.BASELINE_RECORD),
            (t.TESTED_TREE, tree),
            (t.BASELINE, t.baseline_value(passing, passing)),
            (t.FLAKY, t.flaky_value(flaky)),
        ],
    )


def revert_message(
    commits: list[str], comparison: Comparison, tests: str, sandbox: str, refusal: str = ""
) -> str:
    """The safety net's revert of a commit that reached main without the gate and was
    shown to be the cause: bisection found it makes the baseline-passing tests in
    `comparison` fail (each culprit gets a revert of its own, naming its tests), or a
    pre-test check refused it. The commits it does not name stay."""
    regressed = [r.nodeid for r in comparison.regressions]
    lines = "\n".join(f"  {regression_line(r)}" for r in comparison.regressions[:SHOWN])
    what = commits[0][:10] if len(commits) == 1 else f"{len(commits)} commits"
    if refusal:
        subject = f"evolve: revert {what}: refused before any test ran"
        why = f"It reached main without the gate and was refused: {refusal}"
    else:
        subject = f"evolve: revert {what}, which broke {len(regressed)} baseline-passing test(s)"
        why = (
            f"It reached main without the gate. These tests pass on the last verified "
            f"commit and stop passing at it (found by bisection):\n{lines}"
        )
    return _message(
        subject,
        [why, failure_texts(comparison.regressions)],
        [
            (t.VERDICT, t.REVERTED),
            (t.REVERTS, " ".join(commits)),
            (t.REGRESSED, " ".join(regressed)),
            (t.TESTS, tests),
            (t.FLAKY, t.flaky_value(comparison.flaky)),
            (t.SANDBOX, sandbox),
        ],
    )


def incident_note(
    *,
    head: str,
    verified: str,
    passing: int,
    incidents: list[tuple[str, str, list[str], str]],
    tests: str,
    sandbox: str,
    when: str,
) -> str:
    """The safety net's note on main's HEAD when it found what it must not revert on its
    own (`incidents`: kind, culprit or "", tests, and the line a person reads, with the
    command that acts on it). The note withdraws nothing and approves nothing: HEAD
    carries no verdict until a person acts and the safety net runs again."""
    return _message(
        f"evolve safety net: {len(incidents)} incident(s) on main at {head[:10]}: "
        "a person must act",
        ["\n".join(f"- {line}" for _kind, _culprit, _tests, line in incidents)],
        [
            (t.VERDICT, t.INCIDENT),
            (t.BASELINE, t.baseline_at(verified, passing)),
            *[(t.INCIDENT_KEY, t.incident_value(kind, culprit, names))
              for kind, culprit, names, _line in incidents],
            (t.REGRESSED, " ".join(sorted({n for _k, _c, names, _l in incidents for n in names}))),
            (t.TESTS, tests),
            (t.SANDBOX, sandbox),
            (t.JUDGED_AT, when),
        ],
    )


def validated_note(
    *, head: str, verified: str, tree: str, passing: int, tests: str, sandbox: str, when: str
) -> str:
    """The safety net's note on a commit that reached main without the gate but passed."""
    return _message(
        f"evolve safety net: {head[:10]} reached main without the gate and passed the "
        f"baseline of {verified[:10]}",
        [],
        [
            (t.VERDICT, t.VALIDATED),
            (t.TESTED_TREE, tree),
            (t.BASELINE, t.baseline_at(verified, passing)),
            (t.TESTS, tests),
            (t.SANDBOX, sandbox),
            (t.JUDGED_AT, when),
        ],
    )


def proposal_message(
    *,
    goal: str,
    proposer: str,
    model: str,
    files: list[str],
    details: str,
    proposal: str,
    cost_usd: float,
    tokens: int,
    prompt_sha256: str,
) -> str:
    """A proposer's commit: what it changed and why, with the proposal's trailers."""
    one_line_goal = " ".join(goal.split())
    return _message(
        f"evolve: {one_line_goal[:60]}",
        [
            f"Proposed by {proposer}{f' ({model})' if model else ''} for {', '.join(files)}.",
            details,
        ],
        [
            (t.PROPOSAL, proposal),
            (t.PROPOSER, proposer),
            (t.MODEL, model or "none"),
            (t.GOAL, one_line_goal),
            (t.COST_USD, f"{cost_usd:.6f}"),
            (t.TOKENS, str(tokens)),
            (t.PROMPT_SHA256, prompt_sha256),
        ],
    )


def factory_message(build_id: str) -> str:
    return _message(f"factory: build {build_id}", [], [(t.FACTORY_BUILD, build_id)])
