"""The `evolve` command line: it declares options, calls one library function, and prints
what it returned (`--json`, or `evolution.views` for people). Errors of every kind cross
one boundary, `agent.console.run_command`, into a message and an exit code.

Start-up must stay cheap (`evolve --help`): command bodies import the engine only when
they run, and nothing here imports litellm.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.console import JsonOpt, new_app, run_app, run_command

app = new_app(
    "evolve",
    "Ratchet's evolution engine: propose changes, and gate them so nothing that passed may "
    "stop passing.",
)
baseline_app = new_app(None, "Record or show the stored per-test baseline on main.")
hooks_app = new_app(None, "Install or remove the git hooks that call the gate.")
app.add_typer(baseline_app, name="baseline")
app.add_typer(hooks_app, name="hooks")

RepoOpt = Annotated[
    Path, typer.Option("--repo", help="A folder inside the git repository to work on.")
]
MainOpt = Annotated[
    str | None, typer.Option("--main", help="The main branch (default: main, else master).")
]
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
WorkersOpt = Annotated[
    str | None,
    typer.Option(
        "--workers", help="Test processes at once for a full run: a count, or auto (the cores)."
    ),
]
StagedOpt = Annotated[
    bool | None,
    typer.Option(
        "--staged/--no-staged",
        help="Run the tests the coverage map ties to the change first; they may reject.",
    ),
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


def _show(as_json: bool, data: Any, view: Callable[[Any], None]) -> None:
    from agent.console import emit_json

    if as_json:
        emit_json(data.to_json() if hasattr(data, "to_json") else data)
    else:
        view(data)


def _on_repo(
    repo: Path,
    as_json: bool,
    call: Callable[[Any], Any],
    view: str,
    exit_code: Callable[[Any], int] = lambda _: 0,
) -> None:
    """A command that is one library call on the repository: its result shown with
    `evolution.views.<view>`, or as JSON."""

    def body() -> int:
        from evolution import views
        from evolution.gitrepo import GitRepo

        result = call(GitRepo(repo))
        _show(as_json, result, getattr(views, view))
        return exit_code(result)

    run_command(as_json, body)


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
    workers: WorkersOpt = None,
    staged: StagedOpt = None,
    wait: WaitOpt = False,
    unsandboxed: UnsandboxedOpt = False,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget-s",
            min=1,
            help="With --post-merge: the seconds this run may take; a suite expected to "
            "outlast them is judged in parts kept for the next run. Default: what an "
            "agent task has left (AGENT_TASK_DEADLINE), else none.",
        ),
    ] = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Test the merge of BRANCH into main against the baseline; merge it only if nothing
    that passed stops passing.

    Exit codes: 0 accepted, 1 rejected, 2 usage error, 3 invalid run or environment failure.
    With --post-merge: 0 nothing to do or passing, 1 reverted a culprit, raised an
    incident a person must act on, or unfinished (parts kept for the next run), 3
    invalid run.
    """

    def body() -> int:
        from agent.errors import UsageError
        from agent.tasks import time_left
        from evolution import views
        from evolution.console import test_progress
        from evolution.gate.safety_net import post_merge as run_safety_net
        from evolution.gate.validate import GateOptions, validate_pending_merge
        from evolution.gate.validate import validate as run_gate
        from evolution.gitrepo import GitRepo

        if (branch is not None) + post_merge + pre_merge_commit != 1:
            raise UsageError("give one of: BRANCH, --post-merge, --pre-merge-commit")
        git_repo = GitRepo(repo)
        if post_merge:
            with test_progress("testing main after a merge") as progress:
                safety = run_safety_net(git_repo, main=main, progress=progress,
                                        budget_s=budget or time_left(os.environ))  # fmt: skip
            _show(as_json, safety, views.post_merge_report)
            if as_json and safety.exit_code:
                # The agent keeps a task's last line of stderr as its detail (ledger,
                # ping, `agent status`): make it the incident, not the JSON's brace.
                print(safety.summary(), file=sys.stderr)
            return safety.exit_code
        overrides = _overrides(
            reruns=reruns,
            flaky=flaky,
            test_timeout_s=test_timeout,
            run_timeout_s=run_timeout,
            require_improvement=True if require_improvement else None,
            workers=workers,
            staged=staged,
        )
        if pre_merge_commit:
            with test_progress("testing the merge about to be committed") as progress:
                report = validate_pending_merge(
                    git_repo, main=main, wait=True, overrides=overrides, progress=progress,
                    unsandboxed=unsandboxed,
                )  # fmt: skip
        else:
            assert branch is not None
            with test_progress(f"testing the merge of {branch}") as progress:
                options = GateOptions(
                    branch=branch, main=main, merge=not no_merge, wait=wait,
                    overrides=overrides, progress=progress, unsandboxed=unsandboxed,
                )  # fmt: skip
                report = run_gate(git_repo, options)
        _show(as_json, report, views.gate_report)
        return report.exit_code

    run_command(as_json, body)


@baseline_app.command("record")
def baseline_record(
    main: MainOpt = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Allow tests that passed before to stop passing.")
    ] = False,
    reruns: RerunsOpt = None,
    test_timeout: TestTimeoutOpt = None,
    run_timeout: RunTimeoutOpt = None,
    workers: WorkersOpt = None,
    wait: WaitOpt = False,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Run the suite on main's commit and commit its per-test outcomes as the baseline."""

    def body() -> int:
        from evolution import views
        from evolution.console import test_progress
        from evolution.gate.record import record
        from evolution.gitrepo import GitRepo

        overrides = _overrides(
            reruns=reruns,
            test_timeout_s=test_timeout,
            run_timeout_s=run_timeout,
            workers=workers,
        )
        with test_progress("recording the baseline") as progress:
            report = record(
                GitRepo(repo), main=main, wait=wait, reset=reset, overrides=overrides,
                progress=progress,
            )  # fmt: skip
        _show(as_json, report, views.record_report)
        return 0

    run_command(as_json, body)


@baseline_app.command("show")
def baseline_show(
    main: MainOpt = None, repo: RepoOpt = Path("."), as_json: JsonOpt = False
) -> None:
    """Summarise the baseline stored on main: counts, flaky tests, age and commit."""
    from evolution.gate.record import show

    _on_repo(repo, as_json, lambda git_repo: show(git_repo, main), "baseline_info")


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
        from agent.console import emit_json
        from evolution.demo import run_demo
        from evolution.views import DemoView

        result = run_demo(directory, model, view=None if as_json else DemoView())
        if as_json:
            emit_json(result)
        return 0 if result["ok"] else 1

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
            help="auto (the models, else mutate; a --patch when one is given), llm (the "
            "model chain only), mutate (offline repair of failing tests) or patch.",
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
        from evolution import views
        from evolution.gitrepo import GitRepo
        from evolution.mutate.search import SearchLimits
        from evolution.propose import propose as make_proposal

        result = make_proposal(
            GitRepo(repo),
            targets=list(target or []),
            goal=goal,
            proposer=proposer,
            patch=patch,
            models=list(model or []) or None,
            limits=SearchLimits(max_candidates, max_seconds),
            unsandboxed=unsandboxed,
        )
        _show(as_json, result, views.proposal_result)
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
        from evolution import views
        from evolution.cycle import run_cycle
        from evolution.gitrepo import GitRepo
        from evolution.mutate.search import SearchLimits

        report = run_cycle(
            GitRepo(repo),
            max_proposals=max_proposals,
            budget_usd=budget_usd,
            proposer=proposer,
            limits=SearchLimits(max_candidates, max_seconds),
            on_iteration=None if as_json else views.cycle_iteration,
            unsandboxed=unsandboxed,
        )
        _show(as_json, report, views.cycle_report)
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
        from evolution import views
        from evolution.sandbox.doctor import diagnose

        found = diagnose(network)
        _show(as_json, found, views.diagnosis)
        return found.exit_code

    run_command(as_json, body)


@app.command()
def log(
    limit: Annotated[int | None, typer.Option("--limit", help="At most N entries.", min=1)] = None,
    verdict: Annotated[
        str | None,
        typer.Option(
            "--verdict",
            help="Only accepted, rejected, reverted (or baseline, validated, incident).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries at or after an ISO date, or a span (14d)."),
    ] = None,
    main: MainOpt = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """The audit trail, newest first, read from git alone (trailers, notes, refs): a
    table on a terminal, one tab-separated line per entry when piped."""

    def body() -> int:
        from agent.console import emit_json
        from agent.timespan import parse_since
        from evolution import views
        from evolution.gitrepo import GitRepo
        from evolution.trail.read import read_trail

        git_repo = GitRepo(repo)
        main_ref, _ = git_repo.resolve_main(main)
        entries = read_trail(
            git_repo, main_ref, verdict=verdict, since=parse_since(since) if since else None,
            limit=limit,
        )  # fmt: skip
        if as_json:
            emit_json({"entries": [entry.to_json() for entry in entries]})
        else:
            views.log(entries)
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
    from evolution.trail.read import proposal_record

    _on_repo(
        repo, as_json,
        lambda git_repo: proposal_record(git_repo, git_repo.resolve_main(main)[0], proposal),
        "proposal_record",
    )  # fmt: skip


@app.command()
def verify(
    commit: Annotated[str, typer.Argument(help="The commit to check (default HEAD).")] = "HEAD",
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Exit 0 if COMMIT carries a verdict from the gate in git, 1 if not (the pre-push check)."""
    from evolution.gate.safety_net import verify as check

    _on_repo(repo, as_json, lambda git_repo: check(git_repo, commit), "verification",
             exit_code=lambda result: 0 if result["verified"] else 1)  # fmt: skip


@hooks_app.command("install")
def hooks_install(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Point git at the gate's hooks (core.hooksPath, or copies that never overwrite yours)."""
    from evolution.gate.hooks import install

    _on_repo(repo, as_json, install, "hooks_installed")


@hooks_app.command("uninstall")
def hooks_uninstall(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Undo `evolve hooks install`; hooks that are not Ratchet's are left alone."""
    from evolution.gate.hooks import uninstall

    _on_repo(repo, as_json, uninstall, "hooks_removed")


def main() -> None:
    run_app(app, "evolve")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
