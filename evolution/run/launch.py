"""Run the test command on a run folder's tree and return a result that can be trusted, or
refuse.

The suite is untrusted code. It runs:
- in its own process group, bounded per test (pytest-timeout's signal method) and as a
  whole (the group is killed);
- inside the OS sandbox (`evolution.sandbox`), when the isolation chosen for it says so:
  it can write only its private tmp, home and out folders, and cannot read the user's
  checkout, the repository, the gate's state or anyone's home folder;
- with an environment that names none of those, and no secret: HOME (and the XDG
  folders) is its own private, empty home;
- with the gate's probe, which streams every report over an authenticated pipe, and two
  canary tests at random places.
The result is computed from the probe's frames and cross-checked against
pytest-json-report's file (`evolution.run.outcomes`). Whatever the suite printed or raised
leaves here redacted (`redacted`): every text of the result and of an invalid run's
error is on its way to a git note, the gate's output, the verdict cache or a prompt.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from agent.errors import InvalidRun
from agent.procgroup import GroupResult, run_in_group
from agent.redact import Redactor, scrubbed_environment
from evolution.policy import Policy
from evolution.run.canaries import Canaries, plant
from evolution.run.channel import Channel
from evolution.run.folder import PGID_FILE, RunFolder
from evolution.run.outcomes import result_from_frames
from evolution.run.report import RunResult
from evolution.sandbox.enter import SETUP_FAILED, parse_status, undumpable
from evolution.sandbox.isolation import Isolation, launcher_argv
from evolution.sandbox.plan import (
    START_HINT,
    Confinement,
    launch_plan,
    read_paths,
    start_failure,
)

REPORT_OMIT = "keywords,streams,log,warnings,collectors"
# The probe, and what it imports beside itself (standard library only, like the replay).
PROBE_FILES = (
    "_ratchet_probe.py", "_ratchet_channel.py", "_ratchet_canon.py", "_ratchet_replay.py",
)  # fmt: skip
# Variables from the caller's own pytest session (or a user's shell) that would change
# what runs: the policy on main decides the test command, nothing else does.
_DROPPED_ENV_PREFIXES = ("PYTEST_", "RATCHET_")
# Variables that point at services of the user's session outside the sandbox (a
# terminal multiplexer, an ssh agent, a desktop bus, a display, the terminal itself):
# each is a way to ask something outside to act.
_SESSION_VARIABLES = frozenset({
    "TMUX", "TMUX_PANE", "TMUX_TMPDIR", "STY", "SSH_TTY", "SSH_AUTH_SOCK", "SSH_AGENT_PID",
    "SSH_CONNECTION", "SSH_CLIENT", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR",
    "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "GPG_AGENT_INFO", "KRB5CCNAME", "WINDOWID",
    "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "INVOCATION_ID", "JOURNAL_STREAM",
})  # fmt: skip


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
    run: RunFolder, select: Iterable[str] | None, shard: Shard | None = None
) -> dict[str, str]:
    """Copy the plugin, plant fresh canaries (and write the selection, or this
    process's part of the plan); the variables that tell the probe (it takes them out
    of the environment at import)."""
    copy_probe_files(run)
    canaries = shard.canaries if shard is not None else plant(run)
    variables = {"RATCHET_CANARIES": canaries.env_value, "RATCHET_TREE": str(run.tree)}
    if shard is not None:
        plan = run.probe / "shards.json"
        plan.write_text(json.dumps(shard.plan), encoding="utf-8")
        variables["RATCHET_SHARD"] = f"{shard.index}/{shard.count}/{plan}"
    selection = run.probe / "select"
    selection.unlink(missing_ok=True)
    if select is not None:
        selection.write_text("\n".join(sorted(set(select))) + "\n", encoding="utf-8")
        variables["RATCHET_SELECT"] = str(selection)
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
        "-p",
        "no:cacheprovider",
        "-p",
        "no:rerunfailures",
        "--json-report",
        f"--json-report-file={report}",
        f"--json-report-omit={REPORT_OMIT}",
        "--continue-on-collection-errors",
        f"--timeout={policy.test_timeout_s:g}",
        "--timeout-method=signal",
    ]


def _names_forbidden(value: str, forbidden: Iterable[Path]) -> bool:
    return any(str(path) in value for path in forbidden)


# The XDG base folders, each in the run's private home (the cache in its tmp).
_XDG_FOLDERS = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
}


def environment(run: RunFolder) -> dict[str, str]:
    """The suite's environment: no secret, nothing naming the checkout or the repository
    (PATH keeps its other entries), no way back into the user's session, its own tmp
    and private home, and the tree first on the import path."""
    env: dict[str, str] = {}
    for key, value in scrubbed_environment(os.environ).items():
        if key.startswith(_DROPPED_ENV_PREFIXES) or key in _SESSION_VARIABLES:
            continue
        if key == "PATH":
            entries = [p for p in value.split(os.pathsep) if not _names_forbidden(p, run.forbidden)]
            value = os.pathsep.join(entries)
        elif _names_forbidden(value, run.forbidden):
            continue
        env[key] = value
    paths = [str(run.probe), str(run.tree)]
    if (run.tree / "src").is_dir():
        paths.append(str(run.tree / "src"))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PWD"] = str(run.tree)
    for name in ("TMPDIR", "TEMP", "TMP"):
        env[name] = str(run.tmp)
    # The user's home is not the suite's: configuration (and the credentials in it) that
    # a tool finds through HOME or XDG is the run's own, empty, home's.
    env["HOME"] = str(run.home)
    for name, folder in _XDG_FOLDERS.items():
        env[name] = str(run.home / folder)
    env["XDG_CACHE_HOME"] = str(run.tmp / ".cache")
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages() or ""):
        # Packages installed with `pip install --user` stay importable (the sandbox
        # grants that folder): the user base is found through HOME otherwise.
        env.setdefault("PYTHONUSERBASE", site.getuserbase())
    env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(run.tmp / ".hypothesis"))
    return env


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


def sandboxed(argv: list[str], run: RunFolder, policy: Policy, status_fd: int) -> list[str]:
    """`argv` wrapped in the launcher with this run's plan. Every sandboxed start goes
    through here, so it is also where the gate makes itself unreadable to the suite."""
    undumpable()
    confinement = Confinement(
        tree=run.tree,
        tmp=run.tmp,
        out=run.out,
        probe=run.probe,
        forbidden=run.forbidden,
        writable=policy.writable,
        shared=policy.shared,
        network=policy.network,
        command=tuple(argv[:1]),
        hidden=run.hidden,
        home=run.home,
        read_paths=read_paths(policy.read_paths),
    )
    plan = launch_plan(confinement, run.path, status_fd)
    return launcher_argv(plan, argv)


def read_status(fd: int) -> dict[str, Any]:
    """What the launcher applied (a line before exec; another if the exec failed), read
    until every copy of the pipe is closed: at the command's exec, or its end."""
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return parse_status(data)


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
) -> RunResult:
    """Run the policy's test command on `run.tree`; raise InvalidRun unless trustworthy.

    With `coverage_rc`, a `python -m pytest` command runs under `coverage run` with that
    configuration (and with `contexts`, each test's lines are recorded under its node
    id); any other command runs as it is. With `shard`, this is one process of a split
    run (`evolution.run.shards`), and runs only its part. With `record`, the probe records
    the calls into the functions it names (`evolution.gate.behaviour`). With `by_file`, pytest
    is given the selection's files rather than its node ids (`selection_files`).
    """
    report = run.out / "report.json"
    report.unlink(missing_ok=True)
    run.empty_home()
    env = environment(run)
    env.update(install_probe(run, select, shard))
    command = suite_command(policy, coverage_rc)
    if contexts and command != policy.argv():
        env["RATCHET_CONTEXTS"] = "1"
    if record is not None:
        env["RATCHET_RECORD"] = json.dumps(record)
    argv = [*command, "-p", "_ratchet_probe", *pytest_flags(policy, report)]
    if select is not None:
        argv += selection_files(run.tree, select) if by_file else sorted(set(select))
    channel = Channel()
    env["RATCHET_CHANNEL"] = channel.env_value
    output = run.path / "output.log"
    redact = output_redactor()
    try:
        outcome, applied = confined(
            argv, run, policy, isolation, env=env, output=output,
            timeout_s=policy.run_timeout_s, pgid_file=run.path / PGID_FILE,
            poll=_watch_progress(channel, progress), fds=channel.child_fds,
            on_start=channel.started,
        )  # fmt: skip
        if outcome.timed_out:
            raise InvalidRun(
                f"the test run exceeded its {policy.run_timeout_s:g} s limit and was killed"
            )
        frames = channel.finish()
        try:
            result = result_from_frames(
                frames,
                returncode=outcome.returncode,
                report=report,
                tree=run.tree,
                forbidden=run.forbidden,
                duration_s=outcome.duration_s,
                shard=(shard.index, shard.count) if shard is not None else None,
            )
        except InvalidRun as exc:
            raise _explain(exc, output) from None
    except InvalidRun as exc:
        raise _redact_error(exc, redact) from None
    finally:
        channel.close()
    result.sandbox = isolation.describe(applied)
    return redacted(result, redact)


def coverage_report(
    policy: Policy, run: RunFolder, isolation: Isolation, rc: Path
) -> dict[str, Any] | None:
    """coverage's JSON report, with contexts, of the data the last run wrote; None if
    there is none. The data was written by the code under test, so it is read inside
    the run's sandbox, like the suite itself; what comes out is plain JSON."""
    target = run.out / "coverage.json"
    target.unlink(missing_ok=True)
    try:
        outcome, _ = confined(
            coverage_json_args(rc, target), run, policy, isolation, env=environment(run),
            output=run.path / "coverage.log", timeout_s=policy.run_timeout_s,
        )  # fmt: skip
    except InvalidRun:
        return None
    return read_json_object(target) if outcome.returncode == 0 else None


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


def confined(
    argv: list[str],
    run: RunFolder,
    policy: Policy,
    isolation: Isolation,
    *,
    env: dict[str, str],
    output: Path,
    timeout_s: float,
    pgid_file: Path | None = None,
    poll: Callable[[], None] | None = None,
    fds: Iterable[int] = (),
    on_start: Callable[[], None] | None = None,
) -> tuple[GroupResult, dict[str, Any]]:
    """Run `argv` on the run's tree in its own group, inside the sandbox when the
    isolation says so: the outcome, and what the launcher applied."""
    status_read, status_write = os.pipe() if isolation.sandboxed else (-1, -1)
    if isolation.sandboxed:
        argv = sandboxed(argv, run, policy, status_write)
    try:
        try:
            outcome = run_in_group(
                argv, cwd=run.tree, env=env, output=output, timeout_s=timeout_s,
                pgid_file=pgid_file, poll=poll, on_start=on_start,
                pass_fds=[*fds, *([status_write] if status_write >= 0 else [])],
            )  # fmt: skip
        except OSError as exc:
            raise InvalidRun(f"could not start the test command {argv[0]!r}: {exc}") from None
        _close(status_write)
        status_write = -1
        applied = read_status(status_read) if status_read >= 0 else {}
        status_read = -1
    finally:
        _close(status_write)
        _close(status_read)
    if outcome.returncode == SETUP_FAILED and "error" in applied:
        raise InvalidRun(f"could not enter the sandbox: {applied['error']}")
    failure = start_failure(applied)
    if failure is not None:
        raise InvalidRun(failure, hint=START_HINT)
    return outcome, applied


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)
