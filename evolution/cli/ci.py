"""`evolve check`: the gate's verdict on a commit that exists, for CI and merge queues."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.console import JsonOpt, run_command
from evolution.cli.common import (
    FlakyOpt,
    RepoOpt,
    RequireImprovementOpt,
    RerunsOpt,
    RunTimeoutOpt,
    StagedOpt,
    TestTimeoutOpt,
    UnsandboxedOpt,
    WorkersOpt,
    app,
    gate_policy,
    show,
)


def _shard(value: str | None) -> tuple[int, int] | None:
    """`I/N` (1 <= I <= N) as (index from 0, count)."""
    from agent.errors import UsageError

    if value is None:
        return None
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise UsageError(f"--shard takes I/N with 1 <= I <= N, not {value!r}")
    return int(index) - 1, int(count)


@app.command()
def check(
    parts: Annotated[
        list[Path] | None,
        typer.Argument(help="With --combine: the part files, one per part.", show_default=False),
    ] = None,
    commit: Annotated[
        str, typer.Option("--commit", help="The commit to judge (default: HEAD).")
    ] = "HEAD",
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="The branch or commit it goes into; its merge base with the commit gives the "
            "baseline and policy (default: main, master, origin/main, origin/master). In CI, "
            "give the base's SHA so that every job agrees.",
        ),
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="Run part I of N of the suite (I/N, from 1).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="With --shard: the part file (default ratchet-part-I-of-N.json)."
        ),
    ] = None,
    combine: Annotated[
        bool, typer.Option("--combine", help="Verify the PARTS and give their one verdict.")
    ] = False,
    retry: Annotated[
        list[Path] | None,
        typer.Option("--retry", help="With --combine: a re-run of one part (repeatable)."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write the verdict as JUnit XML to FILE.")
    ] = None,
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
    """Judge the checked-out commit (a pull request's head, a merge group's commit)
    against the baseline of its base, in the sandbox, changing nothing; with --shard one
    part of the suite, with --combine the parts' one verdict. On GitHub Actions it also
    writes a step summary and one annotation per regression. RATCHET_PART_KEY, when set,
    signs the part files and must then sign every part combined.

    Exit codes: 0 accepted, 1 rejected or refused, 2 usage error, 3 invalid run (a
    missing, duplicated, inconsistent or forged part among them) or environment failure.
    """

    def body() -> int:
        from agent.errors import InvalidRun, UsageError
        from evolution import views
        from evolution.console import test_progress
        from evolution.gate.check import CheckOptions
        from evolution.gate.check import check as run_check
        from evolution.gate.check import combine as run_combine
        from evolution.gate.ci_report import publish
        from evolution.gate.parts import part_key
        from evolution.gitrepo import GitRepo

        if combine and shard is not None:
            raise UsageError("give --shard to run a part, or --combine to join parts, not both")
        if (parts or retry) and not combine:
            raise UsageError("part files are given with --combine")
        if out is not None and shard is None:
            raise UsageError("--out goes with --shard")
        policy = gate_policy(reruns, flaky, test_timeout, run_timeout, require_improvement,
                             workers, staged)  # fmt: skip
        options = CheckOptions(commit=commit, base=base, overrides=policy,
                               unsandboxed=unsandboxed, key=part_key(os.environ),
                               shard=_shard(shard), out=out)  # fmt: skip
        commands = sys.stderr if as_json else sys.stdout
        try:
            if combine:
                report = run_combine(GitRepo(repo), options, list(parts or []), list(retry or []))
            else:
                label = f"checking part {shard}" if shard else "checking the commit"
                with test_progress(label) as progress:
                    options.progress = progress
                    report = run_check(GitRepo(repo), options)
        except InvalidRun as exc:
            publish(None, junit, os.environ, commands, invalid=exc.message)
            raise
        publish(report, junit, os.environ, commands)
        show(as_json, report, views.check_report)
        return report.exit_code

    run_command(as_json, body)
