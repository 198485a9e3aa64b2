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
- other plausible: accepted, but neither; printed with its diff for a person to judge;
- overfitting: of the other plausible, those the check mutate runs before it proposes a
  repair (`evolution.mutate.differential`) refuses when the original is the code before
  its fault, right wherever it answers: a result that differs from that code's on any
  input its tests give the changed functions, near them or drawn from their types and
  values. (Mutate itself has only the faulty code to compare with; this is the bound
  of what it let through.)
Reported, for each seed and over all: those counts and their shares of the repairs, the
repairs the search refused as overfitting, the candidates evaluated, search and cycle
seconds per repair (and the cycle's CPU seconds, as mutate_repair measures them),
candidates per minute, and the misses by fault kind and by why the search stopped.
Trial i of the k-th seed faults package (k x trials + i) modulo their number, so a few
trials per seed still reach every package.

Usage: .venv/bin/python benchmarks/mutate_pypi.py [--trials N] [--seeds S ...]
       [--cache DIR] [--max-seconds S] [--only PACKAGE ...] [--json]
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
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faults import draw_kind, inject
from mutate_repair import ENV, commit_and_record, run_cycle, sh
from pypi import download

from evolution.baseline import read_baseline
from evolution.gitrepo import GitRepo
from evolution.mutate.differential import Differential
from evolution.mutate.search import canonical, evaluator_policy
from evolution.mutate.source import apply_edits
from evolution.policy import DEFAULT_PROTECTED, load_policy, matches
from evolution.run.folder import RunFolder
from evolution.run.forkserver import CandidateRuns
from evolution.sandbox.isolation import choose


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
    # One module; its tests/ ship in the sdist and run in about 4 s.
    Package("parse", "1.20.2", "parse.py", "tests", "MIT"),
    Package("jmespath", "1.0.1", "jmespath", "tests", "MIT"),
)
MAX_DRAWS = 60  # attempts to find a fault the tests see, per trial
SUITE_TIMEOUT_S = 300.0


@dataclass
class Trial:
    index: int
    package: str
    seed: int = 0
    path: str = ""
    line: int = 0
    kind: str = ""
    original: str = ""
    faulty: str = ""
    verdict: str = ""  # same | equivalent | other-plausible | not-repaired | error
    overfitting: bool | None = None  # of an other-plausible repair; None: no evidence
    overfitting_why: str = ""
    refused: list[str] = field(default_factory=list)  # repairs the search refused
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
        f"evolvable = [\"{_folder(package.source)}\"]\n"
        f"protected = {json.dumps(protected)}\n",
        encoding="utf-8",
    )
    return root


def protected_paths(package: Package) -> list[str]:
    """What the gate protects in the package: its tests (a fault there is not the code's)."""
    return [*DEFAULT_PROTECTED, _folder(package.tests)]


def _folder(path: str) -> str:
    """A policy pattern for a folder (`tests/`) or a file (`parse.py`)."""
    return path if path.endswith(".py") else path + "/"


def covered_lines(root: Path, package: Package) -> dict[str, list[int]]:
    """Lines of the package's modules that its own tests execute, per file; never a
    protected file (toolz keeps its tests inside the package, where `mutate` may not
    edit: a fault injected there could not be repaired by design)."""
    rc = root.parent / "coverage.rc"
    measured = "include" if package.source.endswith(".py") else "source"
    rc.write_text(f"[run]\n{measured} = {root / package.source}\ndata_file = {rc}.data\n")
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
    if trial.verdict == "other-plausible":
        trial.overfitting, trial.overfitting_why = overfits(repo, trial.path, original, repaired)


def overfits(repo: Path, path: str, original: str, repaired: str) -> tuple[bool | None, str]:
    """Whether the repair of `path` on main changes a result of the code before its
    fault (`original`, trusted), by mutate's own check: every test of the baseline on
    main runs once recorded, on the original. None when there is no evidence."""
    git = GitRepo(repo)
    main = sh(["git", "rev-parse", "main"], repo).stdout.strip()
    found = read_baseline(git, main)
    tests = sorted(n for n, o in (found[0].tests if found else {}).items() if o == "passed")
    policy = evaluator_policy(load_policy(git, main))
    isolation = choose(policy, automated=True, unsandboxed=False)
    with RunFolder(git, main) as run, CandidateRuns(policy, run, isolation) as runs:
        verdict = Differential(runs, path, [], tests, trusted=True)(original, repaired)
    if verdict.rejected:
        return True, verdict.rejected[:300]
    evidence = [flag for flag in verdict.flags if "no behavioural evidence" in flag]
    return (None, evidence[0]) if evidence else (False, "")


def run_trial(index: int, package: Package, pristine: Path, covered: dict[str, list[int]],
              seed: int, scratch: Path, max_seconds: float) -> Trial:
    trial = Trial(index, f"{package.name} {package.version}", seed)
    rng = random.Random(f"{seed}-{index}")
    repo = scratch / f"trial-{seed}-{index}"
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
    trial.refused = [why for why in outcome.rejected if "changes what the function did" in why]
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
    overfitting = [t for t in plausible if t.overfitting]
    missed = [t for t in counted if t not in plausible]
    evaluated = sum(t.evaluated for t in counted)
    searched = sum(t.search_s for t in counted)
    kinds: dict[str, list[int]] = {}
    for t in counted:
        kinds.setdefault(t.kind, [0, 0, 0, 0])
        kinds[t.kind][0] += 1
        kinds[t.kind][1] += t in plausible
        kinds[t.kind][2] += t in correct
        kinds[t.kind][3] += t in overfitting

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    def share(part: list[Trial]) -> float:
        return round(len(part) / len(plausible), 3) if plausible else 0.0

    other = [t for t in plausible if t.verdict == "other-plausible"]
    return {
        "seeds": sorted({t.seed for t in trials}),
        "trials": len(counted),
        "errors": len(trials) - len(counted),
        "plausible": len(plausible),
        "same_as_original": sum(t.verdict == "same" for t in counted),
        "equivalent": sum(t.verdict == "equivalent" for t in counted),
        "other_plausible": len(other),
        "overfitting": len(overfitting),
        "overfitting_unknown": sum(t.overfitting is None for t in other),
        "repair_rate": round(len(plausible) / len(counted), 3) if counted else 0.0,
        "share_of_repairs": {
            "same_as_original": share([t for t in plausible if t.verdict == "same"]),
            "equivalent": share([t for t in plausible if t.verdict == "equivalent"]),
            "other_plausible": share(other),
            "overfitting": share(overfitting),
        },
        "correct_share_of_repairs": round(len(correct) / len(plausible), 3) if plausible else 0.0,
        "refused_as_overfitting": sum(len(t.refused) for t in counted),
        "median_search_s_per_repair": median([t.search_s for t in plausible]),
        "median_cycle_s_per_repair": median([t.cycle_s for t in plausible]),
        "median_cycle_cpu_s_per_repair": median([t.cycle_cpu_s for t in plausible]),
        "candidates_evaluated": evaluated,
        "candidates_per_repair_median": median([float(t.evaluated) for t in plausible]),
        "candidates_per_minute": round(evaluated / searched * 60, 1) if searched else 0.0,
        "by_kind": {k: {"trials": v[0], "plausible": v[1], "correct": v[2], "overfitting": v[3]}
                    for k, v in sorted(kinds.items())},
        "misses_by_kind": dict(sorted(Counter(t.kind for t in missed).items())),
        "misses_by_stop": dict(sorted(Counter(
            (t.stopped[-1] if t.stopped else "no search") for t in missed).items())),
    }


def print_trials(trials: list[Trial]) -> None:
    for t in trials:
        print(f"#{t.seed}/{t.index:<3} {t.package:<22} {t.kind:<31} {t.verdict:<16} "
              f"{t.evaluated:4d} cand {t.search_s:5.1f} s  {t.path}:{t.line}")
        print(f"      original: {t.original}\n      faulty:   {t.faulty}")
        if t.verdict == "other-plausible":
            print(f"      repaired: {' | '.join(t.repaired_lines)}")
            state = {True: "overfitting", False: "not overfitting", None: "no evidence"}
            print(f"      {state[t.overfitting]}{': ' if t.overfitting_why else ''}"
                  f"{t.overfitting_why[:200]}")
        for why in t.refused[:2]:
            print(f"      refused: {why[:200]}")
        if t.error:
            print(f"      error: {t.error[:200]}")


def print_summary(title: str, summary: dict[str, Any]) -> None:
    shares = summary["share_of_repairs"]
    print(f"\n{title}: {summary['trials']} trials ({summary['errors']} errors): "
          f"{summary['plausible']} repaired ({summary['repair_rate']:.0%}); of the repairs "
          f"{shares['same_as_original']:.0%} the original code, {shares['equivalent']:.0%} "
          f"equivalent, {shares['other_plausible']:.0%} other plausible, "
          f"{shares['overfitting']:.0%} overfitting ({summary['overfitting_unknown']} other "
          f"plausible without evidence); {summary['refused_as_overfitting']} repairs refused "
          f"as overfitting by the search | median search {summary['median_search_s_per_repair']}"
          f" s, cycle {summary['median_cycle_s_per_repair']} s (CPU "
          f"{summary['median_cycle_cpu_s_per_repair']} s) per repair | "
          f"{summary['candidates_per_minute']} candidates per minute "
          f"({summary['candidates_evaluated']} evaluated) | misses by kind "
          f"{summary['misses_by_kind']}, by why the search stopped {summary['misses_by_stop']}")


def print_report(trials: list[Trial], seeds: dict[int, dict[str, Any]],
                 overall: dict[str, Any]) -> None:
    print_trials(trials)
    print("\nby kind (trials / plausible / same or equivalent / overfitting):")
    for kind, row in overall["by_kind"].items():
        print(f"  {kind:<32} {row['trials']:3d} {row['plausible']:3d} {row['correct']:3d} "
              f"{row['overfitting']:3d}")
    for seed, summary in seeds.items():
        print_summary(f"seed {seed}", summary)
    print_summary("overall", overall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="trials per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[17, 18, 19])
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
        for k, seed in enumerate(args.seeds):
            for index in range(args.trials):
                package, pristine, covered = prepared[(k * args.trials + index) % len(prepared)]
                print(f"seed {seed} trial {index} ({package.name})…", end=" ", flush=True,
                      file=sys.stderr)
                trial = run_trial(index, package, pristine, covered, seed, scratch,
                                  args.max_seconds)
                print(trial.verdict, file=sys.stderr)
                trials.append(trial)
    seeds = {seed: summarise([t for t in trials if t.seed == seed]) for seed in args.seeds}
    overall = summarise(trials)
    if args.json:
        print(json.dumps({"seeds": seeds, "overall": overall,
                          "per_trial": [asdict(t) for t in trials]}, indent=2))
    else:
        print_report(trials, seeds, overall)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
