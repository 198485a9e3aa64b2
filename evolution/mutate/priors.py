"""The per-operator priors: how often a person's one-line fix takes each operator's shape.

The table (priors.json) is derived by benchmarks/derive_priors.py from one-line changes
between consecutive patch releases of popular packages on PyPI; it says where to spend
a small budget first, never what is allowed. An operator the table does not know (one
added after it was derived) gets the smallest known prior rather than none.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

TABLE = Path(__file__).with_name("priors.json")


@cache
def priors() -> dict[str, float]:
    from evolution.mutate.operators import OPERATORS

    table = json.loads(TABLE.read_text(encoding="utf-8"))["priors"]
    floor = min(table.values())
    return {op: float(table.get(op, floor)) for op in OPERATORS}
