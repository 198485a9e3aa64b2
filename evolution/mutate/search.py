"""The repair search: rank, filter, evaluate in stages, minimise, check.

Candidates come best first (see `rank`: suspicion x prior x share). Before any test
runs, a candidate is dropped if it does not compile, if it makes a comparison of an
expression with itself (a constant no person writes as a fix), if it is equivalent to
one already judged (the same bytecode once compiled), or, when it changes module-level
code, if the module no longer imports. Stage 1 runs the failing tests alone; stage 2 every
test of their files that passed before. An edit that makes some failing tests pass
without breaking any is kept as a foothold, and the search goes one level deeper from
it (GenProg's accumulation, bounded). When a failing test hung, edits that make a
`while` loop's condition change come first (`progress`); a candidate whose test runs
to its time limit has hung, and an edit family whose candidates only hang goes last
(`hangs`). A repair is minimised (every edit it does not need is dropped), checked for
overfitting (see `overfit` and `differential`), and must pass stage 3, the passing
tests of every test file that concerns the target, before it is proposed; the gate
then judges the whole suite. A repair that takes away code no passing test ran, or
where the original raised on every input, is proposed only when the search finds
nothing better (see `accept`).

The search is bounded by candidate count and by wall time; both are reported.
"""

from __future__ import annotations

import ast
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from types import CodeType

from evolution.gate import overfit
from evolution.mutate.differential import evidenced
from evolution.mutate.evaluator import Evaluator
from evolution.mutate.hangs import Families, finished
from evolution.mutate.localise import Localisation
from evolution.mutate.priors import priors
from evolution.mutate.progress import progress_first
from evolution.mutate.rank import ranked
from evolution.mutate.source import Edit, apply_edits
from evolution.policy import Policy

MAX_FOOTHOLDS = 3
CANDIDATE_TEST_TIMEOUT_S = 10.0  # a mutant can loop forever; a seeded fix never needs this
MIN_TEST_TIMEOUT_S = 1.0
MIN_RUN_TIMEOUT_S = 10.0
SYMMETRIC = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)
# Edits that take away what the code did (Kali's repairs: a statement deleted, a term
# or an argument dropped, a constant returned); see `_Search.accept`.
REMOVING = frozenset({"delete", "drop-term", "return"})


@dataclass
class SearchLimits:
    max_candidates: int = 400
    max_seconds: float = 60.0


@dataclass
class SearchResult:
    edits: tuple[Edit, ...] = ()
    source: str = ""
    evaluated: int = 0
    seconds: float = 0.0
    stopped: str = ""  # repaired | candidates | time | exhausted
    lines: list[int] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # why, before any test ran
    hung: int = 0  # candidates whose stage 1 had a test cut off at its time limit
    rejected: list[str] = field(default_factory=list)  # plausible, but refused: why
    flags: list[str] = field(default_factory=list)  # the repair's overfitting warnings

    @property
    def repaired(self) -> bool:
        return bool(self.edits)

    @property
    def per_minute(self) -> float:
        return self.evaluated / self.seconds * 60 if self.seconds > 0 else 0.0


def parsed(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def key_of(tree: ast.Module) -> str | None:
    """A key equal for equivalent mutants: the same bytecode once compiled, positions
    aside (formatting, comments, `-0` as `0`: trivial compiler equivalence, Papadakis et
    al., ICSE 2015), with `a == b` as `b == a`; None when the tree does not compile
    (`return` outside a function parses, and compiles to nothing). It reorders the
    tree's comparisons in place. A digest: the dump of a large module kept per
    candidate tried cost hundreds of megabytes."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(
                node.ops[0], SYMMETRIC):
            left, right = sorted((node.left, node.comparators[0]), key=ast.dump)
            node.left, node.comparators = left, [right]
    try:
        code = compile(tree, "<mutant>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return hashlib.sha256(repr(_code_key(code)).encode()).hexdigest()


def _code_key(code: CodeType) -> tuple[object, ...]:
    """What a code object does, not where its lines are (constants by type and value:
    `0`, `0.0` and `False` are equal, and not alike)."""
    consts = tuple(_code_key(c) if isinstance(c, CodeType) else (type(c).__name__, repr(c))
                   for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_argcount, code.co_posonlyargcount,
            code.co_kwonlyargcount, code.co_flags)


def canonical(text: str) -> str | None:
    """`key_of` the text, or None when it does not compile."""
    tree = parsed(text)
    return None if tree is None else key_of(tree)


def self_comparisons(tree: ast.Module) -> Counter[str]:
    """The expressions (a statement's whole condition, value, ...) that hold a
    comparison of an expression with itself (`s[0] != s[0]`): constant, bar the NaN test
    `x != x`. A person does not write one to fix a bug, so a mutant that makes a new one
    (or wraps one anew: `not (s[0] == s[0])`) is never tried. When a fault had made
    `singular[0] == singular[0]` of `singular[0] == plural[0]`, the search's first
    plausible repair was `!=`: the condition always false, its branch dead, and the
    tests did not mind."""
    found: Counter[str] = Counter()
    for statement in ast.walk(tree):
        if not isinstance(statement, ast.stmt):
            continue
        for part in ast.iter_child_nodes(statement):
            if isinstance(part, ast.expr):
                found[ast.dump(part)] += sum(
                    1 for node in ast.walk(part) if isinstance(node, ast.Compare)
                    and len(node.ops) == 1 and ast.dump(node.left) == ast.dump(node.comparators[0]))
    return +found


def module_level_lines(source: str) -> set[int]:
    """Lines that run at import: everything outside function bodies."""
    tree = ast.parse(source)
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            body = node.body if isinstance(node.body, list) else [node.body]
            inside.update(range(body[0].lineno, (node.end_lineno or body[0].lineno) + 1))
    return set(range(1, source.count("\n") + 2)) - inside


@dataclass
class _Search:
    evaluator: Evaluator
    source: str
    limits: SearchLimits
    tests: list[str]
    tried: set[str]
    on_candidate: Callable[[int], None] | None
    result: SearchResult
    started: float = field(default_factory=time.monotonic)
    constant_before: Counter[str] = field(default_factory=Counter)  # self-comparisons
    # The original and a repair compared on inputs where the original behaved.
    differential: Callable[[str, str], overfit.Verdict] | None = None
    families: Families = field(default_factory=Families)  # which edit families hang
    # A removing repair with no evidence of what it removes, proposed only if nothing
    # better is found: (edits, text, flags).
    reserve: tuple[tuple[Edit, ...], str, list[str]] | None = None
    passed_lines: frozenset[int] = frozenset()  # lines a passing test ran (localisation)

    def bound(self) -> str:
        if self.evaluator.evaluated >= self.limits.max_candidates:
            return "candidates"
        if time.monotonic() - self.started > self.limits.max_seconds:
            return "time"
        return ""

    def admissible(self, text: str, edits: tuple[Edit, ...], module_lines: set[int]) -> bool:
        tree = parsed(text)
        # Judged on the tree as written, before key_of reorders its comparisons.
        constant = tree is not None and bool(self_comparisons(tree) - self.constant_before)
        key = None if tree is None else key_of(tree)  # one compile per candidate
        if key is None:
            self.result.skipped["does not compile"] += 1
            return False
        if constant:
            self.result.skipped["compares an expression with itself"] += 1
            return False
        if key in self.tried:
            self.result.skipped["equivalent to one tried"] += 1
            return False
        self.tried.add(key)
        if any(e.line in module_lines for e in edits) and not self.evaluator.imports(text):
            self.result.skipped["does not import"] += 1
            return False
        return True

    def accept(self, edits: tuple[Edit, ...]) -> bool:
        """Minimise a plausible repair, then check it; True when it is the answer."""
        minimal = minimise(self.evaluator, self.source, edits)
        text = apply_edits(self.source, minimal)
        verdict = overfit.check(self.source, text, self.tests)
        described = "; ".join(e.description for e in minimal)
        if verdict.rejected:
            self.result.rejected.append(f"{described}: {verdict.rejected}")
            return False
        if not self.evaluator.whole_files_hold(text):
            self.result.rejected.append(
                f"{described}: breaks a test of the target's other test files")
            return False
        behaved = overfit.Verdict() if self.differential is None else self.differential(
            self.source, text)
        if behaved.rejected:
            self.result.rejected.append(f"{described}: {behaved.rejected}")
            return False
        flags = [*verdict.flags, *behaved.flags]
        removing = [e for e in minimal if e.operator in REMOVING]
        if removing and (not evidenced(behaved) or not {e.line for e in removing}
                         <= self.passed_lines):
            # Where the original raised on every input, or no passing test ran the code
            # taken away, nothing says what that code did, and taking it away is the
            # easiest way to stop a raise (cachetools' `_HashedTuple(other, self)`
            # "repaired" by dropping `self`, `args + ...` by dropping `args`,
            # inflection's faulty `replace` by deleting its line): kept in reserve while
            # the search goes on for a repair that keeps what the code did.
            if self.reserve is None:
                self.reserve = (minimal, text, flags)
            return False
        self.result.edits, self.result.source = minimal, text
        self.result.flags = flags
        return True


def search(
    evaluator: Evaluator,
    source: str,
    localisation: Localisation,
    limits: SearchLimits,
    *,
    tried: set[str] | None = None,
    on_candidate: Callable[[int], None] | None = None,
    tests: list[str] | None = None,
    differential: Callable[[str, str], overfit.Verdict] | None = None,
) -> SearchResult:
    """Find a plausible repair of `source`. `tried` holds the keys of mutants already
    judged in this process, so a second call goes on where the first left off; `tests`
    are the texts of the target's test files, for the overfitting check; `differential`
    compares the original and a repair where the original behaved
    (`evolution.mutate.differential`): a repair it refuses is not proposed, and the
    search goes on."""
    lines = localisation.ranked_lines()
    state = _Search(evaluator, source, limits, tests or [],
                    set() if tried is None else tried, on_candidate, SearchResult(lines=lines[:10]),
                    constant_before=self_comparisons(ast.parse(source)),
                    differential=differential, passed_lines=localisation.passed_lines)
    table = priors()
    module_lines = module_level_lines(source)
    failing_total = len(evaluator.failing)
    looping = bool(localisation.timed_out & set(evaluator.failing))  # a failing test hung
    footholds: dict[tuple[Edit, ...], int] = {(): 0}  # edits -> failing tests they fix
    frontier: list[tuple[Edit, ...]] = [()]
    for depth in (1, 2):
        for applied in frontier:
            edits_here: Iterable[Edit] = ranked(source, localisation.scores, table, applied)
            if looping:
                edits_here = progress_first(source, list(edits_here))
            for edit in state.families.later(edits_here):
                why = state.bound()
                if why:
                    return _stop(state, why)
                edits = (*applied, edit)
                text = apply_edits(source, edits)
                if not state.admissible(text, edits, module_lines):
                    continue
                fixed = evaluator.fixed(text)
                if on_candidate is not None:
                    on_candidate(evaluator.evaluated)
                if fixed is None:
                    continue
                state.families.record(edit, evaluator.hung)
                if fixed == failing_total and evaluator.neighbours_hold(text):
                    if state.accept(edits):
                        return _stop(state, "repaired")
                elif fixed > footholds[applied] and evaluator.neighbours_hold(text):
                    footholds[edits] = fixed
        deeper = [edits for edits in footholds if len(edits) == depth]
        frontier = sorted(deeper, key=lambda edits: -footholds[edits])[:MAX_FOOTHOLDS]
    return _stop(state, "exhausted")


def minimise(evaluator: Evaluator, source: str, edits: tuple[Edit, ...]) -> tuple[Edit, ...]:
    """Drop every edit the repair does not need (one at a time, until none can go)."""
    kept = list(edits)
    changed = True
    while changed and len(kept) > 1:
        changed = False
        for edit in list(kept):
            trial = tuple(e for e in kept if e is not edit)
            text = apply_edits(source, trial)
            if evaluator.fixed(text) == len(evaluator.failing) and evaluator.neighbours_hold(
                    text):
                kept = list(trial)
                changed = True
                break
    return tuple(kept)


def _stop(state: _Search, why: str) -> SearchResult:
    if why != "repaired" and state.reserve is not None:
        state.result.edits, state.result.source, flags = state.reserve
        state.result.flags = [*flags, "it takes code away that no passing test ran, or where "
                              "the original answered nowhere: the search went on "
                              f"({why}) and found no repair that keeps it"]
        why = "repaired"
    state.result.evaluated = state.evaluator.evaluated
    state.result.hung = state.families.total
    state.result.seconds = time.monotonic() - state.started
    state.result.stopped = why
    return state.result


def evaluator_policy(policy: Policy) -> Policy:
    """The gate's policy with short limits: a mutant that loops is cut off quickly."""
    return replace(
        policy,
        test_timeout_s=min(policy.test_timeout_s, CANDIDATE_TEST_TIMEOUT_S),
        run_timeout_s=min(policy.run_timeout_s, 120.0),
    )


def candidate_policy(policy: Policy, localisation: Localisation) -> Policy:
    """Limits measured on the target's own tests: a test may take ten times what the
    slowest that finished took in the localisation run, a candidate's run five times
    that run's wall clock (itself slowed by coverage) without the tests cut off, plus
    their new limit each; never less than `MIN_TEST_TIMEOUT_S` and `MIN_RUN_TIMEOUT_S`
    (a loaded host), never more than `evaluator_policy`'s caps.
    A mutant that loops (an off-by-one on a `while` bound, a constant weekday) then
    costs about a second, not the 10 s cap: on a budget of 60 s that was the
    difference between a repair and none. A failing test that hung in the localisation
    run is left out (`hangs.finished`): counted, its limit made every later hang cost
    the cap again."""
    cut = localisation.timed_out
    slowest = max(finished(localisation.durations, cut), default=0.0)
    test_limit = min(policy.test_timeout_s, max(MIN_TEST_TIMEOUT_S, 10 * slowest))
    spent = localisation.seconds - sum(localisation.durations.get(n, 0.0) for n in cut)
    return replace(
        policy,
        test_timeout_s=test_limit,
        run_timeout_s=min(policy.run_timeout_s,
                          max(MIN_RUN_TIMEOUT_S, 5 * spent + len(cut) * test_limit)),
    )
