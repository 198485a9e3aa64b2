"""This repository lives by its own ratchet (invariant 19): its committed baseline is current.

Its changes have reached main without its own gate, so the baseline on main went stale,
and the safety net took a test removed on purpose for a regression (issue 23). CI fails
here instead: every test the suite collects is in the baseline, and nothing is in the
baseline that the suite no longer has. Re-record with `evolve baseline record` (with
`--reset` and the reason in the commit when a test was removed on purpose).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from host_layers import inside_a_sandbox

ROOT = Path(__file__).resolve().parent.parent
HOW = (
    "re-record it: `evolve baseline record` (add --reset, and say why in the commit, "
    "when a test was removed on purpose)"
)


def collected() -> set[str]:
    """The node ids the README's test command runs, as pytest collects them here."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # One node id a line (a parametrised id may hold spaces), then the summary.
    return {line for line in done.stdout.splitlines() if "::" in line}


@pytest.mark.skipif(
    inside_a_sandbox(),
    reason="inside the gate the tree's baseline is the one being replaced: its currency "
    "is CI's question, asked at the top level",
)
def test_the_committed_baseline_names_exactly_the_tests_the_suite_has() -> None:
    baseline = json.loads((ROOT / "baseline" / "baseline.json").read_text(encoding="utf-8"))
    recorded = set(baseline["tests"])
    tests = collected()
    gone = sorted(recorded - tests)
    new = sorted(tests - recorded)
    assert not gone and not new, (
        f"baseline/baseline.json is stale: {len(gone)} recorded test(s) no longer exist "
        f"{gone[:5]}, {len(new)} test(s) are not recorded {new[:5]}; {HOW}"
    )
