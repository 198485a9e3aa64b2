"""The evolution loop's commands: `propose`, `cycle` and `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.console import JsonOpt, run_command
from evolution.cli.common import (
    MaxCandidatesOpt,
    MaxSecondsOpt,
    RepoOpt,
    UnsandboxedOpt,
    app,
    show,
)


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
            "model chain only), mutate (offline repair of failing tests), patch, or a "
            "coding agent: agent:aider, agent:mini, agent:codex, agent:claude, "
            "agent:gemini, agent:command (docs/how-to/agents.md).",
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

    Exit codes: 0 branch created; 1 no applicable change, a coding agent that failed, or
    refused by the spend cap or the kill switch (the status says which); 2 usage or input
    error; 3 no model answered, or a coding agent's command is missing.
    """

    def body() -> int:
        from evolution import views
        from evolution.console import agent_status
        from evolution.gitrepo import GitRepo
        from evolution.mutate.search import SearchLimits
        from evolution.propose import propose as make_proposal

        with agent_status() as status:
            result = make_proposal(
                GitRepo(repo),
                targets=list(target or []),
                goal=goal,
                proposer=proposer,
                patch=patch,
                models=list(model or []) or None,
                limits=SearchLimits(max_candidates, max_seconds),
                unsandboxed=unsandboxed,
                on_progress=status,
            )
        show(as_json, result, views.proposal_result)
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
        str,
        typer.Option(
            "--proposer",
            help="auto (default), llm, mutate, or a coding agent (agent:aider, agent:mini, "
            "agent:codex, agent:claude, agent:gemini, agent:command).",
        ),
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
        show(as_json, report, views.cycle_report)
        return report.exit_code

    run_command(as_json, body)
