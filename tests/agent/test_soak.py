"""The fast soak: one round of every fault against a real `agent run`, and its checks.

`benchmarks/soak.py --quick` runs a real deployment at a 50 ms cadence with real
processes, a real SQLite ledger, the real litellm client against the loopback model
server, kill -9, a locked ledger and an RLIMIT_FSIZE "full disk". The full soak (2,000
ticks and more) is a benchmark; this is its small version. No timing is asserted: the
time from a fault to its alert is a figure, and so is an alert that came without a fault
(on a slow machine a restart can outlast the short silence window).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

REPO = Path(__file__).resolve().parents[2]


def test_every_fault_once_leaves_the_record_whole(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--quick", "--json",
         "--keep", str(tmp_path / "soak")],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    result = json.loads(done.stdout)
    checks = result["checks"]
    assert set(result["faults"]) == {
        "hang", "crash", "silent", "secret", "orphan", "kill9", "kill9-late", "ledger-lock",
        "disk-full", "model-down", "cap", "kill-flag",
    }  # fmt: skip
    assert checks["rows_lost"] == 0
    assert checks["integrity"] == "ok"
    assert checks["orphans"] == 0
    assert checks["stale_locks"] == []
    assert checks["secret_leaks"] == []
    assert checks["kill_flag_breaches"] == 0
    assert checks["tracebacks"] == 0
    assert checks["alerts_raised"] == checks["alerts_expected"] == 7
    assert checks["alerts_cleared"] == len(result["episodes"])
    # The faults did what they say: the cap refused an unsent call after three paid ones,
    # the dead endpoint cost nothing, the disk-full agent exited 3 (never a traceback).
    notes = {e["kind"]: e["note"] for e in result["episodes"]}
    assert notes["cap"] == "3 paid, then capped"
    assert notes["model-down"] == "unavailable,unavailable"
    assert result["agent_exits"].get("3", 0) >= 1
    assert {"refused-kill", "halted-cap", "failed"} <= set(result["outcomes"])
