"""Benchmark: the reference deployment, live, on a fresh clone of this repository.

The driver plays everyone around a deployed agent; the set time (`--minutes`) starts
with the first tick, once the set-up (the install, the operator's commit, the first fault
and its record) is done:
- the installer: a fresh clone of this repository (`--repo`, `--rev`), the README's
  install command (uv from requirements.lock), so the clone runs its own code;
- the operator, once: SPEC.md edited as an operator would for a short run (the evolve
  cycle offline, `--proposer mutate`, at its own `every_s`; on a slow host longer
  timeouts for the whole-suite tasks, `--task-timeout`, and a longer search,
  `--search-seconds`; the shortest cadence the factory then accepts: every `timeout_s`
  must fit under it), `factory build`, both committed (the gate refuses a deploy/ that
  does not match SPEC.md);
- the timer: `.venv/bin/agent tick --json` every `--cadence` seconds, never two at once
  (a tick that outlasts the cadence is followed at once), then `agent watchdog`;
- the operator seeding work: every `--fault-every` seconds one line of a script in
  scripts/ is faulted (benchmarks/faults.py, a TSSB-3M kind, kept only when its repair is
  one of mutate's own edits and a test of its script fails), committed, and recorded
  as a known failure with
  `evolve baseline record --reset`, the way `evolve demo` seeds its bug: the cycle's
  goals are the baseline's failing tests;
- a person: one commit that breaks a baseline-passing test (`--break-at`), one that
  deletes one (`--delete-at`), neither recorded: the safety net must find each, and
  report it as an incident (or revert it, per policy); the operator then does what the
  incident says (the revert it names; `evolve baseline record --reset` for the deletion,
  which was on purpose), so the loop goes on.
Events wait until main carries a verdict again, so each is judged alone.

It reports ticks by outcome, the safety net's durations, proposals made / accepted /
rejected / reverted, each seeded fault's time to its merged repair, the person's commits
(found how, how fast, alone?), incidents, good commits reverted, rows lost (ticks
started without exactly one ledger row of the outcome they printed), processes left,
and writes `agent report --html`. Everything goes under `--out` (default: a new folder
under /tmp); the clone is deleted unless `--keep`.

Usage: python benchmarks/live.py [--minutes 60] [--cadence 60] [--fault-every 1200]
       [--break-at MIN] [--delete-at MIN] [--no-person] [--task-timeout S]
       [--search-seconds S] [--seed 23] [--out DIR] [--keep] [--json]
No timing is asserted anywhere: this prints figures for the README.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import live_world as w
from live_summary import PersonCommit, Seeded, readable, summarise

GRACE_S = 900.0  # the last tick may finish this long after the set time, then it is stopped


class Live:
    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args, self.out, self.clone = args, out, out / "clone"
        self.bin = self.clone / ".venv" / "bin"
        self.python = str(self.bin / "python")
        self.rng = random.Random(args.seed)
        self.faults: list[Seeded] = []
        self.people: list[PersonCommit] = []
        self.actions: list[dict[str, Any]] = []
        self.ticks: list[dict[str, Any]] = []
        self.reverts: dict[str, list[str]] = {}  # revert commit -> the commits it reverts
        self.incidents: dict[tuple[str, str, str], str] = {}  # (head, kind, culprit) -> when
        self.unexpected: list[str] = []
        self.start = time.time()
        self.deadline = self.ended = 0.0
        self.prep: dict[str, Any] = {}
        self.error = ""

    # -- the operator's shell ----------------------------------------------------------

    def sh(
        self,
        argv: list[str],
        why: str,
        who: tuple[str, str] = w.OPERATOR,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        began = time.time()
        done = w.run(argv, self.clone, who, timeout)
        self.actions.append(
            {
                "at_s": round(began - self.start, 1),
                "why": why,
                "command": shlex.join(argv),
                "rc": done.returncode,
                "seconds": round(time.time() - began, 1),
            }
        )
        self.say(f"{why}: rc {done.returncode} in {time.time() - began:.0f} s")
        with (self.out / "operator.log").open("a", encoding="utf-8") as log:
            log.write(
                f"$ {shlex.join(argv)}  # {why}: rc {done.returncode}\n"
                f"{done.stdout[-3000:]}{done.stderr[-3000:]}\n"
            )
        return done

    def note(self, why: str, **extra: Any) -> None:
        self.actions.append({"at_s": round(time.time() - self.start, 1), "why": why, **extra})
        self.say(why + "".join(f" {v}" for k, v in extra.items() if k in ("commit", "what")))

    def say(self, text: str) -> None:
        """Progress, on stderr: the run is long."""
        print(f"[{(time.time() - self.start) / 60:+6.1f} min] {text}", file=sys.stderr, flush=True)

    def ask(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A question to `evolve` (not an action: not in the operator's log)."""
        return w.run([str(self.bin / "evolve"), *args], self.clone)

    def verified(self) -> bool:
        return self.ask("verify", "main").returncode == 0

    def trail(self, *args: str) -> list[dict[str, Any]]:
        done = self.ask("log", "--json", *args)
        return json.loads(done.stdout).get("entries", []) if done.returncode == 0 else []

    def record(self, why: str) -> dict[str, Any]:
        done = self.sh([str(self.bin / "evolve"), "baseline", "record", "--reset", "--json"], why)
        if done.returncode != 0:
            raise RuntimeError(f"baseline record failed: {done.stderr.strip()[-400:]}")
        return json.loads(done.stdout)

    # -- setting up ------------------------------------------------------------------------

    def prepare(self) -> None:
        began, a = time.time(), self.args
        rev = w.git(self.args.repo, "rev-parse", self.args.rev)
        w.run(
            ["git", "clone", "-q", "--no-hardlinks", str(self.args.repo), str(self.clone)], self.out
        ).check_returncode()
        w.git(self.clone, "checkout", "-q", "-B", "main", rev)
        for key, value in zip(("user.name", "user.email"), w.AGENT_IDENTITY, strict=True):
            w.git(self.clone, "config", key, value)
        cloned = time.time()
        self.sh(["sh", "-c", w.INSTALL], "the README's install").check_returncode()
        installed = time.time()
        spec_path = self.clone / "SPEC.md"
        spec = spec_path.read_text(encoding="utf-8")
        spec, every = w.live_spec(spec, a.cadence, a.cycle_every, a.task_timeout, a.search_seconds)
        spec_path.write_text(spec, encoding="utf-8")
        self.sh([str(self.bin / "factory"), "build"], "render the live SPEC.md").check_returncode()
        w.git(self.clone, "add", "SPEC.md", "deploy")
        commit = w.commit_all(
            self.clone,
            f"operator: live run: ticks every {self.args.cadence} s (spec "
            f"cadence {every} s), the evolve cycle offline (mutate) every "
            f"{self.args.cycle_every} s",
            w.OPERATOR,
        )
        self.prep = {
            "commit": rev,
            "operator_commit": commit,
            "clone_s": round(cloned - began, 1),
            "install_s": round(installed - cloned, 1),
            "spec_cadence_s": every,
        }

    # -- events ------------------------------------------------------------------------------

    def plan(self) -> list[tuple[float, str]]:
        """(seconds from the first tick, event): faults from 0, the person's two commits."""
        limit, a = self.args.minutes * 60, self.args
        count = int(limit // a.fault_every) + 1 if a.fault_every > 0 else 0
        events = [(a.fault_every * k, "fault") for k in range(count) if a.fault_every * k < limit]
        return sorted(
            events
            + [
                (m * 60, kind)
                for m, kind in ((a.break_at, "break"), (a.delete_at, "delete"))
                if m is not None and 0 <= m * 60 < limit
            ]
        )

    def open_files(self) -> list[str]:
        busy = {s.fault.file for s in self.faults if s.repaired_at is None}
        return [f for f in w.FAULT_FILES if f not in busy and (self.clone / f).exists()]

    def seed(self) -> None:
        fault = w.seed_fault(self.clone, self.python, self.rng, self.open_files())
        if fault is None:
            return self.note("no fault that a test sees was found")
        commit = w.commit_all(
            self.clone,
            f"operator: seed a fault ({fault.kind} at {fault.file}:{fault.line})",
            w.OPERATOR,
        )
        self.note(
            "seed a fault",
            commit=commit,
            fault=fault.to_json(),
            what=f"{fault.file}:{fault.line} {fault.before} -> {fault.after}",
        )
        seeded = Seeded(fault, commit, time.time())
        self.faults.append(seeded)
        recorded = self.record(f"record fault #{len(self.faults)} as a known failure")
        seeded.record_commit, seeded.recorded_at = recorded["commit"], time.time()
        tests = w.baseline_tests(self.clone)
        seeded.goals = [n for n in fault.failing if tests.get(n) in ("failed", "error")]

    def person(self, kind: str) -> None:
        passing = {n for n, o in w.baseline_tests(self.clone).items() if o == "passed"}
        change = w.person_change(
            self.clone, self.python, self.rng, kind, self.open_files(), passing
        )
        if change is None:
            return self.note(f"the person found nothing to {kind}")
        message, what, tests = change
        commit = w.commit_all(self.clone, message, w.PERSON)
        self.note(f"a person's commit ({kind})", commit=commit, what=what)
        self.people.append(PersonCommit(kind, commit, time.time(), what, tests))

    def events(self, plan: list[tuple[float, str]]) -> None:
        """Every event that is due, while main carries a verdict (one thing judged at a time)."""
        while plan and time.time() - self.start >= plan[0][0] and time.time() < self.deadline:
            if any(not p.closed for p in self.people) or not self.verified():
                return
            kind = plan.pop(0)[1]
            if kind == "fault":
                self.seed()
            else:
                self.person(kind)

    # -- ticks -------------------------------------------------------------------------------

    def tick(self) -> None:
        began = time.time()
        result, code, err = w.agent_tick(self.bin, self.clone, self.deadline + GRACE_S - began)
        row = {
            "tick": result.get("tick"),
            "status": result.get("status"),
            "exit_code": code,
            "at_s": round(began - self.start, 1),
            "seconds": round(time.time() - began, 1),
            "tasks": result.get("tasks", []),
            "stderr": err[-500:],
        }
        self.ticks.append(row)
        self.say(
            f"tick {row['tick']}: {row['status']} in {row['seconds']} s ("
            + ", ".join(f"{t['task']} {t['status']}" for t in row["tasks"] if t["status"] != "ok")
            + ")"
        )
        with (self.out / "ticks.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps(row, sort_keys=True) + "\n")
        w.run([str(self.bin / "agent"), "watchdog", "--no-ping"], self.clone)  # its timer

    def observe(self) -> None:
        """What the safety net and the cycle did, from git alone."""
        now = time.time()
        for entry in self.trail():
            if entry["verdict"] == "reverted":
                self.reverts.setdefault(entry["commit"], w.reverted_commits(entry))
            elif entry["verdict"] == "incident":
                for kind, culprit in w.incident_culprits(entry):
                    self.incidents.setdefault((entry["commit"], kind, culprit), entry["when"])
        for p in (p for p in self.people if not p.found):
            for reverted in self.reverts.values():
                if p.commit in reverted:
                    p.found, p.alone, p.closed = "reverted", reverted == [p.commit], True
            named = [(h, c) for h, _k, c in self.incidents if c]
            if any(c == p.commit for _h, c in named):
                p.found = "incident"
                heads = {h for h, c in named if c == p.commit}
                p.alone = all(c == p.commit for h, c in named if h in heads)
            if p.found:
                p.found_after_s = round(now - p.at, 1)
                self.say(f"the person's {p.kind} {p.commit[:10]} was found: {p.found}")
        for s in (s for s in self.faults if s.repaired_at is None and s.goals):
            repair = w.repair_of(self.clone, s.record_commit, s.goals)
            if repair is not None:
                s.repair_commit, s.repaired_at = repair
                text = w.run(["git", "show", f"main:{s.fault.file}"], self.clone).stdout
                s.restored = text == s.fault.original
                self.say(
                    f"fault in {s.fault.file}:{s.fault.line} repaired by {s.repair_commit[:10]}"
                )

    def act(self) -> None:
        """The operator acts on what the safety net left to a person."""
        entries = self.trail("--limit", "5")
        head = w.git(self.clone, "rev-parse", "main")
        for p in (p for p in self.people if p.found == "incident" and not p.action):
            if p.kind == "delete":
                p.action = w.RESET
                p.action_rc = self.sh(
                    [str(self.bin / "evolve"), "baseline", "record", "--reset"],
                    "the deletion was on purpose: lower the ratchet",
                ).returncode
            else:
                entry = next((e for e in entries if e["verdict"] == "incident"), {})
                p.action = w.named_command(entry, p.commit)
                p.action_rc = self.sh(shlex.split(p.action), "revert the culprit").returncode
        ours = {p.commit for p in self.people}
        stray = [c for (h, _k, c) in self.incidents if h == head and c not in ours]
        if stray and not self.verified():
            self.unexpected.append(head)
            self.record("an incident the run did not cause: the operator accepts main as it is")
        for p in (p for p in self.people if p.found and not p.closed):
            p.closed = self.verified()

    def run(self) -> None:
        """The set-up's last steps (the first fault, a baseline of main as it now is),
        then the set time of ticks and events, from the first tick."""
        plan = self.plan()
        self.deadline = time.time() + 86400.0  # the set-up's events are not cut short
        if plan and plan[0] == (0.0, "fault"):
            plan.pop(0)
            self.seed()
        if not self.verified():
            self.record("the deployment's own baseline, on the operator's commit")
        began, self.start = self.start, time.time()
        for action in self.actions:  # what the set-up did, before the clock: negative
            action["at_s"] = round(action["at_s"] - (self.start - began), 1)
        self.prep["setup_s"] = round(self.start - began, 1)
        self.deadline = self.start + self.args.minutes * 60
        next_tick = time.time()
        while time.time() < self.deadline:
            self.events(plan)
            if time.time() >= next_tick and time.time() < self.deadline:
                next_tick = time.time() + self.args.cadence
                self.tick()
                self.observe()
                self.act()
            else:
                time.sleep(max(0.0, min(5.0, next_tick - time.time())))
        self.ended = time.time()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="how long ticks run")
    parser.add_argument("--cadence", type=int, default=60, help="seconds between tick starts")
    parser.add_argument(
        "--cycle-every",
        type=int,
        default=None,
        help="the evolve cycle's every_s (default: the cadence)",
    )
    parser.add_argument(
        "--fault-every",
        type=float,
        default=1200.0,
        help="seconds between seeded faults, the first at once (0: none)",
    )
    parser.add_argument(
        "--break-at",
        type=float,
        default=None,
        help="minute of the person's breaking commit (default: a quarter in)",
    )
    parser.add_argument(
        "--delete-at",
        type=float,
        default=None,
        help="minute of the person's test deletion (default: half-way)",
    )
    parser.add_argument("--no-person", action="store_true", help="no person's commits")
    parser.add_argument(
        "--task-timeout",
        type=int,
        default=None,
        help="timeout_s of the tasks that run the whole suite, for a slow host",
    )
    parser.add_argument(
        "--search-seconds", type=float, default=None, help="the cycle's mutate search budget"
    )
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--repo", type=Path, default=w.HERE, help="the repository to clone")
    parser.add_argument("--rev", default="HEAD", help="the commit the clone's main starts at")
    parser.add_argument("--out", type=Path, help="a new folder for everything (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the clone under --out")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    args.cycle_every = args.cycle_every or args.cadence
    if args.no_person:
        args.break_at = args.delete_at = None
    else:
        args.break_at = args.minutes * 0.25 if args.break_at is None else args.break_at
        args.delete_at = args.minutes * 0.5 if args.delete_at is None else args.delete_at
    out = (args.out or Path(tempfile.mkdtemp(prefix="ratchet-live-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    live = Live(args, out)
    try:
        live.prepare()
        live.run()
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as error:
        live.error = f"{type(error).__name__}: {error}"  # the figures so far still count
    finally:
        live.ended = live.ended or time.time()
        left = w.leftovers(live.clone)
        w.end_processes(left)
    since = datetime.fromtimestamp(live.start, UTC).isoformat(timespec="seconds")
    html = out / "report.html"
    done = live.sh(
        [str(live.bin / "agent"), "report", "--since", since, "--json", "--html", str(html)],
        "the run's report",
    )
    report = json.loads(done.stdout) if done.returncode == 0 else {}
    if (live.clone / "runs" / "ledger.sqlite").exists():
        shutil.copy2(live.clone / "runs" / "ledger.sqlite", out / "ledger.sqlite")
    summary = summarise(live, report, len(left), html)
    (out / "live.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "live.txt").write_text(readable(summary) + "\n")
    if not args.keep:
        shutil.rmtree(live.clone, ignore_errors=True)
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else readable(summary))
    print(f"everything is under {out}", file=sys.stderr)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
