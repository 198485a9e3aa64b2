"""The gate's checks that run before any test: each can refuse a candidate outright.

Like pytest's core, which lists its plugins by name and never imports a feature, the
gate lists its pre-test checks here as `module:function` names and loads each only when
a candidate gets that far. A feature contributes its own: the factory's check that
deploy/ matches SPEC.md lives in the factory, and the gate does not import it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from evolution.gate.guard import check_file
from evolution.gate.overfit import special_cases
from evolution.gitrepo import GitRepo
from evolution.policy import POLICY_FILES, Policy, matches
from evolution.trail import format as t

PRE_TEST_CHECKS = (
    "evolution.gate.checks:protected_paths",
    "evolution.gate.checks:clean_merge",
    "evolution.gate.checks:static_guard",
    "evolution.gate.checks:special_cased_inputs",
    "evolution.factory.tree_check:deploy_matches_spec",
)


@dataclass
class Candidate:
    """A merge the gate is about to test."""

    repo: GitRepo
    main: str
    tree: str | None  # the merge's tree; None when it does not merge cleanly
    policy: Policy
    automated: bool  # whether any of its commits is an automated proposal
    proposed_paths: set[str] = field(default_factory=set)  # what those commits change
    conflicts: list[str] = field(default_factory=list)


@dataclass
class Refusal:
    reason: str
    protected_paths: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    guard: list[str] = field(default_factory=list)


Check = Callable[[Candidate], Refusal | None]


def _load(name: str) -> Check:
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def first_refusal(
    candidate: Candidate, checks: tuple[str, ...] = PRE_TEST_CHECKS
) -> Refusal | None:
    for name in checks:
        refusal = _load(name)(candidate)
        if refusal is not None:
            return refusal
    return None


def proposal_paths(repo: GitRepo, base: str, tip: str) -> tuple[bool, set[str]]:
    """Whether the commits from `base` to `tip` hold automated proposals, and every path
    they change. Only those commits are held to the proposal rules; commits by people
    may change tests and configuration."""
    automated, paths = False, set()
    for commit in repo.commits_between(base, tip):
        if t.PROPOSAL in repo.trailers(commit):
            automated = True
            paths.update(repo.changed_paths(commit))
    return automated, paths


def protected_paths(candidate: Candidate) -> Refusal | None:
    """What an automated proposal changed outside the evolvable paths, under a protected
    one, or in a file the policy may be read from (whatever `protected` lists: a
    candidate never writes its own judge's rules)."""
    policy = candidate.policy
    guarded = (*policy.protected, *POLICY_FILES)
    touched = sorted(
        path for path in candidate.proposed_paths
        if matches(path, guarded) or not matches(path, policy.evolvable)
    )  # fmt: skip
    if not touched:
        return None
    return Refusal(
        "an automated proposal touched protected or non-evolvable paths: " + ", ".join(touched),
        protected_paths=touched,
    )


def clean_merge(candidate: Candidate) -> Refusal | None:
    if candidate.tree is not None:
        return None
    return Refusal(
        "the branch does not merge cleanly into main: " + ", ".join(candidate.conflicts),
        conflicts=candidate.conflicts,
    )


def static_guard(candidate: Candidate) -> Refusal | None:
    """The guard on what proposals added to evolvable files, as merged."""
    assert candidate.tree is not None
    repo, findings = candidate.repo, []
    tree, python = candidate.tree, set[str]()

    def read(path: str) -> bytes | None:
        """A module of the tree (the guard follows what import runs into it)."""
        if not python:
            python.update(p for p in repo.files_in(tree) if p.endswith(".py"))
        return repo.read_file(tree, path) if path in python else None

    for path in sorted(candidate.proposed_paths):
        new = repo.read_file(candidate.tree, path)
        if new is not None:
            old = repo.read_file(candidate.main, path)
            findings += check_file(path, old, new, candidate.policy.allow, read)
    if not findings:
        return None
    shown = "; ".join(f"{f.path}:{f.line}: {f.construct} ({f.rule})" for f in findings[:5])
    return Refusal(
        "the static guard refused code the proposal added: " + shown,
        guard=[str(finding) for finding in findings],
    )


def _is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".py") and (
        name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
    )


def special_cased_inputs(candidate: Candidate) -> Refusal | None:
    """An automated proposal's condition that singles out an input the tests use (the
    overfitting check mutate applies to its own repairs, applied to every proposer):
    refused, with the literal, the line and the test named. People's commits may add a
    case on purpose, with the test that pins it."""
    assert candidate.tree is not None
    changed = sorted(p for p in candidate.proposed_paths if p.endswith(".py"))
    changed = [p for p in changed if not _is_test_file(p)]
    if not candidate.automated or not changed:
        return None
    repo = candidate.repo
    tests = {
        path: data.decode("utf-8", "replace")
        for path, data in repo.read_files(candidate.tree, _is_test_file).items()
    }
    found = []
    for path in changed:
        new = repo.read_file(candidate.tree, path)
        if new is None:
            continue
        old = repo.read_file(candidate.main, path) or b""
        try:
            cases = special_cases(old.decode("utf-8", "replace"), new.decode("utf-8", "replace"),
                                  tests)  # fmt: skip
        except SyntaxError:
            continue  # the suite will say so
        found += [case.describe(path) for case in cases]
    if not found:
        return None
    return Refusal(
        "an automated proposal special-cases the tests' inputs: " + "; ".join(found[:3]),
        guard=found,
    )
