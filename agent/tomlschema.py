"""Declaring the keys of a TOML file as data, and checking a parsed file against them.

A `Table` lists its `Key`s; a `Key` has a `Kind` (the type, its range, its message),
a default, and what else makes a value valid (a minimum, choices, a pattern, a
check). `read_tables` applies them to a document and returns the values with their
defaults and every `Problem` found, as a key path and a message: the caller adds the
file and line, in its own error type. `tomllines` says where each key was written;
this says what each key may hold. agent/schema.py declares deploy/agent.toml with it.

Two modes: `spec=False` for a file any hand may write (missing keys take defaults,
only `closed` tables refuse unknown keys), `spec=True` for a file a person writes to
be rendered (every table closed, the keys marked `spec="required"` stated, the
narrower `spec_types` and `spec_pattern`). Standard library only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from agent.tomllines import Loc


class Problem(NamedTuple):
    """One bad value: its key path (`("tasks", 2, "timeout_s")`) and what is wrong.

    The message reads after the key path (`tasks[2].timeout_s: must be ...`); each
    reader adds the file and line in its own error type."""

    loc: Loc
    message: str


def finite(value: object) -> bool:
    """A real number: not a bool, not NaN (every comparison with NaN is False, so a NaN
    cap or timeout would silently disable its check), not infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Kind:
    """A value's type, said once for its message, its type check and its range.

    `spec_types` (and `spec_what`) are narrower in strict mode where a reader needs it;
    `valid`/`invalid` is the range every value of the kind must be in; `convert` gives
    the one shape every reader keeps (a cap is always a float). `wrong_type` replaces
    "has the wrong type" where one message says all (a cap is a number of dollars)."""

    what: str
    types: tuple[type, ...]
    spec_types: tuple[type, ...] | None = None
    valid: Callable[[Any], bool] | None = None
    invalid: str = ""
    convert: Callable[[Any], Any] | None = None
    wrong_type: str | None = None
    spec_what: str | None = None  # `what`, where `spec_types` is narrower

    def accepts(self, value: object, spec: bool) -> bool:
        types = self.spec_types if spec and self.spec_types else self.types
        if isinstance(value, bool):  # a bool is an int to Python, never a number here
            return bool in types
        return isinstance(value, types)


TEXT = Kind("a string", (str,))
FLAG = Kind("true or false", (bool,))
WHOLE = Kind("a whole number", (int,))
TEXTS = Kind("a list of strings", (list,), convert=tuple)
TABLE = Kind("a table", (dict,))


class Pattern(NamedTuple):
    """A regular expression a string must match whole, and how to say it to a person."""

    regex: str
    what: str


REQUIRED: Any = ...  # a Key default: the key must be stated in every file


@dataclass(frozen=True)
class Key:
    """One key: its kind, its default, and what else makes a value valid.

    spec: "required" (SPEC.md must state it, agent.toml may leave it to the default),
      "optional", or "never" (SPEC.md may not state it: the factory or the gate
      supplies it).
    minimum: for whole numbers, the smallest valid one.
    choices, pattern: the strings that are valid; `items` is the pattern of each
      string of a list; `spec_pattern` applies in SPEC.md only.
    check: what a declaration cannot say; returns the problem's message, or None.
    """

    kind: Kind
    default: Any = None
    spec: Literal["required", "optional", "never"] = "optional"
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    pattern: Pattern | None = None
    items: Pattern | None = None
    spec_pattern: Pattern | None = None
    check: Callable[[Any], str | None] | None = None

    def problem(self, value: Any, spec: bool = False) -> tuple[str, Any] | None:
        """What is wrong with `value`: (message, the key path's extra part), or None."""
        kind = self.kind
        if not kind.accepts(value, spec):
            if kind.wrong_type:
                return kind.wrong_type, None
            what = kind.spec_what if spec and kind.spec_what else kind.what
            return f"has the wrong type: expected {what}", None
        if kind.valid is not None and not kind.valid(value):
            return kind.invalid, None
        if self.minimum is not None and value < self.minimum:
            return f"must be a whole number from {self.minimum}", None
        if self.choices and value not in self.choices:
            return "must be " + " or ".join(f'"{choice}"' for choice in self.choices), None
        for pattern in (self.pattern, self.spec_pattern if spec else None):
            if pattern is not None and not re.fullmatch(pattern.regex, value):
                return f"must be {pattern.what}", None
        if kind is TEXTS:
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    return f"must hold only strings, not {item!r}", index
                if self.items is not None and not re.fullmatch(self.items.regex, item):
                    return f"holds an invalid entry: {item!r} is not {self.items.what}", index
        if self.check is not None:
            message = self.check(value)
            if message:
                return message, None
        return None


@dataclass(frozen=True)
class Table:
    """A table of agent.toml (or, with `array`, an array of tables such as [[tasks]]).

    closed: unknown keys are refused in agent.toml too, not only in SPEC.md.
    spec: whether SPEC.md must have it ("required": for an array, one entry at least),
      may have it, or may not ("never": the factory writes it).
    """

    path: tuple[str, ...]
    keys: Mapping[str, Key]
    array: bool = False
    closed: bool = False
    spec: Literal["required", "optional", "never"] = "optional"

    def defaults(self) -> dict[str, Any]:
        """The value of every key a file leaves out (REQUIRED ones have none); each is
        written in its converted shape (tuples, floats)."""
        return {name: key.default for name, key in self.keys.items() if key.default is not REQUIRED}

    def read(
        self, raw: Any, loc: Loc, *, spec: bool = False
    ) -> tuple[dict[str, Any], list[Problem]]:
        """The keys `raw` states, checked and converted, and the problems found.

        Only stated keys are returned: the caller adds `defaults()` where it wants them
        (the gate's Policy has them as its dataclass defaults)."""
        if not isinstance(raw, dict):
            return {}, [Problem(loc, "must be a table")]
        problems: list[Problem] = []
        allowed = {n for n, k in self.keys.items() if not (spec and k.spec == "never")}
        if spec or self.closed:
            problems += [Problem((*loc, n), "unknown key") for n in sorted(set(raw) - allowed)]
        for name, key in self.keys.items():
            if name not in raw and (key.default is REQUIRED or (spec and key.spec == "required")):
                problems.append(Problem(loc, f"{name!r} is required"))
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in allowed:
                continue
            key = self.keys[name]
            found = key.problem(value, spec)
            if found is not None:
                message, index = found
                where = (*loc, name) if index is None else (*loc, name, index)
                problems.append(Problem(where, message))
                continue
            values[name] = key.kind.convert(value) if key.kind.convert else value
        return values, problems


def read_tables(
    data: Mapping[str, Any], tables: Iterable[Table], *, spec: bool = False
) -> tuple[dict[str, Any], list[Problem]]:
    """Every table of `tables` in a parsed document, with its defaults filled in.

    The result is nested like the document (`["llm"]["models"]` a list of dicts). In
    SPEC.md, a key that no table declares is refused, at the top level or in a parent
    table (`[llm]`); in agent.toml it belongs to another reader, or to none."""
    tables = tuple(tables)
    problems: list[Problem] = []
    result: dict[str, Any] = {}
    children: dict[tuple[str, ...], set[str]] = {}
    for table in tables:
        if spec and table.spec == "never":
            continue  # the factory writes it: SPEC.md stating it is an unknown key
        for depth in range(len(table.path)):
            children.setdefault(table.path[:depth], set()).add(table.path[depth])
    for parent, names in children.items():
        node = _lookup(data, parent)
        if node is not None and not isinstance(node, dict):
            problems.append(Problem(parent, "must be a table"))
        elif node is not None and spec:
            problems += [Problem((*parent, n), "unknown key") for n in sorted(set(node) - names)]
    for table in tables:
        raw = None if spec and table.spec == "never" else _lookup(data, table.path)
        target = result
        for part in table.path[:-1]:
            target = target.setdefault(part, {})
        if table.array:
            if raw is not None and not isinstance(raw, list):
                problems.append(Problem(table.path, "must be an array of tables"))
            entries = raw if isinstance(raw, list) else []
            if spec and table.spec == "required" and not entries:
                problems.append(Problem(table.path, "at least one entry is required"))
            target[table.path[-1]] = []
            for index, entry in enumerate(entries):
                values, found = table.read(entry, (*table.path, index), spec=spec)
                problems += found
                target[table.path[-1]].append({**table.defaults(), **values})
            continue
        values: dict[str, Any] = {}
        if raw is None and spec and table.spec == "required":
            problems.append(Problem(table.path, "required table is missing"))  # not each key
        elif raw is not None:
            values, found = table.read(raw, table.path, spec=spec)
            problems += found
        target[table.path[-1]] = {**table.defaults(), **values}
    return result, problems


def _lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path`, or None where the document has none (or a parent is no
    table: that parent's problem is reported once, by `read_tables`)."""
    node: Any = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
