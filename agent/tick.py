"""One guarded tick: the guards, then every task in dependency order, all on the record.

Guards run before the tick and again before every task: the kill flag refuses (exit 0:
an operator asked for it), a reached spend cap halts (exit 1), and a second instance is
skipped (exit 1). Every tick writes a ledger row and trace events, even when it
refuses, so silence always means the agent is not running at all — which is what the
watchdog looks for.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.accesslog import ChainBroken
from agent.clock import utc_now
from agent.config import RuntimeConfig, TaskConfig
from agent.ledger import Ledger
from agent.locks import LockBusy, ProcessLock
from agent.ping import Pinger, kind_for
from agent.procgroup import end_orphaned_group
from agent.redact import SECRET_NAMES_VAR, Redactor
from agent.tasks import DEADLINE_VAR, RAN, TaskOutcome, run_task, task_environment
from agent.trace import Trace
from agent.vault import Vault, VaultError

KILL_MESSAGE = "kill flag present — refusing to run"
CAP_MESSAGE = "spend cap reached — halting"
LOCK_NAME = "agent.lock"
PGID_NAME = "task.pgid"
NOT_DUE = "not-due"

EXIT_CODES = {
    "ok": 0,
    "degraded": 0,
    "refused-kill": 0,
    "halted-cap": 1,
    "skipped": 1,
    "failed": 1,
    "interrupted": 3,
    "halted-vault": 1,
}


class Interrupted(Exception):
    """SIGTERM or SIGINT reached a tick: the running task's group is being ended."""


@dataclass
class Runtime:
    """What one agent process works with, opened once."""

    config: RuntimeConfig
    ledger: Ledger
    trace: Trace
    redact: Redactor
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    vault: Vault | None = None
    vault_problem: str = ""  # set when a vault exists but cannot be trusted: ticks halt
    ping: Pinger = field(default_factory=lambda: Pinger(None))

    @classmethod
    def open(cls, config: RuntimeConfig) -> Runtime:
        vault, problem, values = _open_vault(config)
        redact = Redactor.from_environment(config.secret_env_names(), extra=values)
        ledger = Ledger(config.ledger)
        trace = Trace(config.runs / "traces", redact=redact)
        return cls(config, ledger, trace, redact, vault=vault, vault_problem=problem,
                   ping=Pinger(config.ping_url, trace=trace, redact=redact))

    @property
    def lock(self) -> ProcessLock:
        return ProcessLock(self.config.runs / LOCK_NAME)

    @property
    def pgid_file(self) -> Path:
        return self.config.runs / PGID_NAME

    def close(self) -> None:
        self.ping.close()
        self.ledger.close()


@dataclass
class TickResult:
    tick_id: int
    status: str
    reason: str = ""
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_json(self) -> dict[str, Any]:
        return {
            "tick": self.tick_id,
            "status": self.status,
            "reason": self.reason,
            "tasks": self.tasks,
            "exit_code": self.exit_code,
        }

    def summary(self) -> str:
        """A few lines for a person reading a ping: the verdict, then each task."""
        reason = f" — {self.reason}" if self.reason else ""
        lines = [f"tick {self.tick_id}: {self.status}{reason}"]
        lines += [
            f"{t['status']:<11} {t['task']} {t['duration_s']:.2f} s {t['detail']}".rstrip()
            for t in self.tasks
        ]
        return "\n".join(lines)


def _open_vault(config: RuntimeConfig) -> tuple[Vault | None, str, dict[str, str]]:
    """The vault, if there is one, with its access log verified: a broken chain means
    somebody read or changed secrets off the record, and nothing may run until a
    person has looked."""
    vault = Vault(config.runs)
    if not vault.exists:
        return None, "", {}
    try:
        values = vault.values()
        vault.log.verify()
    except (VaultError, ChainBroken) as error:
        return vault, f"secrets: {error}", {}
    return vault, "", values


def refusal(runtime: Runtime) -> tuple[str, str] | None:
    """(status, message) when a guard forbids work now, else None."""
    if runtime.config.kill_flag_path.exists():
        return "refused-kill", KILL_MESSAGE
    if runtime.vault_problem:
        return "halted-vault", f"{runtime.vault_problem} — halting"
    cap = runtime.config.cap_usd
    spent = runtime.ledger.over_cap(cap)
    if spent is not None:
        return "halted-cap", f"{CAP_MESSAGE} (${spent:.4f} of ${cap:.2f} today)"
    return None


def record_refusal(runtime: Runtime, trigger: str, status: str, reason: str) -> TickResult:
    tick_id = runtime.ledger.start_tick(trigger, status, reason)
    runtime.ledger.finish_tick(tick_id, status, reason)
    runtime.trace.event("tick.refused", tick=tick_id, trigger=trigger, status=status,
                        reason=reason)
    return TickResult(tick_id, status, reason)


def record_busy(runtime: Runtime, trigger: str, busy: LockBusy) -> TickResult:
    holder = f" (pid {busy.holder})" if busy.holder else ""
    return record_refusal(runtime, trigger, "skipped", f"skipped: already running{holder}")


def run_tick(
    runtime: Runtime,
    trigger: str,
    *,
    lock: ProcessLock | None = None,
    stop: threading.Event | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> TickResult:
    """One tick. `lock` is taken for the tick unless the caller (`agent run`) holds it.

    `stop` ends the running task's process group when set (a signal arrived);
    `heartbeat` is called at least every 100 ms while tasks run (systemd's watchdog).
    """
    refused = refusal(runtime)
    if refused:
        return _told(runtime, record_refusal(runtime, trigger, *refused))
    if lock is not None:
        try:
            lock.acquire()
        except LockBusy as busy:
            return _told(runtime, record_busy(runtime, trigger, busy))
    try:
        _end_orphaned_task(runtime)
        runtime.ping.send("start")
        try:
            result = _run_tasks(runtime, trigger, stop, heartbeat)
        except BaseException as error:
            runtime.ping.send("fail", f"agent error: {type(error).__name__}: {error}")
            raise
        return _told(runtime, result)
    finally:
        if lock is not None:
            lock.release()


def _told(runtime: Runtime, result: TickResult) -> TickResult:
    runtime.ping.send(kind_for(result.status), result.summary())
    return result


def _end_orphaned_task(runtime: Runtime) -> None:
    """A SIGKILLed agent leaves its task's grandchildren running (the leader dies with
    it by PDEATHSIG; they do not). With the lock now ours, nothing else may run there."""
    ended = end_orphaned_group(runtime.pgid_file, runtime.config.root.resolve())
    if ended is not None:
        runtime.trace.event("orphan.ended", pgid=ended[0], gone=ended[1])
    runtime.pgid_file.unlink(missing_ok=True)


def _run_tasks(
    runtime: Runtime,
    trigger: str,
    stop: threading.Event | None,
    heartbeat: Callable[[], None] | None,
) -> TickResult:
    ledger, config = runtime.ledger, runtime.config
    tick_id = ledger.start_tick(trigger)
    trace = runtime.trace.bind(tick=tick_id)
    trace.event("tick.start", trigger=trigger, tasks=[t.name for t in config.tasks])
    result = TickResult(tick_id, "running")
    statuses: dict[str, str] = {}

    def poll() -> None:
        if heartbeat is not None:
            heartbeat()
        if stop is not None and stop.is_set():
            raise Interrupted

    try:
        for task in config.tasks:
            refused = refusal(runtime)
            if refused:
                result.status, result.reason = refused
                trace.event("tick.refused", status=result.status, reason=result.reason,
                            before=task.name)
                break
            if stop is not None and stop.is_set():
                raise Interrupted
            started, clock = utc_now(), time.monotonic()
            blockers = [d for d in task.depends_on if statuses.get(d) not in ("ok", NOT_DUE)]
            last = _last_run(runtime, task)
            if last is not None and task.every_s is not None and (
                (started - datetime.fromisoformat(last["started"])).total_seconds()
                < task.every_s
            ):
                # Not its turn: no row (its figures stay its own), and its dependents
                # go by how its last run went.
                statuses[task.name] = NOT_DUE if last["status"] == "ok" else last["status"]
                result.tasks.append({"task": task.name, "status": NOT_DUE,
                                     "required": task.required, "duration_s": 0.0,
                                     "exit_code": None, "detail": f"last run {last['started']}"})
                continue
            if blockers:
                detail = "blocked by " + ", ".join(blockers)
                outcome = TaskOutcome("blocked", None, 0.0, detail, "", "")
            else:
                trace.event("task.start", task=task.name, argv=list(task.argv))
                try:
                    outcome = _run_one(runtime, task, tick_id, poll)
                except Interrupted:
                    detail = "stopped by a signal: its process group was ended"
                    outcome = TaskOutcome(
                        "interrupted", None, time.monotonic() - clock, detail, "", ""
                    )
                    _record(runtime, trace, tick_id, task, started, outcome, result)
                    raise
            statuses[task.name] = outcome.status
            _record(runtime, trace, tick_id, task, started, outcome, result)
    except Interrupted:
        result.status, result.reason = "interrupted", "stopped by a signal"
    except BaseException as error:
        # A crash of the agent itself still closes its tick: never a row left "running".
        ledger.finish_tick(tick_id, "failed", f"agent error: {type(error).__name__}: {error}")
        raise
    if result.status == "running":
        result.status, result.reason = _verdict(config.tasks, statuses)
    ledger.finish_tick(tick_id, result.status, result.reason)
    trace.event("tick.end", status=result.status, reason=result.reason)
    return result


def _last_run(runtime: Runtime, task: TaskConfig) -> dict[str, Any] | None:
    if task.every_s is None:
        return None
    runs = [r for r in runtime.ledger.task_runs(task.name, limit=20) if r["status"] in RAN]
    return runs[0] if runs else None


def _run_one(
    runtime: Runtime, task: TaskConfig, tick_id: int, poll: Callable[[], None]
) -> TaskOutcome:
    extra = {
        "AGENT_TASK": task.name,
        "AGENT_TICK_ID": str(tick_id),
        "AGENT_ROOT": str(runtime.config.root),
        DEADLINE_VAR: f"{time.time() + task.timeout_s:.3f}",
    }
    if runtime.vault is not None:
        # Least privilege: only the secrets whose manifest names this task, each read
        # on the record; their names travel along so the task's children scrub them.
        granted = runtime.vault.for_task(task.name)
        extra.update(granted)
        if granted:
            extra[SECRET_NAMES_VAR] = ",".join(sorted(granted))
    return run_task(
        task,
        root=runtime.config.root,
        env=task_environment(task, runtime.environ, extra),
        redact=runtime.redact,
        pgid_file=runtime.pgid_file,
        poll=poll,
    )


def _record(
    runtime: Runtime,
    trace: Trace,
    tick_id: int,
    task: TaskConfig,
    started: datetime,
    outcome: TaskOutcome,
    result: TickResult,
) -> None:
    runtime.ledger.record_task(
        tick_id,
        task.name,
        required=task.required,
        started=started,
        duration_s=outcome.duration_s,
        status=outcome.status,
        exit_code=outcome.exit_code,
        detail=outcome.detail,
        stdout_tail=outcome.stdout_tail,
        stderr_tail=outcome.stderr_tail,
    )
    row = {
        "task": task.name,
        "status": outcome.status,
        "required": task.required,
        "duration_s": round(outcome.duration_s, 4),
        "exit_code": outcome.exit_code,
        "detail": outcome.detail,
    }
    result.tasks.append(row)
    trace.event("task.end", **row, stderr_tail=outcome.stderr_tail[-500:])


def _verdict(tasks: tuple[TaskConfig, ...], statuses: dict[str, str]) -> tuple[str, str]:
    def failed(task: TaskConfig) -> bool:
        return statuses.get(task.name) not in ("ok", NOT_DUE)

    failed_required = [t.name for t in tasks if t.required and failed(t)]
    failed_optional = [t.name for t in tasks if not t.required and failed(t)]
    if failed_required:
        return "failed", "required task not ok: " + ", ".join(
            f"{name} ({statuses.get(name, 'not run')})" for name in failed_required
        )
    if failed_optional:
        return "degraded", "optional task not ok: " + ", ".join(
            f"{name} ({statuses.get(name, 'not run')})" for name in failed_optional
        )
    return "ok", ""
