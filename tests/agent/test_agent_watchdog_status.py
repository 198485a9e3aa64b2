"""The dead man's switch, the dashboard's figures, and the trace files, from real ledgers."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from agent.clock import utc_now
from agent.config import load_runtime
from agent.ledger import Ledger
from agent.status import percentile, task_summary
from agent.tick import Runtime
from agent.trace import TRACE_NAME, Trace, read_events
from tests.agent_setup import run_agent, task, write_config


def backdate_ticks(root: Path, seconds: float) -> None:
    """Move every recorded tick `seconds` into the past, as if the agent had gone quiet."""
    with Ledger(root / "runs" / "ledger.sqlite") as ledger:
        for row in ledger.ticks(limit=1000):
            stamps = [
                (utc_fromiso(row[key]) - timedelta(seconds=seconds)).isoformat()
                if row[key]
                else None
                for key in ("started", "finished")
            ]
            ledger.db.execute(
                "UPDATE ticks SET started = ?, finished = ? WHERE id = ?", (*stamps, row["id"])
            )


def utc_fromiso(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


def watchdog(root: Path) -> tuple[int, dict]:
    done = run_agent(root, "watchdog", "--json")
    return done.returncode, json.loads(done.stdout)


def test_the_watchdog_alerts_after_silence_and_clears_on_recovery(tmp_path: Path):
    write_config(tmp_path, [task("one", "true")], max_silence_s=600)
    assert run_agent(tmp_path, "tick").returncode == 0
    assert watchdog(tmp_path)[0] == 0
    assert not (tmp_path / "runs" / "ALERT").exists()
    backdate_ticks(tmp_path, 3600)
    code, result = watchdog(tmp_path)
    assert code == 1
    assert result["status"] == "alert"
    assert result["reasons"][0].startswith("no tick has succeeded for 60 min")
    alert = json.loads((tmp_path / "runs" / "ALERT").read_text())
    assert alert["reasons"] == result["reasons"]
    since = alert["since"]
    # Still silent: the alert stands, and keeps the time it started.
    assert watchdog(tmp_path)[0] == 1
    assert json.loads((tmp_path / "runs" / "ALERT").read_text())["since"] == since
    # A successful tick: the next check clears it.
    assert run_agent(tmp_path, "tick").returncode == 0
    assert watchdog(tmp_path)[0] == 0
    assert not (tmp_path / "runs" / "ALERT").exists()
    status = json.loads(run_agent(tmp_path, "status", "--json").stdout)
    assert status["watchdog"]["last_check"]["status"] == "ok"
    assert status["watchdog"]["alert"] is None


def test_the_watchdog_alerts_on_failed_ticks_in_a_row(tmp_path: Path):
    write_config(tmp_path, [task("one", "true")])
    assert run_agent(tmp_path, "tick").returncode == 0
    write_config(tmp_path, [task("one", "true", evidence="stdout")], max_failed_ticks=3)
    for expected in (0, 0, 1):
        assert run_agent(tmp_path, "tick").returncode == 1  # silent, so failed
        code, result = watchdog(tmp_path)
        assert code == expected, result
    assert result["failed_in_a_row"] == 3
    assert "3 failed ticks in a row (limit 3)" in result["reasons"]
    # and why: the newest failed tick's required tasks, with what they said
    assert result["reasons"][-1].endswith("one silent: exit 0 but nothing on stdout")


def test_refusals_are_not_failures_but_do_not_count_as_success(tmp_path: Path):
    write_config(tmp_path, [task("one", "true")], max_silence_s=600)
    assert run_agent(tmp_path, "tick").returncode == 0
    backdate_ticks(tmp_path, 3600)
    (tmp_path / "runs" / "KILL").write_text("maintenance")
    for _ in range(4):
        assert run_agent(tmp_path, "tick").returncode == 0
    code, result = watchdog(tmp_path)
    assert code == 1
    assert result["failed_in_a_row"] == 0
    assert len(result["reasons"]) == 1 and "no tick has succeeded" in result["reasons"][0]


def test_a_fresh_install_gets_one_silence_window(tmp_path: Path):
    write_config(tmp_path, [task("one", "true")], max_silence_s=600)
    code, result = watchdog(tmp_path)
    assert (code, result["reasons"]) == (0, [])
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        old = (utc_now() - timedelta(hours=2)).isoformat()
        ledger.db.execute("UPDATE watchdog_checks SET ts = ?", (old,))
    code, result = watchdog(tmp_path)
    assert code == 1
    assert result["reasons"][0].startswith("no tick has ever succeeded")


def test_percentiles_match_the_textbook_definition():
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    values = list(range(1, 101))
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)


def test_task_figures_come_from_real_ledger_rows(tmp_path: Path):
    write_config(tmp_path, [task("job", "true")])
    runtime = Runtime.open(load_runtime(tmp_path))
    try:
        tick = runtime.ledger.start_tick("test")
        durations = [0.1 * n for n in range(1, 21)]  # 0.1 .. 2.0 s
        for index, duration in enumerate(durations):
            status = "failed" if index % 5 == 0 else "ok"  # 4 of 20 fail
            runtime.ledger.record_task(
                tick, "job", required=True, started=utc_now(), duration_s=duration, status=status
            )
        runtime.ledger.record_task(
            tick, "job", required=True, started=utc_now(), duration_s=0.0, status="blocked"
        )
        summary = task_summary(runtime, "job", window=100)
        assert summary["runs"] == 21
        assert summary["success_rate"] == pytest.approx(16 / 21)
        assert summary["p50_s"] == pytest.approx(percentile(durations, 50))
        assert summary["p95_s"] == pytest.approx(1.905)
        assert summary["p99_s"] == pytest.approx(1.981)
        assert summary["last"]["status"] == "blocked"
        # The window covers the newest runs only.
        assert task_summary(runtime, "job", window=5)["p50_s"] == pytest.approx(1.85)
    finally:
        runtime.close()


def test_status_reports_every_part_of_the_dashboard(tmp_path: Path):
    write_config(tmp_path, [task("job", "echo hi", evidence="stdout")], daily_usd=2.0)
    assert run_agent(tmp_path, "tick").returncode == 0
    done = run_agent(tmp_path, "status", "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["last_tick"]["status"] == "ok"
    [job] = report["tasks"]
    assert (job["task"], job["last"]["status"], job["success_rate"], job["runs"]) == (
        "job", "ok", 1.0, 1,
    )  # fmt: skip
    assert report["spend"] == {"today_usd": 0.0, "cap_usd": 2.0}
    assert report["kill"]["present"] is False and report["cap_reached"] is False
    assert "not a git repository" in report["gate"]["error"]
    text = run_agent(tmp_path, "status").stdout
    for words in ("last tick: #1 ok", "spend today: $0.0000 (cap $2.00)", "kill flag: absent",
                  "job", "gate verdicts: unavailable"):
        assert words in text


def test_status_piped_prints_one_whole_line_per_task(tmp_path: Path):
    """A table wrapped at 80 columns cut long task names when piped; a script reading
    `agent status | grep NAME` needs the task's whole line."""
    long_name = "a-task-whose-name-is-longer-than-any-column-would-allow-" * 2
    tasks = [task(long_name.strip("-"), "echo hi", evidence="stdout"), task("job", "false")]
    write_config(tmp_path, tasks)
    run_agent(tmp_path, "tick")
    text = run_agent(tmp_path, "status").stdout  # piped: stdout is not a terminal
    [line] = [line for line in text.splitlines() if long_name.strip("-") in line]
    assert "last ok" in line and "success 100% of 1" in line and "p50" in line
    [job] = [line for line in text.splitlines() if line.lstrip().startswith("job:")]
    assert "last failed" in job and "─" not in text and "┃" not in text


def test_traces_rotate_by_size_and_keep_every_line_whole(tmp_path: Path):
    trace = Trace(tmp_path, max_bytes=2000, keep=3)
    for index in range(200):
        trace.event("step", index=index, pad="x" * 50)
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(TRACE_NAME))
    assert files == [TRACE_NAME, f"{TRACE_NAME}.1", f"{TRACE_NAME}.2", f"{TRACE_NAME}.3"]
    assert all((tmp_path / name).stat().st_size <= 2000 for name in files)
    indexes = [event["index"] for event in read_events(tmp_path)]
    assert indexes == list(range(indexes[0], 200))  # oldest dropped, the rest in order


def test_trace_events_are_redacted(tmp_path: Path):
    Trace(tmp_path, redact=lambda text: text.replace("hunter22", "«redacted:PW»")).event(
        "login", password="hunter22"
    )
    assert read_events(tmp_path)[0]["password"] == "«redacted:PW»"


def test_status_shows_a_reached_cap_even_under_the_kill_flag(tmp_path: Path):
    write_config(tmp_path, [task("job", "true")], daily_usd=1.0)
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        spent = ledger.reserve("openai/gpt-4o-mini", "earlier", 1.0, 1.0)
        ledger.settle(spent, outcome="ok", cost_usd=1.0)
    (tmp_path / "runs" / "KILL").write_text("maintenance")
    report = json.loads(run_agent(tmp_path, "status", "--json").stdout)
    assert report["kill"]["present"] is True and report["cap_reached"] is True
