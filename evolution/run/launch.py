"""Run the test command on a run folder's tree and return a result that can be trusted, or
refuse.

The suite is untrusted code. It runs:
- in its own process group, bounded per test (pytest-timeout's signal method) and as a
  whole (the group is killed);
- inside the OS sandbox (`evolution.sandbox`), when the isolation chosen for it says so:
  it can write only its private tmp, home and out folders, and cannot read the user's
  checkout, the repository, the gate's state or anyone's home folder
  (`evolution.run.confine`, the one way any start on a run's tree is made);
- with an environment that names none of those, and no secret: HOME (and the XDG
  folders) is its own private, empty home (`evolution.run.environment`);
- with the gate's probe, which streams every report over an authenticated pipe, and two
  canary tests at random places.
The result is computed from the probe's frames and cross-checked against
pytest-json-report's file (`evolution.run.outcomes`). Whatever the suite printed or raised
leaves here redacted (`redacted`): every text of the result and of an invalid run's
error is on its way to a git note, the gate's output, the verdict cache or a prompt.

A suite is prepared (`suite_start`) and judged (`judged`) the same way whether it runs as
a process of its own (`run_tests`) or as a fork server's candidate
(`evolution.run.forkserver`): only how it is executed differs.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from agent.errors import InvalidRun
from agent.redact import Redactor
from evolution.policy import Policy
from evolution.run.canaries import Canaries, plant
from evolution.run.channel import Channel
from evolution.run.confine import confined as confined
from evolution.run.confine import sandboxed as sandboxed
from evolution.run.environment import environment
from evolution.run.folder import PGID_FILE, RunFolder
from evolution.run.outcomes import result_from_frames
from evolution.run.report import RunResult
from evolution.sandbox.isolation import Isolation

# What the cross-check does not read (outcomes.py compares only each test's stages);
# the plugin's option takes separate words (`nargs="+"`), so an option must follow them.
REPORT_OMIT = ("keywords", "streams", "log", "warnings", "collectors", "traceback")
# The probe, and what it imports beside itself (standard library only, like the replay).
PROBE_FILES = (
    "_ratchet_probe.py", "_ratchet_channel.py", "_ratchet_canon.py", "_ratchet_replay.py",
)  # fmt: skip


@dataclass(frozen=True)
class Shard:
    """One process's part of a full run split over several: which of how many, the
    plan of test files to processes, and the canaries planted once for all of them."""

    index: int
    count: int
    plan: dict[str, int]
    canaries: Canaries


@dataclass
class Progress:
    done: int = 0
    failed: int = 0
    total: int | None = None


ProgressCallback = Callable[[Progress], None]


def copy_probe_files(run: RunFolder) -> None:
    """The probe and its standard-library helpers (the channel's writer, the canonical
    form, the replay), into the run's read-only probe folder."""
    for name in PROBE_FILES:
        with resources.as_file(resources.files("evolution") / "probe" / name) as path:
            shutil.copyfile(path, run.probe / name)


def install_probe(
    run: RunFolder,
    select: Iterable[str] | None,
    shard: Shard | None = None,
    stop_on: Iterable[str] | None = None,
    file_map: MapRequest | None = None,
) -> dict[str, str]:
    """Copy the plugin, plant fresh canaries (and write the selection and the tests
    whose failure stops the run and those not to map, or this process's part of the
    plan); the variables that tell the probe (it takes them out of the environment at
    import)."""
    copy_probe_files(run)
    canaries = shard.canaries if shard is not None else plant(run)
    variables = {"RATCHET_CANARIES": canaries.env_value, "RATCHET_TREE": str(run.tree)}
    if shard is not None:
        plan = run.probe / "shards.json"
        plan.write_text(json.dumps(shard.plan), encoding="utf-8")
        variables["RATCHET_SHARD"] = f"{shard.index}/{shard.count}/{plan}"
    known = None if file_map is None else file_map.known
    for name, variable, tests in (("select", "RATCHET_SELECT", select),
                                  ("stop", "RATCHET_STOP", stop_on),
                                  ("unmapped", "RATCHET_MAP", known)):  # fmt: skip
        listing = run.probe / name
        listing.unlink(missing_ok=True)
        if tests is not None:
            listing.write_text("\n".join(sorted(set(tests))) + "\n", encoding="utf-8")
            variables[variable] = str(listing)
    return variables


def selection_files(tree: Path, select: Iterable[str]) -> list[str]:
    """The selection's test files the tree has (the probe keeps only the selected ids):
    a node id pytest cannot find ends the whole run (exit 4), or a module that no longer
    imports, and a selection may name a test the tree lacks (bisecting over a deletion),
    which must read as missing, a regression like any other."""
    files = {nodeid.partition("::")[0] for nodeid in select}
    return sorted(path for path in files if (tree / path).exists())


def suite_command(policy: Policy, coverage_rc: Path | None = None) -> list[str]:
    """The policy's test command; a `python -m pytest` one under `coverage run` with
    `coverage_rc` (fault localisation, a coverage map)."""
    command = policy.argv()
    if coverage_rc is not None and command[1:3] == ["-m", "pytest"]:
        command = [command[0], "-m", "coverage", "run", f"--rcfile={coverage_rc}", *command[1:]]
    return command


def pytest_flags(policy: Policy, report: Path | str) -> list[str]:
    """The options every gate run adds to pytest, the probe's `-p` aside (a fork server
    loads pytest's plugins with these before any candidate, but never the probe;
    `report` "none" writes no JSON report)."""
    return [
        "-p", "no:cacheprovider", "-p", "no:rerunfailures",
        "--json-report", f"--json-report-file={report}", "--json-report-omit", *REPORT_OMIT,
        "--continue-on-collection-errors",
        f"--timeout={policy.test_timeout_s:g}", "--timeout-method=signal",
    ]  # fmt: skip


def _watch_progress(channel: Channel, sink: ProgressCallback | None) -> Callable[[], None]:
    state = Progress()
    seen = 0

    def poll() -> None:
        nonlocal seen
        if sink is None:
            return
        frames = channel.snapshot()
        for frame in frames[seen:]:
            kind = frame.get("kind")
            if kind == "collected":
                state.total = len(frame.get("nodeids", []))
            elif kind == "report" and "subtest" not in frame:
                when, outcome = frame.get("when"), frame.get("outcome")
                if when == "call" or (when == "setup" and outcome != "passed"):
                    state.done += 1
                    state.failed += outcome not in ("passed", "skipped")
        if len(frames) != seen:
            seen = len(frames)
            sink(state)

    return poll


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def output_redactor() -> Redactor:
    """What the suite's texts pass through: the gate's secret values (its environment's
    secret-named variables and the vault secrets granted to it, which the suite never
    had but may have found), and every value shaped like a credential."""
    return Redactor.from_environment(shapes=True)


def redacted(result: RunResult, redact: Redactor | None = None) -> RunResult:
    """`result` with its failure and collection-error texts redacted (in place)."""
    redact = redact or output_redactor()
    result.failures = {nodeid: redact(text) for nodeid, text in result.failures.items()}
    result.collector_errors = {c: redact(text) for c, text in result.collector_errors.items()}
    return result


def _redact_error(exc: InvalidRun, redact: Redactor) -> InvalidRun:
    exc.message = redact(exc.message)
    exc.args = (exc.message,)
    exc.hint = redact(exc.hint) if exc.hint else exc.hint
    exc.lines = [redact(line) for line in exc.lines]
    return exc


def _explain(exc: InvalidRun, output: Path) -> InvalidRun:
    tail = _tail(output)
    if "no such option: --json-report" in tail or "unrecognized arguments: --json" in tail:
        exc.message = "pytest-json-report is not installed where the test command runs"
    elif "unrecognized arguments: --timeout" in tail:
        exc.message = "pytest-timeout is not installed where the test command runs"
    exc.hint = tail or None
    return exc


@dataclass(frozen=True)
class MapRequest:
    """A run that reports each test's files (`result.covers`, the staged verdict's map):
    every test's but those in `known`, whose files an older map holds and no change
    since has touched (testmon's incremental update, by file)."""

    known: frozenset[str] = frozenset()


@dataclass
class SuiteStart:
    """One start of the suite on a run's tree: the command (the probe loaded, the gate's
    flags, the selection), its environment, and where its JSON report goes."""

    argv: list[str]
    env: dict[str, str]
    report: Path


@dataclass(frozen=True)
class Ended:
    """How a start ended: its exit status, its time, and what the launcher applied."""

    returncode: int
    duration_s: float
    applied: dict[str, Any]


# Runs a SuiteStart with a fresh channel, both streams to the path given; InvalidRun
# when the start is no run (a gate run's `confined`, or a fork server's candidate).
Execute = Callable[[SuiteStart, Channel, Path], Ended]


def suite_start(
    policy: Policy,
    run: RunFolder,
    *,
    select: Iterable[str] | None = None,
    coverage_rc: Path | None = None,
    contexts: bool = False,
    shard: Shard | None = None,
    record: dict[str, Any] | None = None,
    by_file: bool = False,
    file_map: MapRequest | None = None,
    stop_on: Iterable[str] | None = None,
) -> SuiteStart:
    """Prepare the run folder for one start of the suite (no report left, an empty home,
    the probe and fresh canaries) and say how to start it. The arguments are
    `run_tests`'s; every start of the suite, one process or a fork server's candidate,
    is prepared here."""
    report = run.out / "report.json"
    report.unlink(missing_ok=True)
    run.empty_home()
    env = environment(run)
    env.update(install_probe(run, select, shard, stop_on, file_map))
    command = suite_command(policy, coverage_rc)
    if contexts and command != policy.argv():
        env["RATCHET_CONTEXTS"] = "1"
    if record is not None:
        env["RATCHET_RECORD"] = json.dumps(record)
    argv = [*command, "-p", "_ratchet_probe", *pytest_flags(policy, report)]
    if select is not None:
        argv += selection_files(run.tree, select) if by_file else sorted(set(select))
    return SuiteStart(argv, env, report)


def judged(
    run: RunFolder,
    isolation: Isolation,
    start: SuiteStart,
    execute: Execute,
    *,
    shard: Shard | None = None,
) -> RunResult:
    """Run `start` through `execute` with a fresh channel, and compute the result from
    the channel's frames, cross-checked (`result_from_frames`); InvalidRun unless it is
    trustworthy. Every text of the result, and of the error, leaves redacted: however
    the suite was started, what it printed takes the same way out."""
    channel = Channel()
    start.env["RATCHET_CHANNEL"] = channel.env_value
    output = run.path / "output.log"
    redact = output_redactor()
    try:
        ended = execute(start, channel, output)
        frames = channel.finish()
        try:
            result = result_from_frames(
                frames,
                returncode=ended.returncode,
                report=start.report,
                tree=run.tree,
                forbidden=run.forbidden,
                duration_s=ended.duration_s,
                shard=(shard.index, shard.count) if shard is not None else None,
            )
        except InvalidRun as exc:
            raise _explain(exc, output) from None
    except InvalidRun as exc:
        raise _redact_error(exc, redact) from None
    finally:
        channel.close()
    result.sandbox = isolation.describe(ended.applied)
    return redacted(result, redact)


def run_tests(
    policy: Policy,
    run: RunFolder,
    isolation: Isolation,
    *,
    select: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
    coverage_rc: Path | None = None,
    contexts: bool = False,
    shard: Shard | None = None,
    record: dict[str, Any] | None = None,
    by_file: bool = False,
    file_map: MapRequest | None = None,
    stop_on: Iterable[str] | None = None,
) -> RunResult:
    """Run the policy's test command on `run.tree`; raise InvalidRun unless trustworthy.

    With `coverage_rc`, a `python -m pytest` command runs under `coverage run` with that
    configuration (and with `contexts`, each test's lines are recorded under its node
    id); any other command runs as it is. With `shard`, this is one process of a split
    run (`evolution.run.shards`), and runs only its part. With `record`, the probe records
    the calls into the functions it names (`evolution.gate.behaviour`). With `by_file`, pytest
    is given the selection's files rather than its node ids (`selection_files`). With
    `file_map`, the probe reports the tree's files each test's code ran in
    (`result.covers`, the staged verdict's map). With `stop_on`, the first failure of one
    of those tests ends the run (`result.stopped`: a run that can only reject).
    """
    start = suite_start(policy, run, select=select, coverage_rc=coverage_rc, contexts=contexts,
                        shard=shard, record=record, by_file=by_file,
                        file_map=file_map, stop_on=stop_on)  # fmt: skip

    def in_group(start: SuiteStart, channel: Channel, output: Path) -> Ended:
        outcome, applied = confined(
            start.argv, run, policy, isolation, env=start.env, output=output,
            timeout_s=policy.run_timeout_s, pgid_file=run.path / PGID_FILE,
            poll=_watch_progress(channel, progress), fds=channel.child_fds,
            on_start=channel.started,
        )  # fmt: skip
        if outcome.timed_out:
            raise InvalidRun(
                f"the test run exceeded its {policy.run_timeout_s:g} s limit and was killed"
            )
        return Ended(outcome.returncode, outcome.duration_s, applied)

    return judged(run, isolation, start, in_group, shard=shard)


# Runs a command (argv, env, output) on the run's tree to its end: its exit status, or
# InvalidRun when it could not run.
Command = Callable[[list[str], dict[str, str], Path], int]


def coverage_report(
    policy: Policy, run: RunFolder, isolation: Isolation, rc: Path, command: Command | None = None
) -> dict[str, Any] | None:
    """coverage's JSON report, with contexts, of the data the last run wrote; None if
    there is none. The data was written by the code under test, so it is read inside
    the run's sandbox, like the suite itself (by `command`: a fork server's child, or a
    confined process of its own); what comes out is plain JSON."""

    def one_process(argv: list[str], env: dict[str, str], output: Path) -> int:
        outcome, _ = confined(argv, run, policy, isolation, env=env, output=output,
                              timeout_s=policy.run_timeout_s)  # fmt: skip
        return outcome.returncode

    target = run.out / "coverage.json"
    target.unlink(missing_ok=True)
    try:
        status = (command or one_process)(
            coverage_json_args(rc, target), environment(run), run.path / "coverage.log"
        )
    except InvalidRun:
        return None
    return read_json_object(target) if status == 0 else None


def imports(policy: Policy, run: RunFolder, isolation: Isolation, module: str) -> bool:
    """Whether `module` imports on the run's tree, in the suite's interpreter, environment
    and sandbox, bounded like one test: a cheap refusal of a mutant that breaks
    module-level code, before its tests are paid for. True when it cannot tell (a test
    command other than `python -m pytest` has no interpreter of the suite's to ask; a
    check that could not start says nothing of the mutant): the tests judge then."""
    command = policy.argv()
    if command[1:3] != ["-m", "pytest"]:
        return True
    try:
        outcome, _ = confined(
            [command[0], "-c", f"import {module}"], run, policy, isolation,
            env=environment(run), output=run.path / "import.log",
            timeout_s=policy.test_timeout_s,
        )  # fmt: skip
    except InvalidRun:
        return True
    return not outcome.timed_out and outcome.returncode == 0


def coverage_json_args(rc: Path, target: Path) -> list[str]:
    """The command that writes coverage's JSON report, with contexts, to `target`."""
    return [sys.executable, "-m", "coverage", "json", f"--rcfile={rc}", "--show-contexts",
            "-q", "-o", str(target)]  # fmt: skip


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object a sandboxed command wrote to `path`; None if there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
