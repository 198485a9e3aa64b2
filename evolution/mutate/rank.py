"""The order in which candidates are tried: suspicion times prior, shared per site.

A candidate's score estimates the chance that it is the fix: the Ochiai suspicion of
its line, times the prior of its operator (how often real one-line fixes take that
shape), times its share of that operator's proposals on that line. The share matters:
a line with forty names offers forty renamings, and without it their number alone
would bury the line's one comparison swap. An edit that gives its line the shape of a
line near it is the exception: that evidence singles it out (its share is whole, or
as large as its weight against the operator's best on the line) and it counts
`likeness.LIKENESS` times more; so does an edit that reads a name its function binds
and never reads (`scope.unread`: the fault took that name's only use), and the two
signs multiply. (cachetools' `LRUCache(128)`, dropped from a
line whose five siblings wrap 128 in their cache class, was one of 36 call-wrappings
on its line and came 224th.) Ties go to the smaller change, then to the earlier
position, so the search meets the smallest repair first.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict

from evolution.mutate.likeness import LIKENESS, likeness
from evolution.mutate.operators import mutations
from evolution.mutate.scope import unread_at
from evolution.mutate.source import Edit, Source

MAX_LINES = 60  # the most suspicious lines searched; the rest wait for another cycle
REVIVAL = LIKENESS  # as strong a sign as a sibling line's shape
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def overlaps(edit: Edit, applied: tuple[Edit, ...]) -> bool:
    return any((edit.start < e.end and e.start < edit.end) or edit.start == e.start
               for e in applied)


class _Lines:
    """The source's lines by byte offset, to see an edit's line before and after."""

    def __init__(self, source: str, src: Source) -> None:
        self.source = source
        self.src = src
        self.data = src.data
        self.starts = src.line_starts

    def likeness(self, edit: Edit) -> float:
        index = bisect.bisect_right(self.starts, edit.start) - 1
        start = self.starts[index]
        end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.data)
        if edit.end > end or "\n" in edit.text:
            return 1.0
        line = self.data[start:end]
        mutated = self.data[start:edit.start] + edit.text.encode("utf-8") + self.data[edit.end:end]
        return likeness(self.source, index + 1, line.decode("utf-8"), mutated.decode("utf-8"))

    def revives(self, edit: Edit) -> bool:
        """Does the edit read a name its function binds and never reads (see
        `scope.unread`)? The innermost function around the edit's line decides, with
        the module's unread names."""
        names = set(_IDENTIFIER.findall(edit.text)) - set(
            _IDENTIFIER.findall(self.data[edit.start:edit.end].decode("utf-8")))
        if not names:
            return False
        return bool(names & unread_at(self.src.unread, edit.line))


def ranked(
    source: str, scores: dict[int, float], priors: dict[str, float],
    applied: tuple[Edit, ...] = (),
) -> list[Edit]:
    """Every single edit on the most suspicious lines not overlapping `applied`, best
    first. Offsets refer to `source`, which `applied` does not change."""
    lines = sorted(scores, key=lambda line: (-scores[line], line))[:MAX_LINES]
    src = Source(source)
    found = [e for e in mutations(src, set(lines)) if not overlaps(e, applied)]
    totals: dict[tuple[int, str], float] = defaultdict(float)
    tops: dict[tuple[int, str], float] = defaultdict(float)
    for edit in found:
        totals[edit.line, edit.operator] += edit.weight
        tops[edit.line, edit.operator] = max(tops[edit.line, edit.operator], edit.weight)
    floor = min(priors.values())
    text = _Lines(source, src)

    def score(edit: Edit) -> float:
        like = text.likeness(edit) * (REVIVAL if text.revives(edit) else 1.0)
        site = edit.line, edit.operator
        share = edit.weight / (tops[site] if like > 1.0 else totals[site])
        return scores.get(edit.line, 0.0) * priors.get(edit.operator, floor) * share * like

    scored = [(score(e), e) for e in found]
    scored.sort(key=lambda item: (-item[0], len(item[1].text) + item[1].end - item[1].start,
                                  item[1].start, item[1].text))
    return [edit for _, edit in scored]
