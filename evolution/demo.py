"""`evolve demo`: the ratchet on a throwaway repository, offline, in a few seconds.

It copies the example agent shipped in the package into a new git repository, records
its baseline (one test fails: a seeded bug), then gates two proposals: one that fixes
the bug (merged, the baseline grows) and one that breaks another test (rejected, main
untouched). Everything it does goes through the same code paths as the real commands.
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
from evolution.gate import GateOptions, validate
from evolution.gitrepo import GATE_IDENTITY, GitRepo
from evolution.record import record
from evolution.trail import read_trail

EXAMPLE = "demo_agent"
TARGET = "scripts/disk_report.py"
FIX = ("percent_used(used, total) > threshold", "percent_used(used, total) >= threshold")
BREAK = ("size /= 1024", "size /= 1000")


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


def _propose(workdir: Path, branch: str, goal: str, edit: tuple[str, str]) -> None:
    """Commit one edit on its own branch, as an automated proposer would, with trailers."""
    _git(workdir, "switch", "--quiet", "-c", branch, "main")
    path = workdir / TARGET
    text = path.read_text()
    path.write_text(text.replace(edit[0], edit[1], 1))
    _git(workdir, "add", TARGET)
    proposal = branch.removeprefix("evolve/")
    message = (
        f"{goal}\n\nEvolve-Proposal: {proposal}\nEvolve-Proposer: patch\n"
        f"Evolve-Goal: {goal}\nEvolve-Cost-USD: 0\nEvolve-Tokens: 0"
    )
    _git(workdir, "commit", "--quiet", "--no-verify", "-m", message)
    _git(workdir, "switch", "--quiet", "main")


def make_demo_repo(directory: Path) -> Path:
    if directory.exists() and any(directory.iterdir()):
        raise EnvironmentFailure(f"{directory} is not empty; pass an empty or new --dir")
    _copy_tree(resources.files("evolution") / "examples" / EXAMPLE, directory)
    _git(directory, "init", "--quiet", "-b", "main")
    _git(directory, "add", "-A")
    _git(directory, "commit", "--quiet", "--no-verify", "-m", "demo agent: initial scripts")
    return directory


def run_demo(directory: Path | None, as_json: bool) -> int:
    workdir = (directory or Path(tempfile.mkdtemp(prefix="ratchet-demo-"))).resolve()
    steps: list[dict[str, Any]] = []

    def step(text: str) -> None:
        if not as_json:
            say(f"\n[bold]» {text}[/]")

    step(f"creating a demo repository in {workdir}")
    make_demo_repo(workdir)
    repo = GitRepo(workdir)

    step("recording the baseline on main (one test fails: a seeded bug)")
    with test_progress("recording the baseline") as progress:
        recorded = record(repo, progress=progress)
    steps.append({"step": "baseline", **recorded.to_json()})
    if not as_json:
        counts = ", ".join(f"{k} {v}" for k, v in recorded.counts.items())
        say(f"  baseline: {counts}")

    verdicts = []
    for branch, goal, edit, expect in (
        ("evolve/demo-fix-alert", "alert when usage reaches the threshold", FIX, "accepted"),
        ("evolve/demo-decimal-units", "switch human_size to decimal units", BREAK, "rejected"),
    ):
        step(f"gating {branch}: {goal} (expected: {expect})")
        _propose(workdir, branch, goal, edit)
        with test_progress(f"testing the merge of {branch}") as progress:
            report = validate(repo, GateOptions(branch=branch, progress=progress))
        verdicts.append(report.verdict == expect)
        steps.append({"step": "validate", "expected": expect, **report.to_json()})
        if not as_json:
            from evolution.cli import print_gate_report

            print_gate_report(report)

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
