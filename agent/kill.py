"""`agent kill` and `agent resume`: the operator's stop button, and proof that it worked.

`kill` writes the flag first (so nothing new starts: every tick, task and model call
checks it), then ends what is running: the `agent run` or `agent tick` holding the
single-instance lock, and the current task's process group. SIGTERM first, so the
runner records the interruption; SIGKILL after the grace period. It then checks by pid
that every one of them is gone, and says which are not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.atomicio import atomic_write_text
from agent.clock import utc_now
from agent.locks import holder_by_trying
from agent.procgroup import group_alive, group_is_ours, pid_alive, read_pgid
from agent.tick import Runtime


@dataclass
class KillReport:
    flag: str
    runner_pid: int | None = None
    task_pgid: int | None = None
    signalled: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 3 if self.survivors or self.errors else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "runner_pid": self.runner_pid,
            "task_pgid": self.task_pgid,
            "signalled": self.signalled,
            "survivors": self.survivors,
            "errors": self.errors,
            "exit_code": self.exit_code,
        }


def kill(runtime: Runtime, *, reason: str = "", grace_s: float = 3.0) -> KillReport:
    flag = runtime.config.kill_flag_path
    who = os.environ.get("SUDO_USER") or os.environ.get("USER") or f"uid {os.getuid()}"
    note = f"killed by {who} at {utc_now().isoformat()}" + (f": {reason}" if reason else "")
    atomic_write_text(flag, note + "\n")
    report = KillReport(flag=str(flag))
    # The flag is already down, so a tick that starts now refuses: trying the lock is safe.
    report.runner_pid = holder_by_trying(runtime.lock.path)
    report.task_pgid = read_pgid(runtime.pgid_file)
    runtime.trace.event("kill", runner=report.runner_pid, task_pgid=report.task_pgid,
                        reason=reason)
    targets = _targets(report, runtime.config.root.resolve())
    _signal_all(targets, signal.SIGTERM, report)
    if not _wait_gone(targets, grace_s):
        _signal_all(targets, signal.SIGKILL, report)
        _wait_gone(targets, 2.0)
    report.survivors = [name for name, alive, _ in targets if alive()]
    runtime.trace.event("kill.done", survivors=report.survivors, errors=report.errors)
    return report


Target = tuple[str, Callable[[], bool], Callable[[int], None]]  # name, is alive?, send


def _targets(report: KillReport, root: Path) -> list[Target]:
    targets: list[Target] = []
    pid = report.runner_pid
    if pid is not None and pid > 0 and pid != os.getpid():
        targets.append((f"agent pid {pid}", lambda: pid_alive(pid), lambda s: os.kill(pid, s)))
        with contextlib.suppress(ProcessLookupError):
            # The runner's own group (systemd and shells make it a leader): any helper
            # it started outside a task dies with it.
            if os.getpgid(pid) == pid:
                targets.append(
                    (f"agent group {pid}", lambda: group_alive(pid), lambda s: os.killpg(pid, s))
                )
    pgid = report.task_pgid
    # Tasks run in the deployment root; a recorded group that runs elsewhere is a
    # stale id, since reused by somebody else's program.
    if pgid is not None and group_is_ours(pgid, root):
        targets.append(
            (f"task group {pgid}", lambda: group_alive(pgid), lambda s: os.killpg(pgid, s))
        )
    return targets


def _signal_all(targets: list[Target], sig: signal.Signals, report: KillReport) -> None:
    for name, alive, send in targets:
        if not alive():
            continue
        try:
            send(sig)
            report.signalled.append(f"{sig.name} {name}")
        except ProcessLookupError:
            pass
        except PermissionError:
            report.errors.append(f"not allowed to signal {name}: run as its user")


def _wait_gone(targets: list[Target], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive() for _, alive, _ in targets):
            return True
        time.sleep(0.02)
    return not any(alive() for _, alive, _ in targets)


def resume(runtime: Runtime) -> bool:
    """Clear the kill flag; True when there was one."""
    flag = runtime.config.kill_flag_path
    existed = flag.exists()
    flag.unlink(missing_ok=True)
    runtime.trace.event("resume", had_flag=existed)
    return existed
