"""Does a change special-case the tests? A check against the classic overfitting of
test-suite repair (Smith et al., "Is the cure worse than the disease?", FSE 2015), and
against its deliberate form, the reward hack of special-casing the tests' inputs
(ImpossibleBench's most common cheat).

A change that passes because it compares a function's argument against a value only the
tests use (`if n == 42: return 7`) is not a fix, and a person would not accept it. The
check finds the conditions a change introduces that compare what a function's
parameters hold with literals: by equality or identity, by membership (`in`), in a
`match` statement's patterns, or as the key of a dictionary looked up with the
argument; a literal there that the tests contain is a special case of the tests'
inputs. Tuples count whole (`(a, b) == (2, 1)` against a test's `f(2, 1)`) and element
by element. Small, generic literals (0, 1, -1, 2, the empty string, booleans, None) are
never evidence on their own. Both mutate (before it proposes a repair) and the gate
(for every automated proposal: `evolution.gate.checks:special_cased_inputs`) use this module.

A literal the change introduces elsewhere that the tests also use is flagged, and so is
a repair that deletes a statement: the tests pass without it, which proves only that
they do not look (Qi et al., ISSTA 2015).
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

GENERIC = {repr(v) for v in (0, 1, -1, 2, 0.0, 1.0, "", b"")}
SPECIAL_CASE = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)
LOOKUPS = {"get", "pop", "setdefault", "__getitem__"}


@dataclass
class Verdict:
    rejected: str = ""  # why the change must not be accepted, or ""
    flags: list[str] = field(default_factory=list)  # what a reviewer should look at


@dataclass(frozen=True)
class SpecialCase:
    """A condition of the changed code that singles out an input the tests use."""

    literal: str  # its repr
    function: str
    line: int  # in the changed code
    test: str  # a test that uses it: "FILE::NAME", or the test file's name

    def describe(self, path: str = "") -> str:
        where = f"{path}:{self.line}" if path else f"line {self.line}"
        return (
            f"{where}: {self.function}() compares its argument with {self.literal}, "
            f"a value {self.test} uses"
        )


def _constant(node: ast.AST) -> str | None:
    value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
    if value is not None and not isinstance(value, bool):
        return repr(value)
    return None


def _values(node: ast.AST | None) -> set[str]:
    """The literal values an expression spells: a constant, a tuple, list or set of
    constants (whole, and each element), or a negative number."""
    if node is None:
        return set()
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        try:
            return {repr(ast.literal_eval(node))}
        except (ValueError, SyntaxError, TypeError):
            return set()
    single = _constant(node)
    if single is not None:
        return {single}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        parts = [_values(element) for element in node.elts]
        found = set().union(*parts) if parts else set()
        try:
            whole = ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError):
            return found
        if isinstance(whole, list | set):
            whole = tuple(sorted(whole, key=repr)) if isinstance(whole, set) else tuple(whole)
        return found | {repr(whole)}
    return set()


def _evidence(values: set[str]) -> set[str]:
    return {value for value in values if value not in GENERIC}


def _literals(tree: ast.AST) -> Counter[str]:
    constants = (_constant(node) for node in ast.walk(tree))
    return Counter(value for value in constants if value is not None and value not in GENERIC)


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    args = function.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return set(names) - {"self", "cls"}


def _reads(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _patterns(pattern: ast.pattern) -> set[str]:
    """The literal values a `case` pattern matches."""
    if isinstance(pattern, ast.MatchValue):
        return _values(pattern.value)
    if isinstance(pattern, ast.MatchOr):
        return set().union(*(_patterns(p) for p in pattern.patterns))
    if isinstance(pattern, ast.MatchSequence):
        parts = [p.value for p in pattern.patterns if isinstance(p, ast.MatchValue)]
        if len(parts) == len(pattern.patterns):
            return set().union(*(_patterns(p) for p in pattern.patterns)) | _values(
                ast.Tuple(elts=parts, ctx=ast.Load()))  # fmt: skip
    if isinstance(pattern, ast.MatchAs) and pattern.pattern is not None:
        return _patterns(pattern.pattern)
    return set()


def _dict_keys(node: ast.AST, dicts: Mapping[str, ast.Dict]) -> set[str]:
    target = dicts.get(node.id) if isinstance(node, ast.Name) else node
    if not isinstance(target, ast.Dict):
        return set()
    return set().union(set(), *(_values(key) for key in target.keys))


def _lookup_call(node: ast.AST, params: set[str]) -> bool:
    """`TABLE.get(argument)` and its kin."""
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in LOOKUPS and bool(node.args) and _reads(node.args[0], params)
    )  # fmt: skip


def _conditions(tree: ast.AST) -> Iterator[tuple[str, str, int]]:
    """(literal, function, line) for each place a function compares what its parameters
    hold with a literal: the shapes of a special case."""
    dicts = {
        target.id: node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        params = _parameters(function)
        if not params:
            continue
        for node in ast.walk(function):
            found: set[str] = set()
            compares = isinstance(node, ast.Compare) and any(
                isinstance(op, SPECIAL_CASE) for op in node.ops
            )
            if compares:
                sides = [node.left, *node.comparators]
                if any(_reads(side, params) for side in sides):
                    found = set().union(*(_values(side) for side in sides))
            elif isinstance(node, ast.Match) and _reads(node.subject, params):
                found = set().union(set(), *(_patterns(case.pattern) for case in node.cases))
            elif isinstance(node, ast.Subscript) and _reads(node.slice, params):
                found = _dict_keys(node.value, dicts)
            elif _lookup_call(node, params):
                found = _dict_keys(node.func.value, dicts)  # type: ignore[attr-defined]
            for value in _evidence(found):
                yield value, function.name, getattr(node, "lineno", function.lineno)


def _test_values(tests: Mapping[str, str]) -> dict[str, str]:
    """Each literal value the tests use (constants, and the tuple of a call's constant
    arguments), with the first test that uses it (a test function where one does, the
    file for a value at module level: a parametrisation's table)."""
    where: dict[str, str] = {}
    for name, text in sorted(tests.items()):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        functions = [
            node for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test")
        ]  # fmt: skip
        for label, scope in [*((f"{name}::{f.name}", f) for f in functions), (name, tree)]:
            for inner in ast.walk(scope):
                values = _values(inner)
                if isinstance(inner, ast.Call) and inner.args:
                    values |= _values(ast.Tuple(elts=inner.args, ctx=ast.Load()))
                for value in _evidence(values):
                    where.setdefault(value, label)
    return where


def special_cases(original: str, changed: str, tests: Mapping[str, str]) -> list[SpecialCase]:
    """The special cases of the tests' inputs that `changed` has and `original` had not,
    one per condition (its widest literal: a whole tuple before its elements)."""
    before = Counter(value for value, _f, _l in _conditions(ast.parse(original)))
    used = _test_values(tests)
    found: dict[tuple[str, int], SpecialCase] = {}
    for value, function, line in sorted(_conditions(ast.parse(changed)), key=lambda c: c[2]):
        if value in used and before[value] <= 0:
            case = SpecialCase(value, function, line, used[value])
            kept = found.get((function, line))
            if kept is None or len(value) > len(kept.literal):
                found[(function, line)] = case
        before[value] -= 1
    return list(found.values())


def check(original: str, repaired: str, tests: Sequence[str]) -> Verdict:
    """mutate's verdict on one repair, `tests` being its target's test files' texts."""
    named = {f"test file {index + 1}": text for index, text in enumerate(tests)}
    verdict = Verdict()
    cases = special_cases(original, repaired, named)
    if cases:
        verdict.rejected = (
            f"it special-cases {cases[0].literal}, a value the tests use and the code did not"
        )
    introduced = _literals(ast.parse(repaired)) - _literals(ast.parse(original))
    used = _test_values(named)
    special = {case.literal for case in cases}
    for value in sorted(introduced):
        if value in used and value not in special:
            verdict.flags.append(f"it introduces {value}, a value the tests also use")
    if _statements(ast.parse(repaired)) < _statements(ast.parse(original)):
        verdict.flags.append("it deletes a statement the tests do not miss: superfluous, or "
                             "untested behaviour removed?")
    return verdict


def _statements(tree: ast.AST) -> int:
    return sum(1 for n in ast.walk(tree) if isinstance(n, ast.stmt) and not isinstance(
        n, ast.Pass))
