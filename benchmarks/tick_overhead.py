"""Benchmark: what a tick costs per task beyond the task's own time (goal: under 30 ms).

A tick of N tasks that do nothing (`true`) is timed against the same N commands run
bare with `subprocess.run`, so the difference is the runtime's own work per task: the
guards (kill flag, spend query), a new session and PDEATHSIG, the bounded capture
threads, the group clean-up, the evidence check, a ledger row and two trace events.

- in-process: `run_tick` on a runtime opened once, as `agent run` does every cadence;
- cli: a whole `agent tick` process, as cron or a systemd timer starts it (adds the
  interpreter, the imports and opening the ledger: a per-tick cost, not a per-task one).

Usage: python benchmarks/tick_overhead.py [--tasks 20] [--repeat 5]
No timing is asserted anywhere: this prints figures for the README.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from agent.config import load_runtime  # noqa: E402
from agent.tick import Runtime, run_tick  # noqa: E402


def configure(root: Path, tasks: int) -> None:
    lines = ["[schedule]", "cadence_s = 300", ""]
    for index in range(tasks):
        lines += [
            "[[tasks]]",
            f'name = "t{index}"',
            'command = "true"',
            "timeout_s = 30",
            'evidence = "exit"',
            "",
        ]
    (root / "deploy").mkdir(parents=True, exist_ok=True)
    (root / "deploy" / "agent.toml").write_text("\n".join(lines))


def bare(tasks: int) -> float:
    start = time.perf_counter()
    for _ in range(tasks):
        subprocess.run(["true"], check=True)
    return time.perf_counter() - start


def in_process(root: Path) -> float:
    runtime = Runtime.open(load_runtime(root))
    try:
        start = time.perf_counter()
        result = run_tick(runtime, "bench", lock=runtime.lock)
        elapsed = time.perf_counter() - start
    finally:
        runtime.close()
    assert result.status == "ok", result.to_json()
    return elapsed


def cli(root: Path) -> float:
    agent = str(Path(sys.executable).with_name("agent"))
    start = time.perf_counter()
    subprocess.run([agent, "tick", "--root", str(root)], check=True, capture_output=True,
                   env={**os.environ, "NO_COLOR": "1"})
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tick-bench-") as folder:
        root = Path(folder)
        configure(root, args.tasks)
        in_process(root)  # warm up: create the ledger, the page cache
        bares = [bare(args.tasks) for _ in range(args.repeat)]
        ticks = [in_process(root) for _ in range(args.repeat)]
        clis = [cli(root) for _ in range(args.repeat)]
    b, t, c = (statistics.median(x) for x in (bares, ticks, clis))
    n = args.tasks
    print(f"{n} tasks of `true`, median of {args.repeat} runs")
    print(f"bare subprocess.run : {b * 1000:8.1f} ms  ({b / n * 1000:.1f} ms per task)")
    print(f"run_tick in-process : {t * 1000:8.1f} ms  ({t / n * 1000:.1f} ms per task)")
    print(f"agent tick (cli)    : {c * 1000:8.1f} ms")
    print(f"overhead per task   : {(t - b) / n * 1000:8.1f} ms  (goal: under 30 ms)")
    print(f"fixed cost per tick process (cli - in-process): {(c - t) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
