"""What every proposer (and the cycle) works from: main's commit, its policy, the runtime
configuration as committed, and the baseline's failing tests per target file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from agent.config import SPEC_PATH, RuntimeConfig, load_runtime
from agent.errors import UsageError
from agent.redact import Redactor
from evolution.baseline import read_baseline
from evolution.gate import testmap
from evolution.gitrepo import GitRepo
from evolution.mutate.localise import ochiai
from evolution.policy import CONFIG_PATH, Policy, load_policy, matches

CONTEXT_CLIP = 6000


@dataclass
class Context:
    repo: GitRepo
    main_ref: str
    main: str
    policy: Policy
    config: RuntimeConfig
    redact: Redactor

    def read(self, path: str) -> str | None:
        """A file as main has it, or None."""
        raw = self.repo.read_file(self.main, path)
        return raw.decode("utf-8", errors="surrogateescape") if raw is not None else None


def open_context(repo: GitRepo) -> Context:
    main_ref, main = repo.resolve_main(None)
    policy = load_policy(repo, main)
    raw = repo.read_file(main, CONFIG_PATH)
    spec = repo.read_file(main, SPEC_PATH)
    config = load_runtime(
        repo.toplevel,
        raw.decode() if raw is not None else None,
        origin=f"{main_ref.removeprefix('refs/heads/')}:{CONFIG_PATH}",
        spec_text=spec.decode(errors="replace") if spec is not None else "",
    )
    redact = Redactor.from_environment(config.secret_env_names())
    return Context(repo, main_ref, main, policy, config, redact)


def clip(text: str) -> str:
    return text if len(text) <= CONTEXT_CLIP else text[:CONTEXT_CLIP] + "\n[… clipped]\n"


def normalise(path: str) -> str:
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise UsageError(f"{path}: give a path inside the repository, relative to its root")
    return str(pure)


def check_paths(paths: list[str], policy: Policy) -> None:
    for path in paths:
        if matches(path, policy.protected):
            raise UsageError(f"{path} is protected: proposals may never change it")
        if not matches(path, policy.evolvable):
            evolvable = ", ".join(policy.evolvable)
            raise UsageError(f"{path} is not under the evolvable paths ({evolvable})")


def module_pattern(target: str) -> re.Pattern[str]:
    """How a test file names the target's module: its stem, or for a package's
    `__init__.py`, the package's name."""
    path = PurePosixPath(target)
    if path.stem != "__init__":
        return re.compile(rf"\b{re.escape(path.stem)}\b")
    # `inflection.camelize(…)` names the package; `from scripts.calc import …` only
    # passes through it to a submodule.
    return re.compile(rf"\b{re.escape(path.parent.name)}\b(?!\.[\w.]*(\s+import\b|\s+as\b|\s*$))",
                      re.MULTILINE)


def failing_by_target(
    ctx: Context, targets: list[str]
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """For each target, the baseline's broken tests (failed or error) that concern it
    ({nodeid: outcome}), most suspicious target first; and the sources of the test files
    read on the way.

    A test concerns a target when its file names the target's module, or when the
    staged verdict's map says it ran the target's lines: a real package's tests import
    the package (`import more_itertools as mi`), not the module a function lives in.
    Targets are ordered by Ochiai over the map's files (failing tests that ran the file
    against all tests that ran it), so that a cycle with one proposal to make tries the
    file the failing tests point at, not the first in alphabetical order."""
    found = read_baseline(ctx.repo, ctx.main)
    by_target: dict[str, dict[str, str]] = {}
    sources: dict[str, str] = {}
    if found is None:
        return by_target, sources
    failing = found[0].broken()
    patterns = {t: module_pattern(t) for t in targets}

    def source_of(nodeid: str) -> str:
        test_file = nodeid.split("::", 1)[0]
        if test_file not in sources:
            sources[test_file] = ctx.read(test_file) or ""
        return sources[test_file]

    for nodeid, outcome in failing.items():
        for target, pattern in patterns.items():
            if pattern.search(source_of(nodeid)):
                by_target.setdefault(target, {})[nodeid] = outcome
    test_map = testmap.load(ctx.repo)
    covers = test_map.covers if test_map is not None else {}
    for target in targets:
        for nodeid in sorted(covers.get(target, ()) & failing.keys()):
            by_target.setdefault(target, {})[nodeid] = failing[nodeid]
            source_of(nodeid)  # the prompt quotes the test files of the failing tests

    def suspicion(target: str) -> float:
        ran = covers.get(target, frozenset())
        failed_here = len(ran & failing.keys())
        return ochiai(failed_here, len(ran) - failed_here, len(failing))

    order = sorted(by_target, key=lambda t: (-suspicion(t), t))
    return {t: dict(sorted(by_target[t].items())) for t in order}, sources


def failing_for(
    ctx: Context, targets: list[str]
) -> tuple[list[dict[str, str]], list[tuple[str, str]]]:
    """The failing tests that concern any of `targets`, and their test files' sources."""
    by_target, sources = failing_by_target(ctx, targets)
    merged = {nodeid: o for tests in by_target.values() for nodeid, o in tests.items()}
    failing = [{"nodeid": nodeid, "outcome": merged[nodeid]} for nodeid in sorted(merged)]
    used = sorted({t["nodeid"].split("::", 1)[0] for t in failing})
    return failing, [(path, clip(sources[path])) for path in used]
