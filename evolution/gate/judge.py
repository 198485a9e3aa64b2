"""Judge one tree: test it (or reuse the gate's own run of it) and compare the outcomes
with a baseline. The gate, the pre-merge-commit check and the safety net all judge this
way; what they do with the judgement differs."""

from __future__ import annotations

from dataclasses import dataclass

from evolution.baseline import Baseline
from evolution.gate import staged, testmap
from evolution.gate.session import trial
from evolution.gate.verdict_cache import VerdictCache, cache_key, environment_digest
from evolution.gitrepo import GitRepo
from evolution.policy import Policy
from evolution.ratchet import Comparison, compare, suspects
from evolution.run.launch import ProgressCallback
from evolution.run.report import RunResult
from evolution.run.shards import Installments
from evolution.sandbox.isolation import Isolation


@dataclass
class Judgement:
    result: RunResult
    comparison: Comparison
    cached: bool
    cache_ignored: list[str]  # cache entries found forged or edited, and removed
    stage: str = "full"  # which stage decided: "first", "full" or "cached"
    first_tests: int = 0  # how many tests the first stage ran (0: there was none)
    test_map: str = ""  # the map's state, described


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
    refresh_map: bool = True,
    deadline: float | None = None,
) -> Judgement:
    """Test `commit` (or reuse the gate's own run of its tree) and compare it with
    `baseline`; an automated proposal's new flakiness is never excused. With the policy's
    staged verdict, the tests the map ties to the change run first and may reject.
    Without `refresh_map` a due map is not collected on this run: the safety net's run
    is on every tick's critical path, and collecting a map costs a multiple of a bare
    run (the gate's own full runs refresh it). With a `deadline` (`time.monotonic()`)
    the full run is expected to miss, it goes in installments kept across calls
    (`evolution.run.shards.Unfinished` until the last part has run)."""
    key = cache_key(
        tree, baseline_blob, policy.digest(), environment_digest(isolation.cache_tag)
    )
    cache = VerdictCache(repo.state_dir)
    cached = cache.get(key)
    if cached is not None:
        result, reruns = cached
        comparison = compare(baseline, result, policy, reruns, automated=automated, now=when)
        return Judgement(result, comparison, True, cache.ignored, stage="cached")
    state = testmap.state(repo, commit)
    first = staged.plan(repo, commit, baseline, state, automated) if policy.staged else None
    tried = trial(
        repo,
        commit,
        tree,
        policy,
        lambda run: suspects(baseline, run, policy),
        when,
        isolation,
        progress,
        first=first,
        with_map=state.refresh and refresh_map,
        installments=None if deadline is None else Installments(cache, key, deadline),
    )
    described = state.describe()
    first_tests = len(first.tests) if first is not None else 0
    if tried.early is not None:
        return Judgement(tried.result, tried.early.comparison, False, cache.ignored,
                         "first", first_tests, described)  # fmt: skip
    result, reruns = tried.result, tried.reruns
    cache.put(key, result, reruns)
    comparison = compare(baseline, result, policy, reruns, automated=automated, now=when)
    if result.covers is not None and not comparison.regressions:
        testmap.save(repo, testmap.from_run(result.covers, commit, set(result.outcomes), when))
        described += "; refreshed by this run"
    return Judgement(result, comparison, False, cache.ignored, "full", first_tests, described)
