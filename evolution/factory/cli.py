"""The `factory` command line: build, plan and check deploy/ from SPEC.md.

Exit codes, shared with `evolve`: 0 success (clean, or nothing to change), 1 drift or
pending changes (refused), 2 a bad SPEC.md or bad usage, 3 an environment failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.console import JsonOpt, new_app, run_app, run_command

app = new_app(
    "factory", "Regenerate the deployed system (deploy/) from SPEC.md, deterministically."
)
SpecOpt = Annotated[Path, typer.Option("--spec", help="The spec to build from.")]
OutOpt = Annotated[Path, typer.Option("--out", help="The folder to generate.")]


def _runs_for(spec: Path) -> Path:
    return spec.resolve().parent / "runs"


@app.command()
def build(
    spec: SpecOpt = Path("SPEC.md"),
    out: OutOpt = Path("deploy"),
    discard_drift: Annotated[
        bool,
        typer.Option("--discard-drift", help="Save hand-edits as a patch in runs/, then rebuild."),
    ] = False,
    commit: Annotated[
        bool, typer.Option("--commit", help="Commit deploy/ with a Factory-Build trailer.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Render SPEC.md into deploy/; refuses to overwrite a hand-edited file."""

    def body() -> int:
        from agent.console import emit_json, say
        from evolution.factory.build import build as run_build

        report = run_build(spec, out, _runs_for(spec), discard_drift=discard_drift)
        if commit and report.changed:
            _commit(out, report.build_id)
        if as_json:
            emit_json(report.to_json())
        else:
            verb = "built" if report.changed else "up to date:"
            say(f"{verb} {out} (build {report.build_id})")
            if report.saved_patch:
                say(f"  hand-edits saved to {report.saved_patch}")
        return 0

    run_command(as_json, body)


def _commit(out: Path, build_id: str) -> None:
    from evolution.gitrepo import GitRepo
    from evolution.trail.write import factory_message

    repo = GitRepo(out.resolve().parent)
    repo.commit_paths(out.resolve(), factory_message(build_id))


@app.command()
def plan(spec: SpecOpt = Path("SPEC.md"), out: OutOpt = Path("deploy")) -> None:
    """Show the diff a build would make; exit 1 when changes are pending."""

    def body() -> int:
        from agent.console import out as console
        from agent.console import say
        from evolution.factory.build import diff, load

        text = diff(out, load(spec))
        if not text:
            say("no changes")
            return 0
        console.print(text, markup=False, highlight=False, end="")
        return 1

    run_command(False, body)


@app.command()
def check(
    spec: SpecOpt = Path("SPEC.md"),
    out: OutOpt = Path("deploy"),
    ledger: Annotated[
        Path | None,
        typer.Option(
            "--ledger",
            help="The agent's ledger, for the timeout check (default: runs/ledger.sqlite "
            "beside the spec).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify each generated file: clean, stale, drifted, missing or untracked; warn
    about task timeouts below their recent p95 in the ledger."""

    def body() -> int:
        from agent.console import emit_json, err, say
        from evolution.factory.build import classify, render_parsed
        from evolution.factory.spec import parse_spec
        from evolution.factory.timeouts import timeout_warnings

        parsed = parse_spec(spec)
        states = classify(out, render_parsed(parsed))
        warnings = timeout_warnings(parsed, ledger or _runs_for(spec) / "ledger.sqlite")
        clean = all(s.status == "clean" for s in states)
        if as_json:
            emit_json({"clean": clean, "files": [s.__dict__ for s in states],
                       "warnings": warnings})  # fmt: skip
        else:
            for state in states:
                say(f"{state.status:<9} {state.path}")
            for warning in warnings:
                err.print(f"warning: {warning}", markup=False, highlight=False)
        return 0 if clean else 1

    run_command(as_json, body)


def main() -> None:
    run_app(app, "factory")


if __name__ == "__main__":  # pragma: no cover
    main()
