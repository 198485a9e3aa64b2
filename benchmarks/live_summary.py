"""What the live run (benchmarks/live.py) saw, as figures: the seeded faults and the
person's commits it followed, and the summary it prints (JSON and readable).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import live_world as w

if TYPE_CHECKING:
    from live import Live


@dataclass
class Seeded:
    fault: w.Fault
    commit: str
    seeded_at: float
    record_commit: str = ""
    recorded_at: float | None = None
    goals: list[str] = field(default_factory=list)  # its failing tests, as the baseline has them
    repair_commit: str = ""
    repaired_at: float | None = None
    restored: bool | None = None  # the repaired file is the file before the fault

    def to_json(self, start: float) -> dict[str, Any]:
        rel = {
            k: None if v is None else round(v - start, 1)
            for k, v in (
                ("seeded_s", self.seeded_at),
                ("recorded_s", self.recorded_at),
                ("repaired_s", self.repaired_at),
            )
        }
        took = None if self.repaired_at is None else round(self.repaired_at - self.seeded_at, 1)
        return {
            **self.fault.to_json(),
            "commit": self.commit,
            "record": self.record_commit,
            "goals": self.goals,
            "repair": self.repair_commit,
            "restored": self.restored,
            "fault_to_repair_s": took,
            **rel,
        }


@dataclass
class PersonCommit:
    kind: str  # break | delete
    commit: str
    at: float
    what: str
    tests: list[str]
    found: str = ""  # incident | reverted
    found_after_s: float | None = None
    alone: bool | None = None  # named (or reverted) without any other commit
    action: str = ""
    action_rc: int | None = None
    closed: bool = False


NOT_RUN = ("blocked", "not-due")  # recorded, never started


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 1),
        "min_s": round(min(values), 1),
        "max_s": round(max(values), 1),
    }


def summarise(live: Live, report: dict[str, Any], left: int, html: Path) -> dict[str, Any]:
    ledger = live.clone / "runs" / "ledger.sqlite"
    rows = w.ledger_rows(ledger, "ticks")
    reported = {int(t["tick"]): str(t["status"]) for t in live.ticks if t["tick"] is not None}
    tasks: dict[str, Counter[str]] = {}
    for tick in live.ticks:
        for task in tick["tasks"]:
            tasks.setdefault(task["task"], Counter())[task["status"]] += 1
    ran = [r for r in w.ledger_rows(ledger, "task_runs") if r["status"] not in NOT_RUN]
    runs = [r for r in ran if r["task"] == "safety-net"]
    by_status: dict[str, list[float]] = {}
    for r in runs:
        status = "timeout" if r["status"] == "timeout" else w.safety_status(r["stdout_tail"])
        by_status.setdefault(status, []).append(r["duration_s"])
    cycle = [r["duration_s"] for r in ran if r["task"] == "evolve-cycle"]
    ours = {p.commit for p in live.people}
    good = sorted({c for reverted in live.reverts.values() for c in reverted} - ours)
    repaired = [s for s in live.faults if s.repaired_at is not None]
    lost = w.rows_lost(len(live.ticks), reported, rows)
    passed = (
        bool(repaired)
        and all(p.found and p.alone for p in live.people)
        and not good
        and lost == 0
        and left == 0
        and not live.error
    )
    return {
        "passed": passed,
        "error": live.error,
        "settings": {k: v for k, v in vars(live.args).items() if k not in ("json", "out")}
        | {"repo": str(live.args.repo)},
        "prepare": live.prep,
        "minutes": round((live.ended - live.start) / 60, 1),
        "ticks": {
            "started": len(live.ticks),
            "ledger_rows": len(rows),
            "rows_lost": lost,
            "by_outcome": dict(Counter(str(t["status"]) for t in live.ticks)),
        },
        "tasks": {name: dict(counts) for name, counts in tasks.items()},
        "safety_net": {status: _spread(v) for status, v in sorted(by_status.items())}
        | {"timeouts": sum(r["status"] == "timeout" for r in runs)},
        "evolve_cycle": _spread(cycle),
        "proposals": {
            k: report.get("proposals", {}).get(k)
            for k in ("made", "accepted", "rejected", "reverted", "by_proposer")
        },
        "faults": [s.to_json(live.start) for s in live.faults],
        "faults_repaired": len(repaired),
        "people": [asdict(p) | {"at": round(p.at - live.start, 1)} for p in live.people],
        "incidents": {
            "safety_net": [
                {"head": h, "kind": k, "culprit": c, "when": when}
                for (h, k, c), when in live.incidents.items()
            ],
            "watchdog": len(report.get("incidents", [])),
            "in_report": report.get("proposals", {}).get("incidents"),
            "unexpected": live.unexpected,
        },
        "good_commits_reverted": good,
        "reverts": live.reverts,
        "processes_left": left,
        "operator": live.actions,
        "report_html": str(html),
        "clone": str(live.clone) if live.args.keep else None,
    }


def readable(s: dict[str, Any]) -> str:
    ticks, prop, cycle = s["ticks"], s["proposals"], s["evolve_cycle"]
    lines = [
        f"live run: {s['minutes']} min, {ticks['started']} ticks "
        f"({', '.join(f'{k} {v}' for k, v in sorted(ticks['by_outcome'].items()))}); rows lost "
        f"{ticks['rows_lost']} ({ticks['ledger_rows']} ledger rows); processes left "
        f"{s['processes_left']}; spec cadence {s['prepare'].get('spec_cadence_s')} s",
        "safety net: "
        + "; ".join(
            f"{k} {v['n']} (median {v['median_s']} s, max {v['max_s']} s)"
            for k, v in s["safety_net"].items()
            if isinstance(v, dict) and v["n"]
        )
        + f"; timeouts {s['safety_net']['timeouts']}",
        f"evolve cycle: {cycle['n']} runs, median {cycle.get('median_s')} s, "
        f"max {cycle.get('max_s')} s",
        f"proposals: made {prop['made']}, accepted {prop['accepted']}, rejected "
        f"{prop['rejected']}, reverted {prop['reverted']}",
        f"faults: {len(s['faults'])} seeded, {s['faults_repaired']} repaired",
    ]
    for f in s["faults"]:
        took = (
            "not repaired"
            if f["repair"] == ""
            else f"repaired by {f['repair'][:10]} {f['fault_to_repair_s']} s after seeding "
            f"({'as written' if f['restored'] else 'another fix'})"
        )
        lines.append(
            f"  {f['file']}:{f['line']} {f['kind']} ({f['before']} -> {f['after']}), "
            f"{len(f['goals'])} failing test(s): {took}"
        )
    for p in s["people"]:
        found = (
            f"found after {p['found_after_s']} s ({p['found']}, "
            f"{'alone' if p['alone'] else 'NOT alone'})"
            if p["found"]
            else "NOT found"
        )
        act = f"; operator: {p['action']} (rc {p['action_rc']})" if p["action"] else ""
        lines.append(f"person's {p['kind']} {p['commit'][:10]} ({p['what']}): {found}{act}")
    inc = s["incidents"]
    lines.append(
        f"incidents: safety net {len(inc['safety_net'])}, watchdog {inc['watchdog']}, "
        f"unexpected {len(inc['unexpected'])}; good commits reverted "
        f"{len(s['good_commits_reverted'])}"
    )
    if s["error"]:
        lines.append(f"stopped early: {s['error']}")
    lines.append(f"report: {s['report_html']}  {'PASS' if s['passed'] else 'FAIL'}")
    return "\n".join(lines)
