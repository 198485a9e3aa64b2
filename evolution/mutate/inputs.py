"""Inputs generated from the tests' own: what mutate compares a repair on besides them.

The calls the tests make into a function show its arguments' types and the values they
take. From those, Hypothesis draws more arguments of the same shapes: numbers around the
range the tests use, strings from the tests' strings and their characters, collections
of such elements, a little longer or shorter; and the constants the function's own code
compares or combines its values with (the `"-"` a function replaces: a test that never
passes one cannot show the repair that dropped the replacement). Inputs no test makes
are where a repair that only fools the tests shows (Xiong et al., "Identifying patch correctness in
test-based program repair", ICSE 2018, generate tests for the same reason).

The recorded arguments were pickled by the code under test, in its sandbox; unpickling
an object of its classes here would run its code outside the sandbox. So only built-in
values are read (`BuiltinsOnly` refuses every class it is asked for, and protocol 4
pickles the built-in containers without naming one), and a call with any other argument
gives no generated inputs: its own arguments are still replayed, in the sandbox.
"""

from __future__ import annotations

import base64
import io
import pickle
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

EXAMPLES = 40  # generated argument lists per function
MAX_SIZE = 6  # a generated collection holds at most this many more items than the tests'


class BuiltinsOnly(pickle.Unpickler):
    """An unpickler that builds no object of any class (see the module)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not a built-in value")


def builtin_args(packed: str) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """A recorded call's (args, kwargs), when they are built-in values only."""
    try:
        args, kwargs = BuiltinsOnly(io.BytesIO(base64.b64decode(packed))).load()
    except Exception:  # anything but built-in values, or not a recorded call at all
        return None
    if not isinstance(args, tuple) or not isinstance(kwargs, dict):
        return None
    return args, kwargs


def pack(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """As the probe packs a call's arguments (`_ratchet_canon.pack_args`)."""
    return base64.b64encode(pickle.dumps((args, kwargs), protocol=4)).decode()


def like(values: Sequence[Any], constants: Sequence[Any] = ()) -> st.SearchStrategy[Any]:
    """Values of the types `values` have, near the values they take and the `constants`
    of those types."""
    parts: list[st.SearchStrategy[Any]] = []
    for kind in sorted({type(v) for v in values}, key=lambda k: k.__name__):
        seen = [v for v in values if type(v) is kind]
        seen += [c for c in constants if type(c) is kind and c not in seen]
        parts.append(st.sampled_from(seen))
        parts.extend(_near(kind, seen, constants))
    return st.one_of(parts) if parts else st.nothing()


def _near(kind: type, seen: list[Any], constants: Sequence[Any]) -> list[st.SearchStrategy[Any]]:
    if kind is bool:
        return [st.booleans()]
    if kind is int:
        low, high = min(seen), max(seen)
        span = max(3, high - low)
        return [st.integers(low - span, high + span)]
    if kind is float:
        low, high = min(seen), max(seen)
        span = max(1.0, high - low)
        return [st.floats(low - span, high + span, allow_nan=False)]
    if kind is str:
        alphabet = "".join(sorted(set("".join(seen)))) or "ab"
        return [st.text(alphabet, max_size=max(map(len, seen)) + 2)]
    if kind is bytes:
        return [st.binary(max_size=max(map(len, seen)) + 2)]
    if kind in (list, tuple, set, frozenset):
        items = [item for value in seen for item in value]
        size = max(map(len, seen)) + MAX_SIZE // 2
        element = like(items, constants) if items else st.nothing()
        if kind in (set, frozenset):
            return [st.sets(element, max_size=size).map(kind)] if _hashable(items) else []
        return [st.lists(element, max_size=size).map(kind)]
    if kind is dict:
        keys = [k for value in seen for k in value]
        values = [v for value in seen for v in value.values()]
        size = max(map(len, seen)) + MAX_SIZE // 2
        return [st.dictionaries(like(keys, constants),
                                like(values, constants) if values else st.nothing(),
                                max_size=size)] if keys and _hashable(keys) else []  # fmt: skip
    return []


def _hashable(items: list[Any]) -> bool:
    try:
        set(items)
    except TypeError:
        return False
    return True


def generated(recorded: Sequence[str], examples: int = EXAMPLES,
              constants: Sequence[Any] = ()) -> list[str]:  # fmt: skip
    """Packed argument lists for one function, drawn (deterministically) from the types
    and values of its recorded calls' arguments (`recorded`, packed as the probe packs
    them) and its code's `constants`: position by position, for each way the tests call
    it (how many positional arguments, which keywords). None when no recorded call holds
    built-in values only."""
    shapes: dict[tuple[int, tuple[str, ...]], list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
    for packed in recorded:
        call = builtin_args(packed)
        if call is not None:
            shapes.setdefault((len(call[0]), tuple(sorted(call[1]))), []).append(call)
    found: list[str] = []
    share = max(1, examples // len(shapes)) if shapes else 0
    for (count, names), calls in sorted(shapes.items()):
        positional = st.tuples(*(like([c[0][i] for c in calls], constants)
                                 for i in range(count)))  # fmt: skip
        keywords = st.fixed_dictionaries({n: like([c[1][n] for c in calls], constants)
                                          for n in names})  # fmt: skip
        found += [pack(args, kwargs) for args, kwargs in _draw(positional, keywords, share)]
    return list(dict.fromkeys(found))


def _draw(positional: st.SearchStrategy[tuple[Any, ...]],
          keywords: st.SearchStrategy[dict[str, Any]],
          count: int) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:  # fmt: skip
    """`count` draws, the same on every run (derandomised, no example database)."""
    drawn: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    @settings(max_examples=count, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)  # fmt: skip
    @given(positional, keywords)
    def collect(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        drawn.append((args, kwargs))

    collect()
    return drawn
