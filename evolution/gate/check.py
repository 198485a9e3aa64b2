"""`evolve check`: the gate's verdict on a commit that already exists, for CI and merge
queues (a pull request's head, a merge group's commit).

A check is a trial of the checked-out commit through the one verdict pipeline
(`evolution.gate.verdict`), with the same pre-test checks, sandbox and integrity
checks as `evolve validate`, against the baseline and policy of its base: the merge
base of the commit and the branch it goes into, never the commit itself (a candidate
never configures its own judge). It changes no ref and writes no note: the queue
merges, and the verdict is the exit code.

A large suite splits across CI jobs: `check(split=(i, n))` runs part i of n and writes
an attested part file (`evolution.gate.parts`); `combine` verifies a set of them and
gives the one verdict. The split is a pure function of the tree and the baseline
(`evolution.run.split`), so that N runners that never talk agree on it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.clock import timestamp
from agent.errors import InvalidRun, UsageError
from evolution.baseline import Baseline, require_baseline
from evolution.gate.checks import Candidate, proposal_paths
from evolution.gate.parts import Part, body_of, read_part, runner_name, verify, write_part
from evolution.gate.verdict import (
    Judged,
    Refused,
    Split,
    Trial,
    advanced,
    judge_candidate,
    judge_combined,
)
from evolution.gitrepo import GitRepo
from evolution.policy import load_policy
from evolution.ratchet import Comparison, pool
from evolution.run.launch import ProgressCallback
from evolution.run.report import RunResult
from evolution.run.shards import merge
from evolution.run.split import owner_of, plan_digest, plan_for
from evolution.sandbox.isolation import Isolation

BASE_CANDIDATES = (
    "refs/heads/main",
    "refs/heads/master",
    "refs/remotes/origin/main",
    "refs/remotes/origin/master",
)


@dataclass
class CheckOptions:
    commit: str = "HEAD"
    base: str | None = None  # the branch the commit goes into (default: main, else master)
    overrides: dict[str, Any] = field(default_factory=dict)
    progress: ProgressCallback | None = None
    unsandboxed: bool = False
    key: bytes | None = None  # signs and verifies part files (RATCHET_PART_KEY)
    shard: tuple[int, int] | None = None  # (index from 0, count): run one part
    out: Path | None = None  # where a part's file goes
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass
class CheckReport:
    verdict: str  # accepted | rejected | refused
    mode: str  # full | part | combined
    commit: str
    tree: str
    base: str  # the commit whose baseline and policy judged it
    base_ref: str
    baseline: dict[str, str]  # {"commit", "blob"}: the seam for whoever advances it
    policy: str  # its digest
    reason: str = ""
    split: dict[str, Any] | None = None  # {"index" (from 1), "count", "plan"}
    part_file: str = ""
    parts: list[dict[str, Any]] = field(default_factory=list)
    attestation: str = ""  # hmac | digest (combined); how the parts were sealed
    tests_run: int = 0
    passed: int = 0
    sandbox: str = ""
    stage: str = ""
    duration_s: float = 0.0
    comparison: Comparison | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    reruns: dict[str, dict[str, Any]] = field(default_factory=dict)
    protected_paths: list[str] = field(default_factory=list)
    guard: list[str] = field(default_factory=list)
    # Accepted (whole, or combined): the base's baseline advanced by this run, as the
    # file holds one; what `evolve baseline advance --from` stores once the queue has
    # merged exactly this commit.
    advanced: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "accepted" else 1

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("comparison", "durations")}
        data.update((self.comparison or Comparison()).to_json())
        data["exit_code"] = self.exit_code
        return data


@dataclass
class _Context:
    trial: Trial
    report: CheckReport


def _base(repo: GitRepo, commit: str, name: str | None) -> tuple[str, str]:
    """The branch the commit goes into (its full ref) and their merge base."""
    names = [name] if name else list(BASE_CANDIDATES)
    for ref in names:
        tip = repo.resolve_commit(ref)
        if tip is None:
            continue
        base = repo.merge_base(commit, tip)
        if base is None:
            raise UsageError(f"{commit[:10]} and {ref} have no common ancestor")
        return ref, base
    raise UsageError(
        f"no base branch: {name or 'main, master, origin/main, origin/master'} does not exist here",
        hint="name it with --base (fetch it first in CI)",
    )


def _context(repo: GitRepo, options: CheckOptions) -> _Context:
    commit = repo.resolve_commit(options.commit)
    if commit is None:
        raise UsageError(f"no commit named {options.commit!r}")
    base_ref, base = _base(repo, commit, options.base)
    policy = load_policy(repo, base).with_overrides(**options.overrides)
    baseline, blob = require_baseline(repo, base)
    automated, paths = proposal_paths(repo, base, commit)
    tree = repo.tree_of(commit)
    split = None
    if options.shard is not None:
        index, count = options.shard
        split = Split(index, count, plan_for(repo.files_in(tree), baseline.tests, count))
    trial = Trial(
        Candidate(repo, base, tree, policy, automated, paths),
        baseline,
        blob,
        timestamp(),
        commit=commit,
        unsandboxed=options.unsandboxed,
        progress=options.progress,
        # A CI runner is thrown away after the check: a coverage map collected for the
        # staged verdict (a multiple of a bare run) would never be used.
        refresh_map=False,
        split=split,
    )
    report = CheckReport(
        verdict="rejected",
        mode="full" if split is None else "part",
        commit=commit,
        tree=tree,
        base=base,
        base_ref=base_ref,
        baseline={"commit": baseline.commit, "blob": blob},
        policy=policy.digest(),
    )
    if split is not None:
        report.split = {
            "index": split.index + 1,
            "count": split.count,
            "plan": plan_digest(split.plan, split.count),
        }
    return _Context(trial, report)


def check(repo: GitRepo, options: CheckOptions) -> CheckReport:
    """Judge `options.commit` (all of the suite, or with `shard` one part of it, whose
    attested result goes to `options.out`). Changes no ref."""
    started = time.monotonic()
    context = _context(repo, options)
    report, trial = context.report, context.trial
    verdict = judge_candidate(trial)
    _fill(report, verdict, trial)
    if trial.split is not None:
        result = verdict.result if isinstance(verdict, Judged) else None
        reruns = verdict.reruns if isinstance(verdict, Judged) else {}
        refused = verdict.refusal.reason if isinstance(verdict, Refused) else ""
        split = {
            "index": trial.split.index,
            "count": trial.split.count,
            "plan": plan_digest(trial.split.plan, trial.split.count),
        }
        body = body_of(
            result,
            reruns,
            **_sealed_fields(report),
            split=split,
            refused=refused,
            runner=runner_name(options.environ),
            sandbox=report.sandbox,
            ran_at=trial.when,
        )
        out = options.out or Path(
            f"ratchet-part-{trial.split.index + 1}-of-{trial.split.count}.json"
        )
        write_part(out, body, options.key)
        report.part_file = str(out)
        report.attestation = "hmac" if options.key else "digest"
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def _sealed_fields(report: CheckReport) -> dict[str, Any]:
    """What every part of one check must agree on (the combine recomputes each)."""
    return {
        "commit": report.commit,
        "tree": report.tree,
        "base": report.base,
        "baseline": report.baseline,
        "policy": report.policy,
    }


def combine(
    repo: GitRepo, options: CheckOptions, files: list[Path], retries: list[Path] | None = None
) -> CheckReport:
    """The one verdict from the part files of a split check of `options.commit`: each
    read and verified (`evolution.gate.parts`), the split recomputed here and held to
    what every part saw, the parts' outcomes pooled with their retries', then judged
    as one run. InvalidRun (exit 3) for anything missing, duplicated, inconsistent or
    forged: a combine that cannot prove the whole suite ran once gives no verdict."""
    started = time.monotonic()
    parts = [read_part(path, options.key) for path in files]
    again = [read_part(path, options.key) for path in retries or []]
    if not parts:
        raise UsageError("give the part files to combine")
    count = parts[0].count
    context = _context(repo, replace(options, shard=(0, count)))
    report, trial = context.report, context.trial
    assert trial.split is not None
    plan = trial.split.plan
    expected = _sealed_fields(report)
    verify(parts, again, expected)
    for part in [*parts, *again]:
        if part.body["split"].get("plan") != plan_digest(plan, count):
            raise InvalidRun(f"{part.path}: split by another plan than this tree and baseline give")
    report.mode, report.split, report.stage = "combined", None, "combined"
    report.parts = [part.summary() for part in sorted(parts, key=lambda p: p.index)]
    report.attestation = "hmac" if options.key else "digest"
    refused = [part for part in [*parts, *again] if part.refused]
    if refused and len(refused) != len(parts) + len(again):
        raise InvalidRun("some parts were refused by the pre-test checks and others ran")
    result, reruns, isolation = _pooled(trial.baseline, parts, again, plan, expected)
    verdict = judge_combined(
        Trial(
            trial.candidate, trial.baseline, trial.baseline_blob, trial.when, commit=report.commit
        ),
        result,
        reruns,
        isolation,
    )
    if refused and not isinstance(verdict, Refused):
        raise InvalidRun("the parts say the pre-test checks refused this commit; they do not")
    _fill(report, verdict, trial)
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def _pooled(
    baseline: Baseline,
    parts: list[Part],
    retries: list[Part],
    plan: dict[str, int],
    expected: dict[str, Any],
) -> tuple[RunResult, dict[str, dict[str, Any]], Isolation]:
    """The parts as one run: each part pooled with its retries (`evolution.ratchet.pool`),
    then merged (every part saw the same files with the same owners; no test twice),
    each test only in the part its file belongs to."""
    count = parts[0].count
    if any(part.refused for part in parts):
        return RunResult(outcomes={}), {}, Isolation(sandboxed=False, reason="nothing ran")
    pooled, evidence = [], {}
    for part in sorted(parts, key=lambda p: p.index):
        runs = [(p.result(), p.reruns()) for p in [part, *retries] if p.index == part.index]
        for result, _ in runs:
            stray = sorted(n for n in result.outcomes if owner_of(plan, count, n) != part.index)
            if stray:
                raise InvalidRun(f"{part.path} holds {stray[0]}, a test of another part")
            wrong = sorted(
                f for f, o in (result.owners or {}).items() if owner_of(plan, count, f) != o
            )
            if wrong:
                raise InvalidRun(f"{part.path} gave {wrong[0]} to another part than the plan")
        one, found = pool(
            baseline, runs, expected["tree"], expected["commit"], str(part.body.get("ran_at", ""))
        )
        pooled.append(one)
        evidence.update(found)
    result = merge(pooled, max(part.result().duration_s for part in parts))
    sandboxes = sorted({str(part.body.get("sandbox", "")) for part in parts})
    result.sandbox = "; ".join(sandboxes)
    unsandboxed = any(s.startswith("none") for s in sandboxes)
    return result, evidence, Isolation(sandboxed=not unsandboxed, reason=result.sandbox)


def _fill(report: CheckReport, verdict: Refused | Judged, trial: Trial) -> None:
    if isinstance(verdict, Refused):
        refusal = verdict.refusal
        report.verdict, report.reason = "refused", refusal.reason
        report.protected_paths, report.guard = refusal.protected_paths, refusal.guard
        return
    result = verdict.result
    report.verdict = "accepted" if verdict.accepted else "rejected"
    report.reason, report.stage = verdict.reason, verdict.stage
    report.comparison, report.sandbox = verdict.comparison, result.sandbox
    report.tests_run, report.passed = len(result.outcomes), result.passed()
    report.outcomes, report.durations = dict(result.outcomes), dict(result.durations)
    report.reruns = verdict.reruns
    if verdict.accepted and report.mode != "part":
        report.advanced = json.loads(advanced(trial, verdict).dumps())
