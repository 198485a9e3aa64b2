"""A name bound and never read points at the fault that took its only use.

The pypi benchmark's misses of the commonest fault kind (a changed identifier) had it in
common: `_cache(...)(timer)` for `(maxsize)`, `for item in _init` for `for item in
seq`, `_HashedTuple(...)` for the call of the `add` parameter. Each left a parameter or
a local its function binds and no longer reads. The programs here are written for these
tests in the shape of those faults."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_mutate_operators import _localise_and_search

from evolution.mutate.operators import apply_edits, mutations
from evolution.mutate.priors import priors
from evolution.mutate.rank import ranked
from evolution.mutate.scope import ScopeIndex, unread

RADD = """\
class Key(tuple):
    def __radd__(self, other, join=tuple.__add__):
        return Key(Key(other, self))
"""
EXPIRING = """\
def expiring(maxsize, ttl, timer):
    return wrap(Store(128, ttl, timer), 128)(timer)
"""
LAST = """\
_missing = object()


def last(seq, default=_missing):
    item = default
    for item in _missing:
        pass
    if item is _missing:
        raise ValueError("empty")
    return item
"""


def test_unread_names_are_the_bound_ones_no_code_reads():
    """Parameters and locals never read, itself or nested; `self` and `_`-names are
    unread on purpose; the module's own entry holds the names its statements import or
    assign and no code reads (not its functions: a library's are for others), and a
    name `__all__` exports counts as read."""
    source = (
        "import os\nimport re\nfrom json import dumps, loads\n__all__ = ['loads']\n"
        "LIMIT = 3\nUSED = 4\n"
        "def f(self, a, b, _c, d):\n    e = a\n    g = USED\n    return (lambda: d)() + re.X\n"
    )
    spans = unread(ScopeIndex(ast.parse(source)))
    assert spans[0][:2] == (7, 10) and spans[0][2] == {"b", "e", "g"}
    assert spans[-1][2] == {"os", "dumps", "LIMIT"}


@pytest.mark.parametrize(("source", "line", "fix"), [
    (RADD, 3, "Key -> join"),
    (EXPIRING, 2, "timer -> maxsize"),
    (LAST, 6, "_missing -> seq"),
])
def test_an_edit_that_reads_an_unread_name_comes_first(source, line, fix):
    """The renaming that gives the unread name its use back is among the line's first
    three edits (of 16 to 40); a called site takes an unread local of unknown kind
    (`join=tuple.__add__`) though nothing calls it."""
    order = [e.description for e in ranked(source, {line: 1.0}, priors())]
    assert f"line {line}: {fix}" in order[:3], order[:6]


def test_no_statement_is_inserted_after_a_jump():
    """A statement after a `return`, `raise`, `break` or `continue` never runs: no
    restored statement goes there, before it one still may."""
    source = ("def f(xs):\n    out = []\n    for x in xs:\n        out.append(x)\n"
              "        continue\n    return out\n")
    inserted = [e.description for e in mutations(source, {5, 6}) if e.operator == "restore"]
    assert inserted and not any(d.endswith("after it") for d in inserted), inserted
    assert any(d.startswith("line 5: insert `out.append(x)`") for d in inserted), inserted


HANDLER = {
    "scripts/handler.py": "def handler(event, context):\n    return event['size'] > 3\n",
    "tests/test_handler.py": (
        "from scripts.handler import handler\n\n\n"
        "def test_four_is_large():\n    assert handler({'size': 4}, None)\n\n\n"
        "def test_three_is_large():\n    assert handler({'size': 3}, None)\n\n\n"
        "def test_two_is_not():\n    assert not handler({'size': 2}, None)\n"
    ),
}


@pytest.mark.e2e
def test_an_honestly_unused_parameter_does_not_lead_the_repair_astray(tmp_path: Path):
    """The look-alike: a handler's `context` is unread by design (a framework passes
    it). Edits that read it rank higher, and fail the tests; the repair is still the
    bound (`>= 3`, or `> 2`: the same on the integers the tests give)."""
    _, result = _localise_and_search(
        tmp_path / "repo", HANDLER, "scripts/handler.py",
        ["tests/test_handler.py::test_three_is_large"],
        ["tests/test_handler.py::test_four_is_large", "tests/test_handler.py::test_two_is_not"])
    assert result.stopped == "repaired", result
    assert result.source.splitlines()[1] in ("    return event['size'] >= 3",
                                             "    return event['size'] > 2"), result.source


def test_a_call_that_lost_its_argument_gets_the_unread_name_back():
    """`quote()` where `quote(mark)` was meant: no other call of `quote` shows an
    argument, but `mark` is bound and never read; adding it is among the line's first
    three edits."""
    source = "def quoted(text, mark):\n    return text.strip() + quote()\n"
    order = ranked(source, {2: 1.0}, priors())
    fixed = [apply_edits(source, [e]).splitlines()[1] for e in order[:3]]
    assert "    return text.strip() + quote(mark)" in fixed, fixed
