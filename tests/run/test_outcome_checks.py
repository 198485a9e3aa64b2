"""The report channel and the checks on what it carried, without a suite in between.

A real `Channel` (real pipes, the real reader thread) is written to as the probe would,
with the key read from the key pipe the way the probe reads it, and then as a forger
without the key would. The outcome checks run on the frames and on a real
pytest-json-report file written by a real pytest run of a tiny suite.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.errors import InvalidRun
from evolution.run.channel import Channel, Frames
from evolution.run.outcomes import INTERFERED, result_from_frames

PASS_CANARY, FAIL_CANARY = "::canary.py::test_holds_x", "::canary.py::test_breaks_x"


class Writer:
    """The probe's side of the protocol, holding the key read off the channel."""

    def __init__(self, channel: Channel) -> None:
        self.fd, key_fd = channel.child_fds
        self.fd = os.dup(self.fd)
        self.key = os.read(key_fd, 32)
        channel.started()
        self.mac = b""
        self.seq = 0

    def frame(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "kind": kind, **fields}).encode()
        mac = hmac.new(self.key, self.mac + body, "sha256").hexdigest()
        self.mac = bytes.fromhex(mac)
        os.write(self.fd, mac.encode() + b" " + body + b"\n")

    def raw(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        os.close(self.fd)


def _stream(write: Any) -> Frames:
    channel = Channel()
    writer = Writer(channel)
    try:
        write(writer)
    finally:
        writer.close()
    frames = channel.finish()
    channel.close()
    return frames


def test_frames_from_the_key_holder_arrive_in_order() -> None:
    frames = _stream(lambda w: [w.frame("hello"), w.frame("end", exitstatus=0)])
    assert frames.broken == "" and [f["kind"] for f in frames.items] == ["hello", "end"]


def test_a_frame_forged_without_the_key_breaks_the_channel() -> None:
    def forge(w: Writer) -> None:
        w.frame("hello")
        body = json.dumps({"seq": 2, "kind": "report", "outcome": "passed"}).encode()
        w.raw(hashlib.sha256(body).hexdigest().encode() + b" " + body + b"\n")

    frames = _stream(forge)
    assert "HMAC does not verify" in frames.broken
    assert [f["kind"] for f in frames.items] == ["hello"]


def test_a_replayed_frame_and_a_cut_frame_break_the_channel() -> None:
    def replay(w: Writer) -> None:
        w.frame("hello")
        w.seq -= 1  # the same sequence number again, correctly signed
        w.frame("hello")

    assert "skipped or repeated" in _stream(replay).broken
    assert "middle of a frame" in _stream(lambda w: (w.frame("hello"), w.raw(b"abc"))).broken


def test_frames_after_the_end_are_counted() -> None:
    frames = _stream(lambda w: [w.frame("hello"), w.frame("end"), w.frame("report")])
    assert frames.after_end == 1


# -- the checks on a run's frames --------------------------------------------------------


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real JSON report of a real run: one passing and one failing test plus the two
    canaries, written by pytest-json-report."""
    folder = tmp_path_factory.mktemp("suite")
    (folder / "test_a.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert 0\n")
    (folder / "canary.py").write_text(
        "def test_holds_x():\n    pass\n\ndef test_breaks_x():\n    assert 0\n"
    )
    report = folder / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_a.py",
         "canary.py", "--json-report", f"--json-report-file={report}"],
        cwd=folder, capture_output=True, check=False,
    )  # fmt: skip
    data = json.loads(report.read_text())
    for test in data["tests"]:  # give the canaries the ids the probe gives them
        test["nodeid"] = test["nodeid"].replace("canary.py::", "::canary.py::")
    report.write_text(json.dumps(data))
    return report


def _frames(report: Path, **change: Any) -> Frames:
    digest = hashlib.sha256(report.read_bytes()).hexdigest()
    tests = {"test_a.py::test_ok": "passed", "test_a.py::test_bad": "failed",
             PASS_CANARY: "passed", FAIL_CANARY: "failed"}  # fmt: skip
    tests.update(change.pop("outcomes", {}))
    items: list[dict[str, Any]] = [
        {"kind": "hello"},
        {"kind": "collected", "nodeids": list(tests),
         "canaries": {PASS_CANARY: "passed", FAIL_CANARY: "failed"}},
    ]  # fmt: skip
    for nodeid, outcome in tests.items():
        items += [
            {"kind": "report", "nodeid": nodeid, "when": "setup", "outcome": "passed"},
            {"kind": "report", "nodeid": nodeid, "when": "call", "outcome": outcome},
            {"kind": "report", "nodeid": nodeid, "when": "teardown", "outcome": "passed"},
        ]
    items += change.pop("extra", [])
    items += [{"kind": "modules", "outside": []},
              {"kind": "end", "exitstatus": 1, "report_sha256": digest}]  # fmt: skip
    return Frames(items=items, **change)


def _judge(report: Path, frames: Frames, returncode: int = 1) -> Any:
    return result_from_frames(
        frames, returncode=returncode, report=report, tree=report.parent,
        forbidden=[Path("/nonexistent-checkout")], duration_s=1.0,
    )  # fmt: skip


def test_agreeing_frames_and_report_give_the_result_without_canaries(real_report: Path) -> None:
    result = _judge(real_report, _frames(real_report))
    assert result.outcomes == {"test_a.py::test_ok": "passed", "test_a.py::test_bad": "failed"}


@pytest.mark.parametrize(
    ("frames_change", "returncode", "says"),
    [
        ({"broken": "a frame on the report channel was not written by the gate's probe"}, 1,
         INTERFERED),
        ({"after_end": 2}, 1, "after the end"),
        ({"extra": [{"kind": "tamper", "problems": ["_pytest.runner:call_and_report was "
                                                    "replaced"]}]}, 1, "was replaced"),
        ({"outcomes": {PASS_CANARY: "failed"}}, 1, "canary test that must pass ended failed"),
        ({"outcomes": {FAIL_CANARY: "passed"}}, 1, "canary test that must fail ended passed"),
        ({"outcomes": {"test_a.py::test_bad": "passed"}}, 1, "the JSON report says"),
        ({}, 0, "exited 0"),
    ],
    ids=["broken", "after-end", "tamper", "pass-canary", "fail-canary", "disagree", "exit"],
)
def test_each_reason_to_distrust_a_run_makes_it_invalid(
    real_report: Path, frames_change: dict[str, Any], returncode: int, says: str
) -> None:
    with pytest.raises(InvalidRun, match=says):
        _judge(real_report, _frames(real_report, **frames_change), returncode)


def test_a_missing_end_record_or_an_unreported_test_is_invalid(real_report: Path) -> None:
    frames = _frames(real_report)
    frames.items.pop()
    with pytest.raises(InvalidRun, match="never reached its end-of-session record"):
        _judge(real_report, frames)
    frames = _frames(real_report)
    frames.items = [f for f in frames.items if f.get("nodeid") != "test_a.py::test_ok"]
    with pytest.raises(InvalidRun, match="never ran"):
        _judge(real_report, frames)


def test_a_stop_excuses_only_the_tests_after_a_test_that_failed(real_report: Path) -> None:
    """A run asked to stop at a failure (the first stage's) may leave the tests after it
    unreported; the probe's `stopped` frame says where. Not one that names a test that
    did not fail, nor one with a test before the stop left unreported."""

    def stopped_at(nodeid: str, drop: str) -> Frames:
        frames = _frames(real_report, extra=[{"kind": "stopped", "nodeid": nodeid}])
        frames.items = [f for f in frames.items if f.get("nodeid") != drop]
        return frames

    with pytest.raises(InvalidRun, match="which did not fail"):
        _judge(real_report, stopped_at("test_a.py::test_ok", drop="test_a.py::test_bad"))
    with pytest.raises(InvalidRun, match="never ran"):
        _judge(real_report, stopped_at("test_a.py::test_bad", drop="test_a.py::test_ok"))


def test_a_report_changed_after_the_session_is_invalid(real_report: Path, tmp_path: Path) -> None:
    copy = tmp_path / "report.json"
    shutil.copy(real_report, copy)
    frames = _frames(copy)
    copy.write_text(copy.read_text().replace('"failed"', '"passed"'))
    with pytest.raises(InvalidRun, match="changed after the session ended"):
        _judge(copy, frames)


def test_a_module_from_the_checkout_is_a_leak(real_report: Path) -> None:
    frames = _frames(real_report)
    frames.items[-2] = {"kind": "modules", "outside": [["helper", "/nonexistent-checkout/h.py"]]}
    with pytest.raises(InvalidRun, match="imported code from the main checkout"):
        _judge(real_report, frames)
