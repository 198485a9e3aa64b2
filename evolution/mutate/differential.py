"""Overfitting refused: a repair must not change what the function did where it behaved.

A repair that passes every test can still be wrong: it may fool weak tests (one merged
repair made a reachability search answer "reachable" whenever a node has successors),
or break the contract where no test looks (`None` returned where the function answers
`False`). Before mutate proposes a repair, the original and the repaired function are
compared outside the harness, the way the gate's behavioural check compares a proposal
with main (`evolution.gate.behaviour`: the same recording by the probe, the same replay
in a clean interpreter in the sandbox, the same canonical form of a result):

1. The tests of the target's files run once on the original with the probe recording
   every call into the functions the repair changes, nested calls included.
2. Those calls are replayed on the original (twice: a result that changes from one
   replay to the next is no evidence) and on the repair, with their own arguments,
   with arguments near them (`_ratchet_replay.perturbed`) and with arguments Hypothesis
   draws from the types and values of the passing tests' ones and the constants of the
   function's code (`inputs.generated`).
3. Refused, as overfitting: a result that changes on an input a passing test gives the
   function (its own calls, nested ones included), unless a failing test gives it the
   same input; and, on any input where the original returned, a result of a type the
   original returns neither there nor on the passing tests' inputs, or an exception
   it never raises on them (a repair that returns `None` for `False`, or raises, or
   hangs where the original answered, is not a repair).
4. Reported to the reviewer, not refused: results that change in value on nearby or
   generated inputs. There the original's answers were never checked by a test, and
   the fault may be exactly what changes them (a true repair of `>` for `>=` changes
   every tie): only the tests' own inputs say what was right.

Where the original raised or hung, it did not behave, and a repair may change anything.
Nor did it behave, for sure, where the input is of its own making: a method that writes
its own object's state (`self.total += ...`) is replayed with the `self` its earlier,
faulty calls built, so a change of its result on a passing test's input is reported,
not refused (the running total a fault inflated, passing a test that checks only a
threshold, is what the true repair changes; `benchmarks/mutate_bugs/moving_average`).
A change of type there is still refused.
A refused repair is not proposed; the search goes on to the next candidate, so it comes
after every other, and when nothing else is found, nothing is proposed.
Calls that cannot be compared (arguments that do not pickle or name files, results that
change between replays) are left out, and a repair of code no test calls gets no
behavioural evidence; both are said in the verdict's flags.
"""

from __future__ import annotations

import ast
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from agent.errors import InvalidRun
from evolution.gate.behaviour import (
    brief,
    changed_functions,
    record_spec,
    relative_calls,
    replay,
)
from evolution.gate.overfit import Verdict
from evolution.mutate.inputs import EXAMPLES, builtin_args, generated
from evolution.run.forkserver import CandidateRuns

MIN_REPLAY_S = 10.0  # the repair's replay may take five times the original's, at least this
MAX_CONSTANT = 20  # characters of a constant of the code that generated inputs may take
UNEVIDENCED = "no behavioural evidence"  # how a flag that says so begins


@dataclass
class Evidence:
    """The original's side of the comparison, for one set of changed functions."""

    calls: list[dict[str, Any]] = field(default_factory=list)  # the replayed calls
    results: list[list[Any]] = field(default_factory=list)  # the original's, per call
    stable: list[set[int]] = field(default_factory=list)  # indexes two replays agree on
    contract: dict[str, set[str]] = field(default_factory=dict)  # function -> result kinds
    seconds: float = 0.0  # one replay's wall clock
    note: str = ""  # why there is no evidence
    stateful: set[str] = field(default_factory=set)  # methods that write their own object


def kind(form: Any) -> str:
    """A result's type, from its canonical form: `bool`, `NoneType`, `object pkg.C`,
    `raised builtins.ValueError`."""
    if not isinstance(form, list) or not form:
        return repr(form)
    if form[0] in ("object", "raised", "class", "digest") and len(form) > 1:
        return f"{form[0]} {form[1]}"
    return str(form[0])


def _key(form: Any) -> str:
    return json.dumps(form, sort_keys=True)


def _shown(call: dict[str, Any]) -> str:
    args = builtin_args(call["args"])
    if args is None:
        return f"{call['qualname']}(...)"
    text = ", ".join([*map(repr, args[0]), *(f"{k}={v!r}" for k, v in args[1].items())])
    return f"{call['qualname']}({text[:100]})"


@dataclass
class Differential:
    """Compares a repair with the original its search started from (see the module);
    one per search, so the original's side is recorded and replayed once."""

    runs: CandidateRuns
    target: str  # the file repaired, relative to the tree
    failing: list[str]
    passing: list[str]  # the passing tests of the target's test files
    call_timeout_s: float | None = None  # per replayed call: the tests' own limit
    examples: int = EXAMPLES
    # The original is right wherever it answers (a benchmark's code before its fault):
    # every change of a result counts, on generated inputs too.
    trusted: bool = False
    _evidence: dict[tuple[str, ...], Evidence] = field(default_factory=dict)

    def __call__(self, original: str, repaired: str) -> Verdict:
        functions = tuple(changed_functions(original, repaired, methods=True))
        if not functions:
            return Verdict(flags=[f"{UNEVIDENCED}: no function changed"])
        if functions not in self._evidence:
            self._evidence[functions] = self._observe(original, functions)
        evidence = self._evidence[functions]
        if evidence.note:
            return Verdict(flags=[evidence.note])
        limit = max(MIN_REPLAY_S, 5 * evidence.seconds)
        try:
            ours, _ = self._replay(repaired, evidence.calls, limit)
        except InvalidRun:
            return Verdict(rejected=f"its replay did not finish in {limit:.0f} s, where the "
                                    "original's did: it hangs or crashes where it answered")
        finally:
            self._write(original)
        return compare(evidence, ours, trusted=self.trusted)

    def _write(self, source: str) -> None:
        (self.runs.run.tree / self.target).write_text(source, encoding="utf-8")

    def _replay(self, source: str, calls: list[dict[str, Any]],
                limit: float | None = None) -> tuple[list[list[Any]], float]:  # fmt: skip
        self._write(source)
        policy = self.runs.policy
        if limit is not None:
            policy = replace(policy, run_timeout_s=min(policy.run_timeout_s, limit))
        started = time.monotonic()
        results = replay(policy, self.runs.run, self.runs.isolation, calls,
                         call_timeout_s=self.call_timeout_s)  # fmt: skip
        return results, time.monotonic() - started

    def _observe(self, original: str, functions: tuple[str, ...]) -> Evidence:
        """Record the tests' calls into `functions` on the original, add the generated
        ones, and replay them all on the original twice."""
        self._write(original)
        spec = record_spec(self.runs.run.tree, [(self.target, q) for q in functions])
        try:
            result = self.runs([*self.failing, *self.passing], record=spec)
        except InvalidRun as exc:
            return Evidence(note=f"{UNEVIDENCED}: the recording run failed ({exc})")
        recorded = [c for c in relative_calls(result.calls, self.runs.run.tree)
                    if c.get("args") and not c.get("skipped")]  # fmt: skip
        failing = set(self.failing)
        covered = {(c["qualname"], c["args"]) for c in recorded if c.get("test") in failing}
        own: dict[tuple[str, str], dict[str, Any]] = {}
        for call in recorded:
            where = (call["qualname"], call["args"])
            if where not in covered:
                own.setdefault(where, {**call, "generated": False})
        calls = list(own.values())
        for name in functions:
            mine = [c for c in calls if c["qualname"] == name]
            drawn = generated([c["args"] for c in mine], self.examples,
                              constants(original, name)) if mine else []  # fmt: skip
            for packed in drawn:
                if (name, packed) not in covered and (name, packed) not in own:
                    # Drawn inputs are far enough from the tests': none near them too.
                    calls.append({**mine[0], "args": packed, "test": "", "generated": True,
                                  "perturb": False})  # fmt: skip
        if not calls:
            return Evidence(note=f"{UNEVIDENCED}: no passing test calls "
                                 + ", ".join(functions) + " with arguments that can be replayed")
        try:
            first, seconds = self._replay(original, calls)
            second, _ = self._replay(original, calls)
        except InvalidRun as exc:
            return Evidence(note=f"{UNEVIDENCED}: the original's replay failed ({exc})")
        stable = [{i for i, (a, b) in enumerate(zip(x, y, strict=False)) if _key(a) == _key(b)}
                  for x, y in zip(first, second, strict=True)]  # fmt: skip
        contract: dict[str, set[str]] = {}
        for call, results, agreed in zip(calls, first, stable, strict=True):
            if not call["generated"] and 0 in agreed:
                contract.setdefault(call["qualname"], set()).add(kind(results[0]))
        stateful = {name for name in functions if writes_own_state(original, name)}
        return Evidence(calls, first, stable, contract, seconds, stateful=stateful)


def evidenced(verdict: Verdict) -> bool:
    """Did the comparison see the original answer somewhere (not only raise)?"""
    return not any(flag.startswith(UNEVIDENCED) for flag in verdict.flags)


def _function(source: str, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    node: ast.AST | None = ast.parse(source)
    for part in qualname.split("."):
        body = getattr(node, "body", [])
        node = next((n for n in body if getattr(n, "name", None) == part), None)
    return node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None


def writes_own_state(source: str, qualname: str) -> bool:
    """Is `qualname` a method that changes its own object: assigns, augments or deletes
    an attribute or item reached from its first parameter, or calls a method on one
    (`self.window.append(v)`)? Its later calls then see state its earlier ones built."""
    node = _function(source, qualname)
    if node is None or "." not in qualname or not node.args.args:
        return False
    own = node.args.args[0].arg

    def rooted(target: ast.AST) -> bool:
        while isinstance(target, ast.Attribute | ast.Subscript):
            target = target.value
        return isinstance(target, ast.Name) and target.id == own

    for inner in ast.walk(node):
        targets: list[ast.AST] = []
        if isinstance(inner, ast.Assign | ast.Delete):
            targets = list(inner.targets)
        elif isinstance(inner, ast.AugAssign | ast.AnnAssign):
            targets = [inner.target]
        elif isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
            targets = [inner.func.value] if isinstance(inner.func.value, ast.Attribute) else []
        if any(isinstance(t, ast.Attribute | ast.Subscript) and rooted(t) for t in targets):
            return True
    return False


def constants(source: str, qualname: str) -> list[Any]:
    """The short strings and the numbers a function's code holds (its docstring aside):
    values its inputs are compared or combined with, for the generated ones."""
    node = _function(source, qualname)
    if node is None:
        return []
    docstring = ast.get_docstring(node, clean=False)
    found = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
             and type(n.value) in (str, int, float) and n.value != docstring
             and len(str(n.value)) <= MAX_CONSTANT]  # fmt: skip
    return list(dict.fromkeys(found))


def compare(evidence: Evidence, repaired: list[list[Any]], *, trusted: bool = False) -> Verdict:
    """The verdict on the repair's results against the original's (see the module);
    `trusted`: every change counts, as on the tests' own inputs."""
    refusals: list[str] = []
    changed: Counter[str] = Counter()
    compared = answered = 0
    for call, before, after, agreed in zip(evidence.calls, evidence.results, repaired,
                                           evidence.stable, strict=True):  # fmt: skip
        if before and before[0][0] == "unreplayable":
            continue
        allowed = evidence.contract.get(call["qualname"], set())
        for index in sorted(agreed):
            if index >= len(after):
                continue
            was, now = before[index], after[index]
            compared += 1
            if kind(was).startswith("raised "):
                continue  # the original did not answer here: the repair may do anything
            answered += 1
            if _key(was) == _key(now):
                continue
            tested = index == 0 and not call["generated"]
            own = tested and call["qualname"] not in evidence.stateful
            where = f"{_shown(call)}" + (f", called by {call['test']}," if tested else "")
            if own or trusted:
                refusals.append(f"{where} returns {brief(now)}, where the original returned "
                                f"{brief(was)}" + (" and the test passed" if own else ""))
            elif kind(now) not in allowed | {kind(was)}:
                variant = "" if index == 0 else " (or an input near it)"
                refusals.append(f"{where}{variant} gives {kind(now)}, where the original "
                                f"gave {brief(was)}: of a type it never gives the tests")
            else:
                changed["generated" if call["generated"] else "near" if index else "own"] += 1
    if refusals:
        return Verdict(rejected="it changes what the function did where it behaved: "
                                + "; ".join(refusals[:2]))  # fmt: skip
    flags = []
    if changed["own"]:
        flags.append(f"it changes results on {changed['own']} passing tests' inputs of a method "
                     "that writes its own object, whose state the original's calls built")
    if changed["near"] or changed["generated"]:
        flags.append(f"it changes results on {changed['near'] + changed['generated']} of "
                     f"{compared} inputs no test checks (near or generated from the tests' own)")
    if not compared:
        flags.append(f"{UNEVIDENCED}: no call into the changed functions compared")
    elif not answered:
        flags.append(f"{UNEVIDENCED}: the original raised on all {compared} inputs "
                     "compared (the fault fails every call the tests make)")
    return Verdict(flags=flags)
