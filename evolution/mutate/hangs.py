"""Hangs: tests cut off at their time limit, and the edits whose candidates keep hanging.

When the bug is an infinite loop (a counter never advanced), the failing test runs until
pytest-timeout stops it, and so does nearly every candidate: a mutant elsewhere leaves
the loop as it was. Three things keep such a search from paying the test timeout each
time:
- a test that hung in the localisation run says nothing about how long a test takes,
  so the candidates' limits are measured on the tests that finished (`finished`);
- a candidate whose test ran to its limit is known as hung (`hung`), and
- an edit family (one operator at one line) whose candidates have only hung goes after
  every other edit for the rest of the search (`Families`): its siblings change the
  same thing in the same place, and mostly leave the loop as endless.

pytest-timeout's signal method raises into the test, so a hung test still ends as a
failure in the report, and coverage keeps the lines it ran: localisation sees the loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from evolution.mutate.source import Edit

AT_LIMIT = 0.99  # of the time limit: a test that failed after this long was cut off
HUNG_BEFORE_LATER = 2  # hung candidates of a family, none finished, before it goes last


def hung(outcomes: dict[str, str], durations: dict[str, float], limit_s: float) -> set[str]:
    """The tests that did not pass and ran to `limit_s`: pytest-timeout cut them off.
    A test that passed is never hung, however slow."""
    return {nodeid for nodeid, seconds in durations.items()
            if outcomes.get(nodeid) != "passed" and seconds >= AT_LIMIT * limit_s}  # fmt: skip


def finished(durations: dict[str, float], stopped: Iterable[str]) -> list[float]:
    """The durations of the tests that were not `stopped` at their limit: what a
    candidate's tests may be expected to take (a failing test that finished counts: a
    fix of it may be as slow)."""
    cut = set(stopped)
    return [seconds for nodeid, seconds in durations.items() if nodeid not in cut]


def family(edit: Edit) -> tuple[str, int]:
    """Edits of one operator at one line: they change the same thing in the same place."""
    return edit.operator, edit.line


@dataclass
class Families:
    """Which edit families have hung, for the rest of one search."""

    hangs: Counter[tuple[str, int]] = field(default_factory=Counter)
    ended: set[tuple[str, int]] = field(default_factory=set)  # a candidate finished

    def record(self, edit: Edit, hanging: bool) -> None:
        if hanging:
            self.hangs[family(edit)] += 1
        else:
            self.ended.add(family(edit))

    def hanging(self, edit: Edit) -> bool:
        """Whether `edit`'s family has hung `HUNG_BEFORE_LATER` times and never ended."""
        kin = family(edit)
        return self.hangs[kin] >= HUNG_BEFORE_LATER and kin not in self.ended

    def later(self, edits: Iterable[Edit]) -> Iterator[Edit]:
        """`edits` in their order, except that an edit of a hanging family (as the
        search knows when the edit comes up) waits until all the others were given."""
        waiting: list[Edit] = []
        for edit in edits:
            if self.hanging(edit):
                waiting.append(edit)
            else:
                yield edit
        yield from waiting

    @property
    def total(self) -> int:
        """Candidates that hung."""
        return sum(self.hangs.values())
