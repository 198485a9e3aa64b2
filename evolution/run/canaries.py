"""The gate's two canary tests, planted in a run's tree before each run.

One must pass and one must fail; a run in which either ends otherwise is not a verdict
("the code under test interfered with the test machinery"). They catch interference
that flips outcomes wholesale. So that a cheat cannot simply leave them alone, they are
made to look like the suite's own tests: a module beside a real test file, named after
it, with test names taken from the suite's own, and the tree's copy of the baseline
lists both as passing, so a cheat that "passes what the baseline protects" flips the
one that must fail. pytest does not collect the module by itself (its name does not
match `test_*.py`); the probe inserts its two tests at random places among the items.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agent.errors import RatchetError
from evolution.baseline import BASELINE_PATH, Baseline
from evolution.run.folder import RunFolder

BODY = '''\
def {holds}():
    values = sorted([3, 1, 2])
    assert values == [1, 2, 3]


def {breaks}():
    values = sorted([3, 1, 2])
    assert values == [1, 2, 4]
'''


@dataclass(frozen=True)
class Canaries:
    path: Path
    holds: str  # the test that must pass
    breaks: str  # the test that must fail

    @property
    def env_value(self) -> str:
        return f"{self.path}::{self.holds}::{self.breaks}"


def _baseline(run: RunFolder) -> Baseline | None:
    """The tree's own baseline as committed (read once: later runs in the same folder
    plant into that, not into the last run's planting)."""
    path = run.tree / BASELINE_PATH
    if run.planted_baseline is None and path.is_file():
        run.planted_baseline = path.read_bytes()
    if run.planted_baseline is None:
        return None
    try:
        return Baseline.loads(run.planted_baseline.decode("utf-8"), BASELINE_PATH)
    except (RatchetError, UnicodeDecodeError):
        return None  # not ours to fix here: the gate reads the baseline from main


def plant(run: RunFolder, rng: random.Random | None = None) -> Canaries:
    """Write fresh canaries into `run.tree` (removing the last run's)."""
    rng = rng or random.SystemRandom()
    for stale in run.planted:
        stale.unlink(missing_ok=True)
    run.planted.clear()
    baseline = _baseline(run)
    known = baseline.tests if baseline is not None else {}
    test_files = sorted({n.split("::", 1)[0] for n in known})
    test_files = [f for f in test_files if (run.tree / f).is_file()] or ["tests/test_suite.py"]
    beside = PurePosixPath(rng.choice(test_files))
    stem = beside.stem.removeprefix("test_") or "suite"
    folder = run.tree / beside.parent
    path = folder / f"{stem}_checks.py"
    while path.exists():
        path = folder / f"{stem}_checks_{rng.randrange(10**4)}.py"
    names = sorted({n.rsplit("::", 1)[-1].split("[", 1)[0] for n in known}) or ["test_it"]
    holds = f"{rng.choice(names)}_{rng.choice(['cases', 'edges', 'more', 'again'])}"
    breaks = f"{rng.choice(names)}_{rng.choice(['extra', 'bounds', 'checks', 'other'])}"
    if breaks == holds:
        breaks += "_2"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(BODY.format(holds=holds, breaks=breaks), encoding="utf-8")
    run.planted.append(path)
    if baseline is not None:
        nodeid = str(path.relative_to(run.tree))
        tests = {**baseline.tests, f"{nodeid}::{holds}": "passed",
                 f"{nodeid}::{breaks}": "passed"}  # fmt: skip
        planted = Baseline(baseline.commit, baseline.tree, baseline.recorded_at, tests,
                           baseline.flaky)  # fmt: skip
        (run.tree / BASELINE_PATH).write_text(planted.dumps(), encoding="utf-8")
    return Canaries(path, holds, breaks)
