"""A full test run split over several processes at once, held to the serial run's checks.

Why not pytest-xdist: its workers hand their reports to a controller process through
execnet, so the gate's probe could authenticate only the controller; the checks that
catch interference (the watched machinery, the canaries, the end record, the JSON
cross-check) would see what the workers chose to forward, and pytest-json-report is
known to drop tests under xdist. Here every process is a complete, separately sandboxed
run of part of the suite, with its own key and channel, its own checks and JSON report,
and the gate checks that the parts add up: every process saw the same test files, gave
each the same owner, and ran tests only from its own. A part that is not valid makes
the run invalid. A test that no process ran is missing, as in a serial run.

Each process walks the whole suite but imports only the test files the plan gives it
(collection, with pytest's assertion rewriting, is a large share of a suite of small
tests, so it must not be paid once per process). The plan balances files by the
seconds their tests took in the last full run (longest first, each to the least-loaded
process); files it does not know go by a hash of their path. A suite that took under
`MIN_SPLIT_S` of wall clock last time runs in one process: splitting it would only add
a start-up.
Flaky re-runs stay in one process, apart from everything else (`evolution.run.flaky`).

A run given a deadline it cannot meet (`Installments`: the safety net, inside an agent
task's timeout) goes in installments: the suite is split into more parts than processes,
as many parts run as fit before the deadline, each finished part is kept in the verdict
cache (signed, like a verdict), and the run stops with `Unfinished`. The next run of the
same tree, baseline, policy and environment takes the kept parts and runs the rest: a
suite longer than one task's timeout is judged over several ticks instead of being
killed at the same point on every one. What a run is expected to take is derived from the
last full run's wall time with a margin (`expected_s`), never a constant.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.atomicio import atomic_write_text
from agent.errors import InvalidRun
from evolution.gitrepo import GitRepo
from evolution.policy import Policy
from evolution.run.canaries import plant
from evolution.run.folder import RunFolder
from evolution.run.launch import MapRequest, Progress, ProgressCallback, Shard, run_tests
from evolution.run.outcomes import INTERFERED
from evolution.run.report import RunResult
from evolution.sandbox.isolation import Isolation

TIMINGS_FILE = "timings.json"
MIN_SPLIT_S = 1.5  # a run shorter than this, wall clock, gains nothing from a split
PER_TEST_S = 0.001  # pytest's own time per test, beyond the stages it reports
MARGIN = 1.5  # what a run may take beyond the last full run's wall time: a loaded host
START_S = 20.0  # and the start-up of the processes, the sandbox and collection
UNKNOWN_ROUNDS = 4  # with no full run measured yet, parts this many times the processes


class PartStore(Protocol):
    """Where finished parts are kept between runs: the gate passes its verdict cache,
    which signs what it keeps (a part read back was written by the gate)."""

    def get_data(self, key: str) -> dict[str, Any] | None: ...

    def put_data(self, key: str, data: dict[str, Any]) -> None: ...


@dataclass
class Installments:
    """A deadline (`time.monotonic()`) the run must not outlast, and where its finished
    parts are kept, under the verdict's own key."""

    cache: PartStore
    key: str
    deadline: float

    def left(self) -> float:
        return self.deadline - time.monotonic()


class Unfinished(Exception):
    """The deadline came before every part ran: `done` of `total` are kept."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"{done} of {total} parts of the suite judged")
        self.done, self.total = done, total


def expected_s(timings: Timings) -> float | None:
    """What a full run should take here, with a margin: None before any was measured."""
    return None if timings.wall_s is None else timings.wall_s * MARGIN + START_S


def run_suite(
    repo: GitRepo,
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    progress: ProgressCallback | None = None,
    *,
    with_map: MapRequest | None = None,
    installments: Installments | None = None,
) -> RunResult:
    """The whole suite on `run.tree`, in as many processes as the policy allows; with
    `with_map`, each test's files reported by the probe, for the staged verdict's map
    (`result.covers`). With `installments` whose deadline the run is not expected to
    meet, in parts over several calls (`Unfinished` until the last)."""
    timings = load_timings(repo)
    count = policy.worker_count()
    if installments is not None and with_map is None:
        expected = expected_s(timings)
        if expected is None or expected > installments.left():
            result = _in_installments(policy, run, isolation, installments, timings,
                                      expected, count, progress)  # fmt: skip
            save_timings(repo, result)
            return result
    if timings.files:
        count = min(count, len(timings.files))
    if timings.wall_s is not None and timings.wall_s < MIN_SPLIT_S:
        count = 1
    if count <= 1:
        result = run_tests(policy, run, isolation, progress=progress, file_map=with_map)
    else:
        parts = [run.part(index) for index in range(count)]
        result = _split(policy, parts, isolation, balance(timings.files, count), with_map,
                        progress)  # fmt: skip
    save_timings(repo, result)
    return result


def _split(
    policy: Policy,
    parts: list[RunFolder],
    isolation: Isolation,
    plan: dict[str, int],
    with_map: MapRequest | None,
    progress: ProgressCallback | None,
) -> RunResult:
    count = len(parts)
    canaries = plant(parts[0])
    combined = _Combined(count, progress)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="ratchet-worker") as pool:
        futures = [
            pool.submit(
                run_tests, policy, part, isolation, progress=combined.sink(index),
                file_map=with_map, shard=Shard(index, count, plan, canaries),
            )
            for index, part in enumerate(parts)
        ]
        results: list[RunResult] = []
        for index, future in enumerate(futures):
            try:
                results.append(future.result())
            except InvalidRun as exc:
                exc.message = f"worker {index + 1} of {count}: {exc.message}"
                raise
    return merge(results, time.monotonic() - started)


def _in_installments(
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    installments: Installments,
    timings: Timings,
    expected: float | None,
    workers: int,
    progress: ProgressCallback | None,
) -> RunResult:
    """The parts kept by earlier calls, plus as many more as fit before the deadline
    (after the first of this call, a part is started only while the slowest part so
    far, or the estimate before any, fits in what is left); the merged result once every
    part is there. The layout (how many parts, which files each) is kept with the first
    call, so that later calls, with other timings, fill in the same parts."""
    cache, key = installments.cache, installments.key
    layout = cache.get_data(f"{key}-layout")
    if layout is None or not isinstance(layout.get("plan"), dict):
        rounds = (UNKNOWN_ROUNDS if expected is None
                  else max(2, math.ceil(expected / max(installments.left(), 1.0))))  # fmt: skip
        total = max(2, workers * rounds)
        layout = {"total": total, "plan": balance(timings.files, total)}
        cache.put_data(f"{key}-layout", layout)
    total, plan = int(layout["total"]), {str(k): int(v) for k, v in layout["plan"].items()}
    tag = hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:12]

    def part_key(index: int) -> str:
        return f"{key}-part-{index}-of-{total}-{tag}"

    kept = {i: _part_from(cache.get_data(part_key(i))) for i in range(total)}
    done = {i: part for i, part in kept.items() if part is not None}
    todo = [i for i in range(total) if i not in done]
    if todo:
        folders = {index: run.part(index) for index in todo}
        canaries = plant(folders[todo[0]])
        combined = _Combined(total, progress)
        estimate = None if expected is None else expected * workers / total
        started = 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ratchet-part") as pool:
            running: dict[Future[RunResult], tuple[int, float]] = {}
            while True:
                # At least one part per call, whatever the estimate: each run progresses.
                while todo and len(running) < workers and (
                    not started or estimate is None or estimate <= installments.left()
                ):
                    index = todo.pop(0)
                    future = pool.submit(
                        run_tests, policy, folders[index], isolation,
                        progress=combined.sink(index), shard=Shard(index, total, plan, canaries),
                    )  # fmt: skip
                    running[future] = (index, time.monotonic())
                    started += 1
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    index, began = running.pop(future)
                    try:
                        part = future.result()
                    except InvalidRun as exc:
                        exc.message = f"part {index + 1} of {total}: {exc.message}"
                        raise
                    # The slowest part so far, with no margin of its own: the deadline
                    # already keeps a share of the task's time in reserve.
                    estimate = max(estimate or 0.0, time.monotonic() - began)
                    done[index] = part
                    cache.put_data(part_key(index), _part_data(part))
    if len(done) < total:
        raise Unfinished(len(done), total)
    parts = [done[i] for i in range(total)]
    # The parts ran at different times: as one full run, they took their sum shared
    # among the processes (what the next expectation is derived from).
    return merge(parts, sum(part.duration_s for part in parts) / workers)


def _part_data(part: RunResult) -> dict[str, Any]:
    return {"result": part.to_json(), "owners": part.owners, "durations": part.durations}


def _part_from(data: dict[str, Any] | None) -> RunResult | None:
    if data is None:
        return None
    try:
        part = RunResult.from_json(data["result"])
        part.owners = {str(k): int(v) for k, v in dict(data["owners"]).items()}
        part.durations = {str(k): float(v) for k, v in dict(data["durations"]).items()}
    except (KeyError, TypeError, ValueError):
        return None
    return part


def merge(parts: list[RunResult], duration_s: float) -> RunResult:
    """One result from the parts of a split run, or InvalidRun unless every process saw
    the same test files with the same owners (each has checked it ran only its own)."""
    owners = parts[0].owners
    if owners is None or any(part.owners != owners for part in parts):
        raise InvalidRun(f"{INTERFERED}: the workers saw different test files")
    merged = RunResult(
        outcomes={}, duration_s=duration_s, sandbox=parts[0].sandbox, owners=owners
    )
    for part in parts:
        twice = sorted(merged.outcomes.keys() & part.outcomes.keys())
        if twice:
            raise InvalidRun(f"{INTERFERED}: {twice[0]} ran in two workers")
        merged.outcomes.update(part.outcomes)
        merged.failures.update(part.failures)
        merged.collector_errors.update(part.collector_errors)
        merged.durations.update(part.durations)
        if part.covers is not None:
            merged.covers = merged.covers or {}
            for path, tests in part.covers.items():
                merged.covers.setdefault(path, set()).update(tests)
    codes = {part.exitcode for part in parts}
    # 1: some test failed somewhere; 5 (nothing collected) only if no part ran a test.
    merged.exitcode = 1 if 1 in codes else 0 if 0 in codes else max(codes)
    return merged


def balance(seconds_by_file: dict[str, float], count: int) -> dict[str, int]:
    """Test files to processes: the longest first, each to the least-loaded one."""
    loads = [0.0] * count
    plan: dict[str, int] = {}
    for path, seconds in sorted(seconds_by_file.items(), key=lambda kv: (-kv[1], kv[0])):
        index = loads.index(min(loads))
        plan[path] = index
        loads[index] += seconds
    return plan


class _Combined:
    """The parts' progress as one: the sum of what each has collected, run and failed."""

    def __init__(self, count: int, sink: ProgressCallback | None) -> None:
        self.parts = [Progress() for _ in range(count)]
        self.outer = sink
        self.lock = threading.Lock()

    def sink(self, index: int) -> ProgressCallback | None:
        if self.outer is None:
            return None

        def update(progress: Progress) -> None:
            with self.lock:
                self.parts[index] = Progress(progress.done, progress.failed, progress.total)
                totals = [part.total for part in self.parts]
                assert self.outer is not None
                self.outer(
                    Progress(
                        done=sum(part.done for part in self.parts),
                        failed=sum(part.failed for part in self.parts),
                        total=None if None in totals else sum(t or 0 for t in totals),
                    )
                )

        return update


@dataclass
class Timings:
    """What the last full run took: its wall time, and each test file's share (its
    tests' seconds, plus pytest's own time per test, which a suite of small tests is
    mostly made of)."""

    wall_s: float | None = None
    files: dict[str, float] = field(default_factory=dict)


def load_timings(repo: GitRepo) -> Timings:
    """Advisory: a missing or unreadable file means nothing is known."""
    try:
        data = json.loads((repo.state_dir / TIMINGS_FILE).read_text(encoding="utf-8"))
        wall = data.get("wall_s")
        files = {
            str(path): float(seconds)
            for path, seconds in dict(data.get("files", {})).items()
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
        }
        return Timings(float(wall) if isinstance(wall, (int, float)) else None, files)
    except (OSError, ValueError, TypeError, AttributeError):
        return Timings()


def save_timings(repo: GitRepo, result: RunResult) -> None:
    if not result.durations:
        return
    files: dict[str, float] = {}
    for nodeid, seconds in result.durations.items():
        path = nodeid.split("::", 1)[0]
        files[path] = files.get(path, 0.0) + seconds + PER_TEST_S
    data = {
        "wall_s": round(result.duration_s, 3),
        "files": {path: round(seconds, 4) for path, seconds in sorted(files.items())},
    }
    atomic_write_text(repo.state_dir_ready() / TIMINGS_FILE, json.dumps(data, indent=0))
