"""One part of a suite split across machines (`evolve check --shard I/N`): which test
file goes to which part, and the run of one part.

The split is the one the gate's own split run uses (`evolution.run.shards`): a plan of
test files to parts, balanced longest first (`balance`), and every file the plan does
not name goes by a hash of its path, as the probe decides it. What differs is what the
plan is computed from. A CI runner starts from a fresh clone: it has no timings of
earlier runs, and N runners must agree on the split without talking to each other. So
the plan here is a pure function of what every runner has: the tree's test files and
the baseline it is judged against, each file weighed by the tests the baseline lists
in it (one for a file the baseline does not know yet). Its digest goes into every part
file, so that parts made under different plans can never be combined.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterable

from evolution.policy import Policy
from evolution.run.canaries import plant
from evolution.run.folder import RunFolder
from evolution.run.launch import ProgressCallback, Shard, run_tests
from evolution.run.report import RunResult
from evolution.run.shards import balance
from evolution.sandbox.isolation import Isolation


def is_test_module(path: str) -> bool:
    """pytest's default test-module names: test_*.py and *_test.py."""
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def plan_for(files: Iterable[str], known: Iterable[str], count: int) -> dict[str, int]:
    """The test files among `files`, each to one of `count` parts, balanced by how many
    of the `known` node ids (the baseline's) each holds."""
    per_file = Counter(nodeid.split("::", 1)[0] for nodeid in known)
    weights = {path: float(per_file.get(path, 1)) for path in files if is_test_module(path)}
    return balance(weights, count)


def plan_digest(plan: dict[str, int], count: int) -> str:
    text = json.dumps({"count": count, "plan": plan}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def owner_of(plan: dict[str, int], count: int, nodeid: str) -> int:
    """The part that runs `nodeid`: its file's in the plan, else by a hash of the path
    (what the probe does with a file the plan does not name)."""
    path = nodeid.split("::", 1)[0]
    return plan.get(path, zlib.crc32(path.encode()) % count)


def run_part(
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    index: int,
    count: int,
    plan: dict[str, int],
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Part `index` of `count` of the suite on `run.tree`, in one process held to a split
    run's checks: it reports every test file it saw with the part that owns it, and may
    run tests only from its own (InvalidRun otherwise)."""
    shard = Shard(index, count, plan, plant(run))
    return run_tests(policy, run, isolation, progress=progress, shard=shard)
