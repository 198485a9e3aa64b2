"""`agent run`, `agent kill`, signals, kill -9 and systemd's notify socket, on live processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.ledger import Ledger
from agent.procgroup import pid_alive
from tests.agent_setup import SPAWN, read_pids, run_agent, start_agent, task, wait_for, write_config


@pytest.fixture
def root(tmp_path: Path):
    (tmp_path / "spawn.sh").write_text(SPAWN)
    procs: list[subprocess.Popen] = []
    yield tmp_path, procs
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    if (tmp_path / "pids").exists():
        for pid in read_pids(tmp_path / "pids"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def hanging_agent(root: Path, procs: list, *args: str) -> tuple[subprocess.Popen, list[int]]:
    """An agent whose task hangs with a child and a grandchild; returns when all run."""
    write_config(root, [task("hang", "sh spawn.sh", timeout_s=120)])
    proc = start_agent(root, *args)
    procs.append(proc)
    wait_for(
        lambda: (root / "pids").exists() and len(read_pids(root / "pids")) == 4,
        what="the task's processes",
    )
    return proc, read_pids(root / "pids")


def ticks(root: Path) -> list[dict]:
    with Ledger(root / "runs" / "ledger.sqlite") as ledger:
        return ledger.ticks()


def test_agent_kill_ends_a_live_run_and_its_task_group_and_verifies(root):
    path, procs = root
    proc, pids = hanging_agent(path, procs, "run")
    done = run_agent(path, "kill", "--json", "--reason", "test")
    report = json.loads(done.stdout)
    proc.wait(timeout=5)
    assert done.returncode == 0, done.stderr
    assert report["survivors"] == [] and report["runner_pid"] == proc.pid
    assert any(line.startswith("SIGTERM agent pid") for line in report["signalled"])
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert "killed by" in (path / "runs" / "KILL").read_text()
    # The runner recorded the interruption on its way out.
    assert ticks(path)[0]["status"] == "interrupted"
    # Now refused until resumed.
    write_config(path, [task("touch", "touch ran")])
    assert run_agent(path, "tick").returncode == 0 and not (path / "ran").exists()
    assert "kill flag cleared" in run_agent(path, "resume").stdout
    assert run_agent(path, "tick").returncode == 0 and (path / "ran").exists()


def test_agent_kill_with_nothing_running_sets_the_flag(root):
    path, _ = root
    write_config(path, [task("touch", "touch ran")])
    done = run_agent(path, "kill")
    assert done.returncode == 0
    assert "nothing was running" in done.stdout
    assert (path / "runs" / "KILL").exists()


def test_sigterm_stops_a_run_cleanly_and_ends_the_running_task(root):
    path, procs = root
    proc, pids = hanging_agent(path, procs, "run")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert [pid for pid in pids if pid_alive(pid)] == []
    [tick] = ticks(path)
    assert (tick["status"], tick["reason"]) == ("interrupted", "stopped by a signal")
    with Ledger(path / "runs" / "ledger.sqlite") as ledger:
        assert ledger.task_runs()[0]["status"] == "interrupted"


def test_a_second_run_is_refused_while_one_holds_the_lock(root):
    path, procs = root
    proc, _ = hanging_agent(path, procs, "run")
    done = run_agent(path, "run")
    assert done.returncode == 1
    assert f"already running (pid {proc.pid})" in done.stderr
    status = json.loads(run_agent(path, "status", "--json").stdout)
    assert status["runner"] == {"running": True, "pid": proc.pid}


def test_no_stale_lock_and_no_orphan_after_kill_9(root):
    path, procs = root
    proc, pids = hanging_agent(path, procs, "tick")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
    # The leader dies with the agent (PDEATHSIG); its children are orphans still running.
    survivors = [pid for pid in pids if pid_alive(pid)]
    assert survivors, "expected orphaned grandchildren to test the clean-up"
    write_config(path, [task("touch", "touch ran")])
    done = run_agent(path, "tick", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (path / "ran").exists()
    wait_for(lambda: not any(pid_alive(pid) for pid in pids), timeout=5, what="orphans ended")
    # The killed tick is shown as crashed, not as running forever.
    status = json.loads(run_agent(path, "status", "--json").stdout)
    assert status["last_tick"]["status"] == "ok"
    watchdog = json.loads(run_agent(path, "watchdog", "--json").stdout)
    assert watchdog["failed_in_a_row"] == 0
    with Ledger(path / "runs" / "ledger.sqlite") as ledger:
        from agent.watchdog import tick_status

        assert [tick_status(t) for t in ledger.ticks()] == ["ok", "crashed"]


def test_systemd_readiness_and_watchdog_pings(root, tmp_path_factory):
    path, _ = root
    folder = tmp_path_factory.mktemp("sd")
    address = str(folder / "notify")
    messages: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(0.2)

        def listen() -> None:  # as systemd does: drain the socket while the agent runs
            while not done_flag.is_set():
                with contextlib.suppress(TimeoutError):
                    messages.append(sock.recv(4096).decode())

        done_flag = threading.Event()
        listener = threading.Thread(target=listen)
        listener.start()
        write_config(path, [task("nap", "sleep 0.4")], cadence_s=0.5)
        try:
            done = run_agent(
                path,
                "run",
                "--max-ticks",
                "2",
                env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"},
            )
        finally:
            time.sleep(0.3)
            done_flag.set()
            listener.join()
        assert done.returncode == 0, done.stderr
    assert messages[0].startswith("READY=1")
    assert messages[-1] == "STOPPING=1"
    pings = [m for m in messages if m == "WATCHDOG=1"]
    # Two ticks of ~0.5 s each with a ping due every 0.05 s: pinged all along the run,
    # including while the task runs.
    assert len(pings) >= 8, messages
    assert any(m.startswith("STATUS=tick 1: ok") for m in messages)


def test_a_notify_socket_nobody_reads_never_blocks_the_agent(root, tmp_path_factory):
    path, _ = root
    address = str(tmp_path_factory.mktemp("sd") / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)  # bound, never read: its queue fills after a few messages
        write_config(path, [task("nap", "sleep 0.3")], cadence_s=0.4)
        done = run_agent(
            path,
            "run",
            "--max-ticks",
            "3",
            env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "20000"},
            timeout=30,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": ok") == 3
