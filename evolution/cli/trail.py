"""The audit trail's commands: `log` and `show`, read from git alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.console import JsonOpt, run_command
from evolution.cli.common import MainOpt, RepoOpt, app, on_repo


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
        entries = read_trail(
            git_repo, git_repo.resolve_main(main)[0], verdict=verdict,
            since=parse_since(since) if since else None, limit=limit,
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

    on_repo(
        repo, as_json,
        lambda git_repo: proposal_record(git_repo, git_repo.resolve_main(main)[0], proposal),
        "proposal_record",
    )  # fmt: skip
