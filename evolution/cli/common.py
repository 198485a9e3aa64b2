"""What every `evolve` command shares: the application objects, the options several
commands take, and the one way a command shows its result.

A command declares its options, calls one library function and hands the result to a
view (`evolution.views`) or prints it as JSON; errors of every kind cross one boundary,
`agent.console.run_command`, into a message and an exit code. Start-up must stay cheap
(`evolve --help`): command bodies import the engine only when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.console import new_app, run_command, show

app = new_app(
    "evolve",
    "Ratchet's evolution engine: propose changes, and gate them so nothing that passed may "
    "stop passing.",
)
baseline_app = new_app(
    None, "Record, show, move or advance the stored per-test baseline of main."
)
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
FlakyOpt = Annotated[str | None, typer.Option("--flaky", help="quarantine (default) or strict.")]
RequireImprovementOpt = Annotated[
    bool,
    typer.Option("--require-improvement", help="Demand at least one newly passing test."),
]
BudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--budget-s",
        min=1,
        help="The seconds this run may take; a suite expected to outlast them is judged "
        "in parts kept for the next run. Default: what an agent task has left "
        "(AGENT_TASK_DEADLINE), else none.",
    ),
]


def overrides(**values: Any) -> dict[str, Any]:
    """The policy keys given on the command line (None: not given, the policy decides)."""
    return {key: value for key, value in values.items() if value is not None}


def gate_policy(
    reruns: int | None, flaky: str | None, test_timeout: float | None,
    run_timeout: float | None, require_improvement: bool, workers: str | None,
    staged: bool | None,
) -> dict[str, object]:  # fmt: skip
    """The policy keys a gate's switches override (validate, pre-merge-commit, check)."""
    return overrides(
        reruns=reruns, flaky=flaky, test_timeout_s=test_timeout, run_timeout_s=run_timeout,
        require_improvement=True if require_improvement else None, workers=workers,
        staged=staged,
    )  # fmt: skip


def on_repo(
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
        show(as_json, result, getattr(views, view))
        return exit_code(result)

    run_command(as_json, body)
