"""Tell someone: [watchdog] ping_url, healthchecks.io style, against a real loopback server.

The agent runs as a real subprocess; the pings are real HTTP to 127.0.0.1. A dead or
hanging endpoint must never fail or block a tick: the tick's verdict and exit code stay
what its tasks made them, and the failed ping is a trace event.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from ping_server import PingServer

from agent.ping import Pinger, kind_for, ping_address
from agent.trace import Trace, read_events
from tests.agent_setup import run_agent, task, write_config

SECRET = "hunter2-but-much-longer-0xC0FFEE"


@pytest.fixture
def server() -> Iterator[PingServer]:
    running = PingServer().start()
    yield running
    running.stop()


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """A loopback port nobody listens on: bound, and held for the test, but never
    listening, so that a connection is refused (a port closed again at once could be
    handed to another test's server in the meantime)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/ping/nobody-listens"


def events(root: Path, name: str) -> list[dict]:
    return [e for e in read_events(root / "runs" / "traces") if e["event"] == name]


def test_a_good_tick_pings_start_then_success(tmp_path: Path, server: PingServer) -> None:
    write_config(tmp_path, [task("one", "true")], ping_url=server.url)
    done = run_agent(tmp_path, "tick")
    assert done.returncode == 0, done.stderr
    assert server.paths == ["/start", "/"]
    assert server.received[1][1].startswith("tick 1: ok\nok          one ")


def test_a_failed_tick_pings_fail_with_its_report_redacted(
    tmp_path: Path, server: PingServer
) -> None:
    write_config(
        tmp_path,
        [task("leaky", "sh -c 'echo token is $SERVICE_TOKEN >&2; exit 1'", env=["SERVICE_TOKEN"])],
        ping_url=server.url,
    )
    done = run_agent(tmp_path, "tick", env={"SERVICE_TOKEN": SECRET})
    assert done.returncode == 1
    assert server.paths == ["/start", "/fail"]
    body = server.received[1][1]
    assert "required task not ok: leaky (failed)" in body
    assert "«redacted:SERVICE_TOKEN»" in body and SECRET not in body


def test_a_refusal_is_logged_without_a_start(tmp_path: Path, server: PingServer) -> None:
    write_config(tmp_path, [task("one", "touch ran")], ping_url=server.url)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "KILL").write_text("stop")
    assert run_agent(tmp_path, "tick").returncode == 0
    assert server.paths == ["/log"]
    assert "refused-kill" in server.received[0][1]
    assert not (tmp_path / "ran").exists()


def test_agent_run_pings_every_tick_in_order(tmp_path: Path, server: PingServer) -> None:
    write_config(tmp_path, [task("one", "true")], cadence_s=0.1, ping_url=server.url)
    done = run_agent(tmp_path, "run", "--max-ticks", "3")
    assert done.returncode == 0, done.stderr
    assert server.paths == ["/start", "/"] * 3


@pytest.mark.parametrize("failure", ["down", "refusing"])
def test_a_dead_endpoint_never_fails_a_tick(
    tmp_path: Path, server: PingServer, closed_port_url: str, failure: str
) -> None:
    server.status = 500
    url = closed_port_url if failure == "down" else server.url
    write_config(tmp_path, [task("one", "touch ran")], ping_url=url)
    done = run_agent(tmp_path, "tick", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok" and (tmp_path / "ran").exists()
    failed = events(tmp_path, "ping.failed")
    assert [e["kind"] for e in failed] == ["start", "success"]
    expected = "Connection refused" if failure == "down" else "HTTP 500"
    assert all(expected in e["error"] for e in failed), failed


def test_a_hanging_endpoint_is_given_up_on(tmp_path: Path, server: PingServer) -> None:
    # In-process, with a short timeout: the agent's own is 5 s.
    server.delay_s = 3
    pinger = Pinger(server.url, trace=Trace(tmp_path / "traces"), timeout_s=0.2)
    pinger.send("start")
    pinger.send("success", "tick 1: ok")
    assert pinger.close(timeout_s=10) is True
    failed = [e for e in read_events(tmp_path / "traces") if e["event"] == "ping.failed"]
    assert [e["kind"] for e in failed] == ["start", "success"]
    assert all("timed out" in e["error"] for e in failed), failed


def test_the_watchdog_pings_fail_on_an_alert_unless_told_not_to(
    tmp_path: Path, server: PingServer
) -> None:
    write_config(tmp_path, [task("bad", "false")], max_failed_ticks=1, ping_url=server.url)
    assert run_agent(tmp_path, "tick").returncode == 1
    server.received.clear()
    assert run_agent(tmp_path, "watchdog", "--no-ping").returncode == 1
    assert server.paths == []
    assert run_agent(tmp_path, "watchdog").returncode == 1
    assert server.paths == ["/fail"]
    assert server.received[0][1].startswith("watchdog alert: 1 failed ticks in a row")


def test_agent_ping_by_hand(tmp_path: Path, server: PingServer, closed_port_url: str) -> None:
    write_config(tmp_path, [task("one", "true")])
    done = run_agent(tmp_path, "ping", "fail", "--json")
    assert (done.returncode, json.loads(done.stdout)["sent"]) == (0, False)
    write_config(tmp_path, [task("one", "true")], ping_url=server.url)
    done = run_agent(tmp_path, "ping", "fail", "--reason", "unit x failed")
    assert done.returncode == 0, done.stderr
    assert server.received == [("/ping/check-uuid/fail", "unit x failed")]
    assert run_agent(tmp_path, "ping", "loud").returncode == 2
    write_config(tmp_path, [task("one", "true")], ping_url=closed_port_url)
    done = run_agent(tmp_path, "ping", "success")
    assert done.returncode == 3
    assert "did not get through" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_ping_url_is_a_usage_error_naming_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, [task("one", "true")], ping_url="hc-ping.com/uuid")
    line = path.read_text().splitlines().index('ping_url = "hc-ping.com/uuid"') + 1
    done = run_agent(tmp_path, "tick")
    assert done.returncode == 2
    assert f"agent.toml:{line}: watchdog.ping_url: must be an http:// or https:// URL" in (
        done.stderr.replace("\n", "")
    )


def test_the_address_of_each_kind() -> None:
    assert ping_address("https://hc-ping.com/abc/", "start") == "https://hc-ping.com/abc/start"
    assert ping_address("https://hc-ping.com/abc?rid=1", "fail") == (
        "https://hc-ping.com/abc/fail?rid=1"
    )
    assert ping_address("https://hc-ping.com/abc", "success") == "https://hc-ping.com/abc"
    assert [kind_for(s) for s in ("ok", "degraded", "failed", "interrupted", "halted-vault")] == [
        "success", "success", "fail", "fail", "fail",
    ]  # fmt: skip
    assert {kind_for(s) for s in ("refused-kill", "halted-cap", "skipped")} == {"log"}
