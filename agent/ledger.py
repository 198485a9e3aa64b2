"""The SQLite ledger shared by the runtime and the evolution engine.

One file (default `runs/ledger.sqlite`, WAL mode, safe for concurrent writers) holds every
tick, every task run, every watchdog check and every LLM call, so one daily cap covers the
agent and the evolution engine together, and `agent status` reads one place. The cap is
enforced by *reservation*: before a call, in one write transaction, today's spend plus
the outstanding reservations plus this call's worst-case estimate is checked against the
cap and the reservation is written. Two processes can therefore never both squeeze
under the cap, and a process killed mid-call leaves its reservation counted (failing
closed) rather than forgotten.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.clock import utc_now

Migration = Callable[[sqlite3.Connection], None]


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE llm_calls (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            day TEXT NOT NULL,
            model TEXT NOT NULL,
            purpose TEXT NOT NULL,
            outcome TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            estimate_usd REAL NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            error TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute("CREATE INDEX llm_calls_day ON llm_calls(day)")


def _v2(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE ticks (
            id INTEGER PRIMARY KEY,
            started TEXT NOT NULL,
            finished TEXT,
            trigger TEXT NOT NULL,
            pid INTEGER NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute(
        """
        CREATE TABLE task_runs (
            id INTEGER PRIMARY KEY,
            tick_id INTEGER NOT NULL REFERENCES ticks(id),
            task TEXT NOT NULL,
            required INTEGER NOT NULL,
            started TEXT NOT NULL,
            duration_s REAL NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            exit_code INTEGER,
            detail TEXT NOT NULL DEFAULT '',
            stdout_tail TEXT NOT NULL DEFAULT '',
            stderr_tail TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute("CREATE INDEX task_runs_task ON task_runs(task, id)")
    db.execute(
        """
        CREATE TABLE watchdog_checks (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT ''
        )
        """
    )


# Append only: a released schema is never edited, a new step is added.
MIGRATIONS: tuple[Migration, ...] = (_v1, _v2)
# A tick that ends in one of these did its job; anything else counts against it.
TICK_SUCCESS = ("ok", "degraded")
PENDING = "pending"
CAP_TOLERANCE_USD = 1e-9
# Each table's time column, for reading a window of the record (`agent report`).
TIME_COLUMNS = {"ticks": "started", "task_runs": "started", "llm_calls": "ts",
                "watchdog_checks": "ts"}  # fmt: skip


@dataclass(frozen=True)
class Reservation:
    call_id: int
    estimate_usd: float


class CapReached(Exception):
    def __init__(self, spent: float, estimate: float, cap: float) -> None:
        self.spent, self.estimate, self.cap = spent, estimate, cap
        super().__init__(
            f"spend cap reached: ${spent:.4f} spent or reserved today + ${estimate:.4f} "
            f"worst case for this call > ${cap:.2f} cap"
        )


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout=30000")
        # Switching a new file to WAL needs a moment with no other writer, and SQLite
        # reports "locked" at once instead of waiting: several processes opening a fresh
        # ledger together (the agent and the evolution engine) must retry, not fail.
        deadline = time.monotonic() + 30
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self._migrate()
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.db.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.version
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has schema {version}, newer than this code knows "
                    f"({len(MIGRATIONS)}): upgrade Ratchet"
                )
            for step in MIGRATIONS[version:]:
                step(self.db)
            self.db.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _spent(self, day: str) -> float:
        row = self.db.execute(
            "SELECT COALESCE(SUM(CASE WHEN outcome = ? THEN estimate_usd ELSE cost_usd END), 0)"
            " FROM llm_calls WHERE day = ?",
            (PENDING, day),
        ).fetchone()
        return float(row[0])

    def spent_today(self, now: datetime | None = None) -> float:
        """Today's (UTC) spend, counting open reservations at their worst case."""
        return self._spent((now or utc_now()).date().isoformat())

    def over_cap(self, cap_usd: float | None) -> float | None:
        """Today's spend when it has reached `cap_usd` (nothing more may start), else None.

        The one meaning of "cap reached", for the tick's guard, `agent status` and the
        evolution cycle: today's spend is at or over the cap, and is not zero. So a $0
        cap ("spend nothing") with nothing spent is not reached and halts nothing: the
        tasks run, a zero-cost local model answers, and every priced call is refused by
        its own reservation before it is sent (its worst case is above 0). It is reached
        only if something was spent today anyway (the cap was lowered to 0 mid-day).
        """
        if cap_usd is None:
            return None
        spent = self.spent_today()
        reached = spent >= cap_usd - CAP_TOLERANCE_USD and spent > CAP_TOLERANCE_USD
        return spent if reached else None

    def reserve(
        self, model: str, purpose: str, estimate_usd: float, cap_usd: float | None
    ) -> Reservation:
        """Check the cap and reserve the worst case, atomically; raise CapReached if over."""
        now = utc_now()
        day = now.date().isoformat()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            spent = self._spent(day)
            # Sums of cents are not exact in binary: allow for rounding, never for a cent.
            if cap_usd is not None and spent + estimate_usd > cap_usd + CAP_TOLERANCE_USD:
                self.db.execute(
                    "INSERT INTO llm_calls (ts, day, model, purpose, outcome, estimate_usd, error)"
                    " VALUES (?, ?, ?, ?, 'refused-cap', ?, ?)",
                    (now.isoformat(), day, model, purpose, estimate_usd, "cap reached"),
                )
                self.db.execute("COMMIT")
                raise CapReached(spent, estimate_usd, cap_usd)
            cursor = self.db.execute(
                "INSERT INTO llm_calls (ts, day, model, purpose, outcome, estimate_usd)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now.isoformat(), day, model, purpose, PENDING, estimate_usd),
            )
            self.db.execute("COMMIT")
        except CapReached:
            raise
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return Reservation(int(cursor.lastrowid or 0), estimate_usd)

    def settle(
        self,
        reservation: Reservation,
        *,
        outcome: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
        error: str = "",
    ) -> None:
        self.db.execute(
            "UPDATE llm_calls SET outcome = ?, prompt_tokens = ?, completion_tokens = ?,"
            " cost_usd = ?, error = ? WHERE id = ?",
            (outcome, prompt_tokens, completion_tokens, cost_usd, error, reservation.call_id),
        )

    def note(self, model: str, purpose: str, outcome: str, error: str = "") -> None:
        """A row for an attempt that never reached the cap check (kill flag, missing key)."""
        now = utc_now()
        self.db.execute(
            "INSERT INTO llm_calls (ts, day, model, purpose, outcome, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (now.isoformat(), now.date().isoformat(), model, purpose, outcome, error),
        )

    def calls(self, day: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM llm_calls" + (" WHERE day = ?" if day else "") + " ORDER BY id"
        return self._rows(query, (day,) if day else ())

    def _rows(self, query: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(query, args)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # Ticks and task runs -------------------------------------------------------------

    def start_tick(self, trigger: str, status: str = "running", reason: str = "") -> int:
        """Open a tick row first, so a tick killed half-way still leaves its trace."""
        cursor = self.db.execute(
            "INSERT INTO ticks (started, trigger, pid, status, reason) VALUES (?, ?, ?, ?, ?)",
            (utc_now().isoformat(), trigger, os.getpid(), status, reason),
        )
        return int(cursor.lastrowid or 0)

    def finish_tick(self, tick_id: int, status: str, reason: str = "") -> None:
        self.db.execute(
            "UPDATE ticks SET finished = ?, status = ?, reason = ? WHERE id = ?",
            (utc_now().isoformat(), status, reason, tick_id),
        )

    def record_task(
        self,
        tick_id: int,
        task: str,
        *,
        required: bool,
        started: datetime,
        duration_s: float,
        status: str,
        exit_code: int | None = None,
        detail: str = "",
        stdout_tail: str = "",
        stderr_tail: str = "",
    ) -> None:
        self.db.execute(
            "INSERT INTO task_runs (tick_id, task, required, started, duration_s, status,"
            " exit_code, detail, stdout_tail, stderr_tail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tick_id,
                task,
                int(required),
                started.isoformat(),
                duration_s,
                status,
                exit_code,
                detail,
                stdout_tail,
                stderr_tail,
            ),
        )

    def ticks(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ticks first."""
        return self._rows("SELECT * FROM ticks ORDER BY id DESC LIMIT ?", (limit,))

    def last_success(self) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT * FROM ticks WHERE status IN (?, ?) ORDER BY id DESC LIMIT 1", TICK_SUCCESS
        )
        return rows[0] if rows else None

    def task_runs(self, task: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest runs first, of one task or of all."""
        if task is None:
            return self._rows("SELECT * FROM task_runs ORDER BY id DESC LIMIT ?", (limit,))
        return self._rows(
            "SELECT * FROM task_runs WHERE task = ? ORDER BY id DESC LIMIT ?", (task, limit)
        )

    def first_seen(self) -> datetime | None:
        """When the agent first left a mark: its first tick or first watchdog check."""
        row = self.db.execute(
            "SELECT MIN(ts) FROM (SELECT MIN(started) AS ts FROM ticks"
            " UNION ALL SELECT MIN(ts) FROM watchdog_checks)"
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def rows_since(self, table: str, moment: datetime) -> list[dict[str, Any]]:
        """The rows of `table` stamped at or after `moment`, oldest first.

        Stamps are UTC ISO strings, so comparing them as text orders them in time."""
        column = TIME_COLUMNS[table]
        return self._rows(
            f"SELECT * FROM {table} WHERE {column} >= ? ORDER BY id", (moment.isoformat(),)
        )

    def last_before(
        self, table: str, moment: datetime, statuses: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        """The newest row of `table` stamped before `moment` (with one of `statuses`, if
        given): the state a window of the record starts from."""
        column = TIME_COLUMNS[table]
        having = f" AND status IN ({', '.join('?' * len(statuses))})" if statuses else ""
        rows = self._rows(
            f"SELECT * FROM {table} WHERE {column} < ?{having} ORDER BY id DESC LIMIT 1",
            (moment.isoformat(), *statuses),
        )
        return rows[0] if rows else None

    def record_watchdog(self, status: str, reason: str = "") -> None:
        self.db.execute(
            "INSERT INTO watchdog_checks (ts, status, reason) VALUES (?, ?, ?)",
            (utc_now().isoformat(), status, reason),
        )

    def last_watchdog(self) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM watchdog_checks ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None
