"""Benchmark: the gate's wall time against a bare `python -m pytest` on the same suite.

Suites:
- two generated ones of 2,000 tests in 40 modules: near-empty tests (the worst case,
  where pytest's own per-test cost dominates) and tests doing 5 ms of work each (closer
  to a real suite);
- this repository's own (`--own`), on a temporary clone so the checkout is untouched.

For each it records a baseline, makes a branch with a neutral change, and times:
- bare:   python -m pytest -q -p no:cacheprovider        (in the checkout)
- gate:   evolve validate BRANCH --no-merge               (verdict cache cleared)
- open:   the same with RATCHET_SANDBOX=none               (no OS sandbox: a person's
          branch may run so), to give the sandbox's own cost per run
- cached: evolve validate BRANCH --no-merge               (verdict cache kept)

Usage: python benchmarks/gate_vs_pytest.py [--tests 2000] [--work-ms 0 5] [--repeat 3] [--own]
No timing is asserted anywhere: this prints figures for the README.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
ENV = {
    **os.environ,
    "NO_COLOR": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
EVOLVE = [sys.executable, "-m", "evolution.cli"]


def sh(
    argv: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True, check=False
    )
    if check and done.returncode not in (0, 1):
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system, the command and all it started):
    on a shared machine the second is the steadier measure of work added."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    sh(argv, cwd, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def generate_suite(root: Path, tests: int, work_ms: float = 0.0, per_module: int = 50) -> None:
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "__init__.py").write_text("")
    (root / "scripts" / "work.py").write_text(
        "import time\n\n\n"
        "def crunch(n):\n"
        f"    deadline = time.perf_counter() + {work_ms / 1000!r}\n"
        "    while time.perf_counter() < deadline:\n"
        "        pass\n"
        "    return sum(i * i for i in range(n))\n"
    )
    (root / "tests").mkdir()
    modules = max(1, tests // per_module)
    for m in range(modules):
        body = ["import pytest", "from scripts.work import crunch", ""]
        for t in range(per_module):
            body += [
                f"def test_{m}_{t}():",
                f"    assert crunch({200 + t}) == sum(i * i for i in range({200 + t}))",
                "",
            ]
        (root / "tests" / f"test_gen_{m:03d}.py").write_text("\n".join(body))


def prepare(repo: Path, record: bool) -> str:
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--no-verify", "-m", "suite"], repo)
    if record:
        done = sh([*EVOLVE, "baseline", "record", "--reruns", "0"], repo)
        if done.returncode != 0:
            raise SystemExit(f"baseline record failed:\n{done.stderr}")
    return make_branch(repo)


def make_branch(repo: Path) -> str:
    sh(["git", "switch", "-q", "-c", "bench-neutral"], repo)
    (repo / "scripts" / "bench_note.txt").write_text("a neutral change\n")
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--no-verify", "-m", "neutral"], repo)
    sh(["git", "switch", "-q", "main"], repo)
    return "bench-neutral"


def measure(repo: Path, branch: str, repeat: int) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) of each way of running the suite, interleaved round by round."""
    cache = Path(sh(["git", "rev-parse", "--git-common-dir"], repo).stdout.strip())
    cache = (repo / cache if not cache.is_absolute() else cache) / "evolve" / "verdicts"
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "gate": [], "open": [], "cached": []}
    validate = [*EVOLVE, "validate", branch, "--no-merge", "--json", "--reruns", "0"]
    for _ in range(repeat):
        runs["bare"].append(
            timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], repo)
        )
        shutil.rmtree(cache, ignore_errors=True)
        runs["gate"].append(timed(validate, repo))
        runs["cached"].append(timed(validate, repo))
        shutil.rmtree(cache, ignore_errors=True)
        runs["open"].append(timed(validate, repo, env={"RATCHET_SANDBOX": "none"}))
    return {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in runs.items()
    }


def report(name: str, figures: dict[str, tuple[float, float]]) -> None:
    (bare, bare_cpu), (gate, gate_cpu) = figures["bare"], figures["gate"]
    (open_, open_cpu), (cached, _) = figures["open"], figures["cached"]
    print(
        f"{name}:\n"
        f"  wall: bare pytest {bare:.2f} s | gate {gate:.2f} s ({gate / bare:.2f}x) | gate "
        f"without the sandbox {open_:.2f} s (sandbox {gate - open_:+.2f} s) | cached "
        f"re-validation {cached:.2f} s\n"
        f"  cpu:  bare pytest {bare_cpu:.2f} s | gate {gate_cpu:.2f} s "
        f"({gate_cpu / bare_cpu:.2f}x) | gate without the sandbox {open_cpu:.2f} s (sandbox "
        f"{gate_cpu - open_cpu:+.2f} s, {(gate_cpu - open_cpu) / open_cpu:+.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--work-ms", type=float, nargs="+", default=[0.0, 5.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--own", action="store_true", help="also this repository's own suite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-") as scratch:
        for work_ms in args.work_ms:
            generated = Path(scratch) / f"generated-{work_ms:g}ms"
            generate_suite(generated, args.tests, work_ms)
            branch = prepare(generated, record=True)
            name = f"generated suite ({args.tests} tests, {work_ms:g} ms of work each)"
            report(name, measure(generated, branch, args.repeat))
        if args.own:
            own = Path(scratch) / "own"
            sh(["git", "clone", "-q", str(HERE), str(own)], Path(scratch))
            has_baseline = (own / "baseline" / "baseline.json").exists()
            if not has_baseline:
                sh([*EVOLVE, "baseline", "record", "--reruns", "0"], own)
            branch = make_branch(own)
            report("this repository's suite", measure(own, branch, 1))


if __name__ == "__main__":
    main()
