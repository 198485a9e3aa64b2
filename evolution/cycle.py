"""`evolve cycle`: the closed loop. Choose a goal, propose, validate, repeat, within limits.

Goals come from three sources, in this order:
1. tests that fail in main's baseline and concern an evolvable file (the `mutate`
   proposer can work on these offline);
2. tasks the runtime ledger shows silent, failing or timing out, whose command runs an
   evolvable script (a model is needed: there is no failing test to repair against);
3. the `objectives` of the policy on main (`[tool.ratchet]`, ratchet.toml or
   deploy/agent.toml's `[evolution]`; a model is needed).

It stops after `--max` proposals, after `max_rejections` failed attempts in a row (a
rejection, or a proposer that found nothing), when the day's cap or the cycle's own
`--budget-usd` is spent, or at the kill flag, which is checked before every iteration
(and by the model client before every call). Each proposal leaves a branch and a
verdict in git: a gate commit on main, or a rejection note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from agent.errors import RatchetError, UsageError
from agent.ledger import CAP_TOLERANCE_USD, Ledger
from evolution.gate.validate import GateOptions, validate
from evolution.gitrepo import GitRepo
from evolution.mutate.search import SearchLimits
from evolution.policy import committed_policy, matches
from evolution.propose import ProposalResult, propose
from evolution.propose.agents.adapters import NAMES as AGENT_PROPOSERS
from evolution.propose.context import Context, failing_by_target, open_context

FAILED_TASK = ("silent", "failed", "timeout")
CYCLE_PROPOSERS = ("auto", "llm", "mutate", *AGENT_PROPOSERS)
TASK_WINDOW = 20


@dataclass(frozen=True)
class Goal:
    source: str  # failing-tests | task | objective
    target: str
    text: str
    needs_model: bool
    then: tuple[str, ...] = ()  # failing-tests: the other suspects, for mutate's budget


@dataclass
class Iteration:
    goal: Goal
    proposal: dict[str, Any]
    verdict: str  # accepted | rejected | no-change | malformed | unavailable | invalid
    reason: str = ""
    gate: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"goal": asdict(self.goal), "proposal": self.proposal, "verdict": self.verdict,
                "reason": self.reason, "gate": self.gate}


@dataclass
class CycleReport:
    iterations: list[Iteration] = field(default_factory=list)
    stopped: str = ""  # max | rejections | capped | budget | killed | nothing-to-do | invalid
    reason: str = ""
    spent_usd: float = 0.0

    @property
    def accepted(self) -> int:
        return sum(it.verdict == "accepted" for it in self.iterations)

    @property
    def exit_code(self) -> int:
        if self.stopped in ("max", "nothing-to-do"):
            return 0
        return 3 if self.stopped == "invalid" else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "iterations": [it.to_json() for it in self.iterations],
            "accepted": self.accepted,
            "stopped": self.stopped,
            "reason": self.reason,
            "spent_usd": round(self.spent_usd, 6),
            "exit_code": self.exit_code,
        }


def evolvable_files(ctx: Context) -> list[str]:
    return [
        path for path in ctx.repo.files_in(ctx.main)
        if path.endswith(".py") and matches(path, ctx.policy.evolvable)
        and not matches(path, ctx.policy.protected)
    ]


def _failing_goals(ctx: Context, files: list[str]) -> list[Goal]:
    by_target, _ = failing_by_target(ctx, files)
    order = list(by_target)  # the most suspicious target first
    return [
        Goal("failing-tests", target,
             f"make the failing tests pass: {', '.join(list(tests)[:5])}", needs_model=False,
             then=tuple(order[index + 1:]))
        for index, (target, tests) in enumerate(by_target.items())
    ]


def _task_goals(ctx: Context, files: list[str]) -> list[Goal]:
    if not ctx.config.ledger.exists():
        return []
    goals = []
    with Ledger(ctx.config.ledger) as ledger:
        for task in ctx.config.tasks:
            runs = ledger.task_runs(task.name, limit=TASK_WINDOW)
            bad = [r for r in runs if r["status"] in FAILED_TASK]
            if not runs or runs[0]["status"] not in FAILED_TASK:
                continue
            script = next((w for w in task.argv if w in files), None)
            if script is None:
                continue
            latest = runs[0]
            goals.append(Goal(
                "task", script,
                f"task {task.name} ({' '.join(task.argv)}) was {latest['status']} in "
                f"{len(bad)} of its last {len(runs)} runs; latest: {latest['detail'] or '-'}; "
                f"stderr: {latest['stderr_tail'][-300:] or '-'}",
                needs_model=True,
            ))
    return goals


def _objective_goals(ctx: Context, files: list[str], turn: int) -> list[Goal]:
    # The policy's table, wherever main keeps it (open_context has checked it already).
    found = committed_policy(ctx.repo, ctx.main)
    section = found.section() if found is not None else None
    if not isinstance(section, dict):
        return []
    objectives = [o for o in section.get("objectives", []) if isinstance(o, str)]
    scripts = [f for f in files if not PurePosixPath(f).name.startswith("test_")]
    if not objectives or not scripts:
        return []
    return [
        Goal("objective", scripts[(turn + i) % len(scripts)], objective, needs_model=True)
        for i, objective in enumerate(objectives)
    ]


def choose_goal(ctx: Context, turn: int, exhausted: set[tuple[str, str]]) -> Goal | None:
    """The first goal, in source order, not exhausted in this cycle and within reach."""
    files = evolvable_files(ctx)
    offline = not ctx.config.models
    for goal in (*_failing_goals(ctx, files), *_task_goals(ctx, files),
                 *_objective_goals(ctx, files, turn)):
        if (goal.target, goal.text) in exhausted or (goal.needs_model and offline):
            continue
        return goal
    return None


def _guard(ctx: Context, report: CycleReport, budget_usd: float | None) -> bool:
    """Record why the cycle must stop now, if it must."""
    flag = ctx.config.kill_flag_path
    if flag.exists():
        report.stopped, report.reason = "killed", f"kill flag present ({flag})"
        return True
    cap = ctx.config.cap_usd
    if cap is not None:
        with Ledger(ctx.config.ledger) as ledger:
            spent = ledger.over_cap(cap)
        if spent is not None:
            report.stopped = "capped"
            report.reason = f"spend cap reached (${spent:.4f} of ${cap:.2f})"
            return True
    if budget_usd is not None and report.spent_usd >= budget_usd - CAP_TOLERANCE_USD:
        report.stopped = "budget"
        report.reason = (
            f"the cycle's budget is spent (${report.spent_usd:.4f} of ${budget_usd:.2f})"
        )
        return True
    return False


def run_cycle(
    repo: GitRepo,
    *,
    max_proposals: int = 3,
    budget_usd: float | None = None,
    proposer: str = "auto",
    limits: SearchLimits | None = None,
    on_iteration: Callable[[Iteration], None] | None = None,
    unsandboxed: bool = False,
) -> CycleReport:
    if proposer not in CYCLE_PROPOSERS:
        raise UsageError(
            f"the cycle takes the {', '.join(CYCLE_PROPOSERS)} proposer, not {proposer!r}"
        )
    report = CycleReport()
    rejections = 0
    exhausted: set[tuple[str, str]] = set()
    tried: set[str] = set()  # mutants already judged, so a later search goes further
    while True:
        ctx = open_context(repo)  # main moves when a proposal is accepted
        if _guard(ctx, report, budget_usd):
            break
        if len(report.iterations) >= max_proposals:
            report.stopped, report.reason = "max", f"{max_proposals} proposals made"
            break
        if rejections >= ctx.policy.max_rejections:
            report.stopped = "rejections"
            report.reason = f"{rejections} failed attempts in a row (max_rejections)"
            break
        goal = choose_goal(ctx, len(report.iterations), exhausted)
        if goal is None:
            report.stopped, report.reason = "nothing-to-do", "no goal left within reach"
            break
        result = propose(repo, targets=[goal.target], goal=goal.text, proposer=proposer,
                         limits=limits, tried=tried, unsandboxed=unsandboxed,
                         then=list(goal.then))
        report.spent_usd += result.cost_usd
        iteration = _judge(repo, goal, result, unsandboxed)
        report.iterations.append(iteration)
        if on_iteration is not None:
            on_iteration(iteration)
        if iteration.verdict in ("killed", "capped"):
            report.stopped, report.reason = iteration.verdict, result.message
            break
        if iteration.verdict == "invalid":
            report.stopped, report.reason = "invalid", iteration.reason
            break
        if iteration.verdict == "accepted":
            rejections = 0
        else:
            rejections += 1
            search = iteration.proposal.get("search") or {}
            if iteration.verdict == "no-change" and search.get("stopped") in (None, "exhausted"):
                # Nothing left to try for this goal. A search cut off by its time or
                # candidate bound is resumed next time, past the mutants already tried.
                exhausted.add((goal.target, goal.text))
    return report


def _judge(repo: GitRepo, goal: Goal, result: ProposalResult, unsandboxed: bool) -> Iteration:
    if result.status != "created":
        return Iteration(goal, result.to_json(), result.status, result.message)
    try:
        gate = validate(repo, GateOptions(branch=result.branch, unsandboxed=unsandboxed))
    except RatchetError as error:
        verdict = "invalid" if error.exit_code == 3 else "rejected"
        return Iteration(goal, result.to_json(), verdict, error.message)
    summary = {key: getattr(gate, key) for key in (
        "merged", "tests_run", "passed", "passing_before", "passing_after", "archived_as"
    )}
    return Iteration(goal, result.to_json(), gate.verdict, gate.reason, summary)
