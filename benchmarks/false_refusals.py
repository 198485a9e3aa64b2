"""Benchmark: does the whole gate refuse honest automated proposals on code nobody here wrote?

The gate's checks for automated proposals (the static guard, the special-cased-inputs
check, the probe's checks, and the replay of changed functions outside the harness with
`behaviour = "strict"`) exist to refuse proposals that fool the tests. This measures the
other side: how often they refuse changes that are honest. It runs

    evolve validate BRANCH --json

(the whole gate: the merge, the staged and full runs against the per-test baseline, in
the OS sandbox, then the proposal checks) on two kinds of honest change to the packages
of mutate_pypi.py (sdists fetched with pip at run time; nothing of theirs is committed
here), each committed as an automated proposal (`Evolve-Proposal:` and
`Evolve-Proposer:` trailers), every one of which should be accepted:

- repair: a one-line TSSB-3M fault injected as mutate_pypi.py injects it (a covered
  line inside a function, kept only if the package's tests then fail; with the same
  seed, trial N has mutate_pypi's trial N's fault) is committed to main and its baseline
  recorded (the fault's failing tests are known failures); the proposal puts the
  original file back, the package's authors' own line.
- refactor: on the pristine package (its baseline recorded as it is), a top-level
  function the tests cover (the functions the replay compares) gets one
  semantics-preserving edit made with `ast`, on its text spans only: a local variable
  renamed (assigned in the function; not a parameter, global or nonlocal; not used by
  a nested scope, an f-string or `locals()`-like introspection; checked by renaming it
  back in the syntax tree), a `return EXPR` split into `result_ = EXPR` and
  `return result_`, or a docstring added.

The policy is the one mutate_pypi.py commits (the package's code evolvable, its tests
protected) with `behaviour = "strict"` and `sandbox = "required"`; everything else is
the default (staged, reruns, workers). One trial at a time.

Reported per trial: package, file:function, kind, the gate's verdict and exit code,
the behavioural evidence (calls recorded, compared, left out), the gate's wall seconds,
and for a refusal the check that refused and its full reason. Summary: honest changes
gated, accepted, refused (by check), invalid runs (exit 3, or no verdict), and the
median gate seconds.

Usage: .venv/bin/python benchmarks/false_refusals.py [--trials N] [--seed S]
       [--cache DIR] [--only PACKAGE ...] [--kind repair|refactor] [--keep DIR] [--json]
--trials is per kind (repairs and refactors alternate); --keep copies the repository of
each refused or invalid trial there, to investigate.
No timing is asserted anywhere: this prints figures for the README.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gate_vs_pytest import as_proposal
from mutate_pypi import PACKAGES, Package, covered_lines, draw_fault, unpack
from mutate_pypi import Trial as Fault
from mutate_repair import EVOLVE, commit_and_record, sh

from evolution.gate.behaviour import changed_functions
from evolution.mutate.source import Edit, Source, apply_edits

POLICY = 'behaviour = "strict"\nsandbox = "required"\n'
GATE_TIMEOUT_S = 1800.0  # a guard against a hung run, not a figure
REFACTORS = ("rename-local", "return-temp", "docstring")
NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp,
          ast.SetComp, ast.DictComp, ast.GeneratorExp)  # fmt: skip
INTROSPECTION = {"locals", "vars", "eval", "exec", "dir", "globals"}
CHECKS = (  # the start of a refusal's reason -> the check that refused
    ("an automated proposal touched protected", "protected-paths"),
    ("the branch does not merge cleanly", "clean-merge"),
    ("the static guard refused", "static-guard"),
    ("an automated proposal special-cases", "special-cased-inputs"),
    ("the changed code behaves differently under the tests", "behaviour:under-test"),
    ("the proposal changes behaviour that no test asked", "behaviour:unasked"),
    ("baseline-passing test(s) regressed", "regression"),
    ("no newly passing test", "require-improvement"),
)


@dataclass
class Trial:
    index: int
    kind: str  # repair | refactor
    package: str
    path: str = ""
    function: str = ""
    change: str = ""  # the fault's kind, or the refactoring's
    before: str = ""  # the line as on main
    after: str = ""  # the line as proposed
    verdict: str = ""  # accepted | rejected | invalid | skipped
    exit_code: int | None = None
    check: str = ""  # for a refusal: which check refused
    reason: str = ""
    guard: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    behaviour: dict[str, Any] = field(default_factory=dict)
    stage: str = ""
    tests_run: int = 0
    gate_s: float = 0.0
    error: str = ""


# --- the refactorings --------------------------------------------------------------


def _own(function: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[list[ast.AST], set[str]]:
    """The nodes of the function body's own scope, and every name a nested scope (or an
    f-string) in it mentions or binds."""
    own: list[ast.AST] = []
    foreign: set[str] = set()
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (*NESTED, ast.JoinedStr)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name):
                    foreign.add(inner.id)
                elif isinstance(inner, ast.arg):
                    foreign.add(inner.arg)
                elif isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    foreign.add(inner.name)
            continue
        own.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return own, foreign


def _identifiers(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.alias):
            found.add(node.asname or node.name.split(".")[0])
    return found


def _fresh(base: str, taken: set[str]) -> str:
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}{number}"
    return name


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    args = function.args
    found = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return set(found + [a.arg for a in (args.vararg, args.kwarg) if a is not None])


def rename_local(src: Source, function: ast.FunctionDef | ast.AsyncFunctionDef,
                 covered: set[int], rng: random.Random) -> list[Edit] | None:  # fmt: skip
    own, foreign = _own(function)
    names = [n for n in own if isinstance(n, ast.Name)]
    if {n.id for n in names} & INTROSPECTION:
        return None
    declared = {name for n in own if isinstance(n, ast.Global | ast.Nonlocal) for name in n.names}
    bound_otherwise = {n.name for n in own if isinstance(n, ast.ExceptHandler) and n.name}
    bound_otherwise |= {a.asname or a.name.split(".")[0] for n in own
                        if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    bound_otherwise |= {n.name for n in own if isinstance(n, ast.MatchAs | ast.MatchStar)
                        and n.name} | {n.rest for n in own if isinstance(n, ast.MatchMapping)
                        and n.rest}  # fmt: skip
    stored = sorted({n.id for n in names if isinstance(n.ctx, ast.Store)})
    candidates = [name for name in stored if name not in _parameters(function) | declared
                  | bound_otherwise | foreign and not name.startswith("__")]  # fmt: skip
    if not candidates:
        return None
    name = rng.choice(candidates)
    fresh = _fresh(f"{name}_renamed", _identifiers(src.tree))
    return [src.replace(n, fresh, "rename-local", f"{name} -> {fresh}")
            for n in names if n.id == name]  # fmt: skip


def _indent(src: Source, node: ast.stmt) -> str:
    """The text before the statement on its first line (ast's columns are bytes)."""
    return src.text(src.offset(node.lineno, 0), src.offset(node.lineno, node.col_offset))


def _alone_on_its_lines(src: Source, node: ast.stmt) -> bool:
    """Nothing but indentation before the statement and nothing but a comment after it."""
    before = _indent(src, node)
    after = src.line_text(node.end_lineno or node.lineno).encode()[node.end_col_offset or 0:]
    rest = after.decode().strip()
    return not before.strip() and (not rest or rest.startswith("#"))


def return_temp(src: Source, function: ast.FunctionDef | ast.AsyncFunctionDef,
                covered: set[int], rng: random.Random) -> list[Edit] | None:  # fmt: skip
    own, _foreign = _own(function)
    if any(isinstance(n, ast.Name) and n.id in INTROSPECTION for n in own):
        return None
    returns = [n for n in own if isinstance(n, ast.Return) and n.value is not None
               and _alone_on_its_lines(src, n)]  # fmt: skip
    returns = [n for n in returns if n.lineno in covered] or returns
    if not returns:
        return None
    node = rng.choice(sorted(returns, key=lambda n: n.lineno))
    temp = _fresh("result_", _identifiers(src.tree))
    start = src.offset(node.lineno, node.col_offset)
    end = src.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
    indent = _indent(src, node)
    return [
        Edit(start, start + len("return"), f"{temp} =", "return-temp", node.lineno,
             f"return -> {temp} = ..."),
        Edit(end, end, f"\n{indent}return {temp}", "return-temp", node.lineno,
             f"return {temp}"),
    ]  # fmt: skip


def add_docstring(src: Source, function: ast.FunctionDef | ast.AsyncFunctionDef,
                  covered: set[int], rng: random.Random) -> list[Edit] | None:  # fmt: skip
    first = function.body[0]
    if ast.get_docstring(function, clean=False) is not None or first.lineno == function.lineno:
        return None
    indent = _indent(src, first)
    if indent.strip():
        return None
    at = src.offset(first.lineno, 0)
    text = f'{indent}"""What {function.name}() does (a docstring added by a refactoring)."""\n'
    return [Edit(at, at, text, "docstring", first.lineno, "docstring added")]


REFACTOR = {"rename-local": rename_local, "return-temp": return_temp, "docstring": add_docstring}


def _renamed_back(new: str, edits: list[Edit], old_tree: ast.AST) -> bool:
    """Whether renaming the fresh name back gives the original syntax tree exactly."""
    old_name, fresh = edits[0].description.split(": ", 1)[1].split(" -> ")
    tree = ast.parse(new)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == fresh:
            node.id = old_name
    return ast.dump(tree) == ast.dump(old_tree)


def refactor(text: str, covered: set[int], kind: str, rng: random.Random
             ) -> tuple[str, str, int] | None:
    """`text` with one covered top-level function refactored by `kind`: (the new text,
    the function's name, the line edited), or None when no function takes it."""
    src = Source(text)
    functions = [n for n in src.tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                 and covered & set(range(n.body[0].lineno, (n.end_lineno or 0) + 1))]
    rng.shuffle(functions)
    for function in functions:
        edits = REFACTOR[kind](src, function, covered, rng)
        if not edits:
            continue
        new = apply_edits(text, edits)
        try:
            compile(new, "<refactored>", "exec")
        except SyntaxError:
            continue
        if changed_functions(text, new) != [function.name]:
            continue
        if kind == "rename-local" and not _renamed_back(new, edits, src.tree):
            continue
        return new, function.name, edits[0].line
    return None


# --- the trials ----------------------------------------------------------------------


def _enclosing(text: str, line: int) -> str:
    """The qualified name of the innermost function around `line`."""

    def walk(body: list[ast.stmt], prefix: str) -> str:
        for node in body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if node.lineno <= line <= (node.end_lineno or 0):
                name = f"{prefix}{node.name}"
                inner = walk(node.body, name + ".")
                if inner:
                    return inner
                return name if not isinstance(node, ast.ClassDef) else ""
        return ""

    return walk(ast.parse(text).body, "")


def _copy(source: Path, into: Path) -> Path:
    shutil.copytree(source, into, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))  # fmt: skip
    return into


def _drop_caches(root: Path) -> None:
    for cache in [*root.rglob("__pycache__"), *root.rglob(".pytest_cache")]:
        shutil.rmtree(cache, ignore_errors=True)


def gate(trial: Trial, repo: Path, branch: str) -> None:
    """Run the whole gate on `branch` and read its verdict into `trial`."""
    started = time.perf_counter()
    try:
        done = sh([*EVOLVE, "validate", branch, "--json"], repo, timeout=GATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        trial.verdict, trial.error = "invalid", f"still running after {GATE_TIMEOUT_S:g} s"
        return
    finally:
        trial.gate_s = round(time.perf_counter() - started, 1)
    trial.exit_code = done.returncode
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        trial.verdict = "invalid"
        trial.error = f"exit {done.returncode}, no JSON: {done.stderr.strip()[-600:]}"
        return
    if "error" in report:
        trial.verdict = "invalid"
        trial.error = f"{report['error']} {report.get('hint') or ''}".strip()
        return
    trial.verdict = report.get("verdict", "?")
    trial.reason = report.get("reason", "")
    trial.guard = report.get("guard", [])
    trial.regressions = report.get("regressions", [])
    trial.behaviour = report.get("behaviour", {})
    trial.stage, trial.tests_run = report.get("stage", ""), report.get("tests_run", 0)
    if trial.verdict != "accepted" or done.returncode != 0:
        trial.check = next((name for start, name in CHECKS if start in trial.reason), "other")


def _line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def repair_trial(index: int, package: Package, pristine: Path, covered: dict[str, list[int]],
                 seed: int, scratch: Path) -> tuple[Trial, Path]:  # fmt: skip
    label = f"{package.name} {package.version}"
    trial = Trial(index, "repair", label)
    repo = _copy(pristine, scratch / f"repair-{index}")
    fault = Fault(index, label)
    original = draw_fault(repo, covered, fault, random.Random(f"{seed}-{index}"))
    if original is None:
        trial.verdict, trial.error = "skipped", "no fault the tests see"
        return trial, repo
    trial.path, trial.change = fault.path, fault.kind
    trial.function = _enclosing(original, fault.line)
    trial.before, trial.after = fault.faulty, fault.original
    _drop_caches(repo)
    error = commit_and_record(repo, f"fault: {fault.kind} at {fault.path}:{fault.line}")
    if error:
        trial.verdict, trial.error = "skipped", error
        return trial, repo
    name = f"fr-repair-{index}"
    as_proposal(repo, name, lambda r: (r / fault.path).write_text(original, encoding="utf-8"))
    gate(trial, repo, name)
    return trial, repo


def refactor_trial(index: int, package: Package, recorded: Path, covered: dict[str, list[int]],
                   seed: int, scratch: Path) -> tuple[Trial, Path]:  # fmt: skip
    trial = Trial(index, "refactor", f"{package.name} {package.version}")
    repo = _copy(recorded, scratch / f"refactor-{index}")
    rng = random.Random(f"{seed}-refactor-{index}")
    files = sorted(path for path in covered if path.endswith(".py"))
    kinds = [REFACTORS[index % len(REFACTORS)]] + [
        k for k in REFACTORS if k != REFACTORS[index % len(REFACTORS)]]  # fmt: skip
    found = None
    for kind in kinds:
        for path in rng.sample(files, len(files)):
            text = (repo / path).read_text(encoding="utf-8")
            made = refactor(text, set(covered[path]), kind, rng)
            if made is not None:
                found = kind, path, text, made
                break
        if found:
            break
    if found is None:
        trial.verdict, trial.error = "skipped", "no covered top-level function to refactor"
        return trial, repo
    kind, path, text, (new, function, line) = found
    trial.change, trial.path, trial.function = kind, path, function
    trial.before = _line(text, line)
    trial.after = " | ".join(
        line.strip() for line in new.splitlines() if line not in text.splitlines())[:200]
    name = f"fr-refactor-{index}"
    as_proposal(repo, name, lambda r: (r / path).write_text(new, encoding="utf-8"))
    gate(trial, repo, name)
    return trial, repo


def prepare(package: Package, cache: Path, scratch: Path
            ) -> tuple[Path, dict[str, list[int]], Path, str]:
    """The unpacked package with the benchmark's policy, its covered lines, and a copy of
    it as a repository with its baseline recorded (for the refactorings)."""
    pristine = unpack(package, cache, scratch / package.name)
    config = pristine / "deploy" / "agent.toml"
    config.write_text(config.read_text(encoding="utf-8") + POLICY, encoding="utf-8")
    covered = covered_lines(pristine, package)
    recorded = _copy(pristine, scratch / f"{package.name}-recorded")
    error = commit_and_record(recorded, f"{package.name} {package.version}", failing=False)
    return pristine, covered, recorded, error


# --- the report ----------------------------------------------------------------------


def _evidence(trial: Trial) -> int:
    """Calls the replay compared, less those it left out as harness-dependent on main too
    (the gate counts those as compared)."""
    excluded = trial.behaviour.get("excluded") or {}
    return int(trial.behaviour.get("compared", 0)) - int(
        excluded.get("harness-dependent on main too", 0))


def summarise(trials: list[Trial]) -> dict[str, Any]:
    gated = [t for t in trials if t.verdict != "skipped"]

    def counts(kind: str | None) -> dict[str, Any]:
        chosen = [t for t in gated if kind is None or t.kind == kind]
        return {
            "gated": len(chosen),
            "accepted": sum(t.verdict == "accepted" and t.exit_code == 0 for t in chosen),
            "refused": sum(t.verdict not in ("accepted", "invalid") for t in chosen),
            "invalid": sum(t.verdict == "invalid" for t in chosen),
            "refused_by": dict(Counter(t.check for t in chosen if t.check)),
            "behaviour_evidence": sum(_evidence(t) > 0 for t in chosen),
        }

    seconds = [t.gate_s for t in gated if t.verdict != "invalid"]
    return {
        "all": counts(None),
        "repair": counts("repair"),
        "refactor": counts("refactor"),
        "skipped": len(trials) - len(gated),
        "median_gate_s": round(statistics.median(seconds), 1) if seconds else None,
        "per_trial": [asdict(t) for t in trials],
    }


def print_report(trials: list[Trial], summary: dict[str, Any]) -> None:
    for t in trials:
        b = t.behaviour
        evidence = (f"replay: {_evidence(t)} of {b.get('calls', 0)} calls compared"
                    if b else "no replay")  # fmt: skip
        print(f"{t.kind:<8} #{t.index:<3} {t.package:<21} {t.path}:{t.function}  {t.change}")
        print(f"      {t.verdict} (exit {t.exit_code}) {t.gate_s:.1f} s, {t.tests_run} tests, "
              f"{evidence}, left out {b.get('excluded') or {}}")
        print(f"      main:     {t.before[:120]}\n      proposal: {t.after[:120]}")
        if t.check:
            print(f"      refused by {t.check}: {t.reason}")
            for finding in t.guard:
                print(f"        {finding}")
        if t.error:
            print(f"      {t.verdict}: {t.error[:600]}")
    print()
    for kind in ("repair", "refactor", "all"):
        row = summary[kind]
        print(f"{kind:<9} gated {row['gated']:3d}  accepted {row['accepted']:3d}  refused "
              f"{row['refused']:3d} {row['refused_by'] or ''}  invalid {row['invalid']:3d}  "
              f"(the replay had evidence in {row['behaviour_evidence']})")
    print(f"skipped (no fault or refactoring found, or no baseline): {summary['skipped']}; "
          f"median gate {summary['median_gate_s']} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="per kind")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--cache", type=Path, default=None, help="keep the sdists here")
    parser.add_argument("--only", action="append", metavar="PACKAGE")
    parser.add_argument("--kind", choices=("repair", "refactor"), action="append")
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy refused or invalid trials' repositories here")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    packages = [p for p in PACKAGES if not args.only or p.name in args.only]
    kinds = args.kind or ["repair", "refactor"]
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="false-refusals-") as scratch_dir:
        scratch = Path(scratch_dir)
        cache = args.cache or scratch / "sdists"
        prepared = []
        for package in packages:
            print(f"preparing {package.name}…", file=sys.stderr, flush=True)
            prepared.append((package, *prepare(package, cache, scratch)))
        for index in range(args.trials):
            package, pristine, covered, recorded, error = prepared[index % len(prepared)]
            for kind in kinds:
                print(f"{kind} {index} ({package.name})…", end=" ", flush=True, file=sys.stderr)
                if kind == "refactor" and error:
                    trial = Trial(index, kind, package.name, verdict="skipped", error=error)
                    repo = None
                elif kind == "repair":
                    trial, repo = repair_trial(index, package, pristine, covered, args.seed,
                                               scratch)  # fmt: skip
                else:
                    trial, repo = refactor_trial(index, package, recorded, covered, args.seed,
                                                 scratch)  # fmt: skip
                print(f"{trial.verdict} {trial.check} {trial.gate_s:.0f} s", file=sys.stderr)
                trials.append(trial)
                if repo is not None and args.keep and trial.verdict not in ("accepted",
                                                                            "skipped"):
                    shutil.copytree(repo, args.keep / repo.name, symlinks=True)
                if repo is not None:
                    shutil.rmtree(repo, ignore_errors=True)
    summary = summarise(trials)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_report(trials, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
