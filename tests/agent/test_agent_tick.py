"""`agent tick`: guards, tasks, evidence, dependencies and the record, on real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from agent.ledger import MIGRATIONS, Ledger
from agent.procgroup import pid_alive
from agent.trace import read_events
from tests.agent_setup import SPAWN, read_pids, run_agent, task, write_config


# A task that hangs with a child and a grandchild in its group, recording every pid.
@pytest.fixture
def root(tmp_path: Path):
    yield tmp_path
    # Whatever the outcome, leave nothing running.
    pids = tmp_path / "pids"
    if pids.exists():
        for pid in read_pids(pids):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def ledger_rows(root: Path, table: str) -> list[dict]:
    with Ledger(root / "runs" / "ledger.sqlite") as ledger:
        return ledger._rows(f"SELECT * FROM {table} ORDER BY id")


def tick(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = run_agent(root, "tick", "--json", *args, env=env)
    return done.returncode, json.loads(done.stdout)


def test_a_hanging_task_and_its_grandchildren_are_gone_at_the_timeout(root: Path):
    (root / "spawn.sh").write_text(SPAWN)
    write_config(root, [task("hang", "sh spawn.sh", timeout_s=1)])
    code, result = tick(root)
    assert code == 1
    assert result["tasks"][0]["status"] == "timeout"
    pids = read_pids(root / "pids")
    assert len(pids) == 4, pids  # sleep, sh, its sleep, the leader
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not (root / "runs" / "task.pgid").exists()


def test_the_kill_flag_refuses_before_any_task(root: Path):
    write_config(root, [task("touch", "touch ran")])
    (root / "runs").mkdir()
    (root / "runs" / "KILL").write_text("stop")
    done = run_agent(root, "tick")
    assert done.returncode == 0
    assert "kill flag present — refusing to run" in done.stdout
    assert not (root / "ran").exists()
    [row] = ledger_rows(root, "ticks")
    assert (row["status"], row["reason"]) == ("refused-kill", "kill flag present — refusing to run")
    assert ledger_rows(root, "task_runs") == []
    assert [e["event"] for e in read_events(root / "runs" / "traces")] == ["tick.refused"]


def test_the_kill_flag_also_stops_the_rest_of_a_tick(root: Path):
    write_config(
        root,
        [task("flag", "sh -c 'mkdir -p runs && touch runs/KILL'"), task("after", "touch ran")],
    )
    code, result = tick(root)
    assert code == 0
    assert result["status"] == "refused-kill"
    assert [t["task"] for t in result["tasks"]] == ["flag"]
    assert not (root / "ran").exists()


def test_a_reached_cap_halts_before_any_task(root: Path):
    write_config(root, [task("touch", "touch ran")], daily_usd=1.0)
    with Ledger(root / "runs" / "ledger.sqlite") as ledger:
        spent = ledger.reserve("openai/gpt-4o-mini", "earlier", 1.0, 1.0)
        ledger.settle(spent, outcome="ok", cost_usd=1.0)
    done = run_agent(root, "tick")
    assert done.returncode == 1
    assert "spend cap reached — halting" in done.stdout
    assert not (root / "ran").exists()
    assert ledger_rows(root, "ticks")[0]["status"] == "halted-cap"
    # The override lowers the cap for an operator in a hurry, and is checked too.
    write_config(root, [task("touch", "touch ran")], daily_usd=5.0)
    assert run_agent(root, "tick", env={"SPEND_CAP_USD": "0.5"}).returncode == 1
    assert run_agent(root, "tick").returncode == 0
    assert (root / "ran").exists()


def test_a_second_tick_is_skipped_on_the_record(root: Path):
    from agent.locks import ProcessLock

    write_config(root, [task("touch", "touch ran")])
    with ProcessLock(root / "runs" / "agent.lock"):
        done = run_agent(root, "tick")
    assert done.returncode == 1
    assert f"skipped: already running (pid {os.getpid()})" in done.stdout
    assert not (root / "ran").exists()
    assert ledger_rows(root, "ticks")[0]["status"] == "skipped"


@pytest.mark.parametrize(
    ("command", "evidence", "status"),
    [
        ("true", "exit", "ok"),
        ("false", "exit", "failed"),
        ("true", "stdout", "silent"),
        ("printf '  \\n\\n'", "stdout", "silent"),
        ("echo done", "stdout", "ok"),
        ("true", "file:out/report.json", "silent"),
        ("sh -c 'mkdir -p out && echo 1 > out/report.json'", "file:out/report.json", "ok"),
        ("echo done", "file:out/report.json", "silent"),
        ("no-such-command-anywhere", "exit", "failed"),
    ],
)
def test_evidence_decides_between_ok_and_silent(root: Path, command, evidence, status):
    write_config(root, [task("job", command, evidence=evidence)])
    code, result = tick(root)
    assert result["tasks"][0]["status"] == status, result
    assert code == (0 if status == "ok" else 1)
    [row] = ledger_rows(root, "task_runs")
    assert row["status"] == status


def test_a_file_written_before_the_task_is_not_evidence(root: Path):
    (root / "out").mkdir()
    (root / "out" / "report.json").write_text("old")
    write_config(root, [task("job", "true", evidence="file:out/report.json")])
    assert tick(root)[1]["tasks"][0]["status"] == "silent"
    write_config(root, [task("job", "touch out/report.json", evidence="file:out/report.json")])
    assert tick(root)[1]["tasks"][0]["status"] == "ok"


def test_dependents_of_a_failed_task_are_blocked_and_others_still_run(root: Path):
    write_config(
        root,
        [
            task("broken", "sh -c 'echo disk on fire >&2; exit 3'"),
            task("needs-broken", "touch a", depends_on=["broken"]),
            task("needs-needs", "touch b", depends_on=["needs-broken"]),
            task("independent", "touch c"),
        ],
    )
    code, result = tick(root)
    assert code == 1
    statuses = {t["task"]: (t["status"], t["detail"]) for t in result["tasks"]}
    assert statuses == {
        "broken": ("failed", "exit code 3: disk on fire"),
        "needs-broken": ("blocked", "blocked by broken"),
        "needs-needs": ("blocked", "blocked by needs-broken"),
        "independent": ("ok", ""),
    }
    assert not (root / "a").exists() and not (root / "b").exists() and (root / "c").exists()
    assert result["reason"].startswith("required task not ok: broken (failed)")


def test_a_failed_optional_task_degrades_the_tick_without_failing_it(root: Path):
    write_config(root, [task("main", "true"), task("extra", "false", required=False)])
    code, result = tick(root)
    assert (code, result["status"]) == (0, "degraded")
    assert "extra (failed)" in result["reason"]


def test_tasks_run_in_dependency_order_whatever_the_declared_order(root: Path):
    write_config(
        root,
        [
            task("last", "sh -c 'echo last >> order'", depends_on=["middle"]),
            task("middle", "sh -c 'echo middle >> order'", depends_on=["first"]),
            task("first", "sh -c 'echo first >> order'"),
        ],
    )
    assert tick(root)[0] == 0
    assert (root / "order").read_text().split() == ["first", "middle", "last"]


def test_a_task_sees_only_the_environment_it_declares(root: Path):
    write_config(root, [task("env", "sh -c 'env > seen'", env=["WANTED"], timeout_s=45)])
    before = time.time()
    code, _ = tick(
        root, env={"WANTED": "yes", "UNWANTED": "no", "OPENAI_API_KEY": "sk-should-not-leak-1"}
    )
    assert code == 0
    seen = dict(line.split("=", 1) for line in (root / "seen").read_text().splitlines())
    assert seen["WANTED"] == "yes"
    assert "UNWANTED" not in seen and "OPENAI_API_KEY" not in seen
    assert seen["AGENT_TASK"] == "env"
    # When the runtime will end it: a task whose work may not fit plans by it.
    assert before + 45 <= float(seen["AGENT_TASK_DEADLINE"]) <= time.time() + 45
    assert set(seen) - {"PWD", "SHLVL", "_"} <= {
        "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
        "RATCHET_SANDBOX_GRANTED",  # set only inside a sandbox: this suite under its gate
        "WANTED", "AGENT_TASK", "AGENT_TICK_ID", "AGENT_ROOT", "AGENT_TASK_DEADLINE",
    }  # fmt: skip


def test_output_is_captured_within_bounds_and_secrets_are_redacted(root: Path):
    secret = "sk-live-abcdefghijklmnop"
    noisy = (
        "python3 -c \"import os,sys; sys.stdout.write('x' * 5_000_000); "
        "print(); print('the end', os.environ.get('OPENAI_API_KEY')); "
        "sys.stderr.write('oops ' + os.environ['OPENAI_API_KEY'] + '\\n'); sys.exit(4)\""
    )
    write_config(root, [task("noisy", noisy, evidence="stdout", env=["OPENAI_API_KEY"])])
    code, _ = tick(root, env={"OPENAI_API_KEY": secret})
    assert code == 1
    [row] = ledger_rows(root, "task_runs")
    assert len(row["stdout_tail"]) <= 2000
    assert "the end «redacted:OPENAI_API_KEY»" in row["stdout_tail"]
    assert row["detail"] == "exit code 4: oops «redacted:OPENAI_API_KEY»"
    for path in (root / "runs").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_every_tick_leaves_a_ledger_row_and_trace_events(root: Path):
    write_config(root, [task("one", "echo hi", evidence="stdout")])
    for _ in range(3):
        assert tick(root)[0] == 0
    ticks = ledger_rows(root, "ticks")
    assert [t["status"] for t in ticks] == ["ok"] * 3
    assert all(t["finished"] for t in ticks)
    events = read_events(root / "runs" / "traces")
    assert [e["event"] for e in events] == ["tick.start", "task.start", "task.end", "tick.end"] * 3
    assert {e["tick"] for e in events} == {1, 2, 3}


def test_a_bad_configuration_is_a_usage_error(root: Path):
    write_config(root, [task("a", "true", depends_on=["nobody"])])
    done = run_agent(root, "tick")
    assert done.returncode == 2
    assert "tasks[0].depends_on[0]: no task is named 'nobody'" in done.stderr
    assert "Traceback" not in done.stderr
    (root / "deploy" / "agent.toml").unlink()
    done = run_agent(root, "tick")
    assert done.returncode == 2
    assert "no deploy/agent.toml" in done.stderr


def test_a_version_1_ledger_is_migrated_and_keeps_its_rows(root: Path):
    path = root / "runs" / "ledger.sqlite"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    MIGRATIONS[0](db)
    db.execute(
        "INSERT INTO llm_calls (ts, day, model, purpose, outcome, cost_usd)"
        " VALUES ('2026-01-01T00:00:00+00:00', '2026-01-01', 'm', 'p', 'ok', 0.25)"
    )
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    write_config(root, [task("one", "true")])
    assert tick(root)[0] == 0
    with Ledger(path) as ledger:
        assert ledger.version == len(MIGRATIONS) == 2
        assert [c["cost_usd"] for c in ledger.calls()] == [0.25]
        assert len(ledger.ticks()) == 1


def test_a_task_with_its_own_cadence_runs_only_when_due(root: Path):
    write_config(
        root,
        [
            task("hourly", "sh -c 'echo run >> hourly'", every_s=3600),
            task("after", "sh -c 'echo run >> after'", depends_on=["hourly"]),
        ],
    )
    assert tick(root)[1]["tasks"][0]["status"] == "ok"
    code, result = tick(root)
    assert code == 0 and result["status"] == "ok"
    assert [t["status"] for t in result["tasks"]] == ["not-due", "ok"]
    assert (root / "hourly").read_text().split() == ["run"]
    assert (root / "after").read_text().split() == ["run", "run"]
    assert [r["task"] for r in ledger_rows(root, "task_runs")] == ["hourly", "after", "after"]
