"""Red team, round 2: cheating proposals against the defences built after round 1.

Same threat model and harness as `test_redteam.py` (one proposal branch that touches
only `scripts/`, hides a real regression, and must end with `evolve validate` exiting 1
or 3 with main, the other refs, the checkout and the verdict cache unchanged). Each
attack was written white-box, against the code of the new layers: the static guard
(`evolution/guard.py`), the probe (`evolution/probe/_ratchet_probe.py`), the channel and
the cross-check (`evolution/channel.py`, `evolution/outcomes.py`), the sandbox
(`evolution/sandbox/`), the ratchet's flakiness rule and the safety net. A test that
fails here is an attack that works; none is marked xfail.

Every in-process attack below is surgical: it reads the tree's own
`baseline/baseline.json` and passes only the tests the ratchet protects, so the canaries
and every other failure (the seeded `test_mul`) are reported as they really are.

The attacks
-----------
The probe's own objects (nothing it watches is replaced):
- emit-wrapped: `pkgutil.resolve_name("_ratchet_probe:_probe")` reaches the probe (the
  guard models `__import__`, `importlib` and `sys.modules`, not pkgutil); its `emit`, an
  instance attribute nobody watches, is wrapped: report frames of protected tests say
  "passed", and at the end record the JSON report is rewritten the same way and its
  new sha256 handed to the real writer. The HMAC chain is intact: the probe signs it.
- subtest-frame-dropped: the same wrapper only drops the failed unittest subtest's
  frame; pytest-json-report already says "passed" for that test (the quirk the
  cross-check tolerates), so the report is not even touched.
- tamper-swallowed: the probe and `TestReport` are reached through `pickle.loads` of a
  GLOBAL opcode; `emit` is wrapped to drop "tamper" frames, then round 1's patch of
  `TestReport.from_item_and_call` runs unseen (the JSON report, built from the same
  patched report, agrees).
- disguised-plugin: during collection (a conftest's time), a `types.ModuleType` whose
  `__file__` is `os.__file__` is registered with a makereport wrapper: the probe exempts
  plugin modules that live outside the tree ("installed, asked for by a conftest"),
  then snapshots the hook implementations with it included. `sys.modules` is reached as
  `operator.attrgetter("modules")(sys)`.
Each test first shows the regression is real: the proposal's code, run by a plain
interpreter outside any test run, gives the wrong value.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from conftest import BROKEN_ADD, IDENTITY, Sandbox
from test_redteam import (
    PARITY,
    RICH_FILES,
    assert_held,
    propose,
    snapshot,
    validate,
)

# -- shared payload pieces ---------------------------------------------------------------

# The node ids the ratchet protects, read from the tree under test (the suite's cwd).
PROTECTED = """

def _protected():
    import json, os
    try:
        with open(os.path.join(os.getcwd(), "baseline", "baseline.json"), encoding="utf-8") as f:
            tests = json.load(f)["tests"]
    except (OSError, ValueError, KeyError):
        return frozenset()
    return frozenset(nodeid for nodeid, outcome in tests.items() if outcome == "passed")
"""

BROKEN_IS_EVEN = PARITY.replace("return n % 2 == 0", "return n % 2 == 0 or n > 5")

# -- the probe's own objects ---------------------------------------------------------------

EMIT_WRAPPED = (
    BROKEN_ADD
    + PROTECTED
    + '''

import hashlib as _hashlib
import json as _json
from pkgutil import resolve_name as _resolve


def _mend(path, names):
    """The JSON report with `names` passed; returns its new sha256."""
    with open(path, encoding="utf-8") as handle:
        report = _json.load(handle)
    counts = {}
    for test in report.get("tests", []):
        if test.get("nodeid") in names:
            test["outcome"] = "passed"
            for stage in ("setup", "call", "teardown"):
                if isinstance(test.get(stage), dict):
                    took = test[stage].get("duration", 0.0)
                    test[stage] = {"duration": took, "outcome": "passed"}
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    summary = {k: v for k, v in report["summary"].items() if k in ("total", "collected")}
    report["summary"] = dict(counts, **summary)
    data = _json.dumps(report).encode()
    with open(path, "wb") as handle:
        handle.write(data)
    return _hashlib.sha256(data).hexdigest()


def _wrap():
    try:
        probe = _resolve("_ratchet_probe:_probe")
    except (ImportError, AttributeError, ValueError):
        return
    send, keep, mended = probe.emit, _protected(), set()

    def emit(kind, **fields):
        if kind == "report" and fields.get("nodeid") in keep and fields.get("outcome") == "failed":
            mended.add(fields["nodeid"])
            fields = dict(fields, outcome="passed")
            fields.pop("crash", None)
            fields.pop("text", None)
        elif kind == "end" and mended:
            path = str(probe.config.option.json_report_file)
            fields = dict(fields, report_sha256=_mend(path, mended))
        return send(kind, **fields)

    probe.emit = emit


_wrap()
'''
)

SUBTEST_FRAME_DROPPED = (
    BROKEN_IS_EVEN
    + PROTECTED
    + """

from pkgutil import resolve_name as _resolve


def _wrap():
    try:
        probe = _resolve("_ratchet_probe:_probe")
    except (ImportError, AttributeError, ValueError):
        return
    send, keep = probe.emit, _protected()

    def emit(kind, **fields):
        if kind == "report" and "subtest" in fields and fields.get("outcome") == "failed" and (
            fields.get("nodeid") in keep
        ):
            return None
        return send(kind, **fields)

    probe.emit = emit


_wrap()
"""
)

TAMPER_SWALLOWED = (
    BROKEN_ADD
    + PROTECTED
    + '''

import pickle as _pickle


def _find(module, name):
    """A name by its dotted path, the way pickle finds classes."""
    return _pickle.loads(("c%s\\n%s\\n." % (module, name)).encode())


def _settle():
    try:
        probe = _find("_ratchet_probe", "_probe")
        report_class = _find("_pytest.reports", "TestReport")
    except Exception:
        return
    send, keep, made = probe.emit, _protected(), report_class.from_item_and_call

    def emit(kind, **fields):
        if kind != "tamper":
            send(kind, **fields)

    def from_item_and_call(cls, item, call):
        report = made(item, call)
        if item.nodeid in keep and report.failed:
            report.outcome = "passed"
            report.longrepr = None
        return report

    probe.emit = emit
    report_class.from_item_and_call = classmethod(from_item_and_call)


_settle()
'''
)

DISGUISED_PLUGIN = (
    BROKEN_ADD
    + PROTECTED
    + """

import operator as _operator
import os as _os
import sys as _sys
import types as _types


def _enlist():
    loaded = _operator.attrgetter("modules")(_sys)
    probe = getattr(loaded.get("_ratchet_probe"), "_probe", None)
    runner = loaded.get("pytest")
    if probe is None or runner is None:
        return
    keep = _protected()

    def pytest_runtest_makereport(item, call):
        report = yield
        if item.nodeid in keep and report.failed:
            report.outcome = "passed"
            report.longrepr = None
        return report

    plugin = _types.ModuleType("calc_speedups")
    plugin.__file__ = _os.__file__  # "installed": outside the tested tree
    plugin.pytest_runtest_makereport = runner.hookimpl(wrapper=True, tryfirst=True)(
        pytest_runtest_makereport
    )
    probe.config.pluginmanager.register(plugin, "calc_speedups")


_enlist()
"""
)

# -- ground truth -----------------------------------------------------------------------------


def behaviour(box: Sandbox, ref: str, module: str, expression: str) -> str:
    """`repr(expression)` evaluated on `ref`'s tree by a plain interpreter, outside any
    test run or gate (no PYTEST_*, RATCHET_* or TMUX variables, a fresh TMPDIR)."""
    with tempfile.TemporaryDirectory(prefix="rt2-truth-") as folder:
        archive = subprocess.run(
            ["git", "archive", ref], cwd=box.path, capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTEST_", "RATCHET_", "TMUX", "SSH_"))}  # fmt: skip
        env.update(TMPDIR=folder, PYTHONPATH=folder, PYTHONDONTWRITEBYTECODE="1")
        code = f"from {module} import *\nprint(repr({expression}))"
        done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def cheat(
    box: Sandbox,
    name: str,
    files: dict[str, str],
    truth: tuple[str, str, str],
    *args: str,
    env: dict[str, str] | None = None,
) -> None:
    """Propose `files`, show that the code is really broken (`truth`: module, expression
    and the value the correct code gives), then validate and check the safe outcome."""
    propose(box, name, files)
    module, expression, correct = truth
    got = behaviour(box, name, module, expression)
    assert got != correct, f"not a regression: {expression} is {got} on {name}"
    before = snapshot(box)
    verdict = validate(box, name, *(args or ("--reruns", "0")), env=env)
    assert_held(box, before, verdict)


ADD_TRUTH = ("scripts.calc", "int(add(2, 3))", "5")

# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rich_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same person's repository as round 1's, with its recorded baseline."""
    path = tmp_path_factory.mktemp("rich2") / "repo"
    path.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in IDENTITY.items():
            patch.setenv(key, value)
        box = Sandbox(path)
        box.git("init", "-q", "-b", "main")
        box.commit("a person's realistic suite", RICH_FILES)
        done = box.evolve("baseline", "record", "--reruns", "0")
        assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def rich(rich_template: Path, tmp_path: Path) -> Sandbox:
    target = tmp_path / "repo"
    shutil.copytree(rich_template, target, symlinks=True)
    return Sandbox(target)


# -- the probe's own objects -----------------------------------------------------------------


def test_probe_emit_wrapped_and_report_rehashed(rich: Sandbox) -> None:
    cheat(rich, "rt2/emit-wrapped", {"scripts/calc.py": EMIT_WRAPPED}, ADD_TRUTH)


def test_failed_subtest_frame_dropped_json_quirk_agrees(rich: Sandbox) -> None:
    truth = ("scripts.parity", "is_even(7)", "False")
    cheat(rich, "rt2/subtest-dropped", {"scripts/parity.py": SUBTEST_FRAME_DROPPED}, truth)


def test_tamper_frames_swallowed_then_report_class_patched(rich: Sandbox) -> None:
    cheat(rich, "rt2/tamper-swallowed", {"scripts/calc.py": TAMPER_SWALLOWED}, ADD_TRUTH)


def test_plugin_disguised_as_installed_module_during_collection(rich: Sandbox) -> None:
    cheat(rich, "rt2/disguised-plugin", {"scripts/calc.py": DISGUISED_PLUGIN}, ADD_TRUTH)
