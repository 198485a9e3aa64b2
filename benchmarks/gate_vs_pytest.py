"""Benchmark: the gate's wall time against a bare serial `python -m pytest` on the same suite.

Every figure is a ratio to a bare run measured side by side in the same run (the ways of
running one suite are interleaved round by round, medians of `--repeat` rounds), so a
busy machine moves both sides alike. CPU time (user + system of everything started) is
printed too: it is the steadier measure of the work the gate adds.

Sections:
- fixed cost: a suite of one test, bare against the gate; the difference is what the
  gate adds to every run whatever the suite (starting `evolve`, the merge, the run
  folder, the sandbox, the report), and a cached re-validation;
- accept: generated suites of `--tests` tests in modules of 50, near-empty tests (the
  worst case, where pytest's own per-test cost dominates) and tests doing 5 ms of work
  each; the gate in one process (`--workers 1`), with `--workers` processes, without
  the OS sandbox (`RATCHET_SANDBOX=none`, one process), and cached;
- reject (`--reject`): a generated suite of 400 tests of 20 ms in 20 modules, each
  module testing its own source file, and a change that breaks one of those files: the
  time to a rejection with the staged verdict, as a person's branch (the newly failing
  tests confirmed by `reruns` re-runs) and as an automated proposal (no re-run can
  excuse a failure, so none is made), against the whole suite first (`--no-staged
  --workers 1`, the gate before staging) and against a bare run;
- real suites (`--suite PATH_OR_SDIST`, repeatable): a folder or an sdist (`.tar.gz`)
  of a project whose tests need nothing this interpreter lacks, e.g. one fetched with
  `pip download --no-binary :all: --no-deps more-itertools==10.8.0`; it is copied
  into a throwaway repository, so the source is untouched. Accept as above; `evolve
  baseline record` (the whole suite under coverage, for the map) on a fresh copy; and,
  with `--break FILE:OLD:NEW`, the time to reject that regression as above;
- this repository's own suite (`--own`), on a temporary clone;
- another version of the gate (`--against REV`, e.g. the commit before a round of new
  checks): installed from that commit as the README installs, in a throwaway worktree,
  and run beside the current one in the fixed-cost, accept and reject sections (`gate
  at REV`); the difference is what the changes since cost, or saved, every run;
- the checks that only automated proposals pay (`--behaviour`): on 400 tests of 5 ms in
  20 modules, one function of one module refactored without changing a result, as a
  person's commit (no proposal checks) and as an automated proposal (the special-case
  check, and the replay outside the harness: a recording run of the tests the map ties
  to the module, four replays), and a proposal that changes no function (no replay).

Usage: python benchmarks/gate_vs_pytest.py [--tests 2000] [--work-ms 0 5] [--repeat 3]
       [--workers auto] [--reject] [--behaviour] [--suite PATH_OR_SDIST ...]
       [--break FILE:OLD:NEW ...] [--own] [--against REV]
       [--only fixed|accept|reject|behaviour ...]
No timing is asserted anywhere: this prints figures for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from evolution.gate.testmap import MAP_FILE, REFRESH_COMMITS

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
OTHER: dict[str, list[str]] = {}  # with --against: its name -> how to start its `evolve`
BARE = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
Figure = tuple[float, float]  # wall seconds, CPU seconds
# The benchmark branches the gate must reject: a person's, and an automated proposal's.
REGRESSING = ("bench-regress", "evolve/bench-regress")


def sh(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0, 1)
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True, check=False
    )
    if done.returncode not in ok:
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def timed(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0, 1)
) -> Figure:
    """Wall seconds, and CPU seconds (user + system, the command and all it started).
    `ok`: the exit codes that make the figure a measurement of the work meant (a gate
    that fails at once would otherwise read as a fast one)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    sh(argv, cwd, env=env, ok=ok)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_work(root: Path, name: str, work_ms: float) -> None:
    (root / "scripts" / f"{name}.py").write_text(
        "import time\n\n\n"
        "def crunch(n):\n"
        f"    deadline = time.perf_counter() + {work_ms / 1000!r}\n"
        "    while time.perf_counter() < deadline:\n"
        "        pass\n"
        "    return sum(i * i for i in range(n))\n"
    )


def generate_suite(
    root: Path, tests: int, work_ms: float, per_module: int = 50, own_sources: bool = False
) -> None:
    """`tests` tests in modules of `per_module`; with `own_sources` every module tests a
    source file of its own (so a change to one is seen by one module only)."""
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "__init__.py").write_text("")
    modules = max(1, tests // per_module)
    if not own_sources:
        write_work(root, "work", work_ms)
    (root / "tests").mkdir()
    for m in range(modules):
        source = f"work_{m:03d}" if own_sources else "work"
        if own_sources:
            write_work(root, source, work_ms)
        body = [f"from scripts.{source} import crunch", ""]
        for t in range(per_module):
            body += [
                f"def test_{m}_{t}():",
                f"    assert crunch({200 + t}) == sum(i * i for i in range({200 + t}))",
                "",
            ]
        (root / "tests" / f"test_gen_{m:03d}.py").write_text("\n".join(body))


def commit_all(repo: Path, message: str) -> None:
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--no-verify", "-m", message], repo)


def prepare(repo: Path) -> None:
    """A repository of the folder's files, with its baseline recorded by the gate."""
    sh(["git", "init", "-q", "-b", "main"], repo)
    commit_all(repo, "suite")
    done = sh([*EVOLVE, "baseline", "record"], repo)
    if done.returncode != 0:
        raise SystemExit(f"baseline record failed:\n{done.stdout}\n{done.stderr}")


def branch_with(repo: Path, name: str, change: Callable[[Path], None]) -> str:
    sh(["git", "switch", "-q", "-c", name], repo)
    change(repo)
    commit_all(repo, name)
    sh(["git", "switch", "-q", "main"], repo)
    return name


def neutral(repo: Path) -> None:
    (repo / "bench_note.txt").write_text("a neutral change\n")


def break_one_module(repo: Path) -> None:
    source = repo / "scripts" / "work_007.py"
    source.write_text(source.read_text().replace("i * i", "i * i + 1"))


def verdicts(repo: Path) -> Path:
    common = Path(sh(["git", "rev-parse", "--git-common-dir"], repo).stdout.strip())
    return (common if common.is_absolute() else repo / common) / "evolve" / "verdicts"


def measure(repo: Path, ways: dict[str, Callable[[], Figure]], repeat: int) -> dict[str, Figure]:
    """Median (wall, cpu) of each way of running the suite, interleaved round by round."""
    runs: dict[str, list[Figure]] = {name: [] for name in ways}
    for _ in range(repeat):
        for name, way in ways.items():
            runs[name].append(way())
    return {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in runs.items()
    }


def validate_argv(branch: str, *extra: str, evolve: list[str] = EVOLVE) -> list[str]:
    return [*evolve, "validate", branch, "--no-merge", "--json", *extra]


def verdict_code(branch: str) -> tuple[int]:
    """The one exit code a gate run of a benchmark branch may end with."""
    return (1,) if branch in REGRESSING else (0,)


def fresh_gate(
    repo: Path,
    branch: str,
    *extra: str,
    env: dict[str, str] | None = None,
    evolve: list[str] = EVOLVE,
) -> Callable[[], Figure]:
    """One timed gate run of `branch` with the verdict cache cleared first."""

    def run() -> Figure:
        shutil.rmtree(verdicts(repo), ignore_errors=True)
        argv = validate_argv(branch, *extra, evolve=evolve)
        return timed(argv, repo, env=env, ok=verdict_code(branch))

    return run


def other_gates(
    repo: Path, branch: str, env: dict[str, str] | None = None
) -> dict[str, Callable[[], Figure]]:
    return {
        f"gate at {name}, 1 process": fresh_gate(
            repo, branch, "--workers", "1", env=env, evolve=evolve
        )
        for name, evolve in OTHER.items()
    }


def other_folder(rev: str) -> Path:
    """Not under /tmp: a gate from before issue 22 cannot run from a venv there."""
    return Path.home() / ".cache" / "ratchet-bench" / f"gate-at-{rev}"


def install_other(rev: str) -> None:
    """The gate as it was at `rev`, installed the README's way in a worktree of its own."""
    from live_world import INSTALL_RATCHET  # the README's install command, owned there

    folder = other_folder(rev)
    sh(["git", "worktree", "add", "-q", "--detach", str(folder), rev], HERE)
    sh(["sh", "-c", INSTALL_RATCHET], folder)
    OTHER[rev] = [str(folder / ".venv" / "bin" / "python"), "-m", "evolution.cli"]


def gate_ways(
    repo: Path, branch: str, workers: str, env: dict[str, str] | None = None
) -> dict[str, Callable[[], Figure]]:
    """Bare serial pytest, and the gate fresh (cache cleared) in the ways to compare."""
    open_env = {**(env or {}), "RATCHET_SANDBOX": "none"}
    return {
        "bare": lambda: timed(BARE, repo, env=env),
        "gate, 1 process": fresh_gate(repo, branch, "--workers", "1", env=env),
        f"gate, {workers} workers": fresh_gate(repo, branch, "--workers", workers, env=env),
        # the entry the run above wrote
        "cached": lambda: timed(validate_argv(branch), repo, env=env, ok=verdict_code(branch)),
        "gate, 1 process, no sandbox": fresh_gate(repo, branch, "--workers", "1", env=open_env),
        **other_gates(repo, branch, env),
    }


def report(title: str, figures: dict[str, Figure], against: str = "bare") -> None:
    base_wall, base_cpu = figures[against]
    print(f"{title}:")
    for name, (wall, cpu) in figures.items():
        ratio = "" if name == against else f" ({wall / base_wall:.2f}x; cpu {cpu / base_cpu:.2f}x)"
        print(f"  {name:<30} {wall:7.2f} s wall {cpu:7.2f} s cpu{ratio}")


def fixed_cost(scratch: Path, repeat: int) -> dict[str, Figure]:
    repo = scratch / "one-test"
    generate_suite(repo, 1, 0.0, per_module=1)
    prepare(repo)
    branch = branch_with(repo, "bench-neutral", neutral)
    ways = gate_ways(repo, branch, "1")
    names = ("bare", "gate, 1 process", "cached", *(f"gate at {n}, 1 process" for n in OTHER))
    figures = measure(repo, {k: ways[k] for k in names}, repeat)
    report("fixed cost (a suite of one test)", figures)
    (bare, bare_cpu), (gate, gate_cpu) = figures["bare"], figures["gate, 1 process"]
    added = f"{gate - bare:.2f} s wall, {gate_cpu - bare_cpu:.2f} s cpu"
    print(f"  the gate's fixed cost per run: {added}")
    for name in OTHER:
        other, other_cpu = figures[f"gate at {name}, 1 process"]
        print(f"  added since {name}: {gate - other:.2f} s wall, {gate_cpu - other_cpu:.2f} s cpu")
    return figures


def per_test(figures: dict[str, Figure], fixed: dict[str, Figure]) -> None:
    """The gate's cost per test: each side's run less its run of one test (the fixed
    cost), as a ratio; what a suite of many near-empty tests tends to."""
    gated = "gate, 1 process"
    (bare, bare_cpu), (one, one_cpu) = figures["bare"], fixed["bare"]
    (gate, gate_cpu), (gate_one, gate_one_cpu) = figures[gated], fixed[gated]
    wall = (gate - gate_one) / (bare - one)
    cpu = (gate_cpu - gate_one_cpu) / (bare_cpu - one_cpu)
    print(f"  per test, the fixed cost aside (1 process): {wall:.2f}x; cpu {cpu:.2f}x")


def rejection(scratch: Path, repeat: int, workers: str) -> None:
    repo = scratch / "reject"
    generate_suite(repo, 400, 20.0, per_module=20, own_sources=True)
    prepare(repo)
    figures = measure(repo, {
        "bare (whole suite, serial)": lambda: timed(BARE, repo),
        **reject_ways(repo, break_one_module, workers, whole_first=True),
    }, repeat)  # fmt: skip
    report("time to reject a regression in one module (400 tests of 20 ms, 20 modules)",
           figures, against="bare (whole suite, serial)")  # fmt: skip


def reject_ways(
    repo: Path,
    change: Callable[[Path], None],
    workers: str,
    env: dict[str, str] | None = None,
    whole_first: bool = False,
) -> dict[str, Callable[[], Figure]]:
    """The gate rejecting `change`, as a person's branch (its newly failing tests
    confirmed by re-runs: a pass would excuse one as flaky) and as an automated proposal
    (no re-run could excuse one); with --against, the older gate beside each."""
    person = branch_with(repo, REGRESSING[0], change)
    proposal = as_proposal(repo, REGRESSING[1], change)
    ways = {}
    if whole_first:
        ways["reject, whole suite first"] = fresh_gate(repo, person, "--no-staged",
                                                       "--workers", "1", env=env)  # fmt: skip
    for who, branch in (("a person's branch", person), ("a proposal", proposal)):
        ways[f"reject {who}, staged"] = fresh_gate(repo, branch, "--workers", workers, env=env)
        for name, evolve in OTHER.items():
            ways[f"  {who}, gate at {name}"] = fresh_gate(repo, branch, "--workers",
                                                          workers, env=env, evolve=evolve)
    return ways


def refactor_one_module(repo: Path) -> None:
    source = repo / "scripts" / "work_007.py"
    source.write_text(source.read_text().replace("sum(i * i for i in range(n))",
                                                 "sum(k * k for k in range(n))"))  # fmt: skip


def as_proposal(repo: Path, name: str, change: Callable[[Path], None]) -> str:
    sh(["git", "switch", "-q", "-c", name], repo)
    change(repo)
    sh(["git", "add", "-A"], repo)
    message = f"{name}\n\nEvolve-Proposal: {name}\nEvolve-Proposer: bench"
    sh(["git", "commit", "-q", "--no-verify", "-m", message], repo)
    sh(["git", "switch", "-q", "main"], repo)
    return name


def behaviour_cost(scratch: Path, repeat: int, workers: str) -> None:
    repo = scratch / "behaviour"
    generate_suite(repo, 400, 5.0, per_module=20, own_sources=True)
    prepare(repo)
    person = branch_with(repo, "bench-person", refactor_one_module)
    proposal = as_proposal(repo, "evolve/bench-proposal", refactor_one_module)
    notes = as_proposal(repo, "evolve/bench-notes",
                        lambda r: (r / "scripts" / "NOTES.md").write_text("notes\n"))  # fmt: skip
    figures = measure(repo, {
        "bare": lambda: timed(BARE, repo),
        "a person's refactoring": fresh_gate(repo, person, "--workers", workers),
        "the same, as a proposal": fresh_gate(repo, proposal, "--workers", workers),
        "a proposal changing no function": fresh_gate(repo, notes, "--workers", workers),
    }, repeat)  # fmt: skip
    report("the proposal-only checks: special cases, replay outside the harness", figures)


def unpack(source: Path, into: Path) -> Path:
    """A copy of a folder, or an sdist's contents (its one top folder), at `into`."""
    if source.is_dir():
        shutil.copytree(source, into, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
        return into
    with tarfile.open(source) as archive:
        archive.extractall(into.parent / "unpacked", filter="data")
    (top,) = (into.parent / "unpacked").iterdir()
    top.rename(into)
    return into


def fresh_record(
    repo: Path, env: dict[str, str] | None = None, evolve: list[str] = EVOLVE,
    touch: str | None = None,
) -> Callable[[], Figure]:
    """One timed `evolve baseline record` (the whole suite, each test's files mapped for
    the staged verdict) on a fresh copy of `repo`, its verdict cache cleared: with no map
    yet, or with `touch`, after a commit that changes that file since the last map (only
    the tests tied to it are mapped again)."""

    def run() -> Figure:
        copy = fresh_copy(repo)
        if touch is None:
            (verdicts(copy).parent / MAP_FILE).unlink(missing_ok=True)
        else:
            touched(copy, touch)
        argv = [*evolve, "baseline", "record", "--reset", "--reason", "benchmark"]
        return timed(argv, copy, env=env, ok=(0,))

    return run


def refreshing_validation(repo: Path, touch: str, env: dict[str, str] | None = None,
                          evolve: list[str] = EVOLVE) -> Callable[[], Figure]:  # fmt: skip
    """One timed validation that refreshes the map (REFRESH_COMMITS old) of a branch that
    changes `touch`, on a fresh copy of `repo`."""

    def run() -> Figure:
        copy = fresh_copy(repo)
        for n in range(REFRESH_COMMITS):
            sh(["git", "commit", "-q", "--allow-empty", "--no-verify", "-m", f"age {n}"], copy)
        branch = branch_with(copy, "bench-touch", lambda tree: touched(tree, touch, commit=False))
        return timed(validate_argv(branch, "--workers", "1", evolve=evolve), copy, env=env,
                     ok=(0,))  # fmt: skip

    return run


def fresh_copy(repo: Path) -> Path:
    copy = repo.with_name(repo.name + "-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(repo, copy, symlinks=True)
    shutil.rmtree(verdicts(copy), ignore_errors=True)
    return copy


def touched(repo: Path, path: str, commit: bool = True) -> None:
    """A comment added to `path`: a change the tests tied to it must run again for."""
    with open(repo / path, "a", encoding="utf-8") as handle:
        handle.write("\n# touched by the benchmark\n")
    if commit:
        commit_all(repo, f"touch {path}")


def breaker(spec: str) -> tuple[str, Callable[[Path], None]]:
    """`FILE:OLD:NEW` -> (FILE, a change that replaces OLD with NEW in it, once)."""
    path, old, new = spec.split(":", 2)

    def change(repo: Path) -> None:
        target = repo / path
        text = target.read_text()
        if old not in text:
            raise SystemExit(f"--break {spec}: {path} does not contain {old!r}")
        target.write_text(text.replace(old, new, 1))

    return path, change


def evolvable(repo: Path, folder: str) -> None:
    """The policy's evolvable paths, in the project's pyproject.toml (or ratchet.toml)."""
    pyproject = repo / "pyproject.toml"
    if pyproject.exists():
        text = pyproject.read_text()
        pyproject.write_text(text + f'\n[tool.ratchet]\nevolvable = ["{folder}"]\n')
    else:
        (repo / "ratchet.toml").write_text(f'evolvable = ["{folder}"]\n')


def real_suite(
    scratch: Path, source: Path, repeat: int, workers: str, breaks: list[str]
) -> None:
    repo = unpack(source, scratch / f"real-{source.name}")
    # A bare run sees the tree as the gate does: first on the path, and its src/ too.
    env = {"PYTHONPATH": os.pathsep.join([str(repo), str(repo / "src")])}
    broken = [(path, change) for path, change in map(breaker, breaks) if (repo / path).exists()]
    if broken:  # an automated proposal may change the folder it breaks
        evolvable(repo, str(Path(broken[0][0]).parent) + "/")
    prepare(repo)
    branch = branch_with(repo, "bench-neutral", neutral)
    figures = measure(repo, gate_ways(repo, branch, workers, env), repeat)
    report(f"real suite: {source.name}", figures)
    ways = {"bare": lambda: timed(BARE, repo, env=env),
            "baseline record, no map yet": fresh_record(repo, env)}  # fmt: skip
    for name, evolve in OTHER.items():
        ways[f"  baseline record, gate at {name}"] = fresh_record(repo, env, evolve)
    if broken:
        touch = broken[0][0]
        ways["baseline record, one file changed"] = fresh_record(repo, env, touch=touch)
        ways["validation refreshing the map"] = refreshing_validation(repo, touch, env)
        for name, evolve in OTHER.items():
            ways[f"  refreshing, gate at {name}"] = refreshing_validation(repo, touch, env, evolve)
        ways.update(reject_ways(repo, broken[0][1], workers, env))
    report(f"real suite: {source.name}, record and reject", measure(repo, ways, repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--work-ms", type=float, nargs="+", default=[0.0, 5.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="auto", help="the parallel gate's worker count")
    parser.add_argument("--reject", action="store_true", help="also the time to a rejection")
    parser.add_argument("--suite", type=Path, action="append", default=[],
                        help="a real suite: a folder or an sdist")  # fmt: skip
    parser.add_argument("--break", dest="breaks", metavar="FILE:OLD:NEW", action="append",
                        default=[], help="a regression to plant in a real suite's FILE, "
                        "for its time to a rejection (the first whose FILE it has)")  # fmt: skip
    parser.add_argument("--own", action="store_true", help="also this repository's own suite")
    parser.add_argument("--behaviour", action="store_true", help="also the proposal-only checks")
    parser.add_argument("--against", metavar="REV",
                        help="also the gate as it was at this commit, side by side")  # fmt: skip
    parser.add_argument("--only", choices=("fixed", "accept", "reject", "behaviour"),
                        action="append", help="run only these sections (repeatable)")  # fmt: skip
    args = parser.parse_args()
    for source in args.suite:
        if not source.exists():
            parser.error(f"--suite {source}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-") as folder:
        scratch = Path(folder)
        wanted = set(args.only or ("fixed", "accept", "reject", "behaviour"))
        if args.against:
            install_other(args.against)
        print(f"Python {platform.python_version()}, pytest {version('pytest')}, "
              f"{os.cpu_count()} cores")
        fixed = fixed_cost(scratch, args.repeat) if "fixed" in wanted else None
        for work_ms in args.work_ms if "accept" in wanted else ():
            generated = scratch / f"generated-{work_ms:g}ms"
            generate_suite(generated, args.tests, work_ms)
            prepare(generated)
            branch = branch_with(generated, "bench-neutral", neutral)
            figures = measure(generated, gate_ways(generated, branch, args.workers), args.repeat)
            report(f"accept: {args.tests} generated tests, {work_ms:g} ms of work each", figures)
            if fixed is not None:
                per_test(figures, fixed)
        if args.reject and "reject" in wanted:
            rejection(scratch, args.repeat, args.workers)
        if args.behaviour and "behaviour" in wanted:
            behaviour_cost(scratch, args.repeat, args.workers)
        for source in args.suite:
            real_suite(scratch, source, args.repeat, args.workers, args.breaks)
        for name in OTHER:
            sh(["git", "worktree", "remove", "--force", str(other_folder(name))], HERE)
        if args.own:
            own = scratch / "own"
            sh(["git", "clone", "-q", str(HERE), str(own)], scratch)
            if not (own / "baseline" / "baseline.json").exists():
                sh([*EVOLVE, "baseline", "record"], own)
            branch = branch_with(own, "bench-neutral", neutral)
            report("this repository's suite", measure(own, gate_ways(own, branch, args.workers), 1))


if __name__ == "__main__":
    main()
