"""`agent report`: the run's figures from a real ledger and a real git trail, and the page.

The ledger is real SQLite, filled with rows at chosen times so that every figure can be
worked out by hand; the trail comes from real gate runs in a real repository; the page
is opened in a real headless Chromium where one is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from repo_setup import BROKEN_ADD, FIXED_CALC, Sandbox

from agent.config import load_runtime
from agent.ledger import Ledger
from agent.report import build
from agent.report_html import render_html
from agent.tick import Runtime
from agent.timespan import parse_since
from tests.agent_setup import run_agent, task, write_config

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)  # a Tuesday, ISO week 46


def at(**ago: float) -> str:
    return (NOW - timedelta(**ago)).isoformat()


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def seed(root: Path) -> None:
    """Ten hours of a 10-minute cadence: 3 h of good ticks, 3 failed ones, silence until
    4 h ago, then good ticks again; a crashed tick; LLM calls over two days; two
    incidents, the second still open."""
    write_config(root, [task("a", "true"), task("b", "true")], cadence_s=600, daily_usd=0.5)
    with Ledger(root / "runs" / "ledger.sqlite") as ledger:
        db = ledger.db

        def tick(started: str, status: str, pid: int = 1) -> None:
            finished = (datetime.fromisoformat(started) + timedelta(seconds=5)).isoformat()
            db.execute(
                "INSERT INTO ticks (started, finished, trigger, pid, status) VALUES (?,?,?,?,?)",
                (started, None if status == "running" else finished, "run", pid, status),
            )

        for k in range(19):  # 10 h ago to 7 h ago
            tick(at(hours=10, minutes=-10 * k), "ok")
        for minutes in (410, 400, 390):  # 6 h 50 to 6 h 30 ago
            tick(at(minutes=minutes), "failed")
        tick(at(minutes=380), "running", dead_pid())  # killed -9: reads as crashed
        for k in range(24):  # 4 h ago to 10 min ago
            tick(at(hours=4, minutes=-10 * k), "ok")
        for started, status, duration in (
            (at(hours=9), "ok", 1.0), (at(hours=8), "ok", 2.0), (at(hours=7), "ok", 3.0),
            (at(hours=6), "failed", 4.0), (at(hours=5), "blocked", 0.0),
        ):  # fmt: skip
            db.execute(
                "INSERT INTO task_runs (tick_id, task, required, started, duration_s, status)"
                " VALUES (1, 'a', 1, ?, ?, ?)",
                (started, duration, status),
            )
        for ts, model, purpose, outcome, estimate, cost in (
            (at(days=1), "openai/a", "propose", "ok", 0.6, 0.5),
            (at(hours=2), "openai/b", "cycle", "pending", 0.25, 0.0),
            (at(hours=1), "openai/b", "cycle", "refused-cap", 0.3, 0.0),
        ):
            db.execute(
                "INSERT INTO llm_calls (ts, day, model, purpose, outcome, estimate_usd, cost_usd)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ts, ts[:10], model, purpose, outcome, estimate, cost),
            )
        for ts, status, reason in (
            (at(hours=9), "ok", ""),
            (at(hours=6), "alert", "3 failed ticks in a row (limit 3)"),
            (at(hours=5, minutes=50), "alert", "3 failed ticks in a row (limit 3)"),
            (at(hours=3, minutes=50), "ok", ""),
            (at(minutes=5), "alert", "no tick has succeeded for 20 min"),
        ):
            db.execute("INSERT INTO watchdog_checks (ts, status, reason) VALUES (?, ?, ?)",
                       (ts, status, reason))  # fmt: skip


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    seed(tmp_path)
    return tmp_path


def figures(root: Path, since: str = "2d") -> dict:
    runtime = Runtime.open(load_runtime(root))
    try:
        return build(runtime, parse_since(since, NOW), NOW, git=False)
    finally:
        runtime.close()


def test_ticks_uptime_and_the_longest_silence(seeded: Path) -> None:
    report = figures(seeded)
    assert report["ticks"]["total"] == 47
    assert report["ticks"]["by_outcome"] == {"ok": 43, "failed": 3, "crashed": 1}
    assert report["ticks"]["by_day"] == {"2026-11-10": {"crashed": 1, "failed": 3, "ok": 43}}
    up = report["uptime"]
    # Ten hours since the first mark; down for the 3 h silence less 1.5 cadences (15 min).
    assert up["span_s"] == 36000
    assert up["down_s"] == pytest.approx(3 * 3600 - 900)
    assert up["ratio"] == pytest.approx(1 - 9900 / 36000)
    silence = up["longest_silence"]
    assert silence["seconds"] == pytest.approx(3 * 3600)
    assert silence["from"] == (NOW - timedelta(hours=7) + timedelta(seconds=5)).isoformat()
    assert silence["ongoing"] is False


def test_tasks_spend_and_incidents(seeded: Path) -> None:
    report = figures(seeded)
    task_a, task_b = report["tasks"]
    assert (task_a["task"], task_a["runs"], task_a["success_rate"]) == ("a", 5, 0.6)
    assert task_a["p50_s"] == 2.5 and task_a["p95_s"] == pytest.approx(3.85)
    assert task_a["failures"] == {"blocked": 1, "failed": 1}
    assert task_a["last"]["status"] == "blocked"  # the newest
    assert (task_b["runs"], task_b["success_rate"]) == (0, None)
    spend = report["spend"]
    assert spend["total_usd"] == pytest.approx(0.75)  # the open reservation at its worst case
    assert spend["by_day"] == {"2026-11-09": 0.5, "2026-11-10": 0.25}
    assert spend["by_model"] == {"openai/a": 0.5, "openai/b": 0.25}
    assert spend["by_purpose"] == {"propose": 0.5, "cycle": 0.25}
    assert (spend["refused_by_cap"], spend["days_at_cap"]) == (1, ["2026-11-09"])
    first, second = report["incidents"]
    assert (first["start"], first["end"]) == (at(hours=6), at(hours=3, minutes=50))
    assert first["cause"] == "3 failed ticks in a row (limit 3)"
    assert first["duration_s"] == 130 * 60
    assert (second["end"], second["duration_s"]) == (None, 300)


def test_weekly_ratios_and_the_window(seeded: Path) -> None:
    [week] = figures(seeded)["weeks"]
    assert week["week"] == "2026-W46"
    assert week["ticks"] == 47 and week["tick_success"] == pytest.approx(43 / 47)
    assert week["task_success"] == pytest.approx(3 / 5)
    assert week["spent_usd"] == pytest.approx(0.75) and week["incidents"] == 2
    narrow = figures(seeded, "3h")
    assert narrow["ticks"]["total"] == 18  # 3 h ago to 10 min ago
    assert narrow["uptime"]["ratio"] == 1.0
    # The silence before the window still counts as the longest, from where it began.
    assert narrow["uptime"]["longest_silence"]["seconds"] == pytest.approx(600)


def test_since_takes_spans_and_dates() -> None:
    assert parse_since("14d", NOW) == NOW - timedelta(days=14)
    assert parse_since("36h", NOW) == NOW - timedelta(hours=36)
    assert parse_since("2w", NOW) == NOW - timedelta(weeks=2)
    assert parse_since("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)


def test_safety_net_incidents_are_counted_apart_from_proposals() -> None:
    from agent.report import proposals

    since = NOW - timedelta(days=1)
    stamp = (NOW - timedelta(hours=1)).isoformat()
    entries = [{"verdict": v, "when": stamp} for v in ("accepted", "incident", "incident")]
    made = proposals(entries, since)
    assert (made["made"], made["accepted"], made["incidents"]) == (1, 1, 2)


def test_proposals_and_the_baseline_come_from_git(sandbox: Sandbox) -> None:
    sandbox.branch("evolve/fix-mul", {"scripts/calc.py": FIXED_CALC}, proposal=True)
    assert sandbox.validate_json("evolve/fix-mul")[0] == 0
    sandbox.branch("evolve/break-add", {"scripts/calc.py": BROKEN_ADD}, proposal=True)
    assert sandbox.validate_json("evolve/break-add")[0] == 1
    write_config(sandbox.path, [task("a", "true")])
    done = run_agent(sandbox.path, "report", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "git_error" not in report
    made = report["proposals"]
    assert (made["made"], made["accepted"], made["rejected"], made["reverted"]) == (2, 1, 1, 0)
    assert made["by_proposer"] == {"test": {"accepted": 1, "rejected": 1}}
    assert [p["passing"] for p in report["baseline"]] == [2, 3]
    assert [p["verdict"] for p in report["baseline"]] == ["baseline", "accepted"]
    assert report["weeks"][-1]["accepted"] == 1


def test_the_command_line(seeded: Path, tmp_path: Path) -> None:
    page = tmp_path / "out" / "report.html"
    done = run_agent(seeded, "report", "--since", "30d", "--html", str(page))
    assert done.returncode == 0, done.stderr
    assert "ticks: 47, 43 succeeded" in done.stdout  # plain: NO_COLOR and a pipe
    assert "git: unavailable (not a git repository" in done.stdout
    assert f"page written to {page}" in done.stdout
    assert page.read_text().startswith("<!doctype html>")
    bad = run_agent(seeded, "report", "--since", "last tuesday", "--json")
    assert bad.returncode == 2 and json.loads(bad.stdout)["exit_code"] == 2
    assert "--since takes a span like 14d" in bad.stderr


def test_the_page_is_self_contained(seeded: Path) -> None:
    page = render_html(figures(seeded), "demo <agent>")
    lowered = page.lower()
    for forbidden in ("<script", "http:", "https:", "src=", "url(", "@import", "<link"):
        assert forbidden not in lowered, forbidden
    assert page.count("<svg") >= 4
    assert "demo &lt;agent&gt;" in page  # every label is escaped
    assert "3 failed ticks in a row (limit 3)" in page


def _png_colours(data: bytes) -> int:
    """How many distinct byte values a PNG's pixel data holds: a blank page has few."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


def test_the_page_renders_in_a_real_browser(seeded: Path, tmp_path: Path) -> None:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    page = tmp_path / "report.html"
    page.write_text(render_html(figures(seeded), "soak"))
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--js-flags=--jitless",
        f"--user-data-dir={tmp_path / 'profile'}",
        # Any request the page made would fail: it must need none.
        "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run", "--window-size=1000,2400",
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=False, env=env)  # fmt: skip
    if dom.returncode != 0 and not dom.stdout:
        pytest.skip(f"Chromium cannot run here: {dom.stderr.strip()[-300:]}")
    assert "soak: the run from 2026-11-10 to 2026-11-10" in dom.stdout
    assert dom.stdout.count("<svg") >= 4 and "<rect" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=False, env=env)  # fmt: skip
    assert shot.exists(), "Chromium wrote no screenshot"
    assert _png_colours(shot.read_bytes()) > 20  # charts and text, not a blank page
