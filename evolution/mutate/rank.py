"""The order in which candidates are tried: suspicion times prior, shared per site.

A candidate's score estimates the chance that it is the fix: the Ochiai suspicion of
its line, times the prior of its operator (how often real one-line fixes take that
shape), times its share of that operator's proposals on that line. The share matters:
a line with forty names offers forty renamings, and without it their number alone
would bury the line's one comparison swap. Ties go to the smaller change, then to the
earlier position, so the search meets the smallest repair first.
"""

from __future__ import annotations

from collections import defaultdict

from evolution.mutate.operators import mutations
from evolution.mutate.source import Edit

MAX_LINES = 60  # the most suspicious lines searched; the rest wait for another cycle


def overlaps(edit: Edit, applied: tuple[Edit, ...]) -> bool:
    return any((edit.start < e.end and e.start < edit.end) or edit.start == e.start
               for e in applied)


def ranked(
    source: str, scores: dict[int, float], priors: dict[str, float],
    applied: tuple[Edit, ...] = (),
) -> list[Edit]:
    """Every single edit on the most suspicious lines not overlapping `applied`, best
    first. Offsets refer to `source`, which `applied` does not change."""
    lines = sorted(scores, key=lambda line: (-scores[line], line))[:MAX_LINES]
    found = [e for e in mutations(source, set(lines)) if not overlaps(e, applied)]
    totals: dict[tuple[int, str], float] = defaultdict(float)
    for edit in found:
        totals[edit.line, edit.operator] += edit.weight
    floor = min(priors.values())

    def score(edit: Edit) -> float:
        share = edit.weight / totals[edit.line, edit.operator]
        return scores.get(edit.line, 0.0) * priors.get(edit.operator, floor) * share

    return sorted(found, key=lambda e: (-score(e), len(e.text) + e.end - e.start,
                                        e.start, e.text))
