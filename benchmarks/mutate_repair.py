"""Benchmark: how many seeded single-fault bugs `evolve cycle` repairs offline, and how fast.

Each folder of benchmarks/mutate_bugs/ is a small agent repository (scripts/<module>.py
with one seeded fault, tests/test_<module>.py with at least one test failing because
of it). For each bug the folder is copied, without its BUG.md, into a fresh git
repository, the baseline is recorded (not timed), and then

    evolve cycle --max 1 --proposer mutate --json

is timed by the wall clock, and by the CPU time of every process it ran (user and
system, on all cores: a figure other work on a shared host disturbs less than the
wall clock) (one proposal, so one search bounded by --max-seconds):
localisation, the mutation search, the branch and the gate's full-suite validation,
merged into main when accepted. Recorded per bug:
repaired (an iteration accepted), the accepted edits, the candidates evaluated and the
seconds of search (summed over the cycle's iterations) and the cycle's wall time.

Summary: the repair rate, the median wall time (and CPU time) of the cycles that
repaired, the median search time of those repairs, and candidates evaluated per minute overall
(all candidates evaluated / all search seconds * 60). BUG.md is read only to print
the expected fix next to a bug that was not repaired.

Usage: .venv/bin/python benchmarks/mutate_repair.py [--only NAME ...] [--max-seconds S] [--json]
No timing is asserted anywhere: this prints figures for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
BUGS = HERE / "benchmarks" / "mutate_bugs"
ENV = {
    **os.environ,
    "NO_COLOR": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
CYCLE_TIMEOUT_S = 900.0  # a guard against a hung run, not a figure


def evolve_command() -> list[str]:
    """The `evolve` console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("evolve")
    return [str(script)] if script.exists() else [sys.executable, "-m", "evolution.cli"]


EVOLVE = evolve_command()


@dataclass
class Outcome:
    name: str
    repaired: bool = False
    edits: list[str] = field(default_factory=list)
    evaluated: int = 0
    search_s: float = 0.0
    cycle_s: float = 0.0
    cycle_cpu_s: float = 0.0  # user + system time of the cycle and everything it ran
    iterations: list[str] = field(default_factory=list)  # the verdict of each iteration
    stopped: list[str] = field(default_factory=list)  # why each search stopped
    rejected: list[str] = field(default_factory=list)  # plausible repairs the search refused
    error: str = ""


def sh(
    argv: list[str], cwd: Path, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=ENV, capture_output=True, text=True, check=False, timeout=timeout
    )


def bug_names() -> list[str]:
    return sorted(p.name for p in BUGS.iterdir() if (p / "scripts").is_dir())


def prepare(name: str, repo: Path) -> str:
    """Copy the bug into a fresh repository and record its baseline; '' or an error."""
    shutil.copytree(BUGS / name, repo, ignore=shutil.ignore_patterns("BUG.md", "__pycache__"))
    return commit_and_record(repo, f"seeded bug: {name}")


def commit_and_record(repo: Path, message: str, *, failing: bool = True) -> str:
    """Make the folder a repository with one commit and record its baseline, which must
    have a failing test (unless `failing` is False: a pristine package); '' or an error."""
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "--no-verify", "-m", message],
    ):
        done = sh(argv, repo)
        if done.returncode != 0:
            return f"{' '.join(argv)}: {done.stderr.strip()}"
    done = sh([*EVOLVE, "baseline", "record", "--json"], repo)
    try:
        counts = json.loads(done.stdout)["counts"]
    except (ValueError, KeyError):
        return f"baseline record failed ({done.returncode}): {done.stderr.strip()[-300:]}"
    if failing and not counts.get("failed"):
        return f"the baseline has no failing test: {counts}"
    return ""


def children_cpu_s() -> float:
    """User and system time of every finished child (and what each waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cycle(name: str, repo: Path, max_seconds: float | None) -> Outcome:
    outcome = Outcome(name)
    argv = [*EVOLVE, "cycle", "--max", "1", "--proposer", "mutate", "--json"]
    if max_seconds is not None:
        argv += ["--max-seconds", f"{max_seconds:g}"]
    started, cpu = time.perf_counter(), children_cpu_s()
    try:
        done = sh(argv, repo, timeout=CYCLE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        outcome.cycle_s = time.perf_counter() - started
        outcome.error = f"evolve cycle still running after {CYCLE_TIMEOUT_S:g} s"
        return outcome
    outcome.cycle_s = time.perf_counter() - started
    outcome.cycle_cpu_s = children_cpu_s() - cpu
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        outcome.error = f"evolve cycle exited {done.returncode}: {done.stderr.strip()[-300:]}"
        return outcome
    for iteration in report.get("iterations", []):
        search = iteration.get("proposal", {}).get("search") or {}
        outcome.iterations.append(iteration.get("verdict", "?"))
        outcome.evaluated += int(search.get("evaluated", 0))
        outcome.search_s += float(search.get("seconds", 0.0))
        if search.get("stopped"):
            outcome.stopped.append(search["stopped"])
        outcome.rejected += [str(why) for why in search.get("rejected", [])]
        if iteration.get("verdict") == "accepted" and not outcome.repaired:
            outcome.repaired = True
            outcome.edits = list(search.get("edits", []))
    if not outcome.iterations:
        outcome.error = f"no iteration: {report.get('stopped')}: {report.get('reason')}"
    return outcome


def measure(name: str, scratch: Path, max_seconds: float | None) -> Outcome:
    repo = scratch / name
    error = prepare(name, repo)
    if error:
        return Outcome(name, error=error)
    return run_cycle(name, repo, max_seconds)


def expected_fix(name: str) -> str:
    """The 'Expected fix' line of BUG.md, for the report only."""
    path = BUGS / name / "BUG.md"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = [line for line in lines if line.lower().startswith("expected fix")]
    return (found or lines[-1:] or [""])[0]


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    repaired = [o for o in outcomes if o.repaired]
    evaluated = sum(o.evaluated for o in outcomes)
    searched = sum(o.search_s for o in outcomes)
    return {
        "bugs": len(outcomes),
        "repaired": len(repaired),
        "repair_rate": round(len(repaired) / len(outcomes), 3) if outcomes else 0.0,
        "median_time_to_repair_s": (
            round(statistics.median(o.cycle_s for o in repaired), 2) if repaired else None
        ),
        "median_cpu_to_repair_s": (
            round(statistics.median(o.cycle_cpu_s for o in repaired), 2) if repaired else None
        ),
        "median_search_s": (
            round(statistics.median(o.search_s for o in repaired), 2) if repaired else None
        ),
        "candidates_evaluated": evaluated,
        "search_s_total": round(searched, 2),
        "candidates_per_minute": round(evaluated / searched * 60, 1) if searched > 0 else 0.0,
        "per_bug": [
            {**asdict(o), "cycle_s": round(o.cycle_s, 2), "search_s": round(o.search_s, 2),
             "cycle_cpu_s": round(o.cycle_cpu_s, 2)}
            for o in outcomes
        ],
    }


def print_table(outcomes: list[Outcome]) -> None:
    width = max([len(o.name) for o in outcomes] + [3])
    print(f"{'bug':<{width}}  repaired  cycle s  cpu s  search s  evaluated  verdicts / edits")
    for o in outcomes:
        verdicts = ",".join(o.iterations) or "-"
        stopped = "search stopped: " + ",".join(o.stopped)
        detail = "; ".join(o.edits) if o.repaired else (o.error or stopped)
        print(
            f"{o.name:<{width}}  {'yes' if o.repaired else 'NO':<8}  {o.cycle_s:7.1f}  "
            f"{o.cycle_cpu_s:5.1f}  {o.search_s:8.1f}  {o.evaluated:9d}  {verdicts} | {detail}"
        )
        if not o.repaired:
            print(f"{'':<{width}}  {expected_fix(o.name)}")


def print_summary(summary: dict[str, Any]) -> None:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    print(
        f"\nrepaired {summary['repaired']} of {summary['bugs']} | "
        f"median time to repair (cycle wall clock) {seconds(summary['median_time_to_repair_s'])}"
        f" (CPU {seconds(summary['median_cpu_to_repair_s'])})"
        f" | median search time {seconds(summary['median_search_s'])} | "
        f"{summary['candidates_per_minute']:.1f} candidates evaluated per minute "
        f"({summary['candidates_evaluated']} in {summary['search_s_total']:.1f} s of search)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="only this bug (repeat)")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="passed to `evolve cycle --max-seconds`"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    names = bug_names()
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown bug(s): {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in args.only]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="mutate-bench-") as scratch:
        for name in names:
            print(f"{name}…", end=" ", flush=True, file=sys.stderr)
            outcome = measure(name, Path(scratch), args.max_seconds)
            print("repaired" if outcome.repaired else "not repaired", file=sys.stderr)
            outcomes.append(outcome)
    summary = summarise(outcomes)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(outcomes)
        print_summary(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
