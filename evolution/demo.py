"""`evolve demo`: the whole loop on a throwaway repository, offline, in seconds.

It copies the example agent shipped in the package into a new git repository, records
its baseline (one test fails: a seeded bug), runs the cycle, whose `mutate` proposer
localises and repairs the bug with no model (merged, the baseline grows), then gates a
patch that breaks another test (rejected, main untouched), and reads the audit trail
back from git. With `model`, the cycle asks that model first (falling back to `mutate`
if it does not answer). It calls the same library functions as the real commands, and
returns what happened; a view, when given, narrates it as it goes.
"""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager, nullcontext
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.errors import EnvironmentFailure
from evolution.cycle import Iteration, run_cycle
from evolution.gate.record import RecordReport, record
from evolution.gate.validate import GateOptions, GateReport, validate
from evolution.gitrepo import GitRepo
from evolution.propose import propose
from evolution.trail import format as t
from evolution.trail.read import Entry, read_trail, rejected_refs

if TYPE_CHECKING:
    from evolution.run.launch import ProgressCallback

EXAMPLE = "demo_agent"
TARGET = "scripts/disk_report.py"
BREAK_PATCH = f"""{TARGET}
<<<<<<< SEARCH
        size /= 1024
=======
        size /= 1000
>>>>>>> REPLACE
"""


class DemoView(Protocol):
    def step(self, text: str) -> None: ...
    def progress(self, label: str) -> AbstractContextManager[ProgressCallback]: ...
    def baseline(self, report: RecordReport) -> None: ...
    def iteration(self, iteration: Iteration) -> None: ...
    def gate(self, report: GateReport) -> None: ...
    def finished(self, result: dict[str, Any], entries: list[Entry]) -> None: ...


class _Quiet:
    """The view of a `--json` run: nothing is said until the end."""

    def step(self, text: str) -> None:
        pass

    def progress(self, label: str) -> AbstractContextManager[None]:
        return nullcontext()

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def _copy_tree(source: Traversable, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


def make_demo_repo(directory: Path) -> GitRepo:
    if directory.exists() and any(directory.iterdir()):
        raise EnvironmentFailure(f"{directory} is not empty; pass an empty or new --dir")
    _copy_tree(resources.files("evolution") / "examples" / EXAMPLE, directory)
    repo = GitRepo.create(directory)
    repo.commit_paths(directory, "demo agent: initial scripts")
    return repo


def _configure_model(repo: GitRepo, model: str) -> None:
    """A deploy/agent.toml naming one model, committed, so the cycle can ask it."""
    config = repo.toplevel / "deploy" / "agent.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[[llm.models]]\nmodel = "{model}"\ntimeout_s = 60\nmax_tokens = 2048\n',
        encoding="utf-8",
    )
    repo.commit_paths(config.parent, f"demo: ask {model} first")


def run_demo(
    directory: Path | None, model: str | None = None, view: DemoView | None = None
) -> dict[str, Any]:
    show: Any = view or _Quiet()
    workdir = (directory or Path(tempfile.mkdtemp(prefix="ratchet-demo-"))).resolve()
    steps: list[dict[str, Any]] = []

    show.step(f"creating a demo repository in {workdir}")
    repo = make_demo_repo(workdir)
    if model:
        _configure_model(repo, model)

    show.step("recording the baseline on main (one test fails: a seeded bug)")
    with show.progress("recording the baseline") as progress:
        recorded = record(repo, progress=progress)
    steps.append({"step": "baseline", **recorded.to_json()})
    show.baseline(recorded)

    who = f"{model} (mutate if it does not answer)" if model else "mutate, offline"
    show.step(f"evolve cycle: find the failing test, propose a repair ({who}), gate it")
    cycle = run_cycle(repo, max_proposals=1, on_iteration=show.iteration)
    steps.append({"step": "cycle", **cycle.to_json()})

    show.step("gating a patch that switches human_size to decimal units (expected: rejected)")
    report = _gate_a_regression(repo, workdir, show)
    steps.append({"step": "validate", "expected": t.REJECTED, **report.to_json()})
    show.gate(report)

    entries = read_trail(repo, "refs/heads/main")
    result = {
        "repository": str(workdir),
        "steps": steps,
        "trail": [entry.to_json() for entry in entries],
        "rejected_refs": sorted(t.REJECTED_PREFIX + name for name in rejected_refs(repo)),
        "ok": cycle.accepted == 1 and report.verdict == t.REJECTED,
    }
    show.finished(result, entries)
    return result


def _gate_a_regression(repo: GitRepo, workdir: Path, show: Any) -> GateReport:
    patch = workdir.parent / f".{workdir.name}-decimal.patch"
    patch.write_text(BREAK_PATCH, encoding="utf-8")
    try:
        proposal = propose(repo, targets=[TARGET], goal="switch human_size to decimal units",
                           proposer="patch", patch=patch)  # fmt: skip
    finally:
        patch.unlink(missing_ok=True)
    with show.progress(f"testing the merge of {proposal.branch}") as progress:
        return validate(repo, GateOptions(branch=proposal.branch, progress=progress))

