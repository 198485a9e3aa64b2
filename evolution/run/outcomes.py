"""From the probe's frames to a run result the gate can trust, or to the reason it cannot.

The frames are the source of the verdict; pytest-json-report's file is the cross-check.
A run is invalid (exit 3, never a verdict) when:
- the channel broke (a frame not written by the probe), or frames came after the end;
- the probe reported tampering with pytest's machinery, or a canary has the wrong
  outcome ("the code under test interfered with the test machinery");
- the end-of-session record is missing, or disagrees with pytest's exit status;
- a collected test has no reports (but those after the test a run asked to stop at,
  `stopped`, which failed), a report names a test that was not collected, or a stage is
  reported twice;
- the JSON report is missing, changed after the session ended, or disagrees with the
  frames on which tests ran or how each one's stages ended;
- a module was imported from the user's checkout instead of the tested tree;
- one process of a split run did not say which part of the suite it ran, or ran a test
  from a file another process owns.

Each test's outcome is computed from its stages (pytest_report.stage_outcome); a test
any of whose subtests failed is failing, and one with a skipped (or xfailed) subtest is
skipped, with the subtest named by its message and parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import InvalidRun
from evolution.run.channel import Frames
from evolution.run.report import (
    EXIT_REASONS,
    SUBTEST_PREFIX,
    VALID_EXIT_CODES,
    RunResult,
    failure_text,
    first_line,
    parse_report,
    stage_outcome,
)

INTERFERED = "the code under test interfered with the test machinery"
STAGES = ("setup", "call", "teardown")


@dataclass
class _Test:
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    subtests: list[dict[str, Any]] = field(default_factory=list)


def _failure_text(frame: dict[str, Any], tree: str) -> str:
    return failure_text(frame.get("crash") or {}, str(frame.get("text", "")), tree)


def _subtests_text(frames: list[dict[str, Any]], how: str, tree: Path) -> str:
    """Each subtest named, with its error, on one line; then the first one's details."""
    heads = []
    for frame in frames[:5]:
        crash = frame.get("crash") or {}
        message = first_line(str(crash.get("message", ""))) or first_line(frame.get("text", ""))
        heads.append(f"{SUBTEST_PREFIX}{frame['subtest']} {how}: {message}".rstrip(": "))
    more = f" (and {len(frames) - 5} more)" if len(frames) > 5 else ""
    return "; ".join(heads) + more + "\n\n" + _failure_text(frames[0], str(tree))


def _by_kind(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame.get("kind") == kind]


def _one(frames: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = _by_kind(frames, kind)
    return found[-1] if found else None


def _check_stream(frames: Frames, returncode: int | None) -> list[dict[str, Any]]:
    items = frames.items
    if frames.broken:
        raise InvalidRun(f"{INTERFERED}: {frames.broken}")
    if not items or items[0].get("kind") != "hello":
        if returncode in EXIT_REASONS:
            raise InvalidRun(f"{EXIT_REASONS[returncode]}; the gate's probe reported nothing")
        raise InvalidRun(
            "the gate's probe did not run: is the test command a pytest run?"
        )
    tampering = [p for frame in _by_kind(items, "tamper") for p in frame.get("problems", [])]
    if tampering:
        raise InvalidRun(f"{INTERFERED}: " + "; ".join(tampering[:5]))
    end = _one(items, "end")
    if end is None or items[-1] is not end:
        reason = EXIT_REASONS.get(returncode) if returncode is not None else None
        raise InvalidRun(
            (f"{reason}; " if reason else "")
            + f"the session never reached its end-of-session record (exit code {returncode}): "
            "pytest was killed, the process exited early (os._exit, a crash), or its "
            "reporting was interfered with"
        )
    if frames.after_end:
        raise InvalidRun(f"{INTERFERED}: {frames.after_end} frame(s) arrived after the end")
    status = end.get("exitstatus")
    if returncode is not None and status != returncode:
        raise InvalidRun(
            f"{INTERFERED}: pytest's session ended with status {status} but the process "
            f"exited {returncode}"
        )
    if status not in VALID_EXIT_CODES:
        raise InvalidRun(EXIT_REASONS.get(status, f"pytest exited with code {status}"))
    return items


def _stopped_before(
    stopped: str, unreported: list[str], tests: dict[str, _Test], collected: list[str]
) -> bool:
    """Whether the tests that never ran are those after the one the probe stopped at
    (its `stopped` frame, sent when that test failed: `run_tests(stop_on=...)`)."""
    test = tests.get(stopped)
    if test is None or not any(f.get("outcome") == "failed" for f in test.stages.values()):
        raise InvalidRun(f"{INTERFERED}: the probe stopped at {stopped!r}, which did not fail")
    position = {nodeid: index for index, nodeid in enumerate(collected)}
    return all(position[nodeid] > position[stopped] for nodeid in unreported)


def _group(
    items: list[dict[str, Any]], collected: list[str], stopped: str = ""
) -> dict[str, _Test]:
    """Each collected test with its frames; in a stopped run only the tests that ran."""
    if len(set(collected)) != len(collected):
        dupes = sorted({n for n in collected if collected.count(n) > 1})[:3]
        raise InvalidRun(f"duplicate test ids were collected ({', '.join(dupes)}): the gate "
                         "cannot tell their outcomes apart")
    tests: dict[str, _Test] = {nodeid: _Test() for nodeid in collected}
    for frame in _by_kind(items, "report"):
        nodeid = frame.get("nodeid", "")
        if nodeid not in tests:
            raise InvalidRun(f"{INTERFERED}: a report for {nodeid!r}, which was not collected")
        test = tests[nodeid]
        if "subtest" in frame:
            test.subtests.append(frame)
            continue
        when = frame.get("when", "")
        if when in test.stages:
            raise InvalidRun(f"{INTERFERED}: the {when} stage of {nodeid} was reported twice")
        test.stages[when] = frame
    unreported = [nodeid for nodeid, test in tests.items() if "setup" not in test.stages]
    if unreported and stopped and _stopped_before(stopped, unreported, tests, collected):
        return {nodeid: test for nodeid, test in tests.items() if "setup" in test.stages}
    if unreported:
        raise InvalidRun(
            f"{len(unreported)} collected test(s) never ran (first: {unreported[0]}): the "
            "run stopped early or its reporting was interfered with"
        )
    return tests


def _as_json_entry(test: _Test) -> dict[str, Any]:
    """The test in pytest-json-report's shape, so one function computes outcomes."""
    entry: dict[str, Any] = {
        when: {"outcome": frame.get("outcome")} for when, frame in test.stages.items()
    }
    call = test.stages.get("call") or {}
    if "wasxfail" in call:
        entry["outcome"] = "xfailed" if call.get("outcome") == "skipped" else "xpassed"
    elif "wasxfail" in (test.stages.get("setup") or {}):
        entry["outcome"] = "xfailed"
    return entry


def _leaks(items: list[dict[str, Any]], forbidden: Iterable[Path], tree: Path) -> None:
    roots = [str(p.resolve()) for p in forbidden]
    leaks = []
    for frame in _by_kind(items, "modules"):
        for name, path in frame.get("outside", []):
            if any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots):
                leaks.append((name, path))
    if leaks:
        shown = ", ".join(f"{name} from {path}" for name, path in sorted(set(leaks))[:5])
        raise InvalidRun(
            "the test run imported code from the main checkout instead of the candidate "
            f"({shown}); check for an editable install or PYTHONPATH that shadows it"
        )


def result_from_frames(
    frames: Frames,
    *,
    returncode: int | None,
    report: Path,
    tree: Path,
    forbidden: Iterable[Path],
    duration_s: float,
    shard: tuple[int, int] | None = None,
) -> RunResult:
    """The run's result, computed from the frames and cross-checked; or InvalidRun.
    `shard` is (index, count) when this run is one process of a split run."""
    items = _check_stream(frames, returncode)
    errors = {f.get("nodeid", ""): str(f.get("text", "")) for f in _by_kind(items, "collect_error")}
    for nodeid, text in errors.items():
        if nodeid in ("", "."):
            raise InvalidRun(f"test collection failed: {first_line(text)}")
    listing = _one(items, "collected") or {}
    collected = [str(n) for n in listing.get("nodeids", [])]
    canaries: dict[str, str] = dict(listing.get("canaries", {}))
    stopped = str((_one(items, "stopped") or {}).get("nodeid", ""))
    tests = _group(items, collected, stopped)
    outcomes: dict[str, str] = {}
    staged: dict[str, str] = {}  # from the stages alone, as pytest-json-report may see it
    failures: dict[str, str] = {}
    for nodeid, test in tests.items():
        outcome = staged[nodeid] = stage_outcome(_as_json_entry(test))
        text = ""
        if outcome not in ("passed", "xpassed"):
            for when in STAGES:
                frame = test.stages.get(when)
                if frame and frame.get("outcome") in ("failed", "skipped"):
                    text = _failure_text(frame, str(tree))
                    break
        failed_subtests = [s for s in test.subtests if s.get("outcome") == "failed"]
        skipped_subtests = [s for s in test.subtests if s.get("outcome") == "skipped"]
        if failed_subtests and outcome in ("passed", "xpassed", "skipped"):
            outcome = "failed"
            text = _subtests_text(failed_subtests, "failed", tree)
        elif skipped_subtests and outcome in ("passed", "xpassed"):
            # A skipped (or xfailed) subtest hides an assertion the test used to make.
            outcome = "skipped"
            text = _subtests_text(skipped_subtests, "skipped", tree)
        outcomes[nodeid] = outcome
        if text:
            failures[nodeid] = text
    _check_canaries(canaries, outcomes, ran=set(tests) if stopped else None)
    _leaks(items, forbidden, tree)
    _cross_check(report, items, returncode, staged, outcomes)
    end = _one(items, "end") or {}
    for nodeid in canaries:
        outcomes.pop(nodeid, None)
        failures.pop(nodeid, None)
    return RunResult(
        outcomes=outcomes,
        failures=failures,
        collector_errors={n: t for n, t in errors.items() if n not in ("", ".")},
        exitcode=int(end.get("exitstatus") or 0),
        duration_s=duration_s,
        durations={
            nodeid: sum(float(f.get("duration") or 0.0) for f in test.stages.values())
            for nodeid, test in tests.items()
            if nodeid not in canaries
        },
        owners=_owners(items, shard, set(outcomes)) if shard is not None else None,
        covers=_covers(items, set(outcomes)),
        calls=_by_kind(items, "call"),
        stopped=stopped,
    )


def _covers(items: list[dict[str, Any]], ran: set[str]) -> dict[str, set[str]] | None:
    """With the map asked for: each tree file, with the tests (of those that ran) whose
    code ran in it; None when the probe sent no map."""
    frames = _by_kind(items, "covers")
    if not frames:
        return None
    covers: dict[str, set[str]] = {}
    for frame in frames:
        nodeid = str(frame.get("nodeid", ""))
        if nodeid in ran:
            for path in frame.get("files") or ():
                covers.setdefault(str(path), set()).add(nodeid)
    return covers


def _owners(items: list[dict[str, Any]], shard: tuple[int, int], ran: set[str]) -> dict[str, int]:
    """Every test file this process saw, with the process that owns it; the tests it
    ran must all be in files it owns."""
    frame = _one(items, "shard")
    if frame is None or (frame.get("index"), frame.get("count")) != shard:
        raise InvalidRun(f"{INTERFERED}: worker {shard[0] + 1} of {shard[1]} did not report "
                         "which part of the suite it ran")  # fmt: skip
    owners = {str(path): int(owner) for path, owner in dict(frame.get("files", {})).items()}
    stray = sorted(n for n in ran if owners.get(n.split("::", 1)[0]) != shard[0])
    if stray:
        raise InvalidRun(f"{INTERFERED}: worker {shard[0] + 1} ran {stray[0]}, from a file "
                         "it does not own")  # fmt: skip
    return owners


def _check_canaries(
    canaries: dict[str, str], outcomes: dict[str, str], ran: set[str] | None = None
) -> None:
    """Both canaries collected, and each ended as it must; in a stopped run, each of
    those that ran before the stop."""
    if len(canaries) != 2 or sorted(canaries.values()) != ["failed", "passed"]:
        raise InvalidRun(f"{INTERFERED}: the gate's canary tests were not collected")
    for nodeid, expected in canaries.items():
        if ran is not None and nodeid not in ran:
            continue
        got = outcomes.get(nodeid, "missing")
        if got != expected:
            which = "must pass" if expected == "passed" else "must fail"
            raise InvalidRun(f"{INTERFERED}: the canary test that {which} ended {got}")


def _cross_check(
    report: Path,
    items: list[dict[str, Any]],
    returncode: int | None,
    staged: dict[str, str],
    outcomes: dict[str, str],
) -> None:
    """The JSON report must agree with the frames. For a test with subtests it may show
    the outcome before or after the subtests are counted: pytest marks a test with a
    failed subtest as failed for its own `subtests` fixture, not for unittest's."""
    end = _one(items, "end") or {}
    if not report.exists():
        raise InvalidRun("pytest-json-report wrote no report, though the session ended")
    digest = hashlib.sha256(report.read_bytes()).hexdigest()
    if digest != end.get("report_sha256"):
        raise InvalidRun(f"{INTERFERED}: the JSON report was changed after the session ended")
    try:
        written = parse_report(report, returncode)
    except InvalidRun as exc:
        raise InvalidRun(f"the JSON report cannot be read: {exc.message}") from None
    if set(written.outcomes) != set(staged):
        extra = sorted(set(written.outcomes) - set(staged))[:3]
        lost = sorted(set(staged) - set(written.outcomes))[:3]
        raise InvalidRun(
            f"{INTERFERED}: the JSON report and the probe disagree on which tests ran "
            f"(only in the report: {extra or 'none'}; only from the probe: {lost or 'none'})"
        )
    differ = sorted(n for n in staged if written.outcomes[n] not in (staged[n], outcomes[n]))
    if differ:
        n = differ[0]
        raise InvalidRun(
            f"{INTERFERED}: the JSON report says {n} {written.outcomes[n]}, the probe "
            f"saw {outcomes[n]}" + (f" (and {len(differ) - 1} more)" if len(differ) > 1 else "")
        )

