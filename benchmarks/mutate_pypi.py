"""Benchmark: `mutate` repairing faults in code nobody here wrote, judged by its own tests.

At run time it downloads (with pip) the sdists of a few well-tested, permissively
licensed pure-Python packages; nothing of theirs is committed here. Their own test
suites, run once under coverage, say which lines some test executes. Each trial, seeded
and reproducible, injects one one-line fault of a TSSB-3M kind (see `faults.py`) on a
covered line inside a function, keeps it only if the package's tests now fail (a fault
no test sees cannot be repaired from tests), makes the faulty package a git repository
with its recorded baseline, and runs

    evolve cycle --max 1 --proposer mutate --json --max-seconds 60

through the gate, as the mutate_repair benchmark does. The repaired file on main is
then compared with the original:
- plausible: the gate accepted a repair (every test passes, none regressed);
- same as original: the repaired file's syntax tree equals the original's;
- equivalent: equal after the normalisation that dedups mutants (`a == b` as `b == a`,
  the same bytecode once compiled: `-0` as `0`);
- other plausible: accepted, but neither; printed with its diff for a person to judge.
Reported: those counts, the candidates evaluated, search and cycle seconds per repair
(and the cycle's CPU seconds, as mutate_repair measures them), and candidates per
minute.

Usage: .venv/bin/python benchmarks/mutate_pypi.py [--trials N] [--seed S] [--cache DIR]
       [--max-seconds S] [--only PACKAGE ...] [--json]
No timing is asserted anywhere: this prints figures for the README.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faults import draw_kind, inject
from mutate_repair import ENV, commit_and_record, run_cycle, sh
from pypi import download

from evolution.mutate.search import canonical
from evolution.mutate.source import apply_edits
from evolution.policy import DEFAULT_PROTECTED, matches


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    source: str  # the package's code, the evolvable folder
    tests: str  # its test folder or file
    license: str


PACKAGES = (
    Package("cachetools", "5.5.0", "src/cachetools", "tests", "MIT"),
    Package("toolz", "1.0.0", "toolz", "toolz/tests", "BSD-3-Clause"),
    Package("more-itertools", "10.5.0", "more_itertools", "tests", "MIT"),
    Package("inflection", "0.5.1", "inflection", "test_inflection.py", "MIT"),
)
MAX_DRAWS = 60  # attempts to find a fault the tests see, per trial
SUITE_TIMEOUT_S = 300.0


@dataclass
class Trial:
    index: int
    package: str
    path: str = ""
    line: int = 0
    kind: str = ""
    original: str = ""
    faulty: str = ""
    verdict: str = ""  # same | equivalent | other-plausible | not-repaired | error
    repaired_lines: list[str] = field(default_factory=list)
    edits: list[str] = field(default_factory=list)
    evaluated: int = 0
    search_s: float = 0.0
    cycle_s: float = 0.0
    cycle_cpu_s: float = 0.0  # user + system time of the cycle and everything it ran
    stopped: list[str] = field(default_factory=list)
    draws: int = 0  # faults drawn until one the tests see
    error: str = ""


def unpack(package: Package, cache: Path, into: Path) -> Path:
    archive = download(package.name, package.version, cache, sdist=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    root = next(p for p in into.iterdir() if p.is_dir())
    config = root / "deploy" / "agent.toml"
    config.parent.mkdir()
    protected = protected_paths(package)
    config.write_text(
        "[evolution]\n"
        f"evolvable = [\"{package.source}/\"]\n"
        f"protected = {json.dumps(protected)}\n",
        encoding="utf-8",
    )
    return root


def protected_paths(package: Package) -> list[str]:
    """What the gate protects in the package: its tests (a fault there is not the code's)."""
    return [*DEFAULT_PROTECTED, package.tests + ("/" if "." not in package.tests else "")]


def covered_lines(root: Path, package: Package) -> dict[str, list[int]]:
    """Lines of the package's modules that its own tests execute, per file; never a
    protected file (toolz keeps its tests inside the package, where `mutate` may not
    edit: a fault injected there could not be repaired by design)."""
    rc = root.parent / "coverage.rc"
    rc.write_text(f"[run]\nsource = {root / package.source}\ndata_file = {rc}.data\n")
    subprocess.run([sys.executable, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest",
                    "-q", "-p", "no:cacheprovider", "-x"], cwd=root, env=_env(root),
                   capture_output=True, timeout=SUITE_TIMEOUT_S, check=False)
    report = root.parent / "coverage.json"
    sh([sys.executable, "-m", "coverage", "json", f"--rcfile={rc}", "-q", "-o", str(report)],
       root)
    files = json.loads(report.read_text())["files"]
    lines = {str((root / path).resolve().relative_to(root.resolve())):
             sorted(data["executed_lines"]) for path, data in files.items()
             if data["executed_lines"]}  # fmt: skip
    protected = protected_paths(package)
    return {path: found for path, found in lines.items() if not matches(path, protected)}


def _env(root: Path) -> dict[str, str]:
    """The package importable from its checkout, as the gate's test runs have it."""
    return {**ENV, "PYTHONPATH": f"{root}:{root / 'src'}"}


def fails(root: Path) -> bool:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"],
                          cwd=root, env=_env(root), capture_output=True, text=True,
                          timeout=SUITE_TIMEOUT_S, check=False)
    return done.returncode == 1


def draw_fault(root: Path, covered: dict[str, list[int]], trial: Trial, rng: random.Random
               ) -> str | None:
    """Inject a fault the tests see into `root` (in place); the original text, or None."""
    files = sorted(path for path in covered if path.endswith(".py"))
    for draws in range(1, MAX_DRAWS + 1):
        path = rng.choice(files)
        original = (root / path).read_text(encoding="utf-8")
        kind = draw_kind(rng)
        line = rng.choice(covered[path])
        edit = inject(original, line, kind, rng)
        if edit is None:
            continue
        faulty = apply_edits(original, [edit])
        (root / path).write_text(faulty, encoding="utf-8")
        if fails(root):
            trial.path, trial.line, trial.kind, trial.draws = path, line, kind, draws
            trial.original = original.splitlines()[line - 1].strip()
            trial.faulty = faulty.splitlines()[line - 1].strip()
            return original
        (root / path).write_text(original, encoding="utf-8")
    return None


def judge(trial: Trial, repo: Path, original: str) -> None:
    done = sh(["git", "show", f"main:{trial.path}"], repo)
    repaired = done.stdout
    if ast.dump(ast.parse(repaired)) == ast.dump(ast.parse(original)):
        trial.verdict = "same"
    elif canonical(repaired) == canonical(original):
        trial.verdict = "equivalent"
    else:
        trial.verdict = "other-plausible"
    before, after = original.splitlines(), repaired.splitlines()
    trial.repaired_lines = [line.strip() for line in after if line not in before][:3]


def run_trial(index: int, package: Package, pristine: Path, covered: dict[str, list[int]],
              seed: int, scratch: Path, max_seconds: float) -> Trial:
    trial = Trial(index, f"{package.name} {package.version}")
    rng = random.Random(f"{seed}-{index}")
    repo = scratch / f"trial-{index}"
    shutil.copytree(pristine, repo)
    original = draw_fault(repo, covered, trial, rng)
    if original is None:
        trial.verdict, trial.error = "error", f"no fault the tests see in {MAX_DRAWS} draws"
        return trial
    error = commit_and_record(repo, f"fault: {trial.kind} at {trial.path}:{trial.line}")
    if error:
        trial.verdict, trial.error = "error", error
        return trial
    outcome = run_cycle(f"trial-{index}", repo, max_seconds)
    trial.evaluated, trial.search_s = outcome.evaluated, outcome.search_s
    trial.cycle_s, trial.cycle_cpu_s = outcome.cycle_s, outcome.cycle_cpu_s
    trial.stopped, trial.edits, trial.error = outcome.stopped, outcome.edits, outcome.error
    if outcome.repaired:
        judge(trial, repo, original)
    else:
        trial.verdict = "error" if outcome.error else "not-repaired"
    shutil.rmtree(repo, ignore_errors=True)
    return trial


def summarise(trials: list[Trial]) -> dict[str, Any]:
    counted = [t for t in trials if t.verdict != "error"]
    plausible = [t for t in counted if t.verdict in ("same", "equivalent", "other-plausible")]
    correct = [t for t in plausible if t.verdict in ("same", "equivalent")]
    evaluated = sum(t.evaluated for t in counted)
    searched = sum(t.search_s for t in counted)
    kinds: dict[str, list[int]] = {}
    for t in counted:
        kinds.setdefault(t.kind, [0, 0, 0])
        kinds[t.kind][0] += 1
        kinds[t.kind][1] += t in plausible
        kinds[t.kind][2] += t in correct

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    return {
        "trials": len(counted),
        "errors": len(trials) - len(counted),
        "plausible": len(plausible),
        "same_as_original": sum(t.verdict == "same" for t in counted),
        "equivalent": sum(t.verdict == "equivalent" for t in counted),
        "other_plausible": sum(t.verdict == "other-plausible" for t in counted),
        "repair_rate": round(len(plausible) / len(counted), 3) if counted else 0.0,
        "correct_share_of_repairs": round(len(correct) / len(plausible), 3) if plausible else 0.0,
        "median_search_s_per_repair": median([t.search_s for t in plausible]),
        "median_cycle_s_per_repair": median([t.cycle_s for t in plausible]),
        "median_cycle_cpu_s_per_repair": median([t.cycle_cpu_s for t in plausible]),
        "candidates_evaluated": evaluated,
        "candidates_per_repair_median": median([float(t.evaluated) for t in plausible]),
        "candidates_per_minute": round(evaluated / searched * 60, 1) if searched else 0.0,
        "by_kind": {k: {"trials": v[0], "plausible": v[1], "correct": v[2]}
                    for k, v in sorted(kinds.items())},
        "per_trial": [asdict(t) for t in trials],
    }


def print_report(trials: list[Trial], summary: dict[str, Any]) -> None:
    for t in trials:
        print(f"#{t.index:<3} {t.package:<22} {t.kind:<31} {t.verdict:<16} "
              f"{t.evaluated:4d} cand {t.search_s:5.1f} s  {t.path}:{t.line}")
        print(f"      original: {t.original}\n      faulty:   {t.faulty}")
        if t.verdict == "other-plausible":
            print(f"      repaired: {' | '.join(t.repaired_lines)}")
        if t.error:
            print(f"      error: {t.error[:200]}")
    print("\nby kind (trials / plausible / same or equivalent):")
    for kind, row in summary["by_kind"].items():
        print(f"  {kind:<32} {row['trials']:3d} {row['plausible']:3d} {row['correct']:3d}")
    print(
        f"\n{summary['trials']} trials ({summary['errors']} errors): "
        f"{summary['plausible']} plausible ({summary['repair_rate']:.0%}), "
        f"{summary['same_as_original']} same as original, {summary['equivalent']} equivalent, "
        f"{summary['other_plausible']} other plausible; "
        f"{summary['correct_share_of_repairs']:.0%} of repairs same or equivalent | "
        f"median search {summary['median_search_s_per_repair']} s, cycle "
        f"{summary['median_cycle_s_per_repair']} s (CPU "
        f"{summary['median_cycle_cpu_s_per_repair']} s) per repair | "
        f"{summary['candidates_per_minute']} candidates per minute "
        f"({summary['candidates_evaluated']} evaluated)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--cache", type=Path, default=None, help="keep the sdists here")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--only", action="append", metavar="PACKAGE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    packages = [p for p in PACKAGES if not args.only or p.name in args.only]
    trials = []
    with tempfile.TemporaryDirectory(prefix="mutate-pypi-") as scratch_dir:
        scratch = Path(scratch_dir)
        cache = args.cache or scratch / "sdists"
        prepared = []
        for package in packages:
            pristine = unpack(package, cache, scratch / package.name)
            prepared.append((package, pristine, covered_lines(pristine, package)))
        for index in range(args.trials):
            package, pristine, covered = prepared[index % len(prepared)]
            print(f"trial {index} ({package.name})…", end=" ", flush=True, file=sys.stderr)
            trial = run_trial(index, package, pristine, covered, args.seed, scratch,
                              args.max_seconds)
            print(trial.verdict, file=sys.stderr)
            trials.append(trial)
    summary = summarise(trials)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_report(trials, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
