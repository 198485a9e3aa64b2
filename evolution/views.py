"""How `evolve`'s results read as text, for a person. Each function takes the data a
library function returned (the same data `--json` prints) and writes it: rich on a
terminal, plain when piped or with NO_COLOR (`agent.console` decides).

Slightly over 400 lines: every command's text in one place, so that one look decides
how evolve reads (the same words for the same states); each view is a few lines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agent.clock import utc_now
from agent.console import err, out, plain, say
from evolution.baseline import QUARANTINE_DAYS, expiry
from evolution.trail.write import regression_line

if TYPE_CHECKING:
    from evolution.cycle import CycleReport, Iteration
    from evolution.gate.adopt import InitReport
    from evolution.gate.check import CheckReport
    from evolution.gate.migrate import Migration
    from evolution.gate.record import RecordReport
    from evolution.gate.safety_net import SafetyReport
    from evolution.gate.shared import Advance
    from evolution.gate.validate import GateReport
    from evolution.propose import ProposalResult
    from evolution.run.launch import ProgressCallback
    from evolution.sandbox.doctor import Diagnosis
    from evolution.trail.read import Entry

SHOWN = 20


def warn_if_unsandboxed(sandbox: str) -> None:
    """People's commits run without a sandbox where none exists: say so every time."""
    if sandbox.startswith("none"):
        err.print(f"[yellow]warning:[/] the suite ran without an OS sandbox: {plain(sandbox)}")


def gate_report(report: GateReport) -> None:
    colour = {"accepted": "green", "rejected": "red"}.get(report.verdict, "cyan")
    head = f"[bold {colour}]{report.verdict.upper()}[/] {plain(report.branch)}"
    if report.merged:
        head += f" → main is now {report.main_after[:10]}"
    elif report.reason:
        head += f": {plain(report.reason)}"
    say(head)
    warn_if_unsandboxed(report.sandbox)
    for finding in report.guard:
        say(f"    {plain(finding)}")
    for name in report.cache_ignored:
        say(f"  [yellow]ignored a verdict cache entry the gate did not write:[/] {plain(name)}")
    comparison = report.comparison
    if comparison is None:
        if report.archived_as:
            say(f"  kept as {report.archived_as}")
        return
    cached = " (cached verdict)" if report.cached else ""
    say(
        f"  tests run {report.tests_run} · passed {report.passed} · "
        f"regressions {len(comparison.regressions)} · newly passing "
        f"{len(comparison.newly_passing)} · flaky {len(comparison.flaky)} · "
        f"{report.duration_s:.1f} s{cached}"
    )
    say(f"  baseline passing: {report.passing_before} -> {report.passing_after}")
    if report.stage == "first":
        stopped = (f", stopped at its first regression after {report.tests_run}"
                   if report.tests_run < report.first_tests else "")  # fmt: skip
        say(f"  decided by the first stage: the {report.first_tests} test(s) tied to the "
            f"change ({plain(report.test_map)}){stopped}; the rest of the suite did not run")
    elif report.stage == "full" and report.test_map:
        first = f"first stage {report.first_tests} test(s), then " if report.first_tests else ""
        say(f"  decided by the full suite ({first}{plain(report.test_map)})")
    sections = [
        ("regressions", [regression_line(r) for r in comparison.regressions]),
        ("newly passing", comparison.newly_passing),
        ("flaky (passed on re-run)", sorted(comparison.flaky)),
        ("quarantined, failed again", comparison.quarantined_failures),
        ("quarantined, but passed no re-run (broken, not flaky)", comparison.broken_quarantined),
        ("quarantine expired (excused nothing)", comparison.expired_quarantine),
        ("new tests not passing yet", [regression_line(r) for r in comparison.new_failing]),
    ]
    _sections(sections)
    if report.archived_as:
        say(f"  kept as {report.archived_as}; the verdict is in git log --notes=evolve")


def check_report(report: CheckReport) -> None:
    """`evolve check`: the verdict, what was judged against what, and the findings."""
    colour = {"accepted": "green", "rejected": "red"}.get(report.verdict, "yellow")
    what = {"part": f" part {(report.split or {}).get('index')} of "
                    f"{(report.split or {}).get('count')}",
            "combined": f" ({len(report.parts)} parts combined)"}.get(report.mode, "")  # fmt: skip
    head = f"[bold {colour}]{report.verdict.upper()}[/]{what} {report.commit[:10]}"
    say(head + (f": {plain(report.reason)}" if report.reason else ""))
    warn_if_unsandboxed(report.sandbox)
    say(f"  tree {report.tree[:10]} · baseline of {report.base[:10]} ({plain(report.base_ref)})"
        f" · tests run {report.tests_run} · passed {report.passed} · {report.duration_s:.1f} s")
    if report.part_file:
        say(f"  part written to {plain(report.part_file)} (sealed by {report.attestation})")
    if report.parts:
        say(f"  parts sealed by {report.attestation}: "
            + ", ".join(f"{p['index']}/{p['count']} {plain(str(p['runner']))}"
                        for p in report.parts))  # fmt: skip
    for finding in report.guard:
        say(f"    {plain(finding)}")
    comparison = report.comparison
    if comparison is None:
        return
    sections = [
        ("regressions", [regression_line(r) for r in comparison.regressions]),
        ("flaky (two outcomes on this tree)", sorted(comparison.flaky)),
        ("quarantined, failed again", comparison.quarantined_failures),
        ("newly passing", comparison.newly_passing),
        ("new tests not passing yet", [regression_line(r) for r in comparison.new_failing]),
    ]
    _sections(sections)


def _sections(sections: list[tuple[str, list[str]]]) -> None:
    """Each non-empty list under its title, the first SHOWN of it."""
    for title, items in sections:
        if items:
            say(f"  {title}:")
            for item in items[:SHOWN]:
                say(f"    {plain(item)}")
            if len(items) > SHOWN:
                say(f"    … and {len(items) - SHOWN} more (see --json)")


def task_detail(report: SafetyReport) -> None:
    """With --json, the safety net's outcome as the last line of stderr too: an agent keeps
    a task's last stderr line as its detail (ledger, ping, `agent status`), and that
    must be the incident, not the JSON's closing brace."""
    if report.exit_code:
        err.print(report.summary(), markup=False, highlight=False)


def deprecated(old: str, new: str) -> None:
    err.print(f"note: `{old}` is now `{new}`; the old spelling will be removed",
              markup=False, highlight=False)  # fmt: skip


def post_merge_report(report: SafetyReport) -> None:
    warn_if_unsandboxed(report.sandbox)
    if report.status == "nothing-to-do":
        say(f"main {report.head[:10]} carries a verdict: nothing to check")
    elif report.status == "passing":
        say(
            f"[bold green]PASSING[/] main {report.head[:10]} reached main without the gate "
            f"but regressed nothing against {report.validated[:10]}; noted as validated"
        )
    elif report.status == "unfinished":
        done, total = report.parts
        say(
            f"[bold yellow]UNFINISHED[/] main {report.head[:10]}: {done} of {total} parts of "
            "the suite judged before this run's time was up; they are kept, and the next "
            "run goes on from them"
        )
    if report.refused:
        say(f"  refused before any test ran: {plain(report.refused)}")
    if report.regressions:
        say(f"  regressed against {report.validated[:10]}:")
        for regression in report.regressions:
            say(f"    {plain(regression['nodeid'])}: {plain(regression['first_line'])}")
    for revert in report.reverts:
        tests = ", ".join(revert["tests"]) or "refused by a pre-test check"
        say(f"[bold red]REVERTED[/] {revert['reverts'][:10]} alone ({plain(tests)}) in "
            f"{revert['commit'][:10]}")  # fmt: skip
    if report.reverts:
        say(f"  main is now {report.revert_commit[:10]}; the other commits since "
            f"{report.validated[:10]} stay")  # fmt: skip
    for incident in report.incidents:
        say(f"[bold yellow]INCIDENT[/] {plain(incident.line())}")
    if report.incidents:
        say("  main carries no verdict until a person acts; this check reports it again "
            "until then")  # fmt: skip
    for nodeid in report.still_failing:
        say(f"  [red]still failing:[/] {plain(nodeid)}")


def record_report(report: RecordReport) -> None:
    warn_if_unsandboxed(report.sandbox)
    before = "none" if report.passing_before is None else report.passing_before
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    say(f"[bold green]RECORDED[/] baseline at {report.commit[:10]} ({counts})")
    say(f"  passing: {before} -> {report.passing_after}; flaky: {len(report.flaky)}")
    if report.dropped:
        say(f"  lowered on purpose (--reset): {len(report.dropped)} test(s) dropped")


def migration(report: Migration) -> None:
    where = "refs/notes/ratchet" if report.to == "ref" else "baseline/baseline.json"
    if not report.moved:
        say(f"the baseline is in {where} already ({report.passing} passing): nothing to do")
        return
    say(f"[bold green]MOVED[/] the baseline ({report.passing} passing) to {where}: main is "
        f"now {report.main_after[:10]}")  # fmt: skip
    if report.policy_file:
        say(f"  the policy's baseline key set in {report.policy_file}")


def shared_advance(report: Advance) -> None:
    if report.unchanged:
        say(f"the shared baseline already holds {report.commit[:10]}'s: nothing to do")
        return
    raced = f" after {report.attempts - 1} lost race(s)" if report.attempts > 1 else ""
    published = f", published to {report.remote}" if report.remote else ""
    say(f"[bold green]ADVANCED[/] the shared baseline to {report.commit[:10]}{raced}"
        f"{published} (store {report.store_after[:10]})")  # fmt: skip


def quarantine_state(evidence: dict[str, Any], days: int) -> str:
    """Until when a quarantine entry excuses failures, as a person reads it."""
    ends = expiry(evidence, days)
    if ends is None:
        return "no expiry or time seen: excuses nothing"
    when = ends.isoformat(timespec="seconds")
    return f"expires {when}" if ends > utc_now() else f"expired {when}: excuses nothing"


def baseline_info(info: dict[str, Any]) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
    shared = f", shared in {info['stored_in']}" if info["stored_in"].startswith("refs/") else ""
    say(f"baseline on main {info['main'][:10]}, recorded from {info['commit'][:10]}{shared}")
    say(f"  tests {info['tests']}: {counts}")
    say(f"  recorded {info['recorded_at']} ({info['age']} ago)")
    say(f"  flaky (quarantined): {len(info['flaky'])}")
    for nodeid, evidence in sorted(info["flaky"].items()):
        say(
            f"    {plain(nodeid)}: passed {evidence.get('passed')}/{evidence.get('runs')} "
            f"re-runs; first failure: {plain(str(evidence.get('first_failure', '')))}; "
            f"{plain(quarantine_state(evidence, info.get('quarantine_days', QUARANTINE_DAYS)))}"
        )


def proposal_result(result: ProposalResult) -> None:
    if result.status == "created":
        say(result.branch)
    else:
        err.print(f"[bold red]{result.status}:[/] {plain(result.message)}")


def cycle_iteration(iteration: Iteration) -> None:
    proposal = iteration.proposal
    who = proposal.get("proposer", "") + (
        f"/{proposal['model']}" if proposal.get("model") else ""
    )
    say(f"{iteration.verdict:<10} {who:<24} {plain(iteration.goal.target)}: "
        f"{plain(iteration.goal.text[:70])}")  # fmt: skip
    if iteration.reason:
        say(f"           {plain(iteration.reason[:160])}")


def cycle_report(report: CycleReport) -> None:
    say(f"cycle stopped ({report.stopped}): {plain(report.reason)}; "
        f"{report.accepted} of {len(report.iterations)} accepted, "
        f"${report.spent_usd:.4f} spent")  # fmt: skip


def _row(entry: Entry) -> list[str]:
    """when, verdict, proposal, proposer/model, tests, cost, commit: one log row."""
    who = "/".join(part for part in (entry.proposer, entry.model) if part) or "-"
    tests = "-"
    if entry.passed is not None:
        tests = f"{entry.passed} passed, {entry.regressed} regressed, {entry.flaky} flaky"
    cost = f"${entry.cost_usd}" if entry.cost_usd else "-"
    when = entry.when[:16].replace("T", " ")
    return [when, entry.verdict, entry.proposal or "-", who, tests, cost, entry.commit[:10]]


LOG_COLUMNS = ("when", "verdict", "proposal", "proposer/model", "tests", "cost", "commit")


def log(entries: list[Entry]) -> None:
    """A table on a terminal; one tab-separated line per entry when piped, whatever
    the widths, so that scripts can cut it."""
    if not entries:
        say("no entries")
        return
    rows = [_row(entry) for entry in entries]
    if not out.is_terminal or out.no_color:
        for row in rows:
            out.print("\t".join(row), markup=False, highlight=False)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in LOG_COLUMNS:  # ids fold rather than lose their ends; short cells never wrap
        folds = column in ("proposal", "proposer/model", "tests")
        table.add_column(column, no_wrap=not folds, overflow="fold" if folds else "ellipsis")
    for row in rows:
        table.add_row(*(plain(cell) for cell in row))
    out.print(table)


def trail_lines(entries: list[Entry]) -> None:
    """The trail inside another command's output (the demo's), one line each."""
    for entry in entries:
        say("  " + plain("  ".join(_row(entry))))


def proposal_record(record: dict[str, Any]) -> None:
    say(f"[bold]{plain(record['proposal'] or record['commit'])}[/]  {record['verdict']} at "
        f"{record['when']}")  # fmt: skip
    for label, key in (
        ("goal", "goal"),
        ("proposer", "proposer"),
        ("model", "model"),
        ("tokens", "tokens"),
        ("cost (USD)", "cost_usd"),
        ("prompt sha256", "prompt_sha256"),
        ("commit", "commit"),
        ("candidate", "candidate"),
    ):
        if record[key]:
            say(f"  {label}: {plain(str(record[key]))}")
    say(f"  tests: {record['passed']} passed, {record['regressed']} regressed, "
        f"{record['flaky']} flaky")  # fmt: skip
    if record["note"]:
        say("\n[bold]verdict note[/]")
        out.print(record["note"], markup=False, highlight=False)
    if record["diff"]:
        say("\n[bold]diff[/]")
        out.print(record["diff"], markup=False, highlight=False)


def verification(result: dict[str, Any]) -> None:
    verdict = result["verdict"] if result["verified"] else "no verdict from the gate"
    say(f"{result['commit'][:10]}: {verdict}")


def hooks_installed(result: dict[str, Any]) -> None:
    say(f"installed {', '.join(result['installed']) or 'nothing'} ({result['mode']}: "
        f"{result['path']})")  # fmt: skip
    for name in result["kept"]:
        say(f"  kept your own {name}: not overwritten; call evolve from it yourself")


def init_report(report: InitReport) -> None:
    """What `evolve init` did, or with --dry-run would do: one line an action, and on a
    dry run the text of each file it would write, which is the point of asking."""
    if not report.dry_run and not report.changed:
        say(f"[bold green]nothing to do[/]: {plain(report.main)} is under the ratchet "
            f"(policy in {plain(report.policy)}, baseline recorded, hooks installed)")  # fmt: skip
        return
    if report.dry_run:
        say(f"[bold]dry run[/], nothing was changed; on {plain(report.main)} "
            f"({report.main_before[:10]}) evolve init would:")  # fmt: skip
    status = {"planned": "would", "done": "did", "already": "already"}
    for action in report.actions:
        line = f"  {status[action.status]:<8} {action.action:<7} {plain(action.target)}"
        if action.action not in ("append", "write") and action.detail:
            line += f": {plain(action.detail.splitlines()[0])}"
        say(line)
        if report.dry_run and action.action in ("append", "write"):
            for text in action.detail.splitlines():
                say(f"             {plain(text)}")
    for name in (report.hooks or {}).get("kept", []):
        say(f"  kept your own {name} hook: not overwritten; call evolve from it yourself")
    if not report.dry_run:
        say(f"[bold green]done[/]: {plain(report.main)} is at {report.main_after[:10]}, its "
            f"policy in {plain(report.policy)}; next: evolve validate BRANCH")  # fmt: skip


def hooks_removed(result: dict[str, Any]) -> None:
    say(f"removed {', '.join(result['removed']) or 'nothing'}")


def diagnosis(found: Diagnosis) -> None:
    colour = "green" if found.exit_code == 0 else "yellow"
    say(f"[bold {colour}]sandbox: {found.sandbox}[/] ({found.platform}, kernel "
        f"{plain(found.kernel)}, Landlock ABI {found.landlock_abi or 'none'})")  # fmt: skip
    for name, value in found.checks.items():
        say(f"  {name}: {plain(str(value))}")
    applied = found.applied
    if applied:
        layers = ("namespaces", "network", "run_hidden", "pid_namespace", "scratch_private",
                  "devpts_private", "seccomp", "caps_dropped")  # fmt: skip
        say("  " + "; ".join(f"{layer}: {applied.get(layer)}" for layer in layers))
    say(f"  automated proposals: {found.proposals}")
    for problem in found.problems:
        say(f"  [yellow]![/] {plain(problem)}")


class DemoView:
    """The demo's narration, step by step, as it happens."""

    def step(self, text: str) -> None:
        say(f"\n[bold]» {text}[/]")

    @contextmanager
    def progress(self, label: str) -> Iterator[ProgressCallback]:
        from evolution.console import test_progress

        with test_progress(label) as callback:
            yield callback

    def baseline(self, report: RecordReport) -> None:
        say(f"  baseline: {', '.join(f'{k} {v}' for k, v in report.counts.items())}")

    def iteration(self, iteration: Iteration) -> None:
        proposal = iteration.proposal
        search = proposal.get("search") or {}
        if search:
            say(f"  mutate: suspicious lines {search['suspicious_lines'][:3]}, "
                f"{search['evaluated']} candidates in {search['seconds']} s")  # fmt: skip
            for edit in search["edits"]:
                say(f"  edit: {plain(edit)}")
        say(f"  {iteration.verdict}: {plain(proposal.get('branch') or iteration.reason)}")
        if iteration.gate:
            gate = iteration.gate
            say(f"  baseline passing: {gate['passing_before']} -> {gate['passing_after']}")

    def gate(self, report: GateReport) -> None:
        gate_report(report)

    def finished(self, result: dict[str, Any], entries: list[Entry]) -> None:
        self.step("the audit trail, from git alone (evolve log)")
        trail_lines(entries)
        say(f"  rejected proposals kept: {plain(' '.join(result['rejected_refs']))}")
        workdir = result["repository"]
        say(
            f"\n[bold]{'demo finished' if result['ok'] else 'demo did not behave as expected'}"
            f"[/]; the repository is kept at {workdir}\n"
            f"  try: git -C {workdir} log --notes=evolve --all --oneline"
        )
