"""mutate's fork server, on real sandboxed runs: the same outcomes (and the same search)
as one pytest process per candidate, and nothing one candidate does reaches the next.

Every candidate here is a version of `scripts/calc.py` (the file mutate edits); the
adversarial ones carry module-level code that runs when the tests import it. The tree's
`tests/test_isolation.py` checks, from inside a candidate, for each thing a candidate
could leave behind, and tries to reach the server. Each attack is shown twice: in the
attacking candidate the matching check fails (the check sees the attack), or the run is
unusable, or the attack was refused on the spot; in the next candidate every check
passes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from host_layers import requires_layers
from repo_setup import CALC, FIXED_CALC, IDENTITY, make_sandbox

from agent.errors import InvalidRun
from evolution.gitrepo import GitRepo
from evolution.mutate.evaluator import CandidateEvaluator
from evolution.mutate.localise import localise
from evolution.mutate.search import SearchLimits, search
from evolution.policy import Policy
from evolution.probe._ratchet_forkserver import foreign_modules
from evolution.run.folder import PGID_FILE, RunFolder
from evolution.run.forkserver import CandidateRuns, unsupported
from evolution.run.launch import run_tests
from evolution.run.report import RunResult
from evolution.sandbox.enter import DROPPED_CAPS, landlock_abi
from evolution.sandbox.isolation import Isolation, choose

# One xdist worker runs this whole module: its checks look for leftover processes across
# the host by MARKER, and an attack running at the same time in another worker would be
# counted as this test's leftover.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock"),
    pytest.mark.xdist_group("forkserver"),
]

MARKER = "ratchet_leak_marker"
TARGET = "scripts/calc.py"
# What a new server, or pytest in the next candidate, would run if it found them.
PLANTED = ("conftest.py", "sitecustomize.py", "usercustomize.py", "pytest.ini", f"{MARKER}.pth")
SCOPED = landlock_abi() >= 6  # signals scoped to each candidate's own Landlock domain


def _server_may(*capabilities: int) -> bool:
    """Whether the fork server holds these capabilities: root in the sandbox keeps this
    process's bounding set minus what the launcher drops; a user-namespace sandbox none."""
    bounding = next(line for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("CapBnd:"))  # fmt: skip
    held = int(bounding.split()[1], 16) if os.geteuid() == 0 else 0
    return all(held >> cap & 1 and cap not in DROPPED_CAPS for cap in capabilities)


UNDOES_NICE_AND_LIMITS = _server_may(23, 24)  # CAP_SYS_NICE, CAP_SYS_RESOURCE
CPUS = len(os.sched_getaffinity(0))  # what the server inherits from this process
IOPRIO_GET, IOPRIO_SET = {"x86_64": (252, 251), "aarch64": (31, 30)}.get(os.uname().machine,
                                                                         (0, 0))  # fmt: skip

SUITE = '''\
import time
import unittest

import pytest

from scripts.calc import add, mul, sub


def test_add():
    assert add(2, 3) == 5


def test_mul():
    assert mul(3, 4) == 12


@pytest.fixture
def broken():
    raise RuntimeError("the fixture broke")


def test_fixture_error(broken):
    pass


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert sub(1, 1) == 1


def test_mul_by_zero():
    assert mul(0, 7) == 0


class TestTable(unittest.TestCase):
    def test_table(self):
        for a, b in ((1, 2), (3, 4)):
            with self.subTest(a=a, b=b):
                self.assertEqual(add(a, b), a + b)


def test_table_subtests(subtests):
    for a, b in ((2, 2), (5, 1)):
        with subtests.test(a=a, b=b):
            assert sub(a, b) == a - b
'''

CHECKS = f'''\
"""What the last candidate may have left, and what a candidate can reach: each test
fails if it sees it."""
import ctypes
import errno
import json
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

import scripts.calc  # noqa: F401 - a candidate's module-level code runs here

MARKER = "{MARKER}"
PLANTED = {PLANTED!r}
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long


def out_folder():
    report = next(a for a in sys.argv if a.startswith("--json-report-file="))
    return Path(report.split("=", 1)[1]).parent


def test_no_file_left():
    tmp = Path(os.environ["TMPDIR"])
    for folder in (tmp, out_folder(), Path("/dev/shm")):
        assert not (folder / MARKER).exists(), folder
    for name in PLANTED:
        assert not (tmp / name).exists() and not (tmp / "ratchet-warm-up" / name).exists()


def test_no_state_left():
    import _pytest.runner
    import hypothesis
    import pytest_jsonreport.plugin

    assert not hasattr(json, MARKER) and not hasattr(pytest, MARKER)
    assert not hasattr(json.dumps, MARKER) and json.dumps.__module__ == "json"
    assert not hasattr(_pytest.runner.call_and_report, MARKER)
    assert not hasattr(pytest_jsonreport.plugin.JSONReport, MARKER)
    assert MARKER not in os.environ and MARKER not in sys.modules
    assert not any(MARKER in entry for entry in sys.path)
    assert hypothesis.settings.get_current_profile_name() != MARKER


def test_no_process_left():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert MARKER.encode() not in cmdline, entry.name


def test_no_ipc_object_left():
    for kind in ("shm", "sem", "msg"):
        rows = Path(f"/proc/sysvipc/{{kind}}").read_text().splitlines()[1:]
        assert rows == [], kind
    assert LIBC.mq_open(f"/{{MARKER}}".encode(), os.O_RDONLY) == -1


def test_no_scheduling_left():
    """The nice value, CPU affinity, scheduling policy, I/O priority and file limit this
    candidate inherited from the server are not the ones the attack sets."""
    import resource

    assert os.getpriority(os.PRIO_PROCESS, 0) != 13
    assert len(os.sched_getaffinity(0)) == {CPUS}
    assert os.sched_getscheduler(0) != os.SCHED_IDLE
    if {IOPRIO_GET}:
        assert LIBC.syscall({IOPRIO_GET}, 1, 0) != 3 << 13 | 7
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] != 64


def test_no_socket_among_the_descriptors():
    for name in os.listdir("/proc/self/fd"):
        try:
            mode = os.fstat(int(name)).st_mode
        except OSError:
            continue
        assert not stat.S_ISSOCK(mode), f"descriptor {{name}} is a socket"


def test_the_server_is_out_of_reach():
    """Neither the server nor the sandbox's PID 1 (the ancestors a sweep spares): no
    ptrace, no read or write of their memory, no copy of their descriptors, and no
    signal (from Landlock ABI 6)."""
    for ancestor in {{os.getppid(), 1}}:
        for request in (16, 0x4206):  # PTRACE_ATTACH, PTRACE_SEIZE
            assert LIBC.ptrace(request, ancestor, None, None) == -1
            assert ctypes.get_errno() == errno.EPERM
        for name in ("mem", "fd/0", "fd/1", "fd/3"):
            with pytest.raises(OSError):
                Path(f"/proc/{{ancestor}}/{{name}}").read_bytes()
        buffer = ctypes.create_string_buffer(8)
        local = (ctypes.c_void_p * 2)(ctypes.cast(buffer, ctypes.c_void_p), 8)
        remote = (ctypes.c_void_p * 2)(0x10000, 8)
        assert LIBC.process_vm_readv(ancestor, local, 1, remote, 1, 0) == -1
        assert ctypes.get_errno() == errno.EPERM
        pidfd = os.pidfd_open(ancestor)
        try:
            for fd in range(8):  # pidfd_getfd: a copy of one of its descriptors
                assert LIBC.syscall(438, pidfd, fd, 0) == -1
                assert ctypes.get_errno() == errno.EPERM
        finally:
            os.close(pidfd)
        if {SCOPED}:
            with pytest.raises(PermissionError):
                os.kill(ancestor, 0)


def test_the_server_reads_nothing_a_candidate_can_write():
    warm_up = Path(sys.modules["_ratchet_probe"].__file__).parent / "ratchet-warm-up"
    assert (warm_up / "pytest.ini").is_file()
    with pytest.raises(OSError):
        (warm_up / "conftest.py").write_text("")
'''

CHECK_TESTS = [
    f"tests/test_isolation.py::{name}"
    for name in ("test_no_file_left", "test_no_state_left", "test_no_process_left",
                 "test_no_ipc_object_left", "test_no_scheduling_left",
                 "test_no_socket_among_the_descriptors",
                 "test_the_server_is_out_of_reach",
                 "test_the_server_reads_nothing_a_candidate_can_write")
]  # fmt: skip
# The checks above hold where the launcher gives the server a PID namespace and private
# scratch folders: without them, what a candidate leaves in the shared /dev/shm, or a
# daemon it starts, is out of the server's reach.
CLEAN_SLATE = requires_layers("pid_namespace", "scratch_private")
SUITE_TESTS = [
    f"tests/test_calc.py::{name}"
    for name in ("test_add", "test_mul", "test_fixture_error", "test_skipped",
                 "test_expected_failure", "test_mul_by_zero", "TestTable::test_table",
                 "test_table_subtests")
]  # fmt: skip

# Module-level code of a candidate: each runs in the candidate's pytest process, at
# collection, when the checks import the candidate's module.
LEAVE_FILES = f"""
import os as _os, sys as _sys
from pathlib import Path as _Path
_report = next(a for a in _sys.argv if a.startswith("--json-report-file="))
_tmp = _Path(_os.environ["TMPDIR"])
for _folder in (_tmp, _Path(_report.split("=", 1)[1]).parent, "/dev/shm"):
    _Path(_folder, "{MARKER}").write_text("left by the last candidate")
# What a new server would run at start if it read the tmp folder.
(_tmp / "ratchet-warm-up").mkdir(exist_ok=True)
for _folder in (_tmp, _tmp / "ratchet-warm-up"):
    for _name in {PLANTED!r}:
        (_folder / _name).write_text("import sys; sys.modules['{MARKER}'] = sys\\n")
"""
LEAVE_STATE = f"""
import json as _json, os as _os, sys as _sys, types as _types
import _pytest.runner as _runner, hypothesis as _hypothesis, pytest as _pytest
import pytest_jsonreport.plugin as _jsonreport
_json.{MARKER} = _pytest.{MARKER} = True
_dumps = _json.dumps
def _lying_dumps(*args, **kwargs):
    return _dumps(*args, **kwargs)
_lying_dumps.{MARKER} = True
_json.dumps = _lying_dumps
_jsonreport.JSONReport.{MARKER} = True
_os.environ["{MARKER}"] = "1"
_sys.modules["{MARKER}"] = _types.ModuleType("{MARKER}")
_sys.path.append("/{MARKER}")
_hypothesis.settings.register_profile("{MARKER}", max_examples=1)
_hypothesis.settings.load_profile("{MARKER}")
"""
PATCH_MACHINERY = f"""
import _pytest.runner as _runner
_original = _runner.call_and_report
def _call_and_report(*args, **kwargs):
    return _original(*args, **kwargs)
_call_and_report.{MARKER} = True
_runner.call_and_report = _call_and_report
"""
# A daemon outside the candidate's group that waits for the candidate's run to end, then
# loops: it writes into tmp/, out/ (a fake report too) and /dev/shm, and into every pipe
# of every process that appears after that (the next candidate's report channel).
DAEMON = f"""
import os, sys, time
from pathlib import Path
candidate = os.getppid()
if os.fork():
    os._exit(0)
os.setsid()
report, tmp = Path(sys.argv[1]), Path(sys.argv[2])
while Path(f"/proc/{{candidate}}").exists():  # the candidate's own run goes undisturbed
    time.sleep(0.01)
before = set(os.listdir("/proc"))
forged = b"0" * 64 + b' {{"seq": 1, "kind": "end", "exitstatus": 0}}\\n'
while True:
    for target in (tmp / "{MARKER}", report.parent / "{MARKER}", Path("/dev/shm/{MARKER}")):
        try:
            target.write_text("left by a daemon")
        except OSError:
            pass
    try:
        report.write_text('{{"tests": []}}')
    except OSError:
        pass
    for pid in set(os.listdir("/proc")) - before:
        try:
            descriptors = os.listdir(f"/proc/{{pid}}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                handle = os.open(f"/proc/{{pid}}/fd/{{fd}}", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                os.write(handle, forged)
            except OSError:
                pass
            finally:
                os.close(handle)
    time.sleep(0.01)
"""
LEAVE_PROCESS = f"""
import os as _os, subprocess as _subprocess, sys as _sys
_report = next(a for a in _sys.argv if a.startswith("--json-report-file=")).split("=", 1)[1]
_subprocess.Popen([_sys.executable, "-c", {DAEMON!r}, _report, _os.environ["TMPDIR"],
                   "{MARKER}"], stdin=_subprocess.DEVNULL, stdout=_subprocess.DEVNULL,
                  stderr=_subprocess.DEVNULL)
"""
LEAVE_THREAD = f"""
import os as _os, threading as _threading, time as _time
from pathlib import Path as _Path
_target = _Path(_os.environ["TMPDIR"], "{MARKER}")
def _keep_writing():
    while True:
        _target.write_text("left by a thread")
        _time.sleep(0.01)
_target.write_text("left by a thread")
_threading.Thread(target=_keep_writing, daemon=True).start()
"""
LEAVE_IPC = f"""
import ctypes as _ctypes, os as _os
_libc = _ctypes.CDLL(None, use_errno=True)
_create = 0o1600  # IPC_CREAT | 0600
assert _libc.shmget(0x52415443, 4096, _create) >= 0
assert _libc.semget(0x52415443, 1, _create) >= 0
assert _libc.msgget(0x52415443, _create) >= 0
_libc.mq_open(b"/{MARKER}", _os.O_CREAT | _os.O_RDWR, 0o600, None)  # the sandbox refuses it
"""
# What a process of the same user may change of another without ptrace, and the server's
# children would inherit. Any server can undo these: CPU affinity, I/O priority (the idle
# class), a soft resource limit...
SCHEDULING = f"""
import ctypes as _ctypes, os as _os, resource as _resource
_server = _os.getppid()
if {CPUS} > 1:
    _os.sched_setaffinity(_server, {{min(_os.sched_getaffinity(_server))}})
if {IOPRIO_SET}:
    _ctypes.CDLL(None).syscall({IOPRIO_SET}, 1, _server, 3 << 13 | 7)
_hard = _resource.prlimit(_server, _resource.RLIMIT_NOFILE)[1]
_resource.prlimit(_server, _resource.RLIMIT_NOFILE, (64, _hard))
"""
# ... and only a server with CAP_SYS_NICE and CAP_SYS_RESOURCE these: a raised nice
# value, the idle scheduling policy, a lowered hard limit.
SCHEDULING_FOR_GOOD = """
import os as _os, resource as _resource
_server = _os.getppid()
_os.setpriority(_os.PRIO_PROCESS, _server, 13)
_os.sched_setscheduler(_server, _os.SCHED_IDLE, _os.sched_param(0))
_resource.prlimit(_server, _resource.RLIMIT_NOFILE, (64, 64))
"""
FAKE_REPORT = """
import atexit as _atexit, json as _json, sys as _sys
from pathlib import Path as _Path
_report = _Path(next(a for a in _sys.argv if a.startswith("--json-report-file=")).split("=", 1)[1])
def _all_passed():
    data = _json.loads(_report.read_text())
    for test in data["tests"]:
        test["outcome"] = "passed"
    _report.write_text(_json.dumps(data))
_atexit.register(_all_passed)
"""
SIGNAL_SERVER = """
import os as _os, signal as _signal
for _target in (_os.getppid(), 1):
    try:
        _os.kill(_target, _signal.SIGKILL)
    except OSError:
        pass
"""
# kill(-1): every process the caller may signal. Only where PID 1 is the sandbox
# launcher's (a PID namespace of the run's own): elsewhere it would reach the host's
# processes.
SIGNAL_EVERYTHING = """
import os as _os, signal as _signal
from pathlib import Path as _Path
if b"enter.py" in _Path("/proc/1/cmdline").read_bytes():
    try:
        _os.kill(-1, _signal.SIGKILL)
    except OSError:
        pass
"""
WRITE_EVERY_FD = """
import os as _os
for _name in _os.listdir("/proc/self/fd"):
    try:
        _os.write(int(_name), b"written by a candidate\\n")
    except OSError:
        pass
"""
FORGE_FRAMES = """
import hmac as _hmac, json as _json, os as _os, stat as _stat
_body = _json.dumps({"seq": 1, "kind": "end", "exitstatus": 0, "report_sha256": ""}).encode()
_frame = _hmac.new(b"a guessed key...", _body, "sha256").hexdigest().encode() + b" " + _body
for _name in _os.listdir("/proc/self/fd"):
    try:
        if int(_name) > 2 and _stat.S_ISFIFO(_os.fstat(int(_name)).st_mode):
            _os.write(int(_name), _frame + b"\\n")
    except OSError:
        pass
"""
HANG = """
import time as _time
_time.sleep(600)
"""
STOP_SERVER_AND_HANG = """
import os as _os, signal as _signal, time as _time
try:
    _os.kill(_os.getppid(), _signal.SIGSTOP)
except OSError:
    pass
_time.sleep(600)
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, str]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in IDENTITY.items():
            patch.setenv(key, value)
        box = make_sandbox(tmp_path_factory.mktemp("forkserver") / "repo", record=False)
        box.commit("a suite", {"tests/test_calc.py": SUITE, "tests/test_isolation.py": CHECKS})
    return GitRepo(box.path), box.head()


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(test_timeout_s=1.0, run_timeout_s=60.0)


@pytest.fixture(scope="module")
def isolation(policy: Policy) -> Isolation:
    return choose(policy, automated=True, unsandboxed=False)


@pytest.fixture(scope="module")
def run(repo: tuple[GitRepo, str]) -> Iterator[RunFolder]:
    with RunFolder(*repo) as folder:
        yield folder


def evaluate(
    runner: Callable[[list[str]], RunResult], tree: Path, source: str, tests: list[str]
) -> RunResult | None:
    """One candidate, as mutate's evaluator runs it: None when the run is unusable."""
    (tree / TARGET).write_text(source, encoding="utf-8")
    try:
        return runner(tests)
    except InvalidRun:
        return None


def marked_processes(*needles: str, settle_s: float = 5.0) -> list[str]:
    """Processes on this host whose command line holds one of `needles`, each with its
    state and parent.

    A process the sweep has just sent SIGKILL still shows its command line until the
    kernel has torn it down, which a loaded machine takes its time over; what is left
    after `settle_s` is a survivor (a leftover loops forever and never settles)."""
    deadline = time.monotonic() + settle_s
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                except (OSError, IndexError):
                    continue
                if any(needle in cmdline for needle in needles):
                    found.append(f"{entry.name} (state {state[0]}, parent {state[1]}): {cmdline}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


CANDIDATES = {
    "the seeded bug": CALC,
    "the fix": FIXED_CALC,
    "a broken add": CALC.replace("return a + b\n\n\ndef sub", "return a - b\n\n\ndef sub"),
    "a broken sub (subtests)": CALC.replace("return a - b", "return a + b"),
    "a mul that loops (per-test timeouts)": CALC.replace(
        "    # seeded bug: should multiply\n    return a + b", "    while True:\n        pass"
    ),
    "an import error (collection errors)": "raise ImportError('the candidate broke')\n" + CALC,
    "a hard exit during a test (invalid)": CALC.replace(
        "    # seeded bug: should multiply\n", "    import os\n    os._exit(3)\n"
    ),
    "a report rewritten at exit (invalid)": CALC + FAKE_REPORT,
}


def test_the_fork_server_gives_the_outcomes_of_one_process_per_candidate(
    policy: Policy, isolation: Isolation, run: RunFolder
) -> None:
    results = {}

    def per_process(tests: list[str]) -> RunResult:
        return run_tests(policy, run, isolation, select=tests)

    with CandidateRuns(policy, run, isolation) as runs:
        for name, source in CANDIDATES.items():
            expected = evaluate(per_process, run.tree, source, SUITE_TESTS)
            got = results[name] = evaluate(runs, run.tree, source, SUITE_TESTS)
            if expected is None:
                assert got is None, name
                continue
            assert got is not None, name
            assert got.outcomes == expected.outcomes, name
            assert got.collector_errors.keys() == expected.collector_errors.keys(), name
            assert {n: got.first_line(n) for n in got.failures} == {
                n: expected.first_line(n) for n in expected.failures
            }, name
            assert got.sandbox == expected.sandbox, name
        assert runs.how == "fork server in the sandbox (1 started)"
    seeded = results["the seeded bug"]
    assert seeded is not None and seeded.outcomes == {
        "tests/test_calc.py::test_add": "passed",
        "tests/test_calc.py::test_mul": "failed",
        "tests/test_calc.py::test_fixture_error": "error",
        "tests/test_calc.py::test_skipped": "skipped",
        "tests/test_calc.py::test_expected_failure": "xfailed",
        "tests/test_calc.py::test_mul_by_zero": "failed",
        "tests/test_calc.py::TestTable::test_table": "passed",
        "tests/test_calc.py::test_table_subtests": "passed",
    }
    assert results["a hard exit during a test (invalid)"] is None
    assert results["a report rewritten at exit (invalid)"] is None
    looping = results["a mul that loops (per-test timeouts)"]
    assert looping is not None and "Timeout" in looping.first_line("tests/test_calc.py::test_mul")


def test_a_search_finds_the_same_repair_with_and_without_the_fork_server(
    policy: Policy, isolation: Isolation, run: RunFolder
) -> None:
    """mutate's own steps, localisation and search, both ways on the seeded bug."""
    failing = ["tests/test_calc.py::test_mul", "tests/test_calc.py::test_mul_by_zero"]
    neighbours = ["tests/test_calc.py::TestTable::test_table", "tests/test_calc.py::test_add",
                  "tests/test_calc.py::test_table_subtests"]  # fmt: skip
    found = {}
    for fork in (True, False):
        (run.tree / TARGET).write_text(CALC, encoding="utf-8")  # the search leaves its last
        with CandidateRuns(policy, run, isolation, fork=fork) as runs:
            localisation = localise(runs, TARGET, [*failing, *neighbours], failing)
            evaluator = CandidateEvaluator(runs, TARGET, failing, neighbours)
            result = search(evaluator, CALC, localisation, SearchLimits(max_candidates=40))
            found[fork] = (localisation, result.edits, result.evaluated, result.stopped)
            assert runs.how.startswith("fork server" if fork else "one pytest process")
    assert found[True] == found[False]
    assert [edit.description for edit in found[True][1]] == ["line 14: + -> *"]


# What each attack does to the candidate that carries it: the check that sees it there;
# "" (no check fails there: the attack was refused, or it touched only the server,
# which put itself back); "unusable" (an invalid run, never a verdict); or "spent"
# (unusable, and the server, which could not put itself back, replaced). Whichever, the
# next candidate must see nothing of it.
ATTACKS = {
    "files in tmp/, out/ and /dev/shm, and start-up files for a new server":
        (LEAVE_FILES, "test_no_file_left"),
    "state of modules the server imported (json, pytest, hypothesis, os.environ, ...)":
        (LEAVE_STATE, "test_no_state_left"),
    "pytest's runner patched (the probe sees it)": (PATCH_MACHINERY, "unusable"),
    "a setsid daemon that waits, then writes into the next candidate's folders and pipes":
        (LEAVE_PROCESS, "test_no_process_left"),
    "a thread that keeps writing": (LEAVE_THREAD, "test_no_file_left"),
    "System V objects and a POSIX message queue": (LEAVE_IPC, "test_no_ipc_object_left"),
    "the server's CPU affinity, I/O priority and a soft limit": (SCHEDULING, ""),
    "the server's nice value, scheduling policy and a hard limit":
        (SCHEDULING_FOR_GOOD, "" if UNDOES_NICE_AND_LIMITS else "spent"),
    "a report rewritten at exit": (FAKE_REPORT, "unusable"),
    "a write to every inherited descriptor": (WRITE_EVERY_FD, "unusable"),
    "forged frames": (FORGE_FRAMES, "unusable"),
    "SIGKILL to the server and PID 1": (SIGNAL_SERVER, "" if SCOPED else "spent"),
    "SIGKILL to every process it may signal (kill -1)":
        (SIGNAL_EVERYTHING, "" if SCOPED else "spent"),
}  # fmt: skip


@pytest.fixture(scope="module")
def runs(policy: Policy, isolation: Isolation, run: RunFolder) -> Iterator[CandidateRuns]:
    with CandidateRuns(policy, run, isolation) as shared:
        clean = evaluate(shared, run.tree, CALC, CHECK_TESTS)
        assert clean is not None and clean.outcomes == dict.fromkeys(CHECK_TESTS, "passed")
        yield shared
    assert not marked_processes(MARKER, str(run.path))


@CLEAN_SLATE
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_nothing_a_candidate_does_reaches_the_next(attack: str, runs: CandidateRuns) -> None:
    code, there = ATTACKS[attack]
    started = runs.started
    attacked = evaluate(runs, runs.run.tree, CALC + code, CHECK_TESTS)
    if there in ("unusable", "spent"):
        assert attacked is None, "an attack on the channel or the server must be unusable"
    else:
        assert attacked is not None
        failed = [n for n, outcome in attacked.outcomes.items() if outcome != "passed"]
        assert failed == ([f"tests/test_isolation.py::{there}"] if there else [])
    following = evaluate(runs, runs.run.tree, CALC, CHECK_TESTS)
    assert following is not None
    assert following.outcomes == dict.fromkeys(CHECK_TESTS, "passed")
    assert runs.started == started + (there == "spent")
    assert not marked_processes(MARKER)


@CLEAN_SLATE
def test_a_new_server_never_reads_what_a_candidate_left(
    policy: Policy, isolation: Isolation, run: RunFolder
) -> None:
    """Start-up files planted in tmp/ (where a candidate may write) before a server
    starts: neither the server nor the next candidate runs them."""
    (run.tmp / "ratchet-warm-up").mkdir(exist_ok=True)
    for folder in (run.tmp, run.tmp / "ratchet-warm-up"):
        for name in PLANTED:
            (folder / name).write_text(f"import sys\nsys.modules['{MARKER}'] = sys\n")
        (folder / "pytest.ini").write_text(f"[pytest]\naddopts = -p {MARKER}\n")
    with CandidateRuns(policy, run, isolation) as runs:
        following = evaluate(runs, run.tree, CALC, CHECK_TESTS)
        assert runs.how == "fork server in the sandbox (1 started)"
    assert following is not None
    assert following.outcomes == dict.fromkeys(CHECK_TESTS, "passed")


@CLEAN_SLATE
@pytest.mark.parametrize(
    ("attack", "replaced"),
    [(HANG, False), (STOP_SERVER_AND_HANG, not SCOPED)],
    ids=["a candidate that hangs", "a candidate that stops the server and hangs"],
)
def test_a_candidate_over_its_wall_limit_is_unusable_and_the_next_runs(
    attack: str, replaced: bool, policy: Policy, isolation: Isolation, repo: tuple[GitRepo, str]
) -> None:
    short = replace(policy, run_timeout_s=4.0)
    with RunFolder(*repo) as run, CandidateRuns(short, run, isolation) as runs:
        assert evaluate(runs, run.tree, CALC, CHECK_TESTS) is not None
        assert evaluate(runs, run.tree, CALC + attack, CHECK_TESTS) is None
        following = evaluate(runs, run.tree, CALC, CHECK_TESTS)
        assert following is not None
        assert following.outcomes == dict.fromkeys(CHECK_TESTS, "passed")
        assert runs.started == 1 + replaced
        folder = str(run.path)
    assert not marked_processes(folder)


@CLEAN_SLATE
def test_a_server_killed_between_candidates_costs_no_candidate(
    policy: Policy, isolation: Isolation, repo: tuple[GitRepo, str]
) -> None:
    """The OOM killer, say: the next candidate gets a new server, and a verdict."""
    with RunFolder(*repo) as run, CandidateRuns(policy, run, isolation) as runs:
        assert evaluate(runs, run.tree, CALC, CHECK_TESTS) is not None
        launcher = int((run.path / PGID_FILE).read_text())
        os.kill(launcher, signal.SIGKILL)  # its PID namespace, and the server, go with it
        while (stat := Path(f"/proc/{launcher}/stat")).exists() and ") Z" not in stat.read_text():
            time.sleep(0.01)  # dead, not yet reaped: what the next candidate finds
        following = evaluate(runs, run.tree, CALC, CHECK_TESTS)
        assert following is not None
        assert following.outcomes == dict.fromkeys(CHECK_TESTS, "passed")
        assert runs.started == 2


def test_where_a_fork_server_cannot_serve_each_candidate_runs_alone(
    policy: Policy, isolation: Isolation, run: RunFolder
) -> None:
    mul = ["tests/test_calc.py::test_mul"]
    command = "python -c 'import sys, pytest; sys.exit(pytest.main())'"
    custom = replace(policy, test_command=command)
    assert "not `python -m pytest`" in unsupported(custom)
    with CandidateRuns(custom, run, isolation) as runs:
        result = evaluate(runs, run.tree, FIXED_CALC, mul)
        assert runs.how.startswith("one pytest process per candidate")
    assert result is not None and result.outcomes == {mul[0]: "passed"}
    missing = replace(policy, test_command="/nonexistent/python -m pytest")
    with CandidateRuns(missing, run, isolation) as runs:
        assert evaluate(runs, run.tree, FIXED_CALC, mul) is None
        assert runs.fallback.startswith("the fork server could not start")


def test_the_server_refuses_modules_from_folders_candidates_write() -> None:
    site = str(Path(pytest.__file__).parent.parent)
    assert "pytest" in foreign_modules([site])
    assert foreign_modules([str(Path(pytest.__file__).parent / "nowhere")]) == []
