"""The `mutate` proposer: repair a target file against its failing baseline tests.

It needs no model and no network: the tests are the specification. The failing tests
are the baseline's tests that do not pass and concern the target; their neighbours
(every test of the same files that passes on main) must keep passing, and before a
repair is proposed, so must the passing tests of every other test file that names the
target, and the repaired functions must answer as before where the original behaved
(`evolution.mutate.differential`). Everything runs in a throw-away run folder of main
(sandboxed), so the checkout is never touched. The search itself (localisation,
operators, staged evaluation) is `evolution.mutate`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from evolution.baseline import read_baseline
from evolution.mutate.differential import Differential
from evolution.mutate.evaluator import CandidateEvaluator
from evolution.mutate.localise import localise
from evolution.mutate.search import (
    SearchLimits,
    SearchResult,
    candidate_policy,
    evaluator_policy,
    search,
)
from evolution.propose.base import Change, NoChange, Request, Spend
from evolution.propose.context import Context, failing_for, module_pattern
from evolution.run.folder import RunFolder
from evolution.run.forkserver import CandidateRuns
from evolution.sandbox.isolation import choose


@dataclass
class Repair:
    target: str
    result: SearchResult
    failing: list[str]
    evaluation: str = ""  # how candidates ran: a fork server, or one process each

    @property
    def fingerprint(self) -> str:
        """A stand-in for a prompt hash: what the search was asked and what it chose."""
        described = "\n".join([self.target, *self.failing, *self.descriptions])
        return hashlib.sha256(described.encode()).hexdigest()

    @property
    def descriptions(self) -> list[str]:
        return [edit.description for edit in self.result.edits]

    def summary(self) -> dict[str, object]:
        return {
            "target": self.target,
            "failing_tests": self.failing,
            "edits": self.descriptions,
            "evaluated": self.result.evaluated,
            "hung": self.result.hung,
            "seconds": round(self.result.seconds, 2),
            "candidates_per_minute": round(self.result.per_minute, 1),
            "stopped": self.result.stopped,
            "suspicious_lines": self.result.lines,
            "evaluation": self.evaluation,
            "skipped": dict(self.result.skipped),
            "rejected": self.result.rejected,
            "flags": self.result.flags,
        }


def failing_and_neighbours(
    baseline_tests: dict[str, str], failing: list[str]
) -> tuple[list[str], list[str]]:
    files = {nodeid.split("::", 1)[0] for nodeid in failing}
    neighbours = sorted(
        n for n, outcome in baseline_tests.items()
        if outcome == "passed" and n.split("::", 1)[0] in files
    )
    return sorted(failing), neighbours


def related_tests(
    ctx: Context, baseline_tests: dict[str, str], target: str
) -> tuple[list[str], list[str]]:
    """The passing tests of every test file that names the target's module (the rule
    that finds its failing tests), and those files' sources: a repair must keep them
    passing, and must not special-case what they test."""
    pattern = module_pattern(target)
    files = sorted({nodeid.split("::", 1)[0] for nodeid in baseline_tests})
    sources = {path: ctx.read(path) or "" for path in files}
    naming = {path: text for path, text in sources.items() if pattern.search(text)}
    related = sorted(n for n, outcome in baseline_tests.items()
                     if outcome == "passed" and n.split("::", 1)[0] in naming)  # fmt: skip
    return related, list(naming.values())


def repair(
    ctx: Context,
    target: str,
    failing: list[str],
    limits: SearchLimits,
    *,
    tried: set[str] | None = None,
    on_candidate: Callable[[int], None] | None = None,
    unsandboxed: bool = False,
) -> Repair:
    policy = evaluator_policy(ctx.policy)
    # Mutants are machine-made code: they run sandboxed, like any proposal.
    isolation = choose(policy, automated=True, unsandboxed=unsandboxed)
    with RunFolder(ctx.repo, ctx.main) as run, CandidateRuns(policy, run, isolation) as runs:
        found = read_baseline(ctx.repo, ctx.main)  # while the fork server starts
        tests = found[0].tests if found else {}
        failing, neighbours = failing_and_neighbours(tests, failing)
        localisation = localise(runs, target, [*failing, *neighbours], failing)
        source = (run.tree / target).read_text(encoding="utf-8")
        related, test_sources = related_tests(ctx, tests, target)
        limited = candidate_policy(policy, localisation)
        evaluator = CandidateEvaluator(runs, target, failing, neighbours, related,
                                       limits=limited)
        differential = Differential(runs, target, failing, sorted({*neighbours, *related}),
                                    call_timeout_s=limited.test_timeout_s)
        result = search(evaluator, source, localisation, limits, tried=tried,
                        on_candidate=on_candidate, tests=test_sources,
                        differential=differential)
    return Repair(target, result, failing, runs.how)


def left_of(limits: SearchLimits, searched: list[Repair]) -> SearchLimits | None:
    """What is left of one proposal's budget after the searches made, or None."""
    candidates = limits.max_candidates - sum(r.result.evaluated for r in searched)
    seconds = limits.max_seconds - sum(r.result.seconds for r in searched)
    return SearchLimits(candidates, seconds) if candidates > 0 and seconds > 0 else None


def summary_of(searched: list[Repair]) -> dict[str, object]:
    """The last search's summary, with the candidates and seconds of all of them, and
    each target's own figures when there was more than one."""
    summary = searched[-1].summary()
    evaluated = sum(r.result.evaluated for r in searched)
    seconds = sum(r.result.seconds for r in searched)
    summary.update(evaluated=evaluated, hung=sum(r.result.hung for r in searched),
                   seconds=round(seconds, 2),
                   candidates_per_minute=round(evaluated / seconds * 60, 1) if seconds else 0.0)
    if len(searched) > 1:
        summary["targets"] = [{"target": r.target, "evaluated": r.result.evaluated,
                               "seconds": round(r.result.seconds, 2),
                               "stopped": r.result.stopped} for r in searched]  # fmt: skip
    return summary


class MutateProposer:
    name = "mutate"

    def propose(self, ctx: Context, request: Request, spend: Spend) -> Change:
        """The first target with failing tests, repaired; its edits described. When a
        search runs out of edits to try (not out of budget), the next file the failing
        tests point at (`request.then`) is searched with what is left: the most
        suspicious file is not always the one at fault (a helper module every test
        runs ranks above the module a fault breaks)."""
        limits = request.limits or SearchLimits()
        searched: list[Repair] = []
        for target in [*request.targets, *request.then]:
            left = left_of(limits, searched)
            if left is None or (searched and searched[-1].result.stopped != "exhausted"):
                break
            failing, _ = failing_for(ctx, [target])
            if not failing:
                continue
            found = repair(
                ctx, target, [f["nodeid"] for f in failing], left,
                tried=request.tried, unsandboxed=request.unsandboxed,
            )  # fmt: skip
            searched.append(found)
            if found.result.repaired:
                return _change(found, summary_of(searched))
        if not searched:
            raise NoChange(
                "mutate needs a test that fails in the baseline and concerns "
                + ", ".join(request.targets)
            )
        summary = summary_of(searched)
        raise NoChange(
            f"mutate found no repair of {', '.join(r.target for r in searched)} in "
            f"{summary['evaluated']} candidates ({summary['seconds']:.1f} s, stopped: "
            f"{searched[-1].result.stopped})",
            search=summary,
        )


def _change(found: Repair, summary: dict[str, object]) -> Change:
    lines = "\n".join(f"- {text}" for text in found.descriptions)
    details = (
        f"Repaired offline by mutation ({found.result.evaluated} candidates in "
        f"{found.result.seconds:.1f} s), making pass: {', '.join(found.failing)}"
        f"\n{lines}"
    )
    if found.result.flags:
        details += "\n\nOverfitting check, for the reviewer: " + "; ".join(found.result.flags)
    return Change({found.target: found.result.source}, found.fingerprint, details, summary)
