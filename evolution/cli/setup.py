"""`evolve init`: one step from an existing repository with a pytest suite to one under
the ratchet (evolution.gate.adopt)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agent.console import JsonOpt, run_command
from evolution.cli.common import MainOpt, RepoOpt, app, show


class CI(StrEnum):
    github = "github"
    gitlab = "gitlab"


@app.command()
def init(
    ci: Annotated[
        CI | None,
        typer.Option(
            "--ci",
            help="Also write this CI's file: .github/workflows/ratchet.yml (github) or "
            ".gitlab-ci.yml (gitlab): evolve check in parts, combined into one verdict.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would be written and run; change nothing."),
    ] = False,
    main: MainOpt = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Put this repository under the ratchet: commit a minimal [tool.ratchet] to main
    (in pyproject.toml, else ratchet.toml) with runs/ ignored and the CI file asked
    for, record the baseline, install the hooks. Each step already done is skipped.

    Exit codes: 0 done, or nothing to do; 1 refused (uncommitted changes, a file in the
    way); 2 usage error (not a git repository, no pytest suite, a bad policy on main);
    3 an invalid test run or an environment failure.
    """

    def body() -> int:
        from evolution import views
        from evolution.console import test_progress
        from evolution.gate.adopt import init as adopt
        from evolution.gitrepo import GitRepo

        with test_progress("recording the baseline") as progress:
            report = adopt(GitRepo(repo), main=main, ci=ci.value if ci else None,
                           dry_run=dry_run, progress=progress)  # fmt: skip
        show(as_json, report, views.init_report)
        return 0

    run_command(as_json, body)
