"""Benchmark: `evolve check` split over N CI jobs, against a bare `python -m pytest`.

A generated suite (`--tests` tests doing `--work-ms` of work each, in modules of 20)
is committed with its recorded baseline, and a neutral change on top is checked. For
N = 1, 2, 4 (`--parts`) every part runs one after another on this machine
(`evolve check --shard I/N`), each a separate process as on its own CI runner, and
then the combine (`evolve check --combine`). Every figure is a ratio to a bare serial
`python -m pytest` of the same suite, measured in the same round (medians of
`--repeat` rounds, interleaved, so a busy machine moves both sides alike).

What to read off: with N machines the CI's wall clock is the slowest part plus the
combine ("N machines"); the sum of the parts is the machine time paid. The combine
runs no test: its cost is reading, verifying and judging the part files.

Usage: python benchmarks/ci_shards.py [--tests 800] [--work-ms 5] [--parts 1 2 4]
       [--repeat 3] [--json]
No timing is asserted anywhere: this prints figures for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_vs_pytest import BARE, ENV, EVOLVE

PER_MODULE = 20


def timed(argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the process and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in ok:
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def make_repo(folder: Path, tests: int, work_ms: float) -> Path:
    repo = folder / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "pytest.ini").write_text("[pytest]\naddopts = -p no:hypothesispytest\n")
    for module in range(0, tests, PER_MODULE):
        body = ["import time", ""]
        for index in range(module, min(module + PER_MODULE, tests)):
            body += ["", f"def test_{index}():", f"    time.sleep({work_ms / 1000!r})",
                     f"    assert {index} + 1 == {index + 1}", ""]  # fmt: skip
        (repo / "tests" / f"test_m{module // PER_MODULE:03d}.py").write_text("\n".join(body))
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "suite"]):  # fmt: skip
        subprocess.run(argv, cwd=repo, env=ENV, check=True)
    timed([*EVOLVE, "baseline", "record", "--reruns", "0"], repo)
    (repo / "README").write_text("a neutral change\n")
    for argv in (["git", "switch", "-q", "-c", "candidate"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "neutral"]):  # fmt: skip
        subprocess.run(argv, cwd=repo, env=ENV, check=True)
    return repo


def one_round(repo: Path, counts: list[int], parts_dir: Path) -> dict[str, object]:
    figures: dict[str, object] = {"bare": timed(BARE, repo, ok=(0,))}
    for count in counts:
        files, walls = [], []
        for index in range(1, count + 1):
            out = parts_dir / f"{count}-{index}.json"
            walls.append(timed([*EVOLVE, "check", "--shard", f"{index}/{count}",
                                "--out", str(out), "--base", "main"], repo))  # fmt: skip
            files.append(str(out))
        combine = timed([*EVOLVE, "check", "--combine", *files, "--base", "main"], repo)
        figures[str(count)] = {"parts": walls, "combine": combine}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=800)
    parser.add_argument("--work-ms", type=float, default=5.0)
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ci-shards-") as folder:
        repo = make_repo(Path(folder), args.tests, args.work_ms)
        rounds = [one_round(repo, args.parts, Path(folder)) for _ in range(args.repeat)]

    def median(values: list) -> tuple[float, float]:  # type: ignore[type-arg]
        return (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))

    bare = median([r["bare"] for r in rounds])
    rows = []
    for count in args.parts:
        runs = [r[str(count)] for r in rounds]
        parts = [median([run["parts"][i] for run in runs]) for i in range(count)]
        combine = median([run["combine"] for run in runs])
        slowest = max(wall for wall, _ in parts)
        rows.append({
            "parts": count,
            "part_wall_s": [round(wall, 2) for wall, _ in parts],
            "part_ratio": [round(wall / bare[0], 2) for wall, _ in parts],
            "combine_wall_s": round(combine[0], 2), "combine_cpu_s": round(combine[1], 2),
            "combine_ratio": round(combine[0] / bare[0], 2),
            "n_machines_ratio": round((slowest + combine[0]) / bare[0], 2),
            "machine_time_ratio": round(sum(wall for wall, _ in parts) / bare[0], 2),
        })  # fmt: skip
    result = {"tests": args.tests, "work_ms": args.work_ms, "repeat": args.repeat,
              "bare_wall_s": round(bare[0], 2), "bare_cpu_s": round(bare[1], 2),
              "rows": rows}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.tests} tests of {args.work_ms:g} ms; bare pytest {bare[0]:.2f} s "
          f"({bare[1]:.2f} s cpu); medians of {args.repeat}")  # fmt: skip
    print("| N | each part (x bare) | combine | N machines: slowest part + combine | "
          "machine time (sum of parts) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        each = ", ".join(f"{r:.2f}x" for r in row["part_ratio"])
        combine = (f"{row['combine_wall_s']:.2f} s ({row['combine_ratio']:.2f}x; "
                   f"{row['combine_cpu_s']:.2f} s cpu)")  # fmt: skip
        print(f"| {row['parts']} | {each} | {combine} | **{row['n_machines_ratio']:.2f}x** | "
              f"{row['machine_time_ratio']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
