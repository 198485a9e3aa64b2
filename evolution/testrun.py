"""Run the test command on a worktree and return a result that can be trusted, or refuse.

The suite runs as a subprocess in its own process group, bounded per test (pytest-timeout's
signal method, so the report is still written) and as a whole (the group is killed). The
gate's probe plugin reports progress and checks that the candidate's code, not the main
checkout's, was imported.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agent.errors import InvalidRun
from agent.procgroup import run_in_group
from agent.redact import scrubbed_environment
from evolution.policy import Policy
from evolution.pytest_report import RunResult, parse_report
from evolution.worktree import PGID_FILE

REPORT_OMIT = "keywords,streams,log,warnings"
# Variables from the caller's own pytest session (or a user's shell) that would change
# what runs: the policy on main decides the test command, nothing else does.
_DROPPED_ENV_PREFIXES = ("PYTEST_", "RATCHET_")


@dataclass
class Progress:
    done: int = 0
    failed: int = 0
    total: int | None = None


ProgressCallback = Callable[[Progress], None]


def _probe_dir(folder: Path) -> Path:
    target = folder / "probe"
    target.mkdir(exist_ok=True)
    source = resources.files("evolution") / "probe" / "_ratchet_probe.py"
    with resources.as_file(source) as path:
        shutil.copyfile(path, target / "_ratchet_probe.py")
    return target


def _environment(worktree: Path, probe: Path, forbidden_root: Path, folder: Path) -> dict[str, str]:
    # No secret reaches the suite: a test that prints its environment must not leak
    # an API key into a report, a note or the verdict cache.
    env = {
        key: value
        for key, value in scrubbed_environment(os.environ).items()
        if not key.startswith(_DROPPED_ENV_PREFIXES)
    }
    paths = [str(probe), str(worktree)]
    if (worktree / "src").is_dir():
        paths.append(str(worktree / "src"))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["RATCHET_WORKTREE"] = str(worktree)
    env["RATCHET_FORBIDDEN_ROOT"] = str(forbidden_root)
    env["RATCHET_PROGRESS"] = str(folder / "progress")
    env["RATCHET_PROBE_OUT"] = str(folder / "probe.jsonl")
    return env


def _watch_progress(path: Path, sink: ProgressCallback | None) -> Callable[[], None]:
    state = Progress()
    offset = 0

    def poll() -> None:
        nonlocal offset
        if sink is None or not path.exists():
            return
        with open(path, encoding="utf-8") as handle:
            handle.seek(offset)
            chunk = handle.read()
        complete, _, _partial = chunk.rpartition("\n")
        if not complete and not chunk.endswith("\n"):
            return
        offset += len(complete) + 1
        for line in complete.splitlines():
            if line.startswith("collected "):
                state.total = max(state.total or 0, int(line.split()[1]))
            elif line:
                state.done += 1
                state.failed += line != "passed" and line != "skipped"
        sink(state)

    return poll


def _check_imports(probe_out: Path) -> None:
    if not probe_out.exists():
        raise InvalidRun("the gate's probe plugin did not run: is the test command a pytest run?")
    leaks: list[tuple[str, str]] = []
    for line in probe_out.read_text(encoding="utf-8").splitlines():
        if line.strip():
            leaks += [tuple(item) for item in json.loads(line).get("leaks", [])]
    if leaks:
        shown = ", ".join(f"{name} from {path}" for name, path in sorted(set(leaks))[:5])
        raise InvalidRun(
            "the test run imported code from the main checkout instead of the candidate "
            f"({shown}); check for an editable install or PYTHONPATH that shadows it"
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_tests(
    policy: Policy,
    folder: Path,
    worktree: Path,
    forbidden_root: Path,
    *,
    select: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
    coverage_rc: Path | None = None,
) -> RunResult:
    """Run the policy's test command in `worktree`; raise InvalidRun unless it is trustworthy.

    With `coverage_rc`, a `python -m pytest` command runs under `coverage run` with that
    configuration (fault localisation); any other command runs as it is.
    """
    report = folder / "report.json"
    report.unlink(missing_ok=True)
    for stale in ("progress", "probe.jsonl"):
        (folder / stale).unlink(missing_ok=True)
    probe = _probe_dir(folder)
    env = _environment(worktree, probe, forbidden_root, folder)
    command = policy.argv()
    if coverage_rc is not None and command[1:3] == ["-m", "pytest"]:
        command = [command[0], "-m", "coverage", "run", f"--rcfile={coverage_rc}", *command[1:]]
    argv = [
        *command,
        "-p",
        "_ratchet_probe",
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
    if select is not None:
        chosen = sorted(set(select))
        (folder / "select").write_text("\n".join(chosen) + "\n", encoding="utf-8")
        env["RATCHET_SELECT"] = str(folder / "select")
        argv += chosen
    output = folder / "output.log"
    try:
        outcome = run_in_group(
            argv,
            cwd=worktree,
            env=env,
            output=output,
            timeout_s=policy.run_timeout_s,
            pgid_file=folder / PGID_FILE,
            poll=_watch_progress(folder / "progress", progress),
        )
    except OSError as exc:
        raise InvalidRun(f"could not start the test command {argv[0]!r}: {exc}") from None
    if outcome.timed_out:
        raise InvalidRun(
            f"the test run exceeded its {policy.run_timeout_s:g} s limit and was killed"
        )
    try:
        result = parse_report(report, outcome.returncode)
    except InvalidRun as exc:
        tail = _tail(output)
        if "no such option: --json-report" in tail or "unrecognized arguments: --json" in tail:
            exc.message = "pytest-json-report is not installed where the test command runs"
        elif "unrecognized arguments: --timeout" in tail:
            exc.message = "pytest-timeout is not installed where the test command runs"
        exc.hint = tail or None
        raise
    _check_imports(folder / "probe.jsonl")
    result.duration_s = outcome.duration_s
    return result
