"""The accelerated soak: the reference runtime for thousands of ticks, with faults injected.

`agent run` runs a small deployment at a 50 ms cadence while this driver plays the
rest of the world on a fixed random seed: the supervisor (it restarts the agent when it
exits, as systemd would), the operator, the watchdog's timer, the conscious layer's
model calls, and the faults:

- tasks that hang, crash, exit 0 silently, print a secret, or leave a grandchild;
- `kill -9` of `agent run` at a random moment, restarted at once or only later;
- the ledger locked by another process (an exclusive SQLite transaction);
- the disk "full": RLIMIT_FSIZE 0 on the agent, so every write to runs/ fails;
- the model endpoint down (the loopback server stopped), and the cap reached mid-day
  (priced calls until the cap refuses one; the operator then raises the cap);
- the kill flag set, then cleared.

A fault that should silence the agent is held until the watchdog (checked every 0.2 s,
`max_silence_s` of 3 s) alerts, and recovery until it clears. Then it checks: every tick
the agent reported or traced has exactly one ledger row with its outcome; the ledger
passes integrity_check; no process survives in the deployment; no lock is held; every
expected alert was raised and cleared, and no other; no secret reached any file or the
agent's output; no task started while the kill flag was set. It prints one line of
figures, and exits 0 when every check holds.

Usage: python benchmarks/soak.py [--ticks 2000] [--seed 16] [--quick] [--json] [--keep DIR]
No timing is asserted anywhere: the gap figures are measured, for the README.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from llm_server import ScriptedLLM, Step  # noqa: E402

from agent.atomicio import atomic_write_text  # noqa: E402
from agent.config import ModelConfig, load_runtime  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.llm import LLMClient, LLMRefused, LLMUnavailable, count_prompt_tokens  # noqa: E402
from agent.locks import lock_holder  # noqa: E402
from agent.redact import Redactor  # noqa: E402
from agent.tick import Runtime  # noqa: E402
from agent.trace import read_events  # noqa: E402
from agent.watchdog import run_watchdog, tick_status  # noqa: E402

AGENT = str(Path(sys.executable).with_name("agent"))
SECRET = "soak-secret-9f2c4e7a1b"  # what the "secret" task prints; found nowhere after
CADENCE_S = 0.05
WATCH_EVERY_S = 0.2
HOLD_LIMIT_S = 30.0  # a fault is held at most this long waiting for its alert
RESTART_S = 0.3  # the supervisor's RestartSec=
MODEL_KEY_ENV = "SOAK_MODEL_KEY"  # the loopback model's key, in the driver only
PRICE_PER_MTOK = 1000.0  # each scripted reply (100 + 50 tokens) costs $0.15
CAP_STEP_USD = 0.45  # three paid calls reach it exactly: the cap is reached, not skirted


@dataclass(frozen=True)
class Settings:
    """How long each fault lasts; the quick run (the test suite's) shortens them all."""

    max_silence_s: float = 3.0
    gap_s: tuple[float, float] = (0.5, 2.0)  # healthy time before each fault
    hang_s: float = 1.5
    task_fault_s: float = 0.5
    ledger_lock_s: float = 1.0


QUICK = Settings(max_silence_s=1.0, gap_s=(0.1, 0.3), hang_s=0.6, task_fault_s=0.3,
                 ledger_lock_s=0.4)  # fmt: skip
STEP = """\
read mode < fault
case "$mode" in
  hang) sleep 60 ;;
  crash) echo "step crashed" >&2; exit 3 ;;
  silent) exit 0 ;;
  secret) echo "token is $SOAK_TOKEN" ;;
  orphan) sleep 60 & echo "left a grandchild" ;;
  *) echo "step ok" ;;
esac
"""
CONFIG = """\
[schedule]
cadence_s = {cadence_s}

[[tasks]]
name = "step"
command = "sh step.sh"
timeout_s = 0.4
evidence = "stdout"
env = ["SOAK_TOKEN"]

[[tasks]]
name = "after"
command = "true"
timeout_s = 5
evidence = "exit"
required = false
depends_on = ["step"]

[watchdog]
max_silence_s = {max_silence_s}
max_failed_ticks = 3
"""
# Faults that should make the watchdog alert (held until it does), and those that should not.
ALERTING = ("hang", "crash", "silent", "kill9-late", "disk-full", "cap", "kill-flag")
QUIET = ("secret", "orphan", "kill9", "ledger-lock", "model-down")
MODEL_FAULTS = ("model-down", "cap")


@dataclass
class Episode:
    kind: str
    start: float
    end: float = 0.0
    expect_alert: bool = False
    alert_after_s: float | None = None  # from the fault to the alert
    cleared: bool = False
    note: str = ""


@dataclass
class Watch:
    """The watchdog's timer: `run_watchdog` every 0.2 s, from its own ledger connection."""

    root: Path
    checks: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        runtime = Runtime.open(load_runtime(self.root))
        try:
            while not self.stop.wait(WATCH_EVERY_S):
                self.checks.append((time.time(), run_watchdog(runtime, ping=False).status))
        finally:
            runtime.close()

    @property
    def alerting(self) -> bool:
        return bool(self.checks) and self.checks[-1][1] == "alert"


class Supervisor:
    """Starts `agent run`, restarts it when it exits (as systemd's Restart=always)."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.proc: subprocess.Popen[str] | None = None
        self.outputs: list[list[str]] = []  # [stdout, stderr] of each agent process
        self.exits: Counter[int] = Counter()
        self.restart = True
        self.full_disk = False
        self._readers: list[threading.Thread] = []
        self._down_since = 0.0

    def start(self) -> None:
        full = self.full_disk

        def limits() -> None:
            if full:
                resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

        self.proc = subprocess.Popen(
            [AGENT, "run", "--json", "--root", str(self.root)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=self.env, start_new_session=True,
            preexec_fn=limits,
        )  # fmt: skip
        record = ["", ""]
        self.outputs.append(record)
        for index, stream in enumerate((self.proc.stdout, self.proc.stderr)):
            reader = threading.Thread(target=self._read, args=(stream, record, index),
                                      daemon=True)  # fmt: skip
            reader.start()
            self._readers.append(reader)

    @staticmethod
    def _read(stream: Any, record: list[str], index: int) -> None:
        for line in stream:
            record[index] += line

    def poll(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.exits[self.proc.returncode] += 1
            self.proc = None
            self._down_since = time.monotonic()
        if self.proc is None and self.restart and (
            time.monotonic() - self._down_since >= RESTART_S
        ):
            self.start()

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.exits[-9] += 1
            self.proc = None

    def stop(self) -> None:
        """SIGTERM, as `systemctl stop`: the running task's group is ended, the tick recorded."""
        self.restart = False
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.exits[self.proc.returncode] += 1
            self.proc = None
        for reader in self._readers:
            reader.join(timeout=5)


class Soak:
    def __init__(self, root: Path, seed: int, quick: bool) -> None:
        self.root, self.quick = root, quick
        self.settings = QUICK if quick else Settings()
        self.rng = random.Random(seed)
        self.cap = CAP_STEP_USD
        self.env = {
            k: v for k, v in os.environ.items()
            if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "AGENT_KILL_FLAG")
        }  # fmt: skip
        self.env.update(NO_COLOR="1", SOAK_TOKEN=SECRET, SPEND_CAP_USD=str(self.cap))
        self.supervisor = Supervisor(root, self.env)
        self.watch = Watch(root)
        self.episodes: list[Episode] = []
        self.kill_windows: list[tuple[float, float]] = []
        self.model = ScriptedLLM()
        self.model_calls: Counter[str] = Counter()

    # Setting the scene -------------------------------------------------------------

    def prepare(self) -> None:
        (self.root / "deploy").mkdir(parents=True)
        (self.root / "deploy" / "agent.toml").write_text(
            CONFIG.format(cadence_s=CADENCE_S, max_silence_s=self.settings.max_silence_s)
        )
        (self.root / "step.sh").write_text(STEP)
        self.mode("ok")

    def mode(self, mode: str) -> None:
        atomic_write_text(self.root / "fault", mode + "\n")

    def wait(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Let time pass while supervising; True if `until` came true first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.supervisor.poll()
            if until is not None and until():
                return True
            time.sleep(0.02)
        return until is not None and until()

    def ticks(self) -> int:
        with contextlib.closing(sqlite3.connect(self.root / "runs" / "ledger.sqlite")) as db:
            return int(db.execute("SELECT COUNT(*) FROM ticks").fetchone()[0])

    # The conscious layer's model calls ------------------------------------------------

    def model_config(self) -> ModelConfig:
        return ModelConfig(model="openai/soak", api_base=self.model.url, max_tokens=100,
                           api_key_env=MODEL_KEY_ENV, input_usd_per_mtok=PRICE_PER_MTOK,
                           output_usd_per_mtok=PRICE_PER_MTOK, timeout_s=5)  # fmt: skip

    def client(self) -> LLMClient:
        config = load_runtime(self.root)
        return LLMClient(config, Ledger(config.ledger), Redactor({}),
                         models=(self.model_config(),), backoff_s=0.05)  # fmt: skip

    def call_model(self) -> str:
        os.environ["SPEND_CAP_USD"] = str(self.cap)
        os.environ[MODEL_KEY_ENV] = "sk-soak-loopback-0000"
        client = self.client()
        try:
            client.complete([{"role": "user", "content": "plan the day"}], purpose="soak")
            outcome = "ok"
        except LLMRefused as refused:
            outcome = refused.status
        except LLMUnavailable:
            outcome = "unavailable"
        finally:
            client.ledger.close()
        self.model_calls[outcome] += 1
        return outcome

    # Faults --------------------------------------------------------------------------

    def episode(self, kind: str) -> None:
        ep = Episode(kind, time.time(), expect_alert=kind in ALERTING)
        self.episodes.append(ep)
        getattr(self, "fault_" + kind.replace("-", "_"))(ep)
        ep.end = time.time()
        if ep.expect_alert and ep.alert_after_s is None:
            ep.note = "no alert while held"
        # Recovery: healthy ticks until the watchdog has cleared any alert.
        ep.cleared = self.wait(HOLD_LIMIT_S, lambda: not self.watch.alerting and self._checked())

    def _checked(self) -> bool:
        """The watchdog has checked again since the fault ended."""
        after = self.episodes[-1].end + WATCH_EVERY_S
        return bool(self.watch.checks) and self.watch.checks[-1][0] > after

    def hold(self, ep: Episode, seconds: float) -> None:
        """Keep the fault for `seconds`, and on until the watchdog alerts."""
        self.wait(seconds)
        if self.wait(HOLD_LIMIT_S, lambda: self.watch.alerting):
            first = next(t for t, status in self.watch.checks if t >= ep.start and
                         status == "alert")  # fmt: skip
            ep.alert_after_s = first - ep.start

    def task_fault(self, ep: Episode, mode: str, seconds: float) -> None:
        self.mode(mode)
        if ep.expect_alert:
            self.hold(ep, seconds)
        else:
            self.wait(seconds)
        self.mode("ok")

    def fault_hang(self, ep: Episode) -> None:
        self.task_fault(ep, "hang", self.settings.hang_s)

    def fault_crash(self, ep: Episode) -> None:
        self.task_fault(ep, "crash", self.settings.task_fault_s)

    def fault_silent(self, ep: Episode) -> None:
        self.task_fault(ep, "silent", self.settings.task_fault_s)

    def fault_secret(self, ep: Episode) -> None:
        self.task_fault(ep, "secret", self.settings.task_fault_s)

    def fault_orphan(self, ep: Episode) -> None:
        self.task_fault(ep, "orphan", self.settings.task_fault_s)

    def fault_kill9(self, ep: Episode) -> None:
        self.wait(self.rng.uniform(0, 0.3))  # a random moment, often mid-tick
        self.supervisor.kill9()
        self.wait(0.1)  # the supervisor restarts it at once

    def fault_kill9_late(self, ep: Episode) -> None:
        self.wait(self.rng.uniform(0, 0.3))
        self.supervisor.restart = False
        self.supervisor.kill9()
        self.hold(ep, self.settings.max_silence_s)
        self.supervisor.restart = True

    def fault_ledger_lock(self, ep: Episode) -> None:
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3, sys, time\n"
             "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
             "time.sleep(float(sys.argv[2])); db.execute('ROLLBACK')\n",
             str(self.root / "runs" / "ledger.sqlite"), str(self.settings.ledger_lock_s)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None
        ep.note = holder.stdout.readline().strip()
        while holder.poll() is None:
            self.wait(0.05)

    def fault_disk_full(self, ep: Episode) -> None:
        self.supervisor.full_disk = True
        if self.supervisor.proc is not None:
            resource.prlimit(self.supervisor.proc.pid, resource.RLIMIT_FSIZE,
                             (0, resource.RLIM_INFINITY))  # fmt: skip
        self.hold(ep, self.settings.max_silence_s)
        self.supervisor.full_disk = False
        self.supervisor.kill9()  # a process started under the limit keeps it: start afresh
        self.supervisor.poll()

    def fault_model_down(self, ep: Episode) -> None:
        self.model.stop()
        outcomes = [self.call_model() for _ in range(2)]
        self.model.start()
        ep.note = ",".join(outcomes)

    def fault_cap(self, ep: Episode) -> None:
        self.model.add("soak", *[Step("fine") for _ in range(20)])
        sent_before = len(self.model.received)
        outcomes = []
        while not outcomes or outcomes[-1] == "ok":
            outcomes.append(self.call_model())
            if len(outcomes) > 20:
                break
        # The refused call was never sent: the server saw only the ones that were paid for.
        refused_unsent = len(self.model.received) - sent_before == outcomes.count("ok")
        ep.note = f"{outcomes.count('ok')} paid, then {outcomes[-1]}" + (
            "" if refused_unsent else "; a refused call reached the server"
        )
        self.hold(ep, self.settings.max_silence_s)
        # The operator raises the cap (a new day's budget): the runner restarts with it.
        self.cap = round(self.cap + CAP_STEP_USD, 2)
        self.env["SPEND_CAP_USD"] = str(self.cap)
        self.supervisor.kill9()
        self.supervisor.poll()

    def fault_kill_flag(self, ep: Episode) -> None:
        flag = self.root / "runs" / "KILL"
        flag.write_text("soak: stop\n")
        begun = time.time()
        self.hold(ep, self.settings.max_silence_s)
        ended = time.time()
        flag.unlink()
        self.kill_windows.append((begun, ended))

    # The run ------------------------------------------------------------------------

    def run(self, target_ticks: int, budget_s: float) -> None:
        self.model.start()
        # litellm takes seconds to import: load it while the first faults run.
        warm = [{"role": "user", "content": "warm up"}]
        threading.Thread(target=count_prompt_tokens, args=(self.model_config(), warm),
                         daemon=True).start()  # fmt: skip
        self.supervisor.start()
        watcher = threading.Thread(target=self.watch.run, daemon=True)
        self.wait(10, lambda: (self.root / "runs" / "ledger.sqlite").exists())
        watcher.start()
        began = time.monotonic()
        kinds = list(ALERTING + QUIET)
        try:
            while True:
                self.rng.shuffle(kinds)
                if self.quick:  # the model's faults last, once litellm has loaded
                    kinds.sort(key=lambda kind: kind in MODEL_FAULTS)
                for kind in kinds:
                    self.wait(self.rng.uniform(*self.settings.gap_s))
                    self.episode(kind)
                if self.quick or self.ticks() >= target_ticks or (
                    time.monotonic() - began > budget_s
                ):
                    break
            self.wait(0.5)
        finally:
            self.supervisor.stop()
            self.watch.stop.set()
            watcher.join(timeout=10)
            self.model.stop()


# The checks ------------------------------------------------------------------------


def _ledger(root: Path) -> sqlite3.Connection:
    db = sqlite3.connect(root / "runs" / "ledger.sqlite")
    db.row_factory = sqlite3.Row
    return db


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def rows_lost(root: Path, outputs: list[list[str]]) -> tuple[int, int]:
    """(ticks reported or traced with no row or a different outcome, ticks in the ledger)."""
    with contextlib.closing(_ledger(root)) as db:
        rows = {r["id"]: r["status"] for r in db.execute("SELECT id, status FROM ticks")}
    reported: dict[int, str] = {}
    for out, _err in outputs:
        for line in out.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                result = json.loads(line)
                reported[int(result["tick"])] = result["status"]
    traced = {int(e["tick"]) for e in read_events(root / "runs" / "traces") if "tick" in e}
    missing = (set(reported) | traced) - set(rows)
    different = [t for t, status in reported.items() if rows.get(t, status) != status]
    return len(missing) + len(different), len(rows)


def orphans(root: Path) -> list[int]:
    """Processes still working in the deployment: a task's leftovers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if Path(os.readlink(entry / "cwd")).is_relative_to(root):
                found.append(int(entry.name))
    return found


def stale_locks(root: Path) -> list[str]:
    runs = root / "runs"
    stale = [str(p) for p in (runs / "agent.lock", runs / "traces" / ".lock")
             if lock_holder(p) is not None]  # fmt: skip
    with contextlib.closing(sqlite3.connect(runs / "ledger.sqlite", timeout=0)) as db:
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            stale.append(str(runs / "ledger.sqlite"))
    return stale


def leaks(root: Path, outputs: list[list[str]]) -> list[str]:
    found = [str(p) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    found += [f"agent output {i}" for i, pair in enumerate(outputs) if SECRET in "".join(pair)]
    return found


def kill_flag_breaches(root: Path, windows: list[tuple[float, float]]) -> int:
    """Tasks started, or ticks not refused, while the flag was down (50 ms after it was
    written: a check just before the write may still start its task)."""
    breaches = 0
    with contextlib.closing(_ledger(root)) as db:
        runs = [_stamp(r["started"]) for r in db.execute("SELECT started FROM task_runs")]
        ticks = [(_stamp(r["started"]), r["status"]) for r in
                 db.execute("SELECT started, status FROM ticks")]  # fmt: skip
    for begun, ended in windows:
        breaches += sum(begun + 0.05 < t < ended for t in runs)
        breaches += sum(begun + 0.05 < t < ended and s != "refused-kill" for t, s in ticks)
    return breaches


def unexpected_alerts(soak: Soak) -> int:
    """Alerts that began outside every fault expected to raise one."""
    onsets = [t for (t, s), (_, before) in zip(soak.watch.checks[1:], soak.watch.checks,
              strict=False) if s == "alert" and before != "alert"]  # fmt: skip
    if soak.watch.checks and soak.watch.checks[0][1] == "alert":
        onsets.insert(0, soak.watch.checks[0][0])
    windows = [(e.start, e.end + 1.0) for e in soak.episodes if e.expect_alert]
    return sum(not any(a <= t <= b for a, b in windows) for t in onsets)


def verdict(soak: Soak, seconds: float) -> dict[str, Any]:
    root = soak.root
    lost, ticks = rows_lost(root, soak.supervisor.outputs)
    left = orphans(root)
    for pid in left:  # counted; now leave nothing behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.closing(_ledger(root)) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        outcomes = dict(Counter(tick_status(dict(r)) for r in db.execute("SELECT * FROM ticks")))
    expected = [e for e in soak.episodes if e.expect_alert]
    raised = [e for e in expected if e.alert_after_s is not None]
    checks = {
        "rows_lost": lost,
        "integrity": integrity,
        "orphans": len(left),
        "stale_locks": stale_locks(root),
        "secret_leaks": leaks(root, soak.supervisor.outputs),
        "kill_flag_breaches": kill_flag_breaches(root, soak.kill_windows),
        "alerts_expected": len(expected),
        "alerts_raised": len(raised),
        "alerts_cleared": sum(e.cleared for e in soak.episodes),
        "unexpected_alerts": unexpected_alerts(soak),
        "tracebacks": sum("Traceback" in err for _, err in soak.supervisor.outputs),
    }
    passed = (
        lost == 0 and integrity == "ok" and not left and not checks["stale_locks"]
        and not checks["secret_leaks"] and checks["kill_flag_breaches"] == 0
        and len(raised) == len(expected) and checks["alerts_cleared"] == len(soak.episodes)
        and checks["unexpected_alerts"] == 0 and checks["tracebacks"] == 0
    )  # fmt: skip
    return {
        "passed": passed,
        "ticks": ticks,
        "seconds": round(seconds, 1),
        "outcomes": outcomes,
        "faults": dict(sorted(Counter(e.kind for e in soak.episodes).items())),
        "longest_fault_to_alert_s": max((e.alert_after_s or 0.0 for e in raised), default=None),
        "max_silence_s": soak.settings.max_silence_s,
        "model_calls": dict(soak.model_calls),
        "agent_exits": {str(k): v for k, v in sorted(soak.supervisor.exits.items())},
        "checks": checks,
        "episodes": [asdict(e) for e in soak.episodes],
    }


def figures_line(result: dict[str, Any], seed: int) -> str:
    checks = result["checks"]
    faults = " ".join(f"{kind} {n}" for kind, n in result["faults"].items())
    gap = result["longest_fault_to_alert_s"]
    return (
        f"soak seed {seed}: {result['ticks']} ticks in {result['seconds']:.0f} s; "
        f"faults: {faults}; rows lost {checks['rows_lost']}; orphans {checks['orphans']}; "
        f"stale locks {len(checks['stale_locks'])}; secrets leaked "
        f"{len(checks['secret_leaks'])}; kill-flag breaches {checks['kill_flag_breaches']}; "
        f"alerts expected {checks['alerts_expected']}, raised {checks['alerts_raised']}, "
        f"cleared {checks['alerts_cleared']}/{len(result['episodes'])} faults, unexpected "
        f"{checks['unexpected_alerts']}; longest fault-to-alert "
        f"{'-' if gap is None else f'{gap:.1f} s'} (max_silence_s {result['max_silence_s']:g}); "
        f"integrity {checks['integrity']}; {'PASS' if result['passed'] else 'FAIL'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=2000, help="run until this many ticks")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=9.0, help="stop rounds after this")
    parser.add_argument("--quick", action="store_true", help="one round of every fault")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="ratchet-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        soak = Soak(folder.resolve(), args.seed, args.quick)
        soak.prepare()
        began = time.monotonic()
        soak.run(args.ticks, args.minutes * 60)
        result = verdict(soak, time.monotonic() - began)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2) if args.json else figures_line(result, args.seed))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
