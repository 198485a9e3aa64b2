"""`agent status`: the one-glance dashboard, computed from the ledger and the flags.

Durations are percentiles over the task's last `window` runs that actually ran (a
blocked or refused task has no duration worth ranking); the success rate counts every
attempt in the window, blocked ones included, because a task that never gets to run is
not succeeding. The latest gate verdicts come from `evolve log`, run as a subprocess:
the runtime layer never imports the evolution layer.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.locks import lock_holder
from agent.tasks import RAN
from agent.tick import Runtime
from agent.watchdog import read_alert, tick_status

WINDOW = 100
REFUSED = ("refused-kill", "halted-cap")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's
    default), so p50 of [1, 2, 3, 4] is 2.5."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def task_summary(runtime: Runtime, name: str, window: int = WINDOW) -> dict[str, Any]:
    return summarize_runs(name, runtime.ledger.task_runs(name, limit=window))


def summarize_runs(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One task's figures over `rows`, its runs newest first."""
    runs = [r for r in rows if r["status"] not in REFUSED]
    durations = [r["duration_s"] for r in runs if r["status"] in RAN]
    last = runs[0] if runs else None
    failures: dict[str, int] = {}
    for run in runs:
        if run["status"] != "ok":
            failures[run["status"]] = failures.get(run["status"], 0) + 1
    return {
        "task": name,
        "last": None
        if last is None
        else {
            "status": last["status"],
            "started": last["started"],
            "duration_s": last["duration_s"],
            "detail": last["detail"],
        },
        "runs": len(runs),
        "success_rate": None if not runs else sum(r["status"] == "ok" for r in runs) / len(runs),
        "p50_s": percentile(durations, 50),
        "p95_s": percentile(durations, 95),
        "p99_s": percentile(durations, 99),
        "failures": dict(sorted(failures.items())),
    }


def evolve_log(root: Path, *args: str, timeout_s: float = 20) -> dict[str, Any]:
    """`evolve log --json` of the repository at `root`: {"entries": [...]} or {"error": ...}.

    Run as a subprocess: the runtime layer reads git's audit trail without importing the
    evolution layer."""
    evolve = Path(sys.executable).with_name("evolve")
    command = str(evolve) if evolve.exists() else shutil.which("evolve")
    if command is None:
        return {"error": "evolve is not installed next to agent"}
    try:
        done = subprocess.run(
            [command, "log", "--json", *args, "--repo", str(root)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"error": f"evolve log failed: {error}"}
    try:
        payload = json.loads(done.stdout)
    except ValueError:
        return {"error": (done.stderr.strip().splitlines() or ["evolve log gave no output"])[-1]}
    if "error" in payload:
        return {"error": payload["error"]}
    return {"entries": payload.get("entries", [])}


def gate_verdicts(root: Path, limit: int = 5) -> dict[str, Any]:
    return evolve_log(root, "--limit", str(limit))


def collect(runtime: Runtime, window: int = WINDOW, with_gate: bool = True) -> dict[str, Any]:
    config, ledger = runtime.config, runtime.ledger
    ticks = ledger.ticks(limit=1)
    last_tick = None
    if ticks:
        last_tick = {**ticks[0], "status": tick_status(ticks[0])}
    names = [t.name for t in config.tasks]
    spent = ledger.spent_today()
    holder = lock_holder(runtime.lock.path)
    flag = config.kill_flag_path
    return {
        "runner": {"running": holder is not None, "pid": holder},
        "last_tick": last_tick,
        "tasks": [task_summary(runtime, name, window) for name in names],
        "spend": {"today_usd": spent, "cap_usd": config.cap_usd},
        "kill": {
            "flag": str(flag),
            "present": flag.exists(),
            "note": flag.read_text(errors="replace").strip() if flag.exists() else "",
        },
        # Asked of the ledger directly: the tick's guard reports only its first refusal,
        # so a kill flag would hide a reached cap.
        "cap_reached": ledger.over_cap(config.cap_usd) is not None,
        "watchdog": {"last_check": ledger.last_watchdog(), "alert": read_alert(runtime)},
        "secrets": {"vault": runtime.vault is not None, "problem": runtime.vault_problem},
        "gate": gate_verdicts(config.root) if with_gate else {"entries": []},
        "window": window,
    }
