"""Build throw-away deployments for the agent runtime tests: a root with deploy/agent.toml.

Everything runs for real: the `agent` console script in this venv, real process groups,
a real SQLite ledger in the root's runs/ folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

AGENT = str(Path(sys.executable).with_name("agent"))


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def task(name: str, command: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": command, "timeout_s": 30, "evidence": "exit", **extra}


def write_config(
    root: Path,
    tasks: list[dict[str, Any]],
    *,
    cadence_s: float = 300,
    daily_usd: float | None = None,
    max_silence_s: float = 900,
    max_failed_ticks: int = 3,
    ping_url: str | None = None,
) -> Path:
    lines = ["[schedule]", f"cadence_s = {cadence_s}", ""]
    for item in tasks:
        lines.append("[[tasks]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in item.items()]
        lines.append("")
    if daily_usd is not None:
        lines += ["[budget]", f"daily_usd = {daily_usd}", ""]
    lines += [
        "[watchdog]",
        f"max_silence_s = {max_silence_s}",
        f"max_failed_ticks = {max_failed_ticks}",
    ]
    if ping_url is not None:
        lines.append(f"ping_url = {toml_value(ping_url)}")
    path = root / "deploy" / "agent.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def agent_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.pop("SPEND_CAP_USD", None)
    env.pop("AGENT_KILL_FLAG", None)
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def run_agent(
    root: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, *args, "--root", str(root)],
        capture_output=True,
        text=True,
        env=agent_env(env),
        timeout=timeout,
        check=False,
    )


def start_agent(root: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """A background agent in its own session, as systemd or a shell job would start it."""
    return subprocess.Popen(
        [AGENT, *args, "--root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=agent_env(env),
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


def read_pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split() if line.strip()]


# A task that leaves a process tree behind (a background sleep, a subshell with its own):
# every pid goes into ./pids, for the test to check that none survives its tick.
SPAWN = """\
sleep 300 & echo $! >> pids
sh -c 'sleep 300 & echo $! >> pids; wait' & echo $! >> pids
echo $$ >> pids
wait
"""
