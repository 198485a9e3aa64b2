"""Judge one tree: test it (or reuse the gate's own run of it) and compare the outcomes
with a baseline. The gate, the pre-merge-commit check and the safety net all judge this
way; what they do with the judgement differs."""

from __future__ import annotations

from dataclasses import dataclass

from evolution.baseline import Baseline
from evolution.gitrepo import GitRepo
from evolution.policy import Policy
from evolution.pytest_report import RunResult
from evolution.ratchet import Comparison, compare, suspects
from evolution.sandbox.isolation import Isolation
from evolution.session import trial
from evolution.testrun import ProgressCallback
from evolution.verdict_cache import VerdictCache, cache_key, environment_digest


@dataclass
class Judgement:
    result: RunResult
    comparison: Comparison
    cached: bool
    cache_ignored: list[str]  # cache entries found forged or edited, and removed


def judge(
    repo: GitRepo,
    commit: str,
    tree: str,
    policy: Policy,
    baseline: Baseline,
    baseline_blob: str,
    when: str,
    isolation: Isolation,
    progress: ProgressCallback | None = None,
    *,
    automated: bool = False,
) -> Judgement:
    """Test `commit` (or reuse the gate's own run of its tree) and compare it with
    `baseline`; an automated proposal's new flakiness is never excused."""
    key = cache_key(
        tree, baseline_blob, policy.digest(), environment_digest(isolation.cache_tag)
    )
    cache = VerdictCache(repo.state_dir)
    cached = cache.get(key)
    if cached is not None:
        result, reruns = cached
    else:
        result, reruns = trial(
            repo,
            commit,
            tree,
            policy,
            lambda run: suspects(baseline, run, policy),
            when,
            isolation,
            progress,
        )
        cache.put(key, result, reruns)
    comparison = compare(baseline, result, policy, reruns, automated=automated)
    return Judgement(result, comparison, cached is not None, cache.ignored)
