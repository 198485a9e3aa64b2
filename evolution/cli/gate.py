"""The gate's commands: `validate`, `safety-net`, `pre-merge-commit`, `verify`, `doctor`,
`baseline record|show|migrate|advance` and `hooks install|uninstall`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from agent.console import JsonOpt, run_command
from evolution.cli.common import (
    BudgetOpt,
    FlakyOpt,
    MainOpt,
    RepoOpt,
    RequireImprovementOpt,
    RerunsOpt,
    RunTimeoutOpt,
    StagedOpt,
    TestTimeoutOpt,
    UnsandboxedOpt,
    WaitOpt,
    WorkersOpt,
    app,
    baseline_app,
    gate_policy,
    hooks_app,
    on_repo,
    overrides,
    show,
)


def _safety_net(repo: Path, main: str | None, budget: float | None, as_json: bool) -> int:
    from agent.tasks import time_left
    from evolution import views
    from evolution.console import test_progress
    from evolution.gate.safety_net import post_merge
    from evolution.gitrepo import GitRepo

    with test_progress("testing main after a merge") as progress:
        report = post_merge(GitRepo(repo), main=main, progress=progress,
                            budget_s=budget or time_left(os.environ))  # fmt: skip
    show(as_json, report, views.post_merge_report)
    if as_json:
        views.task_detail(report)
    return report.exit_code


def _pending_merge(repo: Path, main: str | None, policy: dict[str, object],
                   unsandboxed: bool, as_json: bool) -> int:  # fmt: skip
    from evolution import views
    from evolution.console import test_progress
    from evolution.gate.validate import validate_pending_merge
    from evolution.gitrepo import GitRepo

    with test_progress("testing the merge about to be committed") as progress:
        report = validate_pending_merge(GitRepo(repo), main=main, wait=True, overrides=policy,
                                        progress=progress, unsandboxed=unsandboxed)  # fmt: skip
    show(as_json, report, views.gate_report)
    return report.exit_code


@app.command()
def validate(
    branch: Annotated[
        str | None, typer.Argument(help="The branch (or commit) to gate into main.")
    ] = None,
    post_merge: Annotated[
        bool, typer.Option("--post-merge", hidden=True, help="Deprecated: `evolve safety-net`.")
    ] = False,
    pre_merge_commit: Annotated[
        bool,
        typer.Option(
            "--pre-merge-commit", hidden=True, help="Deprecated: `evolve pre-merge-commit`."
        ),
    ] = False,
    main: MainOpt = None,
    no_merge: Annotated[
        bool, typer.Option("--no-merge", help="Give the verdict only; change nothing.")
    ] = False,
    require_improvement: RequireImprovementOpt = False,
    flaky: FlakyOpt = None,
    reruns: RerunsOpt = None,
    test_timeout: TestTimeoutOpt = None,
    run_timeout: RunTimeoutOpt = None,
    workers: WorkersOpt = None,
    staged: StagedOpt = None,
    wait: WaitOpt = False,
    unsandboxed: UnsandboxedOpt = False,
    budget: Annotated[
        float | None, typer.Option("--budget-s", min=1, hidden=True, help="With --post-merge.")
    ] = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Test the merge of BRANCH into main against the baseline; merge it only if nothing
    that passed stops passing.

    Exit codes: 0 accepted, 1 rejected, 2 usage error, 3 invalid run or environment failure.
    """

    def body() -> int:
        from agent.errors import UsageError
        from evolution import views
        from evolution.console import test_progress
        from evolution.gate.validate import GateOptions
        from evolution.gate.validate import validate as run_gate
        from evolution.gitrepo import GitRepo

        if (branch is not None) + post_merge + pre_merge_commit != 1:
            raise UsageError("give one of: BRANCH, --post-merge, --pre-merge-commit")
        if post_merge:
            views.deprecated("evolve validate --post-merge", "evolve safety-net")
            return _safety_net(repo, main, budget, as_json)
        policy = gate_policy(reruns, flaky, test_timeout, run_timeout, require_improvement,
                              workers, staged)  # fmt: skip
        if pre_merge_commit:
            views.deprecated("evolve validate --pre-merge-commit", "evolve pre-merge-commit")
            return _pending_merge(repo, main, policy, unsandboxed, as_json)
        assert branch is not None
        with test_progress(f"testing the merge of {branch}") as progress:
            options = GateOptions(
                branch=branch, main=main, merge=not no_merge, wait=wait, overrides=policy,
                progress=progress, unsandboxed=unsandboxed,
            )  # fmt: skip
            report = run_gate(GitRepo(repo), options)
        show(as_json, report, views.gate_report)
        return report.exit_code

    run_command(as_json, body)


@app.command("safety-net")
def safety_net(
    main: MainOpt = None,
    budget: BudgetOpt = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """The safety net, after a merge (the post-merge hook, an agent's task): test main's
    HEAD if it reached main without the gate, find the commit that caused a regression,
    revert a proposal alone and report a person's commit as an incident.

    Exit codes: 0 nothing to do or passing; 1 reverted a culprit, raised an incident a
    person must act on, or unfinished (parts kept for the next run); 3 invalid run.
    """
    run_command(as_json, lambda: _safety_net(repo, main, budget, as_json))


@app.command("pre-merge-commit")
def pre_merge_commit(
    main: MainOpt = None,
    require_improvement: RequireImprovementOpt = False,
    flaky: FlakyOpt = None,
    reruns: RerunsOpt = None,
    test_timeout: TestTimeoutOpt = None,
    run_timeout: RunTimeoutOpt = None,
    workers: WorkersOpt = None,
    staged: StagedOpt = None,
    unsandboxed: UnsandboxedOpt = False,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Judge the merge git is about to record (the pre-merge-commit hook): refuse it if a
    test that passed would stop passing.

    Exit codes: 0 accepted, 1 rejected, 2 usage error, 3 invalid run or environment failure.
    """
    policy = gate_policy(reruns, flaky, test_timeout, run_timeout, require_improvement,
                          workers, staged)  # fmt: skip
    run_command(as_json, lambda: _pending_merge(repo, main, policy, unsandboxed, as_json))


@app.command()
def verify(
    commit: Annotated[str, typer.Argument(help="The commit to check (default HEAD).")] = "HEAD",
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Exit 0 if COMMIT carries a verdict from the gate in git, 1 if not (the pre-push check)."""
    from evolution.gate.safety_net import verify as check

    on_repo(repo, as_json, lambda git_repo: check(git_repo, commit), "verification",
            exit_code=lambda result: 0 if result["verified"] else 1)  # fmt: skip


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
        show(as_json, found, views.diagnosis)
        return found.exit_code

    run_command(as_json, body)


@baseline_app.command("record")
def baseline_record(
    main: MainOpt = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Allow tests that passed before to stop passing.")
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Why the baseline is re-recorded, kept in its commit (say it with --reset).",
        ),
    ] = None,
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

        policy = overrides(
            reruns=reruns, test_timeout_s=test_timeout, run_timeout_s=run_timeout,
            workers=workers,
        )  # fmt: skip
        with test_progress("recording the baseline") as progress:
            report = record(
                GitRepo(repo), main=main, wait=wait, reset=reset, reason=reason,
                overrides=policy, progress=progress,
            )  # fmt: skip
        show(as_json, report, views.record_report)
        return 0

    run_command(as_json, body)


@baseline_app.command("show")
def baseline_show(
    main: MainOpt = None, repo: RepoOpt = Path("."), as_json: JsonOpt = False
) -> None:
    """Summarise the baseline stored on main: counts, flaky tests, age and commit."""
    from evolution.gate.record import show as show_baseline

    on_repo(repo, as_json, lambda git_repo: show_baseline(git_repo, main), "baseline_info")


@baseline_app.command("migrate")
def baseline_migrate(
    to: Annotated[
        str, typer.Option("--to", help="file (baseline/baseline.json on main) or ref (shared).")
    ],
    main: MainOpt = None,
    wait: WaitOpt = False,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Move main's baseline between the file in the tree and the shared store
    (refs/notes/ratchet), with the policy's `baseline` key, in one commit on main."""
    from evolution.gate.migrate import migrate

    on_repo(repo, as_json, lambda git_repo: migrate(git_repo, to, main=main, wait=wait),
            "migration")  # fmt: skip


@baseline_app.command("advance")
def baseline_advance(
    verdict: Annotated[
        Path, typer.Option("--from", help="The accepted check's verdict JSON.", exists=True)
    ],
    remote: Annotated[
        str | None,
        typer.Option("--remote", help="Publish to this remote as well (compare-and-swap)."),
    ] = None,
    main: MainOpt = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """After the merge queue merged exactly the tested commit: store the baseline its check
    advanced in the shared store, by compare-and-swap (retried on a lost race)."""

    def call(git_repo: object) -> object:
        import json

        from agent.errors import UsageError
        from evolution.gate.shared import advance_after_merge

        try:
            data = json.loads(verdict.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{verdict}: not a verdict JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{verdict}: a verdict is a JSON object")
        return advance_after_merge(git_repo, data, main=main, remote=remote)  # type: ignore[arg-type]

    on_repo(repo, as_json, call, "shared_advance")


@hooks_app.command("install")
def hooks_install(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Point git at the gate's hooks (core.hooksPath, or copies that never overwrite yours)."""
    from evolution.gate.hooks import install

    on_repo(repo, as_json, install, "hooks_installed")


@hooks_app.command("uninstall")
def hooks_uninstall(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Undo `evolve hooks install`; hooks that are not Ratchet's are left alone."""
    from evolution.gate.hooks import uninstall

    on_repo(repo, as_json, uninstall, "hooks_removed")
