"""Run one task: its own process group, its timeout, its declared environment, its evidence.

The outcome is one of:
- `ok`: exit 0 and the declared evidence is there;
- `silent`: exit 0 without the evidence (a job that "succeeds" while doing nothing);
- `failed`: a non-zero exit, or a command that cannot be started;
- `timeout`: the group outlived `timeout_s` and was ended (TERM, then KILL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.capture import BoundedCapture
from agent.config import TaskConfig
from agent.procgroup import run_in_group

# What any process needs to run at all; nothing here can hold a secret. Everything else
# reaches a task only when its `env` list names it.
# RATCHET_SANDBOX_GRANTED: what the sandbox this agent runs in (if any) granted; a gate
# a task starts plans its own, nested sandbox from it (evolution/sandbox/enter.py).
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "RATCHET_SANDBOX_GRANTED")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
TAIL_CHARS = 2000
# When the runtime ends a task (seconds since the epoch): a task whose work may not fit
# (the safety net) plans by it instead of being killed at the same point on every tick.
DEADLINE_VAR = "AGENT_TASK_DEADLINE"
RAN = ("ok", "silent", "failed", "timeout")  # the process ran: its duration means something


@dataclass(frozen=True)
class TaskOutcome:
    status: str
    exit_code: int | None
    duration_s: float
    detail: str
    stdout_tail: str
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def task_environment(
    task: TaskConfig, source: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    env = {name: source[name] for name in (*BASE_ENV, *task.env) if name in source}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra)
    return env


def time_left(environ: Mapping[str, str]) -> float | None:
    """Seconds until the runtime ends this task; None outside a task (or a bad value:
    a task started by hand has no deadline)."""
    try:
        return float(environ[DEADLINE_VAR]) - time.time()
    except (KeyError, ValueError):
        return None


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when a file is written or replaced, at the file system's resolution.

    Comparing before and after is exact where "mtime after the start" is not: the
    kernel stamps files from a coarse clock that can lag `time.time()` by milliseconds.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def run_task(
    task: TaskConfig,
    *,
    root: Path,
    env: Mapping[str, str],
    redact: Callable[[str], str],
    pgid_file: Path | None = None,
    poll: Callable[[], None] | None = None,
    grace_s: float = 2.0,
) -> TaskOutcome:
    evidence_file = task.evidence_file
    evidence_path = None if evidence_file is None else root / evidence_file
    before = None if evidence_path is None else _stamp(evidence_path)
    stdout, stderr = BoundedCapture(), BoundedCapture()
    start = time.monotonic()
    try:
        result = run_in_group(
            task.argv,
            cwd=root,
            env=env,
            output=(stdout.write_fd, stderr.write_fd),
            timeout_s=task.timeout_s,
            grace_s=grace_s,
            pgid_file=pgid_file,
            poll=poll,
        )
    except OSError as error:
        detail = f"cannot start {task.argv[0]!r}: {error.strerror or error}"
        return TaskOutcome("failed", None, time.monotonic() - start, redact(detail), "", "")
    finally:
        for capture in (stdout, stderr):
            capture.finish()
    code = result.returncode
    if result.timed_out:
        status, detail = "timeout", f"still running after {task.timeout_s:g} s: group ended"
    elif code != 0:
        said = _last_line(stderr.text()) or _last_line(stdout.text())
        status, detail = "failed", f"exit code {code}" + (f": {said}" if said else "")
    elif task.evidence == "stdout" and not stdout.has_text:
        status, detail = "silent", "exit 0 but nothing on stdout"
    elif evidence_path is not None and (
        _stamp(evidence_path) is None or _stamp(evidence_path) == before
    ):
        status, detail = "silent", f"exit 0 but {evidence_file} was not written"
    else:
        status, detail = "ok", ""
    return TaskOutcome(
        status,
        code,
        result.duration_s,
        redact(detail),
        # Redact before cutting: a cut could halve a secret and let the half through.
        redact(stdout.text())[-TAIL_CHARS:],
        redact(stderr.text())[-TAIL_CHARS:],
    )


def _last_line(text: str, limit: int = 200) -> str:
    """The line an operator reads first: usually the error that ended the task."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
