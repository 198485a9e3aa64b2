"""The `evolve` command line.

Start-up must stay cheap (`evolve --help` under 0.3 s): command bodies import the heavy
parts of the engine only when they run, and nothing here imports litellm.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.console import run_command

if TYPE_CHECKING:
    from evolution.gate import GateReport

app = typer.Typer(
    name="evolve",
    help="Ratchet's evolution engine: propose changes, and gate them so nothing that "
    "passed may stop passing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
baseline_app = typer.Typer(
    help="Record or show the stored per-test baseline on main.",
    no_args_is_help=True,
)
app.add_typer(baseline_app, name="baseline")

RepoOpt = Annotated[
    Path, typer.Option("--repo", help="A folder inside the git repository to work on.")
]
MainOpt = Annotated[
    str | None, typer.Option("--main", help="The main branch (default: main, else master).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Queue behind a running gate instead of exiting.")
]
TestTimeoutOpt = Annotated[
    float | None, typer.Option("--test-timeout", help="Seconds one test may take.", min=0.1)
]
RunTimeoutOpt = Annotated[
    float | None, typer.Option("--run-timeout", help="Seconds the whole run may take.", min=1)
]
MaxCandidatesOpt = Annotated[
    int, typer.Option("--max-candidates", help="mutate: candidates evaluated at most.", min=1)
]
MaxSecondsOpt = Annotated[
    float, typer.Option("--max-seconds", help="mutate: seconds of search at most.", min=1)
]
RerunsOpt = Annotated[
    int | None,
    typer.Option("--reruns", help="Re-runs of a newly failing test to detect flakiness.", min=0),
]
UnsandboxedOpt = Annotated[
    bool,
    typer.Option(
        "--unsandboxed",
        help="Where no OS sandbox exists, run automated proposals' tests anyway, accepting "
        "the risk on purpose (recorded in the verdict).",
    ),
]


def _overrides(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@app.command()
def validate(
    branch: Annotated[
        str | None, typer.Argument(help="The branch (or commit) to gate into main.")
    ] = None,
    post_merge: Annotated[
        bool,
        typer.Option(
            "--post-merge",
            help="Safety net: test main's HEAD and revert what reached it without the gate.",
        ),
    ] = False,
    pre_merge_commit: Annotated[
        bool,
        typer.Option(
            "--pre-merge-commit", help="Judge the merge git is about to record (hook use)."
        ),
    ] = False,
    main: MainOpt = None,
    no_merge: Annotated[
        bool, typer.Option("--no-merge", help="Give the verdict only; change nothing.")
    ] = False,
    require_improvement: Annotated[
        bool,
        typer.Option("--require-improvement", help="Demand at least one newly passing test."),
    ] = False,
    flaky: Annotated[
        str | None, typer.Option("--flaky", help="quarantine (default) or strict.")
    ] = None,
    reruns: RerunsOpt = None,
    test_timeout: TestTimeoutOpt = None,
    run_timeout: RunTimeoutOpt = None,
    wait: WaitOpt = False,
    unsandboxed: UnsandboxedOpt = False,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Test the merge of BRANCH into main against the baseline; merge it only if nothing
    that passed stops passing.

    Exit codes: 0 accepted, 1 rejected, 2 usage error, 3 invalid run or environment failure.
    With --post-merge: 0 nothing to do, 1 reverted, 3 invalid run.
    """

    def body() -> int:
        from agent.console import emit_json
        from agent.errors import UsageError
        from evolution.console import test_progress
        from evolution.gate import GateOptions, validate_pending_merge
        from evolution.gate import validate as run_gate
        from evolution.gitrepo import GitRepo

        if flaky not in (None, "quarantine", "strict"):
            raise UsageError("--flaky takes quarantine or strict")
        if (branch is not None) + post_merge + pre_merge_commit != 1:
            raise UsageError("give one of: BRANCH, --post-merge, --pre-merge-commit")
        git_repo = GitRepo(repo)
        if post_merge:
            return _post_merge(git_repo, main, as_json)
        overrides = _overrides(
            reruns=reruns,
            flaky=flaky,
            test_timeout_s=test_timeout,
            run_timeout_s=run_timeout,
            require_improvement=True if require_improvement else None,
        )
        if pre_merge_commit:
            with test_progress("testing the merge about to be committed") as progress:
                report = validate_pending_merge(
                    git_repo,
                    main=main,
                    wait=True,
                    overrides=overrides,
                    progress=progress,
                    unsandboxed=unsandboxed,
                )
        else:
            assert branch is not None
            with test_progress(f"testing the merge of {branch}") as progress:
                report = run_gate(
                    git_repo,
                    GateOptions(
                        branch=branch,
                        main=main,
                        merge=not no_merge,
                        wait=wait,
                        overrides=overrides,
                        progress=progress,
                        unsandboxed=unsandboxed,
                    ),
                )
        if as_json:
            emit_json(report.to_json())
        else:
            print_gate_report(report)
        return report.exit_code

    run_command(as_json, body)


def _post_merge(git_repo: Any, main: str | None, as_json: bool) -> int:
    from agent.console import emit_json, plain, say
    from evolution.console import test_progress
    from evolution.safety_net import post_merge

    with test_progress("testing main after a merge") as progress:
        report = post_merge(git_repo, main=main, progress=progress)
    warn_if_unsandboxed(report.sandbox)
    if as_json:
        emit_json(report.to_json())
        return report.exit_code
    if report.status == "nothing-to-do":
        say(f"main {report.head[:10]} carries a verdict: nothing to check")
    elif report.status == "passing":
        say(
            f"[bold green]PASSING[/] main {report.head[:10]} reached main without the gate "
            f"but regressed nothing against {report.validated[:10]}; noted as validated"
        )
    else:
        say(
            f"[bold red]REVERTED[/] {len(report.reverted)} commit(s) since "
            f"{report.validated[:10]}; main is now {report.revert_commit[:10]}"
        )
        for regression in report.regressions:
            say(f"    {plain(regression['nodeid'])}: {plain(regression['first_line'])}")
        for nodeid in report.still_failing:
            say(f"  [red]still failing after the revert:[/] {plain(nodeid)}")
    return report.exit_code


def warn_if_unsandboxed(sandbox: str) -> None:
    """People's commits run without a sandbox where none exists: say so every time."""
    if sandbox.startswith("none"):
        from agent.console import err, plain

        err.print(f"[yellow]warning:[/] the suite ran without an OS sandbox: {plain(sandbox)}")


def print_gate_report(report: GateReport) -> None:
    from agent.console import plain, say
    from evolution.audit import regression_line

    colour = {"accepted": "green", "rejected": "red"}.get(report.verdict, "cyan")
    head = f"[bold {colour}]{report.verdict.upper()}[/] {plain(report.branch)}"
    if report.merged:
        head += f" → main is now {report.main_after[:10]}"
    elif report.reason and report.reason != "raced":
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
    sections = [
        ("regressions", [regression_line(r) for r in comparison.regressions]),
        ("newly passing", comparison.newly_passing),
        ("flaky (passed on re-run)", sorted(comparison.flaky)),
        ("quarantined, failed again", comparison.quarantined_failures),
        ("new tests not passing yet", [regression_line(r) for r in comparison.new_failing]),
    ]
    for title, items in sections:
        if items:
            say(f"  {title}:")
            for item in items[:20]:
                say(f"    {plain(item)}")
            if len(items) > 20:
                say(f"    … and {len(items) - 20} more (see --json)")
    if report.archived_as:
        say(f"  kept as {report.archived_as}; the verdict is in git log --notes=evolve")


@baseline_app.command("record")
def baseline_record(
    main: MainOpt = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Allow tests that passed before to stop passing.")
    ] = False,
    reruns: RerunsOpt = None,
    test_timeout: TestTimeoutOpt = None,
    run_timeout: RunTimeoutOpt = None,
    wait: WaitOpt = False,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Run the suite on main's commit and commit its per-test outcomes as the baseline."""

    def body() -> int:
        from agent.console import emit_json, say
        from evolution.console import test_progress
        from evolution.gitrepo import GitRepo
        from evolution.record import record

        git_repo = GitRepo(repo)
        overrides = _overrides(
            reruns=reruns, test_timeout_s=test_timeout, run_timeout_s=run_timeout
        )
        with test_progress("recording the baseline") as progress:
            result = record(
                git_repo,
                main=main,
                wait=wait,
                reset=reset,
                overrides=overrides,
                progress=progress,
            )
        warn_if_unsandboxed(result.sandbox)
        if as_json:
            emit_json(result.to_json())
        else:
            before = "none" if result.passing_before is None else result.passing_before
            counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
            say(f"[bold green]RECORDED[/] baseline at {result.commit[:10]} ({counts})")
            say(f"  passing: {before} -> {result.passing_after}; flaky: {len(result.flaky)}")
            if result.dropped:
                say(f"  lowered on purpose (--reset): {len(result.dropped)} test(s) dropped")
        return 0

    run_command(as_json, body)


@baseline_app.command("show")
def baseline_show(
    main: MainOpt = None, repo: RepoOpt = Path("."), as_json: JsonOpt = False
) -> None:
    """Summarise the baseline stored on main: counts, flaky tests, age and commit."""

    def body() -> int:
        from agent.console import emit_json, plain, say
        from evolution.gitrepo import GitRepo
        from evolution.record import show

        info = show(GitRepo(repo), main)
        if as_json:
            emit_json(info)
            return 0
        counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
        say(f"baseline on main {info['main'][:10]}, recorded from {info['commit'][:10]}")
        say(f"  tests {info['tests']}: {counts}")
        say(f"  recorded {info['recorded_at']} ({info['age']} ago)")
        say(f"  flaky (quarantined): {len(info['flaky'])}")
        for nodeid, evidence in sorted(info["flaky"].items()):
            say(
                f"    {plain(nodeid)}: passed {evidence.get('passed')}/{evidence.get('runs')} "
                f"re-runs; first failure: {plain(str(evidence.get('first_failure', '')))}"
            )
        return 0

    run_command(as_json, body)


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to create the demo repository (default: a temp dir)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Ask this litellm model first (default: offline only)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the whole loop on a throwaway repository: a seeded bug repaired by the cycle
    (offline, by mutate) and merged, a regressing patch rejected, the audit trail."""

    def body() -> int:
        from evolution.demo import run_demo

        return run_demo(directory, as_json, model)

    run_command(as_json, body)


@app.command()
def propose(
    target: Annotated[
        list[str] | None, typer.Option("--target", help="A file the proposal may change.")
    ] = None,
    goal: Annotated[str, typer.Option("--goal", help="What the change is for.")] = "",
    proposer: Annotated[
        str,
        typer.Option(
            "--proposer",
            help="auto (the models, else mutate), llm (the model chain only), mutate "
            "(offline repair of failing tests) or patch (--patch FILE).",
        ),
    ] = "auto",
    patch: Annotated[
        Path | None,
        typer.Option("--patch", help="A unified diff or SEARCH/REPLACE file to propose."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Use these models, in this order.")
    ] = None,
    max_candidates: MaxCandidatesOpt = 400,
    max_seconds: MaxSecondsOpt = 60.0,
    unsandboxed: UnsandboxedOpt = False,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Propose a change on its own branch evolve/<UTC timestamp>-<slug>, for the gate.

    Exit codes: 0 branch created; 1 no applicable change, or refused by the spend cap or
    the kill switch (the status says which); 2 usage or input error; 3 no model answered.
    """

    def body() -> int:
        from agent.console import emit_json, plain, say
        from evolution.gitrepo import GitRepo
        from evolution.mutate.search import SearchLimits
        from evolution.propose import propose as make_proposal

        chosen = "patch" if patch is not None and proposer == "auto" else proposer
        result = make_proposal(
            GitRepo(repo),
            targets=list(target or []),
            goal=goal,
            proposer=chosen,
            patch=patch,
            models=list(model or []) or None,
            limits=SearchLimits(max_candidates, max_seconds),
            unsandboxed=unsandboxed,
        )
        if as_json:
            emit_json(result.to_json())
        elif result.status == "created":
            say(result.branch)
        else:
            from agent.console import err

            err.print(f"[bold red]{result.status}:[/] {plain(result.message)}")
        return result.exit_code

    run_command(as_json, body)


@app.command()
def cycle(
    max_proposals: Annotated[
        int, typer.Option("--max", help="Stop after N proposals.", min=1)
    ] = 3,
    budget_usd: Annotated[
        float | None,
        typer.Option("--budget-usd", help="Stop once this cycle has spent X USD.", min=0),
    ] = None,
    proposer: Annotated[
        str, typer.Option("--proposer", help="auto (default), llm or mutate.")
    ] = "auto",
    max_candidates: MaxCandidatesOpt = 400,
    max_seconds: MaxSecondsOpt = 60.0,
    unsandboxed: UnsandboxedOpt = False,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """The closed loop: choose a goal, propose, validate through the gate, repeat.

    Goals, in order: tests failing in the baseline that concern an evolvable file;
    failing or silent tasks in the ledger; the spec's objectives. Stops after --max
    proposals, after max_rejections failed attempts in a row, at the cap or the cycle's
    budget, or at the kill flag. Exit codes: 0 done (N proposals, or nothing left to
    do); 1 stopped by rejections, the cap, the budget or the kill flag; 2 usage error;
    3 an invalid test run.
    """

    def body() -> int:
        from agent.console import emit_json, plain, say
        from evolution.cycle import Iteration, run_cycle
        from evolution.gitrepo import GitRepo
        from evolution.mutate.search import SearchLimits

        if proposer not in ("auto", "llm", "mutate"):
            from agent.errors import UsageError

            raise UsageError("--proposer takes auto, llm or mutate")

        def show(iteration: Iteration) -> None:
            if as_json:
                return
            proposal = iteration.proposal
            who = proposal.get("proposer", "") + (
                f"/{proposal['model']}" if proposal.get("model") else ""
            )
            say(f"{iteration.verdict:<10} {who:<24} {plain(iteration.goal.target)}: "
                f"{plain(iteration.goal.text[:70])}")
            if iteration.reason:
                say(f"           {plain(iteration.reason[:160])}")

        report = run_cycle(
            GitRepo(repo),
            max_proposals=max_proposals,
            budget_usd=budget_usd,
            proposer=proposer,
            limits=SearchLimits(max_candidates, max_seconds),
            on_iteration=show,
            unsandboxed=unsandboxed,
        )
        if as_json:
            emit_json(report.to_json())
        else:
            say(f"cycle stopped ({report.stopped}): {plain(report.reason)}; "
                f"{report.accepted} of {len(report.iterations)} accepted, "
                f"${report.spent_usd:.4f} spent")
        return report.exit_code

    run_command(as_json, body)


@app.command()
def doctor(
    network: Annotated[
        str, typer.Option("--network", help="The policy's network setting: loopback or host.")
    ] = "loopback",
    as_json: JsonOpt = False,
) -> None:
    """Show what isolation this host gives a test run, by entering the sandbox and trying
    what a hostile suite would.

    Exit codes: 0 the full sandbox holds; 1 part or none of it is available (the report
    says which, and what that means for proposals); 3 environment failure.
    """

    def body() -> int:
        from agent.console import emit_json, plain, say
        from agent.errors import UsageError
        from evolution.sandbox.doctor import diagnose

        if network not in ("loopback", "host"):
            raise UsageError("--network takes loopback or host")
        diagnosis = diagnose(network)
        if as_json:
            emit_json(diagnosis.to_json())
            return diagnosis.exit_code
        colour = "green" if diagnosis.exit_code == 0 else "yellow"
        say(f"[bold {colour}]sandbox: {diagnosis.sandbox}[/] ({diagnosis.platform}, kernel "
            f"{plain(diagnosis.kernel)}, Landlock ABI {diagnosis.landlock_abi or 'none'})")
        for name, value in diagnosis.checks.items():
            say(f"  {name}: {plain(str(value))}")
        applied = diagnosis.applied
        if applied:
            say(f"  namespaces: {applied.get('namespaces')}; network: {applied.get('network')}; "
                f"/run hidden: {applied.get('run_hidden')}; pid namespace: "
                f"{applied.get('pid_namespace')}; capabilities dropped: "
                f"{applied.get('caps_dropped')}")
        say(f"  automated proposals: {diagnosis.proposals}")
        for problem in diagnosis.problems:
            say(f"  [yellow]![/] {plain(problem)}")
        return diagnosis.exit_code

    run_command(as_json, body)


hooks_app = typer.Typer(help="Install or remove the git hooks that call the gate.")
app.add_typer(hooks_app, name="hooks")


@app.command()
def log(
    limit: Annotated[int | None, typer.Option("--limit", help="At most N entries.", min=1)] = None,
    verdict: Annotated[
        str | None,
        typer.Option(
            "--verdict", help="Only accepted, rejected, reverted (or baseline, validated)."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only entries at or after an ISO date.")
    ] = None,
    main: MainOpt = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """The audit trail, newest first, read from git alone (trailers, notes, refs)."""

    def body() -> int:
        from agent.console import emit_json, plain, say
        from agent.errors import UsageError
        from agent.timespan import parse_since
        from evolution.gate import resolve_main
        from evolution.gitrepo import GitRepo
        from evolution.trail import read_trail

        kinds = ("accepted", "rejected", "reverted", "baseline", "validated", "factory")
        if verdict is not None and verdict not in kinds:
            raise UsageError(f"--verdict takes one of: {', '.join(kinds)}")
        git_repo = GitRepo(repo)
        main_ref, _ = resolve_main(git_repo, main)
        entries = read_trail(
            git_repo,
            main_ref,
            verdict=verdict,
            since=parse_since(since) if since else None,
            limit=limit,
        )
        if as_json:
            emit_json({"entries": [entry.to_json() for entry in entries]})
            return 0
        if not entries:
            say("no entries")
        for entry in entries:
            say(plain(entry.line()))
        return 0

    run_command(as_json, body)


@app.command()
def show(
    proposal: Annotated[str, typer.Argument(help="A proposal id, or a commit.")],
    main: MainOpt = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """One proposal's whole record: goal, diff, verdict, regressions, model and cost."""

    def body() -> int:
        from agent.console import emit_json, out, plain, say
        from agent.errors import UsageError
        from evolution.gate import resolve_main
        from evolution.gitrepo import GitRepo
        from evolution.trail import read_trail

        git_repo = GitRepo(repo)
        main_ref, _ = resolve_main(git_repo, main)
        matches = [
            e
            for e in read_trail(git_repo, main_ref)
            if proposal in (e.proposal, e.commit, e.candidate)
            or (len(proposal) >= 7 and e.commit.startswith(proposal))
        ]
        if not matches:
            raise UsageError(f"no proposal or gate commit named {proposal!r} in the trail")
        entry = matches[0]
        diff = ""
        if entry.candidate:
            base = git_repo.out("merge-base", main_ref, entry.candidate, ok=(0, 1))
            base = base or f"{entry.candidate}^"
            if entry.verdict == "accepted":
                base = git_repo.out("rev-parse", f"{entry.commit}^1^1")
            diff = git_repo.out("diff", base, entry.candidate)
        record = {**entry.to_json(), "diff": diff, "history": [e.to_json() for e in matches]}
        if as_json:
            emit_json(record)
            return 0
        say(f"[bold]{plain(entry.proposal or entry.commit)}[/]  {entry.verdict} at {entry.when}")
        for label, value in (
            ("goal", entry.goal),
            ("proposer", entry.proposer),
            ("model", entry.model),
            ("tokens", entry.tokens),
            ("cost (USD)", entry.cost_usd),
            ("prompt sha256", entry.prompt_sha256),
            ("commit", entry.commit),
            ("candidate", entry.candidate),
        ):
            if value:
                say(f"  {label}: {plain(value)}")
        say(f"  tests: {entry.passed} passed, {entry.regressed} regressed, {entry.flaky} flaky")
        note = entry.trailers.get("Evolve-Note")
        if note:
            say("\n[bold]verdict note[/]")
            out.print(note[0], markup=False, highlight=False)
        if diff:
            say("\n[bold]diff[/]")
            out.print(diff, markup=False, highlight=False)
        return 0

    run_command(as_json, body)


@app.command()
def verify(
    commit: Annotated[str, typer.Argument(help="The commit to check (default HEAD).")] = "HEAD",
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Exit 0 if COMMIT carries a verdict from the gate in git, 1 if not (the pre-push check)."""

    def body() -> int:
        from agent.console import emit_json, say
        from evolution.gitrepo import GitRepo
        from evolution.safety_net import verify as check

        result = check(GitRepo(repo), commit)
        if as_json:
            emit_json(result)
        elif result["verified"]:
            say(f"{result['commit'][:10]}: {result['verdict']}")
        else:
            say(f"{result['commit'][:10]}: no verdict from the gate")
        return 0 if result["verified"] else 1

    run_command(as_json, body)


@hooks_app.command("install")
def hooks_install(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Point git at the gate's hooks (core.hooksPath, or copies that never overwrite yours)."""

    def body() -> int:
        from agent.console import emit_json, say
        from evolution.gitrepo import GitRepo
        from evolution.hooks import install

        result = install(GitRepo(repo))
        if as_json:
            emit_json(result)
            return 0
        say(
            f"installed {', '.join(result['installed']) or 'nothing'} ({result['mode']}: "
            f"{result['path']})"
        )
        for name in result["kept"]:
            say(f"  kept your own {name}: not overwritten; call evolve from it yourself")
        return 0

    run_command(as_json, body)


@hooks_app.command("uninstall")
def hooks_uninstall(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Undo `evolve hooks install`; hooks that are not Ratchet's are left alone."""

    def body() -> int:
        from agent.console import emit_json, say
        from evolution.gitrepo import GitRepo
        from evolution.hooks import uninstall

        result = uninstall(GitRepo(repo))
        if as_json:
            emit_json(result)
        else:
            say(f"removed {', '.join(result['removed']) or 'nothing'}")
        return 0

    run_command(as_json, body)


def _terminate(signum: int, frame: object) -> None:
    # Turn SIGTERM into the same clean unwinding as Ctrl-C: process groups are killed
    # and temporary worktrees removed by the finally blocks on the way out.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="evolve")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
