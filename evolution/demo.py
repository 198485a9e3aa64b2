"""`evolve demo`: the whole loop on a throwaway repository, offline, in seconds.

It copies the example agent shipped in the package into a new git repository, records
its baseline (one test fails: a seeded bug), runs `evolve cycle`, whose `mutate`
proposer localises and repairs the bug with no model (merged, the baseline grows),
then gates a patch that breaks another test (rejected, main untouched), and prints the
audit trail from git. With `--model`, the cycle asks that model first (falling back to
`mutate` if it does not answer). Everything goes through the same code paths as the
real commands.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from agent.console import emit_json, plain, say
from agent.errors import EnvironmentFailure
from evolution.console import test_progress
from evolution.cycle import Iteration, run_cycle
from evolution.gate import GateOptions, validate
from evolution.gitrepo import GATE_IDENTITY, GitRepo
from evolution.propose import propose
from evolution.record import record
from evolution.trail import read_trail

EXAMPLE = "demo_agent"
TARGET = "scripts/disk_report.py"


def _copy_tree(source: Traversable, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GATE_IDENTITY}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise EnvironmentFailure(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


BREAK_PATCH = f"""{TARGET}
<<<<<<< SEARCH
        size /= 1024
=======
        size /= 1000
>>>>>>> REPLACE
"""


def _configure_model(workdir: Path, model: str) -> None:
    """A deploy/agent.toml naming one model, committed, so the cycle can ask it."""
    config = workdir / "deploy" / "agent.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[[llm.models]]\nmodel = "{model}"\ntimeout_s = 60\nmax_tokens = 2048\n',
        encoding="utf-8",
    )
    _git(workdir, "add", "deploy/agent.toml")
    _git(workdir, "commit", "--quiet", "--no-verify", "-m", f"demo: ask {model} first")


def _show(iteration: Iteration) -> None:
    proposal = iteration.proposal
    search = proposal.get("search") or {}
    if search:
        say(f"  mutate: suspicious lines {search['suspicious_lines'][:3]}, "
            f"{search['evaluated']} candidates in {search['seconds']} s")
        for edit in search["edits"]:
            say(f"  edit: {plain(edit)}")
    say(f"  {iteration.verdict}: {plain(proposal.get('branch') or iteration.reason)}")
    if iteration.gate:
        gate = iteration.gate
        say(f"  baseline passing: {gate['passing_before']} -> {gate['passing_after']}")


def make_demo_repo(directory: Path) -> Path:
    if directory.exists() and any(directory.iterdir()):
        raise EnvironmentFailure(f"{directory} is not empty; pass an empty or new --dir")
    _copy_tree(resources.files("evolution") / "examples" / EXAMPLE, directory)
    _git(directory, "init", "--quiet", "-b", "main")
    _git(directory, "add", "-A")
    _git(directory, "commit", "--quiet", "--no-verify", "-m", "demo agent: initial scripts")
    return directory


def run_demo(directory: Path | None, as_json: bool, model: str | None = None) -> int:
    workdir = (directory or Path(tempfile.mkdtemp(prefix="ratchet-demo-"))).resolve()
    steps: list[dict[str, Any]] = []

    def step(text: str) -> None:
        if not as_json:
            say(f"\n[bold]» {text}[/]")

    step(f"creating a demo repository in {workdir}")
    make_demo_repo(workdir)
    if model:
        _configure_model(workdir, model)
    repo = GitRepo(workdir)

    step("recording the baseline on main (one test fails: a seeded bug)")
    with test_progress("recording the baseline") as progress:
        recorded = record(repo, progress=progress)
    steps.append({"step": "baseline", **recorded.to_json()})
    if not as_json:
        counts = ", ".join(f"{k} {v}" for k, v in recorded.counts.items())
        say(f"  baseline: {counts}")

    who = f"{model} (mutate if it does not answer)" if model else "mutate, offline"
    step(f"evolve cycle: find the failing test, propose a repair ({who}), gate it")
    cycle = run_cycle(repo, max_proposals=1, on_iteration=None if as_json else _show)
    repaired = cycle.accepted == 1
    steps.append({"step": "cycle", **cycle.to_json()})

    step("gating a patch that switches human_size to decimal units (expected: rejected)")
    patch = workdir.parent / f".{workdir.name}-decimal.patch"
    patch.write_text(BREAK_PATCH, encoding="utf-8")
    try:
        proposal = propose(repo, targets=[TARGET], goal="switch human_size to decimal units",
                           proposer="patch", patch=patch)
    finally:
        patch.unlink(missing_ok=True)
    with test_progress(f"testing the merge of {proposal.branch}") as progress:
        report = validate(repo, GateOptions(branch=proposal.branch, progress=progress))
    rejected_ok = report.verdict == "rejected"
    steps.append({"step": "validate", "expected": "rejected", **report.to_json()})
    if not as_json:
        from evolution.cli import print_gate_report

        print_gate_report(report)
    verdicts = [repaired, rejected_ok]

    trail = read_trail(repo, "refs/heads/main")
    rejected = _git(workdir, "for-each-ref", "--format=%(refname)", "refs/evolve/rejected/")
    ok = all(verdicts)
    if as_json:
        emit_json(
            {
                "repository": str(workdir),
                "steps": steps,
                "trail": [entry.to_json() for entry in trail],
                "ok": ok,
            }
        )
    else:
        step("the audit trail, from git alone (evolve log)")
        for entry in trail:
            say(f"  {plain(entry.line())}")
        say(f"  rejected proposals kept: {plain(rejected)}")
        say(
            f"\n[bold]{'demo finished' if ok else 'demo did not behave as expected'}[/]; "
            f"the repository is kept at {workdir}\n"
            f"  try: git -C {workdir} log --notes=evolve --all --oneline"
        )
    return 0 if ok else 1
