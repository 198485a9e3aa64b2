"""Behaviour outside the harness: the judge compares what changed code does, not how it
is spelled (invariant 16).

Code under test can tell that it is being tested (the environment, the command line,
the modules loaded) and be right only then; it can special-case the inputs the tests
use. Neither shows in test outcomes. So, for an automated proposal that the suite has
accepted and that changes functions:

1. The tests that reach the changed functions run once more, with the probe recording
   every call into them (arguments pickled at the call; the result's canonical form,
   which asks the value nothing: `_ratchet_canon`).
2. Each recorded call is replayed outside the harness (`_ratchet_replay`: a clean
   interpreter in the sandbox, no pytest, no probe, no test variables, a plain command
   line), on the candidate's tree twice and on main's twice, with the recorded
   arguments and with arguments near them (each number, string and collection changed
   a little).
3. A call whose result under the tests differs from its result outside them is code
   that behaves differently under test: rejected, naming the call. Unless main's own
   version does the same on that call (a script that reads configuration a test set
   in the environment): main's run is recorded too, for those calls only, and a call
   on which main is harness-dependent in the same way is left out.
4. Where main's results and the candidate's differ (in type, or in value on the
   recorded or nearby inputs) in a function that no newly passing test reached, the
   proposal changed behaviour no test asked for: rejected by default
   (`behaviour = "report"` in the policy only reports it). Nearby inputs are what makes
   special-casing the tests' inputs visible.

Calls that cannot be captured (arguments that do not pickle), that name files or
folders (what a test made in its temporary folder is gone by the replay), or whose
results a tree does not reproduce from one replay to the next (time, randomness, the
host), are left out and counted, never counted as agreement; a verdict with no behavioural evidence
says so. Proposals that change no function pay nothing.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import InvalidRun
from evolution.gate import testmap
from evolution.gate.checks import Candidate
from evolution.policy import Policy
from evolution.run.channel import Channel
from evolution.run.folder import RunFolder
from evolution.run.launch import confined, copy_probe_files, output_redactor, run_tests
from evolution.sandbox.isolation import Isolation

LIMIT = 50  # recorded calls per function


@dataclass
class Behaviour:
    """What the behavioural check saw, for the verdict and its report."""

    functions: list[str] = field(default_factory=list)
    calls: int = 0
    compared: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    under_test: list[str] = field(default_factory=list)  # differs inside vs outside
    unasked: list[str] = field(default_factory=list)  # behaviour changed, no goal reached it
    flagged: list[str] = field(default_factory=list)  # type changes a goal test allows
    note: str = ""

    def refusal(self, policy: Policy) -> str | None:
        if self.under_test:
            return "the changed code behaves differently under the tests: " + "; ".join(
                self.under_test[:3]
            )
        if self.unasked and policy.behaviour == "strict":
            return "the proposal changes behaviour that no test asked it to change: " + (
                "; ".join(self.unasked[:3])
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def changed_functions(old: str | None, new: str, *, methods: bool = False) -> list[str]:
    """Top-level functions of `new` whose code differs from `old`'s (or that are new);
    with `methods`, the methods of its top-level classes too, as `Class.method` (mutate
    compares a repaired method by replaying the calls into it, `self` included)."""

    def functions(source: str | None) -> dict[str, str]:
        if source is None:
            return {}
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return {}
        found = {}
        for node in tree.body:
            inner = node.body if methods and isinstance(node, ast.ClassDef) else []
            for function, prefix in [(node, ""), *((n, f"{node.name}.") for n in inner)]:
                if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    found[prefix + function.name] = ast.dump(function, include_attributes=False)
        return found

    before, after = functions(old), functions(new)
    return sorted(name for name, dump in after.items() if before.get(name) != dump)


def _targets(candidate: Candidate) -> list[tuple[str, str]]:
    repo, found = candidate.repo, []
    assert candidate.tree is not None
    for path in sorted(candidate.proposed_paths):
        name = path.rsplit("/", 1)[-1]
        if not path.endswith(".py") or name.startswith("test_") or name == "conftest.py":
            continue
        new = repo.read_file(candidate.tree, path)
        if new is None:
            continue
        old = repo.read_file(candidate.main, path)
        text = old.decode("utf-8", "replace") if old is not None else None
        found += [(path, q) for q in changed_functions(text, new.decode("utf-8", "replace"))]
    return found


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def brief(form: Any) -> str:
    """A canonical form as a person reads it: `int 5`, `str 'x'`, `object pkg.Kind`."""
    if isinstance(form, list) and len(form) >= 2 and isinstance(form[1], str):
        kind, value = form[0], form[1]
        return f"{kind} {value!r}"[:80] if kind == "str" else f"{kind} {value}"[:80]
    return json.dumps(form)[:80]


def _show(call: dict[str, Any]) -> str:
    return f"{call['file']}::{call['qualname']}() called by {call.get('test') or 'the suite'}"


def record_spec(tree: Path, targets: list[tuple[str, str]]) -> dict[str, Any]:
    """What the probe is told to record: the calls into `targets` (path in the tree,
    qualified name), under the tree's path as given and as resolved."""
    spec = []
    for path, qualname in targets:
        for root in {str(tree), os.path.realpath(tree)}:
            spec.append([os.path.join(root, path), qualname])
    return {"targets": spec, "limit": LIMIT}


def relative_calls(recorded: list[dict[str, Any]], tree: Path) -> list[dict[str, Any]]:
    """The recorded calls, each with its file made relative to the tree."""
    calls = []
    for call in recorded:
        path = str(call.get("file", ""))
        for root in (str(tree), os.path.realpath(tree)):
            if path.startswith(root + os.sep):
                calls.append({**call, "file": os.path.relpath(path, root)})
                break
    return calls


def _record(
    policy: Policy, run: RunFolder, isolation: Isolation,
    targets: list[tuple[str, str]], select: list[str] | None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The calls the selected tests make into `targets` on `run`'s tree, recorded by the
    probe; each with its file made relative to the tree."""
    result = run_tests(policy, run, isolation, select=select,
                       record=record_spec(run.tree, targets))  # fmt: skip
    return relative_calls(result.calls, run.tree)


def replay(
    policy: Policy, run: RunFolder, isolation: Isolation, calls: list[dict[str, Any]],
    call_timeout_s: float | None = None,
) -> list[list[Any]]:  # fmt: skip
    """Each call's results outside the harness on `run`'s tree: [recorded inputs, nearby
    inputs...], from frames the replay sends over an authenticated channel. Each call may
    take `call_timeout_s` (the replay's own default when None); InvalidRun when the
    replay as a whole does not finish within the policy's run limit."""
    copy_probe_files(run)
    job = run.probe / "replay.json"
    spec: dict[str, Any] = {"calls": calls, "perturb": True}
    if call_timeout_s is not None:
        spec["timeout"] = call_timeout_s
    job.write_text(json.dumps(spec), encoding="utf-8")
    command = policy.argv()
    python = command[0] if command[1:3] == ["-m", "pytest"] else sys.executable
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
        "HOME": str(run.tmp), "TMPDIR": str(run.tmp), "PYTHONDONTWRITEBYTECODE": "1",
    }  # fmt: skip
    channel = Channel()
    env["RATCHET_CHANNEL"] = channel.env_value
    argv = [python, "-I", str(run.probe / "_ratchet_replay.py"), str(job), str(run.tree)]
    try:
        outcome, _ = confined(
            argv, run, policy, isolation, env=env, output=run.path / "replay.log",
            timeout_s=policy.run_timeout_s, fds=channel.child_fds, on_start=channel.started,
        )  # fmt: skip
        frames = channel.finish()
    finally:
        channel.close()
    if frames.broken:
        raise InvalidRun(f"the replay's report was interfered with: {frames.broken}")
    replayed = {
        f.get("number"): f.get("results") for f in frames.items if f.get("kind") == "replayed"
    }
    if outcome.timed_out or not frames.items or frames.items[-1].get("kind") != "end":
        log = (run.path / "replay.log").read_text(encoding="utf-8", errors="replace")
        raise InvalidRun("the replay outside the harness did not finish",
                         hint=output_redactor()(log[-2000:]))  # fmt: skip
    if sorted(replayed) != list(range(len(calls))):
        raise InvalidRun("the replay outside the harness skipped or repeated calls")
    return [replayed[n] for n in range(len(calls))]


def _stable(first: list[list[Any]], second: list[list[Any]]) -> list[set[int]]:
    """Per call, the result indexes on which two replays of one tree agree."""
    return [
        {i for i, (a, b) in enumerate(zip(x, y, strict=False)) if _key(a) == _key(b)}
        for x, y in zip(first, second, strict=True)
    ]


def check(
    candidate: Candidate, merge_commit: str, isolation: Isolation, goals: list[str]
) -> Behaviour:
    """The behavioural evidence for an accepted automated proposal (see the module)."""
    policy, repo = candidate.policy, candidate.repo
    targets = _targets(candidate)
    behaviour = Behaviour(functions=[f"{p}::{q}" for p, q in targets])
    if not targets:
        behaviour.note = "no function changed: nothing to replay"
        return behaviour
    coverage_map = testmap.load(repo)
    select = None
    if coverage_map is not None:
        chosen = {t for path, _q in targets for t in coverage_map.covers.get(path, ())}
        select = sorted(chosen) or None
    excluded: Counter[str] = Counter()
    with RunFolder(repo, merge_commit) as run:
        recorded = _record(policy, run, isolation, targets, select)
        # Which functions a goal test reaches, from every call seen, replayed or not.
        reached = {(c["file"], c["qualname"]) for c in recorded if c.get("test") in goals}
        passed_over = [c for c in recorded if c.get("skipped")]
        excluded.update(f"{c['skipped']} (first call per test)" for c in passed_over)
        recorded = [c for c in recorded if not c.get("skipped")]
        calls = [c for c in recorded if c.get("args")]
        behaviour.calls = len(recorded)
        excluded["arguments not captured"] += len(recorded) - len(calls)
        ours = [replay(policy, run, isolation, calls) for _ in range(2)] if calls else []
    if calls:
        with RunFolder(repo, candidate.main) as base:
            theirs = [replay(policy, base, isolation, calls) for _ in range(2)]
            suspects = _compare(behaviour, calls, ours, theirs, reached, excluded)
            if suspects:
                behaviour.under_test = _confirm(
                    policy, base, isolation, targets, calls, suspects, ours[0], theirs[0],
                    excluded,
                )
                # Left out after all: not evidence either way.
                behaviour.compared -= excluded["harness-dependent on main too"]
    behaviour.excluded = {k: v for k, v in excluded.items() if v}
    if not behaviour.compared:
        behaviour.note = "no behavioural evidence: no call into the changed functions compared"
    # The results quoted come from the code under test: stored only redacted, like its
    # failure text (a refusal's reason is a note's subject).
    redact = output_redactor()
    for name in ("under_test", "unasked", "flagged"):
        setattr(behaviour, name, [redact(line) for line in getattr(behaviour, name)])
    return behaviour


def _compare(
    behaviour: Behaviour, calls: list[dict[str, Any]], ours: list[list[list[Any]]],
    theirs: list[list[list[Any]]], reached: set[tuple[str, str]], excluded: Counter[str],
) -> list[int]:  # fmt: skip
    """Fill in what the replays show; return the calls whose result under the tests
    differs from the candidate's own result outside them. `reached`: the functions a
    goal (newly passing) test calls, which may change."""
    ours_stable, theirs_stable = _stable(*ours), _stable(*theirs)
    suspects = []
    for index, call in enumerate(calls):
        mine, main = ours[0][index], theirs[0][index]
        if mine and mine[0][0] == "unreplayable":
            excluded[f"arguments {mine[0][1]}"] += 1
            continue
        if 0 not in ours_stable[index]:
            excluded["not reproducible on the candidate"] += 1
            continue
        behaviour.compared += 1
        if _key(mine[0]) != _key(call.get("result")):
            suspects.append(index)
        new = bool(main) and main[0][0] == "missing"
        if new or (call["file"], call["qualname"]) in reached:
            if not new and mine[0][:2] != main[0][:2] and mine[0][0] != "raised":
                behaviour.flagged.append(f"{_show(call)}: its result's type changed")
            continue
        for i in sorted(ours_stable[index] & theirs_stable[index]):
            if i < min(len(mine), len(main)) and _key(mine[i]) != _key(main[i]):
                where = "the tests' own inputs" if i == 0 else "inputs near the tests' own"
                behaviour.unasked.append(f"{_show(call)}: differs from main's on {where}")
                break
        else:
            if not theirs_stable[index]:
                excluded["not reproducible on main"] += 1
    return suspects


def _confirm(
    policy: Policy, base: RunFolder, isolation: Isolation, targets: list[tuple[str, str]],
    calls: list[dict[str, Any]], suspects: list[int], outside: list[list[Any]],
    main_outside: list[list[Any]], excluded: Counter[str],
) -> list[str]:  # fmt: skip
    """Of the calls whose result under the tests differs from their result outside,
    those on which main's own version is consistent: main's run is recorded for the
    same tests, and a call main also answers differently under the tests (a test set
    the environment a script reads) is environmental, left out."""
    tests = sorted({str(calls[i].get("test")) for i in suspects if calls[i].get("test")})
    main_inside = {
        (c["file"], c["qualname"], c.get("args")): c.get("result")
        for c in _record(policy, base, isolation, targets, tests or None)
    }
    found = []
    for index in suspects:
        call = calls[index]
        inside = main_inside.get((call["file"], call["qualname"], call.get("args")))
        if inside is not None and _key(inside) != _key(main_outside[index][0]):
            excluded["harness-dependent on main too"] += 1
            continue
        found.append(
            f"{_show(call)} returns {brief(call.get('result'))} under the tests and "
            f"{brief(outside[index][0])} outside them"
        )
    return found
